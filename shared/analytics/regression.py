r"""Rolling OLS and ridge regressions for many symbols and many calculation dates at once.

Both kernels take a return matrix ``y`` of shape ``(T, N)`` (rows = consecutive sessions, columns =
symbols), the regressor(s) on the same row grid, and ``out_rows``: the row indices at which a fit is wanted
(one per calculation date). For output row ``t`` the window is rows ``t - window + 1 .. t`` inclusive, i.e.
the last ``window`` *return rows* (sessions), clipped at row 0. Inside a window a symbol uses only the rows
where its return and every regressor are finite ("pairwise complete"), exactly like running the library fit
on that symbol's own non-missing rows.

How it is computed (no loop per symbol or per date in the arithmetic):

1. The regressors are centred once on their mean over the rows in use, and each symbol's returns on its own
   mean. Slopes, R², standard errors and p-values are shift-invariant; intercepts are shifted back at the
   end. Centring keeps the "raw moment minus n·mean²" subtraction below well conditioned.
2. Masked window sums (``n``, ``Σx``, ``Σxxᵀ``, ``Σy``, ``Σxy``, ``Σy²``) for all output rows come from a few
   dense matrix products ``(band matrix ⊙ regressor) @ (masked y)``. Output rows are grouped into blocks of
   nearby dates so that each product only spans the rows those windows touch (:func:`_window_blocks`).
3. A symbol whose observed rows in a window equal the rows where the regressors exist ("full window", the
   common case) shares ``n``, ``Σx`` and ``Σxxᵀ`` with every other full-window symbol on that date, so the
   ridge system is factorised once per date. Only (date, symbol) pairs with gaps get their own Gram matrix
   and their own batched ``K × K`` solve.

Everything is float64; results agree with statsmodels ``OLS`` / sklearn ``Ridge`` to about 1e-13.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["rolling_ols", "rolling_ols_many", "rolling_ridge"]

#: Output rows per band block (bigger blocks = bigger, more efficient GEMMs but more rows per product).
_BLOCK_DATES = 32
#: Symbols per chunk; bounds the temporaries to a few tens of MB.
_CHUNK_SYMBOLS = 1024
#: Symbols per chunk in the OLS kernel: keeps the (dates x chunk) statistics arrays cache-sized.
_OLS_CHUNK_SYMBOLS = 256
#: Symbols per chunk in the ridge kernel.
_RIDGE_CHUNK_SYMBOLS = 256


@dataclass(frozen=True)
class _Block:
    """A group of output rows whose windows lie inside rows ``lo .. hi - 1``."""

    pos: np.ndarray  # positions (into out_rows) of the output rows in this block, shape (B,)
    lo: int
    hi: int
    band: np.ndarray  # (B, hi - lo) float64, 1 where the row is inside that output row's window


def _check_out_rows(out_rows: np.ndarray, n_rows: int) -> np.ndarray:
    rows = np.asarray(out_rows)
    if rows.ndim != 1:
        raise ValueError("out_rows must be one-dimensional")
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise ValueError("out_rows must hold integer row indices")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"out_rows must lie in [0, {n_rows})")
    return rows


def _window_blocks(out_rows: np.ndarray, window: int, max_block: int = _BLOCK_DATES) -> list[_Block]:
    """Group output rows (any order) into blocks of at most ``max_block`` rows spanning less than ``window``.

    Only index bookkeeping (O(number of output rows) scalar steps); the arithmetic is done per block.
    """
    order = np.argsort(out_rows, kind="stable")
    rs = out_rows[order]
    blocks: list[_Block] = []
    start, d = 0, len(rs)
    while start < d:
        end = start + 1
        while end < d and end - start < max_block and rs[end] - rs[start] < window:
            end += 1
        r = rs[start:end]
        lo = max(int(r[0]) - window + 1, 0)
        hi = int(r[-1]) + 1
        rows = np.arange(lo, hi)
        band = ((rows[None, :] > r[:, None] - window) & (rows[None, :] <= r[:, None])).astype(np.float64)
        blocks.append(_Block(order[start:end], lo, hi, band))
        start = end
    return blocks


def _band_lhs(left: np.ndarray | None, blocks: list[_Block]) -> list[np.ndarray]:
    """Per block, the left factor ``(Q·B, span)`` of :func:`_window_sums`: band rows weighted by ``left``.

    ``left`` has shape (T, Q) (per-row weights, e.g. ``1``, ``x``, ``x²``); ``None`` means a single column
    of ones. Built once and reused for every symbol chunk.
    """
    if left is None:
        return [blk.band for blk in blocks]
    q = left.shape[1]
    return [
        (left[blk.lo : blk.hi].T[:, None, :] * blk.band[None, :, :]).reshape(q * len(blk.pos), blk.hi - blk.lo)
        for blk in blocks
    ]


def _window_sums(lhs: list[np.ndarray], a: np.ndarray, blocks: list[_Block], n_out: int) -> np.ndarray:
    """Window sums ``S[j, q, n] = Σ_{r in window(j)} left[r, q] · a[r, n]``.

    Parameters
    ----------
    lhs : list of ndarray
        :func:`_band_lhs` of the per-row weights ``left`` (T, Q).
    a : ndarray, shape (T, N)
        Masked per-symbol values (zeros where a row does not count).
    blocks : list of _Block
    n_out : int
        Number of output rows.

    Returns
    -------
    ndarray, shape (n_out, Q, N)
    """
    q = lhs[0].shape[0] // len(blocks[0].pos)
    out = np.empty((n_out, q, a.shape[1]))
    for blk, mat in zip(blocks, lhs, strict=True):
        out[blk.pos] = (mat @ a[blk.lo : blk.hi]).reshape(q, len(blk.pos), -1).transpose(1, 0, 2)
    return out


def _used_rows(out_rows: np.ndarray, window: int) -> slice:
    return slice(max(int(out_rows.min()) - window + 1, 0), int(out_rows.max()) + 1)


def _centre_y(yc: np.ndarray, mask: np.ndarray, used: slice) -> tuple[np.ndarray, np.ndarray]:
    """Centre each column on its mean over the masked rows in ``used``; zero elsewhere.

    Returns the centred, masked array ``(T, n)`` and the column means ``(n,)``.
    """
    cnt = mask[used].sum(0)
    ym = np.where(mask[used], yc[used], 0.0).sum(0) / np.maximum(cnt, 1)
    return np.where(mask, yc - ym, 0.0), ym


#: Residual sum of squares at or below this fraction of the total is rounding noise of an exact fit.
_EXACT_FIT = 64 * np.finfo(np.float64).eps

#: Student-t p-value tables: quintic Hermite pieces on |t| in steps of 1/16 up to 64 (see _t_table).
_T_STEPS_PER_UNIT = 16
_T_INTERVALS = 1024
#: Every degrees-of-freedom value in a call gets a (cached) table, whatever its count: a p-value is then a
#: function of (t, dof) alone, the same in a one-date nightly call and a year-long backfill (range
#: invariance; a count threshold made the two differ by up to 1e-10).
_T_TABLE_MIN_COUNT = 1
_T_TABLES: dict[int, np.ndarray] = {}
_P_CHUNK = 65536


def _t_table(dof: int) -> np.ndarray:
    """Coefficients ``(6, _T_INTERVALS)`` of the two-sided p-value ``2·stdtr(dof, -s)`` as a quintic per interval.

    Each piece is the quintic Hermite interpolant of the exact values, first and second derivatives
    (``-2·pdf`` and ``-2·pdf'``) at both ends of the interval, in the local variable ``u = 16·s - i``. The
    interpolation error is below ~1e-10 for every ``dof >= 1`` (about 1e-11 for ``dof >= 3``; checked
    against scipy over dense grids in the tests), far inside the 1e-8 agreement with statsmodels.
    """
    tab = _T_TABLES.get(dof)
    if tab is not None:
        return tab
    nu = float(dof)
    h = 1.0 / _T_STEPS_PER_UNIT
    s = np.arange(_T_INTERVALS + 1) * h
    f = 2.0 * special.stdtr(nu, -s)
    logc = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    pdf = np.exp(logc - (nu + 1) / 2 * np.log1p(s * s / nu))
    d = -2.0 * pdf * h  # dp/du
    e = 2.0 * pdf * (nu + 1) * s / (nu + s * s) * h * h  # d2p/du2
    f0, f1, d0, d1, e0, e1 = f[:-1], f[1:], d[:-1], d[1:], e[:-1], e[1:]
    df = f1 - f0
    tab = np.stack(
        [
            f0,
            d0,
            0.5 * e0,
            10 * df - 6 * d0 - 4 * d1 - 1.5 * e0 + 0.5 * e1,
            -15 * df + 8 * d0 + 7 * d1 + 1.5 * e0 - e1,
            6 * df - 3 * d0 - 3 * d1 - 0.5 * e0 + 0.5 * e1,
        ]
    )
    if len(_T_TABLES) > 1024:
        _T_TABLES.clear()
    _T_TABLES[dof] = tab
    return tab


def _t_pvalue(tstat: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """Two-sided Student-t p-value ``2·stdtr(dof, -|t|)`` for integer ``dof``; NaN where ``t`` is NaN.

    ``scipy.special.stdtr`` costs ~0.2 µs per value. Every degrees-of-freedom value gets a
    piecewise-quintic table (:func:`_t_table`, ~10 ns per value, built once per process); ``|t| >= 64``
    goes to ``stdtr`` itself. ``dof`` must be > 0 wherever ``t`` is not NaN.
    """
    t = np.ascontiguousarray(tstat, dtype=np.float64)
    nu = np.ascontiguousarray(dof, dtype=np.intp)
    counts = np.bincount(np.maximum(nu, 0).reshape(-1))
    tabled = np.flatnonzero(counts >= _T_TABLE_MIN_COUNT)
    tabled = tabled[tabled > 0]
    x = np.abs(t)
    if tabled.size:
        coef = np.concatenate([_t_table(int(v)) for v in tabled], axis=1)  # (6, n_tab * intervals)
        base = np.full(counts.size, -1, dtype=np.intp)
        base[tabled] = np.arange(tabled.size) * _T_INTERVALS
        b = base[np.maximum(nu, 0)]
        x *= _T_STEPS_PER_UNIT
        inside = (b >= 0) & (x < _T_INTERVALS)  # False for NaN
        np.copyto(x, 0.0, where=~inside)
        i = x.astype(np.intp)
        x -= i
        i += b
        c0, c1, c2, c3, c4, c5 = coef
        r = c5[i]
        for c in (c4, c3, c2, c1, c0):
            r *= x
            r += c[i]
        rest = ~inside
    else:
        r = np.empty_like(t)
        rest = np.ones(t.shape, dtype=bool)
    rest &= ~np.isnan(t)
    r[~inside if tabled.size else slice(None)] = np.nan
    if rest.any():
        r[rest] = 2.0 * special.stdtr(nu[rest].astype(np.float64), -np.abs(t[rest]))
    return r


def _ols_stats(
    n: np.ndarray,
    sx: np.ndarray,
    sxx: np.ndarray,
    sy: np.ndarray,
    syy: np.ndarray,
    sxy: np.ndarray,
    ym: np.ndarray,
    xm: float,
    min_obs: int,
    cap: float | None,
) -> dict[str, np.ndarray]:
    """OLS statistics from centred window sums; ``n, sx, sxx`` are (D, 1) (shared per date) or (D, n).

    Invalid fits are NaN: a NaN ``1/n`` (too few rows) or ``1/cxx`` (no variance in x) propagates through
    every statistic; ``std_error`` and ``t`` are also NaN when ``n <= 2``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_n = np.where(n >= max(min_obs, 2), 1.0 / n, np.nan)
        xbar = sx * inv_n
        cxx = sxx - n * xbar * xbar
        inv_cxx = np.where(cxx > 0.0, 1.0 / cxx, np.nan)
        dof = n - 2.0
        se_fac = np.where(dof > 0, inv_cxx / dof, np.nan)
        ybar = sy * inv_n
        cyy = syy - n * ybar * ybar
        cxy = sxy - n * xbar * ybar
        beta = cxy * inv_cxx
        alpha = (ybar + ym) - beta * (xbar + xm)
        ssr = cyy - beta * cxy
        np.maximum(ssr, 0.0, out=ssr)  # NaN stays NaN
        # an exact fit (an ETF on itself) leaves only rounding noise, whose size depends on the summation
        # order: call it 0 so that R² = 1, s.e. = 0 and p = 0 whatever the run's dates
        np.copyto(ssr, 0.0, where=ssr <= _EXACT_FIT * cyy)
        r2 = 1.0 - ssr / cyy
        ssr *= se_fac
        se = np.sqrt(ssr, out=ssr)
        tstat = beta / se
    if cap is not None:
        np.clip(beta, -cap, cap, out=beta)
    out = {"beta": beta, "alpha": alpha, "r_squared": r2, "std_error": se, "t": tstat}
    for k, v in out.items():
        inf = np.isinf(v)
        if k == "t":
            inf &= se != 0.0  # an exact fit's t is infinite (p = 0), not missing
        if inf.any():  # overflow in degenerate windows: no usable fit
            v[inf] = np.nan
    return out


def rolling_ols(
    y: np.ndarray,
    x: np.ndarray,
    window: int,
    min_obs: int,
    cap: float | None,
    out_rows: np.ndarray,
) -> dict[str, np.ndarray]:
    r"""Rolling univariate OLS ``y = alpha + beta · x + e`` for many symbols and output rows at once.

    Parameters
    ----------
    y : ndarray, shape (T, N)
        Dependent returns (decimal), one column per symbol; NaN = missing.
    x : ndarray, shape (T,)
        Regressor returns on the same row grid (e.g. SPY); NaN = missing.
    window : int
        Window length in rows (sessions). For output row ``t`` the window is rows ``t-window+1 .. t``.
    min_obs : int
        Minimum number of usable rows (``y`` and ``x`` both finite) in the window; fewer gives NaN.
    cap : float or None
        Beta is clipped to ``[-cap, cap]`` *after* the statistics are computed: ``alpha``, ``r_squared``,
        ``std_error`` and ``p_value`` always describe the unclipped least-squares fit. ``None`` = no clip.
    out_rows : ndarray of int, shape (D,)
        Row indices at which a fit is wanted (any order, repeats allowed).

    Returns
    -------
    dict of str to ndarray, each of shape (D, N)
        ``beta`` (clipped), ``alpha`` (intercept, in return units per session), ``r_squared`` (centred),
        ``std_error`` (standard error of the unclipped beta), ``p_value`` (two-sided t-test of beta = 0
        with ``nobs - 2`` degrees of freedom), ``nobs`` (int64, usable rows in the window, always filled).
        Everything but ``nobs`` is NaN where ``nobs < max(min_obs, 2)`` or ``x`` has no variance in the
        window; ``std_error``/``p_value`` are NaN when ``nobs <= 2``.

    Notes
    -----
    Equals ``statsmodels.api.OLS(y_obs, add_constant(x_obs)).fit()`` on each symbol's own usable rows in
    the window (``params``, ``rsquared``, ``bse[1]``, ``pvalues[1]``). To fit several regressors with the
    same window, :func:`rolling_ols_many` shares the work on ``y``.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return rolling_ols_many(y, x[:, None], window, min_obs, cap, out_rows)[0]


def rolling_ols_many(
    y: np.ndarray,
    xs: np.ndarray,
    window: int,
    min_obs: int,
    cap: float | None,
    out_rows: np.ndarray,
) -> list[dict[str, np.ndarray]]:
    r"""Several separate univariate rolling OLS fits ``y = alpha_m + beta_m · xs[:, m] + e`` at once.

    Same as ``[rolling_ols(y, xs[:, m], ...) for m in range(M)]`` (``xs`` has shape ``(T, M)``), but the
    masks, centring and window sums of ``y`` are computed once for all regressors that are missing on the
    same rows.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    xs = np.asarray(xs, dtype=np.float64)
    if xs.ndim == 1:
        xs = xs[:, None]
    n_rows, n_sym = y.shape
    if xs.shape[0] != n_rows:
        raise ValueError("x and y must have the same number of rows")
    if window < 1:
        raise ValueError("window must be >= 1")
    rows = _check_out_rows(out_rows, n_rows)
    d = len(rows)
    n_reg = xs.shape[1]
    keys = ("beta", "alpha", "r_squared", "std_error", "p_value")
    if d == 0 or n_sym == 0 or n_reg == 0:
        empty = {k: np.full((d, n_sym), np.nan) for k in keys}
        return [{**{k: v.copy() for k, v in empty.items()}, "nobs": np.zeros((d, n_sym), np.int64)} for _ in range(n_reg)]
    # Every column chunk below writes every entry, so the outputs need no initial fill.
    results = [{k: np.empty((d, n_sym)) for k in keys} for _ in range(n_reg)]

    used = _used_rows(rows, window)
    blocks = _window_blocks(rows, window)
    xv_all = np.isfinite(xs)
    xm = np.array([float(xs[used, m][xv_all[used, m]].mean()) if xv_all[used, m].any() else 0.0 for m in range(n_reg)])
    xc = np.where(xv_all, xs - xm, 0.0)  # (T, M)
    ones = np.ones(n_rows)
    # Regressors missing on the same rows share the mask, centring and window sums of y.
    groups: dict[bytes, list[int]] = {}
    for m in range(n_reg):
        groups.setdefault(xv_all[:, m].tobytes(), []).append(m)
    for members in groups.values():
        xv = xv_all[:, members[0]]
        lx = np.column_stack([ones] + [xc[:, m] for m in members])  # (T, 1 + G)
        lxx = np.column_stack([ones] + [c for m in members for c in (xc[:, m], xc[:, m] * xc[:, m])])
        # Moments of x over the rows where x exists: shared by every full-window symbol on a date.
        per_date = _window_sums(_band_lhs(lxx, blocks), xv[:, None].astype(np.float64), blocks, d)[:, :, 0]  # (D, 1 + 2G)
        lx_l, lxx_l, ones_l = _band_lhs(lx, blocks), _band_lhs(lxx, blocks), _band_lhs(None, blocks)
        nobs_all = np.empty((d, n_sym), dtype=np.int64)
        for c0 in range(0, n_sym, _OLS_CHUNK_SYMBOLS):
            c1 = min(c0 + _OLS_CHUNK_SYMBOLS, n_sym)
            yc = y[:, c0:c1]
            mask = np.isfinite(yc) & xv[:, None]
            y0, ym = _centre_y(yc, mask, used)
            sxy_all = _window_sums(lx_l, y0, blocks, d)  # (D, 1 + G, n)
            np.multiply(y0, y0, out=y0)
            syy = _window_sums(ones_l, y0, blocks, d)[:, 0]
            gappy = (mask[used] != xv[used][:, None]).any(0)
            # Full-window symbols share n, Σx and Σx² per date; the others get their own from the mask.
            if gappy.any():
                mom = np.empty((d, per_date.shape[1], c1 - c0))
                mom[:] = per_date[:, :, None]
                gcols = np.flatnonzero(gappy)
                mom[:, :, gcols] = _window_sums(lxx_l, mask[:, gcols].astype(np.float64), blocks, d)
            else:
                mom = per_date[:, :, None]
            n = mom[:, 0]
            nobs = np.rint(np.broadcast_to(n, syy.shape)).astype(np.intp)
            nobs_all[:, c0:c1] = nobs
            nobs -= 2
            for i, m in enumerate(members):
                out = _ols_stats(
                    n, mom[:, 1 + 2 * i], mom[:, 2 + 2 * i], sxy_all[:, 0], syy, sxy_all[:, 1 + i],
                    ym, xm[m], min_obs, cap,
                )  # fmt: skip
                out["p_value"] = _t_pvalue(out.pop("t"), nobs)
                res = results[m]
                for k, v in out.items():
                    res[k][:, c0:c1] = v
        for m in members:
            results[m]["nobs"] = nobs_all if m == members[0] else nobs_all.copy()
    return results


def _ridge_pairs(
    gsum: np.ndarray,
    sxy: np.ndarray,
    ybar: np.ndarray,
    cyy: np.ndarray,
    ym: np.ndarray,
    xm: np.ndarray,
    alpha: float,
    tri: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge fits from per-pair window sums, all (date, symbol) pairs at once.

    ``gsum`` (D, 1 + K + K(K+1)/2, g) holds n, Σx_k, Σx_i·x_j (centred x, ``tri`` order); ``sxy`` (D, K, g)
    Σx_k·y; ``ybar``, ``cyy`` (D, g) the mean and centred Σy² of y. The K×K systems are solved with an
    unrolled Cholesky factorisation in structure-of-arrays form (each matrix entry is a (D, g) array), so
    the cost is a few hundred vector operations instead of one LAPACK call per pair.

    Returns beta (D, g, K) in original units (NaN where a regressor has no variance), SSres and the
    intercept (D, g); pairs with too few rows give garbage/NaN and are masked by the caller.
    """
    k = sxy.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = gsum[:, 0]
        inv_n = 1.0 / n
        xbar = [gsum[:, 1 + i] * inv_n for i in range(k)]
        c = {}
        for q, (i, j) in enumerate(tri):
            c[i, j] = gsum[:, 1 + k + q] - n * xbar[i] * xbar[j]
        var = [c[i, i] * inv_n for i in range(k)]
        good = np.logical_and.reduce([v > 0 for v in var])
        inv_s = [np.where(good, 1.0 / np.sqrt(v), 1.0) for v in var]
        # z-scored system: a[i, j] = C_ij / (s_i s_j) + alpha δ_ij, rz_i = cxy_i / s_i
        a = {(i, j): c[i, j] * inv_s[i] * inv_s[j] for i, j in tri}
        for i in range(k):
            a[i, i] = np.where(good, a[i, i] + alpha, 1.0)
        rz = [(sxy[:, i] - n * xbar[i] * ybar) * inv_s[i] for i in range(k)]
        # Cholesky A = L L'
        low: dict[tuple[int, int], np.ndarray] = {}
        inv_d = []
        for j in range(k):
            acc = a[j, j].copy()
            for q in range(j):
                acc -= low[j, q] * low[j, q]
            inv_d.append(1.0 / np.sqrt(acc))
            for i in range(j + 1, k):
                acc = a[i, j].copy()
                for q in range(j):
                    acc -= low[i, q] * low[j, q]
                acc *= inv_d[j]
                low[i, j] = acc
        z = []
        for i in range(k):
            acc = rz[i].copy()
            for q in range(i):
                acc -= low[i, q] * z[q]
            acc *= inv_d[i]
            z.append(acc)
        w: list[np.ndarray] = [np.empty(0)] * k
        for i in reversed(range(k)):
            acc = z[i].copy()
            for q in range(i + 1, k):
                acc -= low[q, i] * w[q]
            acc *= inv_d[i]
            w[i] = acc
        ssr = cyy.copy()
        icpt = ybar + ym
        beta = np.empty(n.shape + (k,))
        for i in range(k):
            ssr -= w[i] * (rz[i] + alpha * w[i])
            b = w[i] * inv_s[i]
            b[~good] = np.nan
            beta[:, :, i] = b
            icpt -= (xbar[i] + xm[i]) * b
    return beta, ssr, icpt


def rolling_ridge(
    y: np.ndarray,
    X: np.ndarray,
    window: int,
    min_obs: int,
    alpha: float = 1.0,
    cap: float | None = 5.0,
    out_rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    r"""Rolling standardised ridge regression of each symbol on ``K`` factor returns.

    Reproduces, for every (output row, symbol), the old system's fit on the usable rows of the window
    (``y`` and all ``K`` regressors finite): z-score the regressors on those rows with the *population*
    standard deviation (sklearn ``StandardScaler``), fit ``sklearn.linear_model.Ridge(alpha,
    fit_intercept=True)`` on ``(Z, y)`` -- objective ``||y - b0 - Z w||² + alpha ||w||²``, not divided by
    ``n``, intercept not penalised -- and convert back to original units, ``beta_k = w_k / std_k``.

    Parameters
    ----------
    y : ndarray, shape (T, N)
        Symbol returns (decimal); NaN = missing.
    X : ndarray, shape (T, K)
        Factor (ETF) returns on the same row grid; a row with any NaN is unusable for every symbol.
    window : int
        Window length in rows (sessions); output row ``t`` uses rows ``t-window+1 .. t``.
    min_obs : int
        Minimum usable rows; a fit also needs ``nobs > K``.
    alpha : float, default 1.0
        Ridge penalty on the standardised coefficients.
    cap : float or None, default 5.0
        Betas are clipped to ``[-cap, cap]`` after ``intercept`` and ``r_squared`` are computed (those
        describe the unclipped fit). ``None`` = no clip.
    out_rows : ndarray of int, shape (D,)
        Row indices at which a fit is wanted (required).

    Returns
    -------
    dict of str to ndarray
        ``beta`` (D, N, K): coefficients in original units (return per unit factor return), clipped;
        ``intercept`` (D, N): ``mean(y) - Σ_k beta_k mean(x_k)`` over the usable rows, i.e. the fitted
        intercept in original units (sklearn's ``intercept_`` on the z-scored design equals ``mean(y)``);
        ``r_squared`` (D, N): ``1 - SSres / SStot`` of that fit; ``nobs`` (D, N) int64.
        Fits with too few rows, or where a regressor has zero variance on the usable rows, are NaN as a
        whole (the old system set such betas to 0); other non-finite values are NaN.
    """
    if out_rows is None:
        raise ValueError("out_rows is required")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    n_rows, n_sym = y.shape
    k = X.shape[1]
    if X.shape[0] != n_rows:
        raise ValueError("X and y must have the same number of rows")
    if window < 1:
        raise ValueError("window must be >= 1")
    rows = _check_out_rows(out_rows, n_rows)
    d = len(rows)
    res = {
        "beta": np.full((d, n_sym, k), np.nan),
        "intercept": np.full((d, n_sym), np.nan),
        "r_squared": np.full((d, n_sym), np.nan),
        "nobs": np.zeros((d, n_sym), dtype=np.int64),
    }
    if d == 0 or n_sym == 0:
        return res

    used = _used_rows(rows, window)
    blocks = _window_blocks(rows, window)
    xv = np.isfinite(X).all(1)
    xm = X[used][xv[used]].mean(0) if xv[used].any() else np.zeros(k)
    xc = np.where(xv[:, None], X - xm, 0.0)
    ones = np.ones((n_rows, 1))
    lgram = np.hstack([ones, xc, (xc[:, :, None] * xc[:, None, :]).reshape(n_rows, k * k)])  # (T, 1+K+K²)
    eye = np.eye(k)

    # Per-date moments of the regressors over the rows where all of them exist.
    pd_ = _window_sums(_band_lhs(lgram, blocks), xv[:, None].astype(np.float64), blocks, d)[:, :, 0]  # (D, Q)
    n_d = pd_[:, 0]
    ok_d = n_d > 0
    nd_safe = np.where(ok_d, n_d, 1.0)
    xbar_d = pd_[:, 1 : 1 + k] / nd_safe[:, None]  # (D, K)
    c_d = pd_[:, 1 + k :].reshape(d, k, k) - nd_safe[:, None, None] * xbar_d[:, :, None] * xbar_d[:, None, :]
    s_d = np.sqrt(np.maximum(np.diagonal(c_d, axis1=1, axis2=2), 0.0) / nd_safe[:, None])  # (D, K)
    ok_d &= (s_d > 0).all(1)  # a regressor without variance in the window: no fit that date
    ss_d = np.where(s_d > 0, s_d, 1.0)
    gz_d = c_d / (ss_d[:, :, None] * ss_d[:, None, :]) + alpha * eye
    gz_d[~ok_d] = eye
    # (Z'Z + alpha I) has eigenvalues >= alpha, so its explicit inverse is accurate; one per date.
    gzinv_d = np.linalg.inv(gz_d)

    # Window sums for the gappy symbols: n, Σx_k and the K(K+1)/2 distinct Σx_i·x_j.
    tri = [(i, j) for i in range(k) for j in range(i + 1)]
    lsym = np.hstack([ones, xc, np.column_stack([xc[:, i] * xc[:, j] for i, j in tri])])
    lx_l, ones_l, lsym_l = _band_lhs(np.hstack([ones, xc]), blocks), _band_lhs(None, blocks), _band_lhs(lsym, blocks)

    for c0 in range(0, n_sym, _RIDGE_CHUNK_SYMBOLS):
        c1 = min(c0 + _RIDGE_CHUNK_SYMBOLS, n_sym)
        cols = slice(c0, c1)
        yc = y[:, cols]
        mask = np.isfinite(yc) & xv[:, None]
        y0, ym = _centre_y(yc, mask, used)
        sy_all = _window_sums(lx_l, y0, blocks, d)  # (D, 1 + K, n)
        sy, sxy = sy_all[:, 0], sy_all[:, 1:]  # (D, n), (D, K, n)
        np.multiply(y0, y0, out=y0)
        syy = _window_sums(ones_l, y0, blocks, d)[:, 0]
        gappy = np.flatnonzero((mask[used] != xv[used][:, None]).any(0))
        gsum = None
        cnt = np.empty_like(sy)
        cnt[:] = n_d[:, None]
        if gappy.size:
            gsum = _window_sums(lsym_l, mask[:, gappy].astype(np.float64), blocks, d)  # (D, 1 + K + K(K+1)/2, g)
            cnt[:, gappy] = gsum[:, 0]
        nobs = np.rint(cnt).astype(np.int64)
        ok = (nobs >= min_obs) & (nobs > k)

        # Symbols without gaps in the used rows: one factorisation per date, all symbols as right-hand sides.
        ybar = sy / np.where(ok, cnt, 1.0)
        cyy = syy - cnt * ybar * ybar
        rz = (nd_safe[:, None] * xbar_d)[:, :, None] * ybar[:, None, :]
        np.subtract(sxy, rz, out=rz)
        rz /= ss_d[:, :, None]
        w = gzinv_d @ rz  # (D, K, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = w / s_d[:, :, None]  # NaN/inf where a regressor has no variance in the window
            # SSres = SStot - w'rz - alpha |w|^2, because (Z'Z + alpha I) w = rz.
            ssr = cyy - np.einsum("dkn,dkn->dn", w, rz) - alpha * np.einsum("dkn,dkn->dn", w, w)
            icpt = ybar + ym - ((xbar_d + xm)[:, None, :] @ beta)[:, 0, :]
        beta = np.moveaxis(beta, 1, 2)  # (D, n, K), a view
        if gappy.size:
            # Symbols with gaps: every (date, symbol) gets its own z-scored system
            # (C / (s s') + alpha I) w = cxy / s, with C the centred Gram matrix of its usable rows and
            # s the population standard deviations; solved by an unrolled Cholesky over all pairs at once.
            # (Pairs of these symbols whose window happens to be complete get the same fit this way.)
            b_g, ssr_g, icpt_g = _ridge_pairs(gsum, sxy[:, :, gappy], ybar[:, gappy], cyy[:, gappy], ym[gappy],
                                              xm, alpha, tri)  # fmt: skip
            beta[:, gappy] = b_g
            ssr[:, gappy] = ssr_g
            icpt[:, gappy] = icpt_g

        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - np.maximum(ssr, 0.0) / cyy
        if cap is not None:
            np.clip(beta, -cap, cap, out=beta)
        res["beta"][:, cols] = np.where(ok[:, :, None] & np.isfinite(beta), beta, np.nan)
        res["intercept"][:, cols] = np.where(ok & np.isfinite(icpt), icpt, np.nan)
        res["r_squared"][:, cols] = np.where(ok & np.isfinite(r2), r2, np.nan)
        res["nobs"][:, cols] = nobs
    return res
