"""Position correlation analytics (domain spec §9.5).

Pairwise-complete Pearson correlations by masked Gram products (one BLAS pass for all pairs),
positive-semidefinite repair, effective number of positions, clusters and the position filters.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

__all__ = [
    "CorrelationBlocks",
    "correlation_blocks",
    "correlation_clusters",
    "effective_positions",
    "pair_counts",
    "pairwise_correlation",
    "position_filters",
    "position_filters_at",
    "repair_psd",
    "statistical_significance",
]

_BLOCK = 256


def _prepare(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    valid = ~np.isnan(R)
    MT = np.ascontiguousarray(valid.T, dtype=np.float64)            # (N, T)
    cnt = MT.sum(1)
    YT = np.where(valid.T, R.T, 0.0)
    YT -= (YT.sum(1) / np.maximum(cnt, 1.0))[:, None]               # centre each column on its own mean
    YT *= MT                                                        # re-zero the missing cells
    return MT, YT


def pair_counts(log_returns: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Number of rows where both series are present, shape (N, N) (``data_points``)."""
    R = log_returns.to_numpy(np.float64) if isinstance(log_returns, pd.DataFrame) else np.asarray(log_returns)
    M = (~np.isnan(R)).astype(np.float64)
    return M.T @ M


def pairwise_correlation(log_returns: pd.DataFrame | np.ndarray, min_periods: int = 30) -> pd.DataFrame | np.ndarray:
    r"""Pairwise-complete Pearson correlation matrix, equal to ``DataFrame.corr(min_periods=...)``.

    Parameters
    ----------
    log_returns : (T, N) DataFrame or array
        Daily log returns (rows = sessions, columns = symbols), NaN where missing.
    min_periods : int
        A pair needs at least this many common rows (default 30 = max(20, 90 // 3)); otherwise NaN.

    Returns
    -------
    DataFrame (index/columns = the input columns) or ndarray, shape (N, N)
        :math:`\rho_{ij}` computed on the rows where both i and j are present; NaN when the pair has
        fewer than ``min_periods`` rows or either series has zero variance on those rows; clipped to
        [−1, 1]; diagonal 1 (or NaN under the same rules) — the NaN pattern of pandas.

    Notes
    -----
    With the presence mask M and column-centred, zero-filled data Y, the pair sums are Gram products
    (:math:`n = M^\top M`, :math:`S_{x|j} = Y^\top M`, :math:`S_{xx|j} = (Y\circ Y)^\top M`,
    :math:`S_{xy} = Y^\top Y`) and

    .. math::

        \rho_{ij} = \frac{n S_{xy} - S_{x|j} S_{y|i}}
                         {\sqrt{(n S_{xx|j} - S_{x|j}^2)(n S_{yy|i} - S_{y|i}^2)}} .

    Computed in row blocks of the upper triangle (mirrored) to keep temporaries small.
    """
    is_df = isinstance(log_returns, pd.DataFrame)
    R = log_returns.to_numpy(np.float64) if is_df else np.asarray(log_returns, dtype=np.float64)
    N = R.shape[1]
    MT, YT = _prepare(R)
    Y2T = YT * YT
    out = np.empty((N, N))
    minp = max(int(min_periods), 1)
    for a in range(0, N, _BLOCK):
        b = min(a + _BLOCK, N)
        rho, _ = _masked_pearson(MT[a:b], YT[a:b], Y2T[a:b], MT[a:].T, YT[a:].T, Y2T[a:].T, minp)
        out[a:b, a:] = rho
        out[a:, a:b] = rho.T
    d = np.diag(out).copy()
    np.fill_diagonal(out, np.where(np.isnan(d), np.nan, 1.0))
    if is_df:
        return pd.DataFrame(out, index=log_returns.columns, columns=log_returns.columns)
    return out


def _masked_pearson(Mi, Yi, Y2i, Mj, Yj, Y2j, minp: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Pearson from presence masks M, centred zero-filled data Y and Y² (rows i against
    columns j; 2-D or stacked 3-D). Returns (rho, pair counts)."""
    n = Mi @ Mj
    Sx = Yi @ Mj
    Sy = Mi @ Yj
    sxx = Y2i @ Mj
    syy = Mi @ Y2j
    vx = n * sxx - Sx * Sx
    vy = n * syy - Sy * Sy
    num = n * (Yi @ Yj) - Sx * Sy
    # zero variance on the pair's rows -> NaN (relative tolerance: a constant series centred on a rounded
    # mean leaves ~1e-17 residues)
    vx[vx <= 1e-13 * n * sxx] = np.nan
    vy[vy <= 1e-13 * n * syy] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = num / np.sqrt(vx * vy)
    np.clip(rho, -1.0, 1.0, out=rho)
    rho[n < minp] = np.nan
    return rho, n


def statistical_significance(r: np.ndarray, n: np.ndarray) -> np.ndarray:
    r"""``1 − p`` of the two-sided t-test of Pearson's r with n data points (vectorised).

    .. math:: t = r\sqrt{\frac{n-2}{1-r^2}}, \qquad p = 2\,P(T_{n-2} > |t|)

    Same p-value as ``scipy.stats.pearsonr``. |r| = 1 gives 1; n < 3 or NaN r gives NaN.
    """
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    df = n - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.minimum(r * r, 1.0)
        # p = I_{df/(df+t^2)}(df/2, 1/2) = I_{1-r^2}(df/2, 1/2)
        p = special.betainc(df / 2.0, 0.5, 1.0 - r2)
    p = np.where(r2 >= 1.0, 0.0, p)
    return np.where((df >= 1) & ~np.isnan(r), 1.0 - p, np.nan)


def repair_psd(C: np.ndarray, tol: float = -1e-10) -> np.ndarray:
    """Nearest-ish correlation matrix by eigenvalue clipping.

    If the smallest eigenvalue of the symmetric matrix ``C`` is below ``tol`` (−1e-10): clip the
    eigenvalues at 0, rebuild :math:`V \\Lambda_+ V^T` and rescale so the diagonal is 1
    (:math:`C_{ij} / \\sqrt{C_{ii} C_{jj}}`). Otherwise ``C`` is returned unchanged (a copy). NaN
    entries must be resolved by the caller first (a ValueError is raised).
    """
    C = np.array(C, dtype=np.float64)
    if np.isnan(C).any():
        raise ValueError("repair_psd needs a matrix without NaN")
    C = (C + C.T) / 2.0
    vals, vecs = np.linalg.eigh(C)
    if vals.min() >= tol:
        return C
    vals = np.clip(vals, 0.0, None)
    R = (vecs * vals) @ vecs.T
    d = np.sqrt(np.clip(np.diag(R), 1e-300, None))
    R = R / d[:, None] / d[None, :]
    R = (R + R.T) / 2.0
    np.fill_diagonal(R, 1.0)
    return R


def effective_positions(C: np.ndarray, w: np.ndarray) -> np.ndarray | float:
    r"""Correlation-adjusted effective number of positions.

    .. math:: N_\text{eff} = \frac{(\sum_i |w_i|)^2}{w^\top C w}

    Parameters
    ----------
    C : (N, N) correlation matrix. NaN entries (pairs without enough data) count as 0 off the
        diagonal; the diagonal is taken as 1.
    w : (N,) or (P, N)
        The portfolio's **own** weights (e.g. signed MV / gross, any scale: the ratio is scale free).
        With equal weights ``w = 1/N`` it is the original ``1 / (wᵀCw)``; with C = I it is the
        inverse Herfindahl of |w|/Σ|w|.

    Returns
    -------
    float or (P,) ndarray
        NaN when ``wᵀCw ≤ 0`` or Σ|w| = 0 (the original returned N; we prefer an explicit NaN).
    """
    C = np.nan_to_num(np.asarray(C, dtype=np.float64), nan=0.0)
    np.fill_diagonal(C, 1.0)
    W = np.atleast_2d(np.asarray(w, dtype=np.float64))
    quad = np.einsum("pi,ij,pj->p", W, C, W)
    gross = np.abs(W).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((quad > 0) & (gross > 0), gross * gross / quad, np.nan)
    return float(out[0]) if np.ndim(w) == 1 else out


def correlation_clusters(C: np.ndarray, symbols: list[str] | np.ndarray, threshold: float = 0.7) -> pd.DataFrame:
    r"""Groups of highly correlated positions by average-linkage hierarchical clustering.

    Distance :math:`d_{ij} = 1 - |\rho_{ij}|` (NaN → 1, i.e. unrelated), ``scipy`` average linkage,
    clusters cut at distance ``1 − threshold`` (so members are on average at least ``threshold``
    correlated in absolute value). Deterministic, O(N²) memory, no graph search (the original's DFS
    hung and was disabled).

    Returns
    -------
    DataFrame
        Columns ``[cluster_number, symbol]``, only clusters with ≥ 2 members, numbered 1.. by
        decreasing size (ties: first symbol order).
    """
    syms = np.asarray(symbols, dtype=object)
    if len(syms) < 2:
        return pd.DataFrame({"cluster_number": pd.Series(dtype=np.int64), "symbol": pd.Series(dtype=object)})
    D = 1.0 - np.abs(np.nan_to_num(np.asarray(C, dtype=np.float64), nan=0.0))
    D = np.clip((D + D.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(D, 0.0)
    cut = 1.0 - threshold
    n = len(syms)
    if not (D[np.triu_indices(n, 1)] <= cut).any():
        # average linkage merges the closest pair first: no pair within the cut, no cluster
        return pd.DataFrame({"cluster_number": pd.Series(dtype=np.int64), "symbol": pd.Series(dtype=object)})
    Z = hierarchy.linkage(squareform(D, checks=False), method="average")
    labels = hierarchy.fcluster(Z, t=cut, criterion="distance")
    _, first_of, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    size, first = counts[inverse], first_of[inverse]
    pos = np.arange(n)
    keep = size >= 2
    order = np.lexsort((pos[keep], first[keep], -size[keep]))
    lab = labels[keep][order]
    number = np.cumsum(np.r_[True, lab[1:] != lab[:-1]]) if len(lab) else np.zeros(0, dtype=np.int64)
    return pd.DataFrame({"cluster_number": number.astype(np.int64), "symbol": syms[keep][order]})


def position_filters(positions: pd.DataFrame, portfolio_value: pd.Series, log_returns: pd.DataFrame, *,
                     min_position_value: float = 10_000.0, min_weight: float = 0.01,
                     min_returns: int = 20) -> pd.DataFrame:
    """Which positions enter the correlation matrix (spec §9.5 filters, filter_mode "both").

    Parameters
    ----------
    positions : DataFrame
        Columns ``[portfolio_id, symbol, market_value]`` (dollars; lots are merged per symbol as
        Σ|MV|). PRIVATE positions must already be removed by the caller.
    portfolio_value : Series
        Gross portfolio value in dollars indexed by ``portfolio_id`` (weight denominator).
    log_returns : DataFrame
        (T, N) log returns over the correlation window, columns = symbols.

    Returns
    -------
    DataFrame
        One row per (portfolio_id, symbol): ``abs_value``, ``weight`` (= abs_value / portfolio value),
        ``n_returns`` (non-null returns), and booleans ``passes_value`` (abs_value ≥ $10,000),
        ``passes_weight`` (weight ≥ 1 %), ``passes_history`` (≥ 20 non-null returns) and
        ``included`` = all three.
    """
    g = (positions.assign(abs_value=positions["market_value"].abs())
         .groupby(["portfolio_id", "symbol"], sort=True, observed=True)["abs_value"].sum().reset_index())
    pv = portfolio_value.reindex(g["portfolio_id"]).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g["weight"] = np.where(pv > 0, g["abs_value"].to_numpy() / pv, np.nan)
    counts = log_returns.notna().sum(axis=0)
    g["n_returns"] = counts.reindex(g["symbol"]).fillna(0).astype(np.int64).to_numpy()
    g["passes_value"] = g["abs_value"] >= min_position_value
    g["passes_weight"] = (g["weight"] >= min_weight).fillna(False)
    g["passes_history"] = g["n_returns"] >= min_returns
    g["included"] = g["passes_value"] & g["passes_weight"] & g["passes_history"]
    return g


def position_filters_at(positions: pd.DataFrame, portfolio_value: pd.Series, log_returns: pd.DataFrame, *,
                        window: int = 90, first_row: int = 0, min_position_value: float = 10_000.0,
                        min_weight: float = 0.01, min_returns: int = 20) -> pd.DataFrame:
    """:func:`position_filters` for many calculation dates at once, each over its own return window.

    Parameters
    ----------
    positions : DataFrame
        Columns ``[calculation_date, portfolio_id, symbol, market_value]`` (dollars; lots merged per
        symbol as Σ|MV| per date). Every symbol must be a column of ``log_returns`` and every date a row.
    portfolio_value : Series
        Gross portfolio value (dollars) indexed by ``(date, portfolio_id)``.
    log_returns : DataFrame, shape (T, N)
        Log returns, index = sessions (Timestamps, ascending), columns = symbols.
    window : int
        Date d's window is the ``window`` rows ending at d's row, rows before ``first_row`` left out — the
        frame :func:`position_filters` is given date by date.

    Returns
    -------
    DataFrame
        One row per (calculation_date, portfolio_id, symbol), sorted by the three: ``calculation_date``
        and the columns of :func:`position_filters`, with the same values as that function date by date.

    Notes
    -----
    ``n_returns`` comes from one cumulative count of non-null returns per symbol: the count over rows
    ``a .. e`` is ``C[e + 1] - C[a]`` — O(T × N) once, not a window sum per date.
    """
    g = (positions.assign(abs_value=positions["market_value"].abs())
         .groupby(["calculation_date", "portfolio_id", "symbol"], sort=True, observed=True)["abs_value"].sum()
         .reset_index())
    pv = portfolio_value.reindex(pd.MultiIndex.from_frame(g[["calculation_date", "portfolio_id"]])).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        g["weight"] = np.where(pv > 0, g["abs_value"].to_numpy() / pv, np.nan)
    C = np.zeros((len(log_returns) + 1, log_returns.shape[1]), dtype=np.int64)
    np.cumsum(log_returns.notna().to_numpy(), axis=0, out=C[1:])
    end = log_returns.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(g["calculation_date"])))
    col = log_returns.columns.get_indexer(g["symbol"])
    if (end < 0).any() or (col < 0).any():
        raise ValueError("every date must be a row and every symbol a column of log_returns")
    start = np.maximum(end - window + 1, first_row)
    g["n_returns"] = (C[end + 1, col] - C[start, col]).astype(np.int64)
    g["passes_value"] = g["abs_value"] >= min_position_value
    g["passes_weight"] = (g["weight"] >= min_weight).fillna(False)
    g["passes_history"] = g["n_returns"] >= min_returns
    g["included"] = g["passes_value"] & g["passes_weight"] & g["passes_history"]
    return g


# --- stacked versions: many portfolios' blocks at once (phase 6c) ---------------------------------

def cluster_groups(C: np.ndarray, threshold: float) -> list[np.ndarray]:
    """The clusters of :func:`correlation_clusters` as position arrays, in its numbering order (the
    one-matrix reference of the stacked :func:`average_linkage_labels`).

    Same distance and average linkage; the flat cut (cophenetic distance ≤ 1 − threshold, as
    ``fcluster(criterion="distance")``: the highest merges whose whole subtree is within the cut) is
    taken directly from the merge list instead of building frames.
    """
    n = C.shape[0]
    D = 1.0 - np.abs(np.nan_to_num(C, nan=0.0))
    D = np.clip((D + D.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(D, 0.0)
    cut = 1.0 - threshold
    Z = hierarchy.linkage(squareform(D, checks=False), method="average")
    # node -> (its leaves while the whole subtree is within the cut, else None; max merge distance inside)
    nodes: dict[int, tuple[list[int] | None, float]] = {i: ([i], 0.0) for i in range(n)}
    flat: list[list[int]] = []
    for i, (a, b, dist) in enumerate(Z[:, :3].tolist()):
        (la, da), (lb, db) = nodes.pop(int(a)), nodes.pop(int(b))
        top = max(dist, da, db)
        if top <= cut:
            nodes[n + i] = (la + lb, top)
        else:
            nodes[n + i] = (None, top)
            flat.extend(x for x in (la, lb) if x is not None)
    flat.extend(v for v, _ in nodes.values() if v is not None)
    groups = [np.sort(np.array(v, dtype=np.int64)) for v in flat if len(v) >= 2]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    return groups


def average_linkage_labels(D: np.ndarray, cut: float) -> np.ndarray:
    """Flat average-linkage clusters of a stack of distance matrices, cut at ``cut``.

    Parameters
    ----------
    D : ndarray, shape (G, k, k)
        Symmetric distance matrices (finite, zero diagonal), k ≥ 2.
    cut : float
        Positions joined by a merge at distance ≤ ``cut`` share a cluster (``fcluster(criterion="distance")``).

    Returns
    -------
    ndarray of int, shape (G, k)
        A cluster label per position (labels are position numbers, otherwise arbitrary).

    Notes
    -----
    Replays scipy's ``hierarchy.linkage(method="average")`` — the nearest-neighbour chain of
    ``_hierarchy.nn_chain``, its tie-breaking (the previous chain element first, else the lowest
    position) and its distance update :math:`d(x \\cup y, i) = (n_x d(x, i) + n_y d(y, i)) / (n_x + n_y)`
    in the same floating-point operations — one chain step of every matrix per iteration, so the merges
    and their distances are scipy's bit for bit. The flat cut of the sorted dendrogram joins exactly the
    pairs merged at distance ≤ ``cut`` (sorted merge distances: a node is within the cut when its own
    distance is), so a merge within the cut unites the labels of its two sides; a matrix is left once no
    two of its live clusters are within the cut (checked every 8 steps). At most about 2–3 k iterations
    of (G, k) array operations instead of G calls of ``linkage``.
    """
    G, k = D.shape[:2]
    D = np.array(D, dtype=np.float64)                                   # updated in place
    size = np.ones((G, k))                                              # 0: merged into another slot
    chain = np.zeros((G, k), dtype=np.intp)
    clen = np.zeros(G, dtype=np.intp)
    left = np.full(G, k - 1)                                            # merges still to do
    label = np.tile(np.arange(k), (G, 1))
    rows = np.arange(G)
    off = ~np.eye(k, dtype=bool)
    step = 0
    while len(rows):
        step += 1
        if step % 8 == 0:
            # done when no two live clusters are within the cut: a merged distance is a weighted mean of
            # distances (≥ their minimum, up to rounding far below the margin), so no later merge is
            s = size[rows] > 0
            live = s[:, :, None] & s[:, None, :] & off
            rows = rows[np.where(live, D[rows], np.inf).min((1, 2)) <= cut + 1e-9]
            if not len(rows):
                break
        c = clen[rows]
        s = size[rows]
        start = c == 0                                                  # a new chain: the first live slot
        if start.any():
            chain[rows[start], 0] = np.argmax(s[start] > 0, axis=1)
            c[start] = 1
        at = np.arange(len(rows))
        x = chain[rows, c - 1]
        d = D[rows, x]                                                  # (L, k) distances from the chain's end
        d[s == 0] = np.inf
        d[at, x] = np.inf
        prev = chain[rows, np.maximum(c - 2, 0)]
        dprev = d[at, prev]
        a = d.argmin(1)                                                 # the lowest position at the minimum
        merge = (c > 1) & ~(d[at, a] < dprev)                           # the previous element is a nearest one
        ext = ~merge
        chain[rows[ext], c[ext]] = a[ext]
        clen[rows] = np.where(merge, c - 2, c + 1)
        if merge.any():
            r = rows[merge]
            lo, hi = np.minimum(x[merge], prev[merge]), np.maximum(x[merge], prev[merge])
            within = dprev[merge] <= cut
            if within.any():
                rw = r[within]
                lab = label[rw]
                label[rw] = np.where(lab == label[rw, lo[within]][:, None], label[rw, hi[within]][:, None], lab)
            nx, ny = size[r, lo], size[r, hi]
            size[r, lo] = 0.0
            size[r, hi] = nx + ny
            new = (nx[:, None] * D[r, lo] + ny[:, None] * D[r, hi]) / (nx + ny)[:, None]
            upd = size[r] > 0
            upd[np.arange(len(r)), hi] = False
            new = np.where(upd, new, D[r, hi])
            D[r, hi] = new
            D[r, :, hi] = new
            left[r] -= 1
            rows = rows[left[rows] > 0]
    return label


def pairwise_correlation_stack(Rp: np.ndarray, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pairwise_correlation` of every (T, k) slice of ``Rp`` (k ≤ one block), and the pair counts."""
    valid = ~np.isnan(Rp).transpose(0, 2, 1)                            # (G, k, T)
    MT = np.ascontiguousarray(valid, dtype=np.float64)
    cnt = MT.sum(2)
    YT = np.where(valid, Rp.transpose(0, 2, 1), 0.0)
    YT -= (YT.sum(2) / np.maximum(cnt, 1.0))[:, :, None]
    YT *= MT
    Y2T = YT * YT
    rho, n = _masked_pearson(MT, YT, Y2T, MT.transpose(0, 2, 1), YT.transpose(0, 2, 1), Y2T.transpose(0, 2, 1),
                             max(int(min_periods), 1))
    out = np.ascontiguousarray(rho.transpose(0, 2, 1))                  # a single block: out = rho.T
    k = out.shape[1]
    diag = np.arange(k)
    dv = out[:, diag, diag]
    out[:, diag, diag] = np.where(np.isnan(dv), np.nan, 1.0)
    return out, n


def repair_psd_stack(C: np.ndarray, tol: float = -1e-10) -> np.ndarray:
    """:func:`repair_psd` of every (k, k) matrix of the stack (one batched ``eigh`` of the matrices that
    may need the repair).

    ``eigh`` (with eigenvectors) is only needed where the smallest eigenvalue may be below ``tol``.
    The others are found cheaply with a margin of 1e-8, far above the eigenvalues' rounding errors
    (≈ k² × 1e-16): the whole stack at once when the Cholesky factors of every ``C − 1e-8 I`` exist
    (all eigenvalues above 1e-8; numpy refuses the stack if one fails), else matrix by matrix from
    ``eigvalsh`` (smallest eigenvalue ≥ tol + 1e-8). The repaired matrices are the same as with ``eigh``
    of the whole stack (it computes each matrix on its own).
    """
    C = (C + C.transpose(0, 2, 1)) / 2.0
    k = C.shape[1]
    try:
        np.linalg.cholesky(C - 1e-8 * np.eye(k))
        return C
    except np.linalg.LinAlgError:
        pass
    check = np.flatnonzero(np.linalg.eigvalsh(C).min(1) < tol + 1e-8)
    if not len(check):
        return C
    vals, vecs = np.linalg.eigh(C[check])
    low = vals.min(1) < tol
    if low.any():
        v = np.clip(vals[low], 0.0, None)
        V = vecs[low]
        R = (V * v[:, None, :]) @ V.transpose(0, 2, 1)
        diag = np.arange(k)
        dd = np.sqrt(np.clip(R[:, diag, diag], 1e-300, None))
        R = R / dd[:, :, None] / dd[:, None, :]
        R = (R + R.transpose(0, 2, 1)) / 2.0
        R[:, diag, diag] = 1.0
        C[check[low]] = R
    return C


class CorrelationBlocks(NamedTuple):
    """What :func:`correlation_blocks` computes for P (date, portfolio) pairs.

    ``overall``, ``effective``, ``concentration``: arrays (P,), NaN where not defined. ``clusters``: ``(pair
    j, cluster number from 1, row of the included frame, average |ρ| among the cluster's members, weight
    |MV| / Σ|MV|)`` arrays, one entry per cluster member, in pair order, then cluster number, then
    position (None when no pair has a cluster). ``pairs``: ``(pair j,
    column of symbol 1, column of symbol 2, ρ, data points)`` arrays of every finite upper-triangle entry
    of the kept pairs, pair order then triangle order (None when no pair is kept).
    """

    overall: np.ndarray
    effective: np.ndarray
    concentration: np.ndarray
    clusters: tuple | None
    pairs: tuple | None


def correlation_blocks(log_returns: np.ndarray, ends: np.ndarray, col: np.ndarray, i_start: np.ndarray,
                       i_stop: np.ndarray, i_mv: np.ndarray, kept: np.ndarray, *, window: int = 90,
                       first_row: int = 0, min_periods: int = 30, threshold: float = 0.7,
                       group_block: int = 2048) -> CorrelationBlocks:
    """Correlation summaries of many (date, portfolio) pairs at once, each over its own date's window.

    Parameters
    ----------
    log_returns : ndarray, shape (T, N)
        Log returns of the whole history, rows = sessions (oldest first), columns = symbols.
    ends : ndarray of int, shape (P,)
        Row of each pair's calculation date; its window is the ``window`` rows ending there, rows before
        ``first_row`` (and before row 0) missing.
    col : ndarray of int, shape (I,)
        Column of ``log_returns`` of each row of the included frame (positions that passed
        :func:`position_filters_at`, sorted by pair).
    i_start, i_stop : ndarray of int, shape (P,)
        Pair j's included positions are rows ``i_start[j]:i_stop[j]`` (k_j of them).
    i_mv : ndarray, shape (I,)
        Market value of each included row (dollars, lots merged): the weights of the effective number.
    kept : ndarray of bool, shape (P,)
        Pairs whose upper triangle is returned in ``pairs``.
    min_periods, threshold : int, float
        As in :func:`pairwise_correlation` and :func:`correlation_clusters`.
    group_block : int
        Pairs of one size computed at once: memory O(group_block × window × k).

    Returns
    -------
    CorrelationBlocks
        Per pair: ``overall`` = mean |ρ| over the finite non-zero upper-triangle entries; ``effective`` =
        :func:`effective_positions` of the PSD-repaired block with the MV weights (1 for one position);
        ``concentration`` = the weight share of the positions in some cluster (0 when none, and for one
        position); the clusters (average linkage, |ρ| ≥ threshold after repair) and the kept pairs.
        The same values as :func:`pairwise_correlation`, :func:`repair_psd`, :func:`effective_positions`
        and :func:`correlation_clusters` pair by pair, up to floating-point summation order.

    Notes
    -----
    Pairs are batched by their number of positions k across dates: a size group is a (G, window, k) stack
    gathered from ``log_returns`` (masked Gram products for the correlations, one Cholesky of the stack for
    the PSD check, ``eigh`` only where a repair may be needed, reductions over the stack for the rest);
    only pairs with some entry at
    |ρ| ≥ threshold after repair are clustered (no entry within the cut means no cluster), all of a size
    at once (:func:`average_linkage_labels`: scipy's linkage replayed on the stack).
    """
    P = len(ends)
    k_all = (i_stop - i_start).astype(np.int64)
    overall, eff, conc = np.full(P, np.nan), np.full(P, np.nan), np.full(P, np.nan)
    clusters: list[tuple] = []
    parts: list[tuple] = []
    single = k_all == 1                                 # one position: no pair, but one effective position
    eff[single], conc[single] = 1.0, 0.0
    offsets = np.arange(-window + 1, 1)
    flat, n_cols = np.ascontiguousarray(log_returns).ravel(), log_returns.shape[1]
    for k in np.unique(k_all[k_all >= 2]).tolist():
        of_size = np.flatnonzero(k_all == k)
        for b0 in range(0, len(of_size), group_block):
            idx = of_size[b0:b0 + group_block]
            pos = i_start[idx][:, None] + np.arange(k)[None, :]             # (G, k) rows of the included frame
            rows = ends[idx][:, None] + offsets[None, :]                    # (G, T) rows of log_returns
            Rp = flat[(np.maximum(rows, 0) * n_cols)[:, :, None] + col[pos][:, None, :]]  # (G, T, k)
            early = rows < max(first_row, 0)
            if early.any():
                Rp[early] = np.nan
            _size_group(Rp, idx, pos, i_mv, col, kept[idx], min_periods, threshold, overall, eff, conc,
                        clusters, parts)
    pairs = None
    if parts:
        key = np.concatenate([p[0] for p in parts])
        order = np.argsort(key, kind="stable")                          # pair order, triangle order within
        pairs = (key[order], *(np.concatenate([p[i] for p in parts])[order] for i in range(1, 5)))
    cl = None
    if clusters:
        order = np.argsort(np.concatenate([c[0] for c in clusters]), kind="stable")  # pair order (then numbers)
        cl = tuple(np.concatenate([c[i] for c in clusters])[order] for i in range(5))
    return CorrelationBlocks(overall, eff, conc, cl, pairs)


def _size_group(Rp, idx, pos, i_mv, col, keep, min_periods, threshold, overall, eff, conc, clusters, parts) -> None:
    """The pairs ``idx`` of one size k (returns ``Rp``, (G, T, k)): fills ``overall``, ``eff``, ``conc``
    at ``idx``, appends their clusters and, for ``keep``, their upper triangles."""
    k = Rp.shape[2]
    if k <= _BLOCK:
        C, N = pairwise_correlation_stack(Rp, min_periods)
    else:
        C = np.stack([pairwise_correlation(x, min_periods=min_periods) for x in Rp])
        N = np.stack([pair_counts(x) for x in Rp])
    iu = np.triu_indices(k, 1)
    U = C[:, iu[0], iu[1]]                                              # (G, m)
    A = np.abs(U)
    ok = np.isfinite(A) & (A != 0)
    cnt = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall[idx] = np.where(cnt > 0, np.where(ok, A, 0.0).sum(1) / cnt, np.nan)
    diag = np.arange(k)
    Cf = np.where(np.isfinite(C), C, 0.0)
    Cf[:, diag, diag] = 1.0
    Cp = repair_psd_stack(Cf)
    W = i_mv[pos]
    gross_w = np.abs(W).sum(1)
    quad = np.einsum("pi,pij,pj->p", W, Cp, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff[idx] = np.where((quad > 0) & (gross_w > 0), gross_w * gross_w / quad, np.nan)
        conc[idx] = 0.0 / gross_w
    D = 1.0 - np.abs(Cp)
    D = np.clip((D + D.transpose(0, 2, 1)) / 2.0, 0.0, 1.0)
    cand = np.flatnonzero((D[:, iu[0], iu[1]] <= 1.0 - threshold).any(1))
    if len(cand):
        D = D[cand]
        D[:, diag, diag] = 0.0
        clusters.append(_cluster_rows(C[cand], average_linkage_labels(D, 1.0 - threshold), idx[cand], pos[cand],
                                      np.abs(W[cand]), gross_w[cand], conc))
    if keep.any():
        fin = np.isfinite(U) & keep[:, None]
        S = col[pos]                                                    # symbols as columns of log_returns
        key = np.broadcast_to(idx[:, None], U.shape)[fin]
        parts.append((key, S[:, iu[0]][fin], S[:, iu[1]][fin], U[fin], N[:, iu[0], iu[1]][fin]))


def _cluster_rows(C: np.ndarray, label: np.ndarray, j: np.ndarray, pos: np.ndarray, aw: np.ndarray,
                  gross: np.ndarray, conc: np.ndarray) -> tuple:
    """The member rows of the clusters of Q pairs of one size k (``label``: flat cluster labels, (Q, k);
    ``C``: the blocks before repair, (Q, k, k); ``aw``: |MV|, (Q, k); ``gross``: Σ|MV|, (Q,)), numbered 1..
    by decreasing size then first position, members in position order (as :func:`cluster_groups`).
    Sets ``conc`` at ``j`` for the pairs with a cluster. Returns ``(pair, number, included row, average
    |ρ| of the cluster, weight)`` arrays, one entry per member.

    The sums are numpy's over the same elements in the same order as the per-pair code (one row of a
    (pairs, elements) stack per pair, grouped by element count): the same pairwise summation, bit for bit.
    """
    Q, k = label.shape
    key = np.arange(Q)[:, None] * k + label                             # one key per (pair, cluster)
    n_of = np.bincount(key.ravel(), minlength=Q * k)
    first = np.zeros(Q * k, dtype=np.intp)
    u, at = np.unique(key.ravel(), return_index=True)
    first[u] = at % k                                                   # the first position of each cluster
    q0, p0 = np.nonzero(n_of[key] >= 2)                                 # clustered positions, pair by pair
    if not len(q0):
        return tuple(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.int64, np.float64, np.float64))
    # concentration: the clustered |MV| of each pair summed in position order, over its gross
    m_of = np.bincount(q0, minlength=Q)
    for m in np.unique(m_of[m_of > 0]).tolist():
        sel = m_of[q0] == m
        qs = q0[sel][::m]
        conc[j[qs]] = aw[q0[sel], p0[sel]].reshape(-1, m).sum(1) / gross[qs]
    kq = key[q0, p0]
    size = n_of[kq]
    order = np.lexsort((p0, first[kq], -size, q0))
    q, p, kq, size = q0[order], p0[order], kq[order], size[order]
    cl = np.cumsum(np.r_[True, kq[1:] != kq[:-1]]) - 1                 # cluster index of each member
    number = cl - np.maximum.accumulate(np.where(np.r_[True, q[1:] != q[:-1]], cl, 0)) + 1
    # average |ρ| (before repair) over each cluster's off-diagonal entries, row by row, NaN left out
    avg = np.empty(len(q))
    for m in np.unique(size).tolist():
        sel = np.flatnonzero(size == m)
        mem = p[sel].reshape(-1, m)
        qm = q[sel][::m]
        off = C[qm[:, None, None], mem[:, :, None], mem[:, None, :]][:, ~np.eye(m, dtype=bool)]
        off = np.ascontiguousarray(np.abs(off))                         # rows contiguous: numpy's row sums
        nan = np.isnan(off)
        off[nan] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            a = off.sum(1) / (~nan).sum(1)
        avg[sel] = np.repeat(a, m)
    return j[q].astype(np.int64), number.astype(np.int64), pos[q, p], avg, aw[q, p] / gross[q]
