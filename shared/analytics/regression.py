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

__all__ = ["rolling_ols", "rolling_ridge"]

#: Output rows per band block (bigger blocks = bigger, more efficient GEMMs but more rows per product).
_BLOCK_DATES = 32
#: Symbols per chunk; bounds the temporaries to a few tens of MB.
_CHUNK_SYMBOLS = 1024


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


def _window_sums(left: np.ndarray | None, a: np.ndarray, blocks: list[_Block], n_out: int) -> np.ndarray:
    """Window sums ``S[j, q, n] = Σ_{r in window(j)} left[r, q] · a[r, n]``.

    Parameters
    ----------
    left : ndarray, shape (T, Q), or None
        Per-row weights (e.g. ``1``, ``x``, ``x²``); ``None`` means a single column of ones.
    a : ndarray, shape (T, N)
        Masked per-symbol values (zeros where a row does not count).
    blocks : list of _Block
    n_out : int
        Number of output rows.

    Returns
    -------
    ndarray, shape (n_out, Q, N)
    """
    q = 1 if left is None else left.shape[1]
    out = np.empty((n_out, q, a.shape[1]))
    for blk in blocks:
        b, span = blk.band.shape
        if left is None:
            lhs = blk.band
        else:
            lhs = (left[blk.lo : blk.hi].T[:, None, :] * blk.band[None, :, :]).reshape(q * b, span)
        out[blk.pos] = (lhs @ a[blk.lo : blk.hi]).reshape(q, b, -1).transpose(1, 0, 2)
    return out


def _pair_sums(
    left: np.ndarray, mask: np.ndarray, blocks: list[_Block], want: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window sums ``Σ left[r, q] · mask[r, n]`` only for the (output row, symbol) pairs in ``want``.

    Per block, only the symbols with at least one wanted pair enter the matrix product.

    Returns
    -------
    sums : ndarray, shape (P, Q)
    j, n : ndarray of int, shape (P,)
        Output-row position and symbol column of each pair.
    """
    q = left.shape[1]
    sums, js, ns = [], [], []
    for blk in blocks:
        wb = want[blk.pos]
        cols = np.flatnonzero(wb.any(0))
        if cols.size == 0:
            continue
        b, span = blk.band.shape
        lhs = (left[blk.lo : blk.hi].T[:, None, :] * blk.band[None, :, :]).reshape(q * b, span)
        prod = (lhs @ mask[blk.lo : blk.hi, cols].astype(np.float64)).reshape(q, b, cols.size)
        bj, bc = np.nonzero(wb[:, cols])
        sums.append(prod[:, bj, bc].T)
        js.append(blk.pos[bj])
        ns.append(cols[bc])
    return np.concatenate(sums), np.concatenate(js), np.concatenate(ns)


def _used_rows(out_rows: np.ndarray, window: int) -> slice:
    return slice(max(int(out_rows.min()) - window + 1, 0), int(out_rows.max()) + 1)


def _centre_y(yc: np.ndarray, mask: np.ndarray, used: slice) -> tuple[np.ndarray, np.ndarray]:
    """Centre each column on its mean over the masked rows in ``used``; zero elsewhere.

    Returns the centred, masked array ``(T, n)`` and the column means ``(n,)``.
    """
    cnt = mask[used].sum(0)
    ym = np.where(mask[used], yc[used], 0.0).sum(0) / np.maximum(cnt, 1)
    return np.where(mask, yc - ym, 0.0), ym


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
    the window (``params``, ``rsquared``, ``bse[1]``, ``pvalues[1]``).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n_rows, n_sym = y.shape
    if x.shape[0] != n_rows:
        raise ValueError("x and y must have the same number of rows")
    if window < 1:
        raise ValueError("window must be >= 1")
    rows = _check_out_rows(out_rows, n_rows)
    d = len(rows)
    keys = ("beta", "alpha", "r_squared", "std_error", "p_value")
    res = {k: np.full((d, n_sym), np.nan) for k in keys}
    res["nobs"] = np.zeros((d, n_sym), dtype=np.int64)
    if d == 0 or n_sym == 0:
        return res

    used = _used_rows(rows, window)
    blocks = _window_blocks(rows, window)
    xv = np.isfinite(x)
    xm = float(x[used][xv[used]].mean()) if xv[used].any() else 0.0
    xc = np.where(xv, x - xm, 0.0)
    ones = np.ones_like(xc)
    lx = np.column_stack([ones, xc])
    lxx = np.column_stack([ones, xc, xc * xc])
    # Moments of x over the rows where x exists: shared by every full-window symbol on a date.
    per_date = _window_sums(lxx, xv[:, None].astype(np.float64), blocks, d)[:, :, 0].T  # (3, D)

    for c0 in range(0, n_sym, _CHUNK_SYMBOLS):
        cols = slice(c0, min(c0 + _CHUNK_SYMBOLS, n_sym))
        yc = y[:, cols]
        mask = np.isfinite(yc) & xv[:, None]
        y0, ym = _centre_y(yc, mask, used)
        sy, sxy = _window_sums(lx, y0, blocks, d).transpose(1, 0, 2)
        syy = _window_sums(None, y0 * y0, blocks, d)[:, 0]
        n = np.broadcast_to(per_date[0][:, None], sy.shape).copy()
        sx = np.broadcast_to(per_date[1][:, None], sy.shape).copy()
        sxx = np.broadcast_to(per_date[2][:, None], sy.shape).copy()
        gappy = (mask[used] != xv[used][:, None]).any(0)
        if gappy.any():
            g = _window_sums(lxx, mask[:, gappy].astype(np.float64), blocks, d)
            n[:, gappy], sx[:, gappy], sxx[:, gappy] = g[:, 0], g[:, 1], g[:, 2]
        nobs = np.rint(n).astype(np.int64)
        ok = nobs >= max(min_obs, 2)
        nn = np.where(ok, n, 1.0)
        xbar, ybar = sx / nn, sy / nn
        cxx = sxx - nn * xbar * xbar
        cxy = sxy - nn * xbar * ybar
        cyy = syy - nn * ybar * ybar
        ok &= cxx > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = cxy / np.where(ok, cxx, 1.0)
            alpha = (ybar + ym) - beta * (xbar + xm)
            ssr = np.maximum(cyy - beta * cxy, 0.0)
            r2 = 1.0 - ssr / cyy
            dof = nn - 2.0
            se = np.sqrt(ssr / np.where(dof > 0, dof, np.nan) / cxx)
            pval = 2.0 * special.stdtr(np.where(dof > 0, dof, np.nan), -np.abs(beta / se))
        if cap is not None:
            beta = np.clip(beta, -cap, cap)
        for k, v in zip(keys, (beta, alpha, r2, se, pval), strict=True):
            res[k][:, cols] = np.where(ok & np.isfinite(v), v, np.nan)
        res["nobs"][:, cols] = nobs
    return res




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
    lx = np.hstack([ones, xc])  # (T, 1 + K)
    lgram = np.hstack([ones, xc, (xc[:, :, None] * xc[:, None, :]).reshape(n_rows, k * k)])  # (T, 1+K+K²)
    eye = np.eye(k)
    diag = np.arange(k)

    # Per-date moments of the regressors over the rows where all of them exist.
    pd_ = _window_sums(lgram, xv[:, None].astype(np.float64), blocks, d)[:, :, 0]  # (D, Q)
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

    for c0 in range(0, n_sym, _CHUNK_SYMBOLS):
        cols = slice(c0, min(c0 + _CHUNK_SYMBOLS, n_sym))
        yc = y[:, cols]
        mask = np.isfinite(yc) & xv[:, None]
        y0, ym = _centre_y(yc, mask, used)
        sy_all = _window_sums(lx, y0, blocks, d)  # (D, 1 + K, n)
        sy, sxy = sy_all[:, 0], sy_all[:, 1:]  # (D, n), (D, K, n)
        syy = _window_sums(None, y0 * y0, blocks, d)[:, 0]
        cnt = _window_sums(None, mask.astype(np.float64), blocks, d)[:, 0]
        nobs = np.rint(cnt).astype(np.int64)
        ok = (nobs >= min_obs) & (nobs > k)
        full = (nobs == np.rint(n_d).astype(np.int64)[:, None]) & ok_d[:, None]

        # Full-window pairs: one factorisation per date, all symbols as right-hand sides.
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

        # Pairs whose window has gaps: own Gram matrix and own solve. Solving the z-scored system
        # (Z'Z + alpha I) w = Z'y is the same as (C + alpha diag(var)) beta = cxy in original units,
        # with C the centred Gram matrix and var = diag(C) / n (population variances).
        part = ok & ~full
        if part.any():
            gp, pj, pn = _pair_sums(lgram, mask, blocks, part)  # (P, Q), (P,), (P,)
            n_p = gp[:, 0]
            xbar_p = gp[:, 1 : 1 + k] / n_p[:, None]
            c_p = gp[:, 1 + k :].reshape(-1, k, k)
            c_p -= n_p[:, None, None] * xbar_p[:, :, None] * xbar_p[:, None, :]
            var_p = np.diagonal(c_p, axis1=1, axis2=2) / n_p[:, None]
            good = (var_p > 0).all(1)
            c_p[:, diag, diag] += alpha * var_p
            c_p[~good] = eye
            ybar_p = ybar[pj, pn]
            cxy_p = sxy[pj, :, pn] - n_p[:, None] * xbar_p * ybar_p[:, None]  # (P, K)
            b_p = np.linalg.solve(c_p, cxy_p[:, :, None])[:, :, 0]
            b_p[~good] = np.nan
            ssr[pj, pn] = cyy[pj, pn] - (b_p * cxy_p).sum(1) - alpha * (var_p * b_p * b_p).sum(1)
            icpt[pj, pn] = ybar_p + ym[pn] - ((xbar_p + xm) * b_p).sum(1)
            beta[pj, pn] = b_p

        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - np.maximum(ssr, 0.0) / cyy
        if cap is not None:
            np.clip(beta, -cap, cap, out=beta)
        res["beta"][:, cols] = np.where(ok[:, :, None] & np.isfinite(beta), beta, np.nan)
        res["intercept"][:, cols] = np.where(ok & np.isfinite(icpt), icpt, np.nan)
        res["r_squared"][:, cols] = np.where(ok & np.isfinite(r2), r2, np.nan)
        res["nobs"][:, cols] = nobs
    return res
