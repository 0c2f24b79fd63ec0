"""Realised volatility, HAR-RV forecasts, trend and percentile (domain spec §9.4, decision 7).

Everything is vectorised over *series* (columns of a ``T × S`` returns matrix: symbols or portfolios).
Returns are daily **simple** returns in decimals, one row per NYSE session, oldest first.

Missing-data rule (applies to every metric here)
-----------------------------------------------
As in the original system, NaN returns are **dropped per series** (each column is compacted to its own
valid returns, order preserved) before any metric is computed. "The last w returns" therefore means
"the series' last w non-missing returns", and a window needs ``w`` valid returns or the metric is NaN.
The caller decides how far back the input reaches (e.g. 365 calendar days ≈ 252 sessions); a series that
stopped trading is measured on its own last returns. :func:`right_align` implements the compaction.

Annualisation: √252 for volatilities, 252 for variances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "ANNUALIZATION",
    "HarFit",
    "har_fit",
    "har_forecast",
    "holding_volatility_at",
    "holding_weights",
    "portfolio_returns",
    "realized_vol",
    "right_align",
    "rolling_realized_vol",
    "volatility_metrics",
    "volatility_metrics_at",
]

ANNUALIZATION = 252
HAR_LAGS = (1, 5, 22)
_HOLD_BACK = 22
_CHUNK = 512
_COLUMNS = 2 * _CHUNK


def _as_array(x: pd.DataFrame | np.ndarray) -> np.ndarray:
    a = x.to_numpy(dtype=np.float64) if isinstance(x, pd.DataFrame) else np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return a


def _cumsum_rows(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.cumsum(x, axis=0, out=out)``, bit for bit (the same additions in the same order), one vector
    add per row: for a C-ordered (T, S) array with many columns several times faster than numpy's
    accumulate, which walks each column down with a stride of S."""
    if len(x):
        np.copyto(out[0], x[0])
    for t in range(1, len(x)):
        np.add(out[t - 1], x[t], out=out[t])
    return out


def right_align(x: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop NaNs per column and push each column's valid values to the bottom (order preserved).

    Parameters
    ----------
    x : (T, S) array or DataFrame

    Returns
    -------
    aligned : ndarray, shape (T, S)
        Column s holds its ``n_s`` valid values in rows ``T - n_s .. T-1``; rows above are NaN.
    n_valid : ndarray of int, shape (S,)
    """
    a = _as_array(x)
    valid = ~np.isnan(a)
    n = valid.sum(0)
    T = a.shape[0]
    if n.min(initial=T) == T:                                # nothing missing
        return a.copy(), n
    # a column whose NaNs are all above its first valid value (a short history, a window reaching before
    # the data) is aligned already; only the others are sorted (stably: NaN rows first, valid rows in time
    # order). The result is C-ordered either way, as ``take_along_axis`` returns it.
    first = np.where(n > 0, np.argmax(valid, axis=0), T)
    gaps = np.flatnonzero(T - first != n)
    out = np.array(a, order="C")
    if gaps.size:
        sub = a[:, gaps]
        order = np.argsort(~np.isnan(sub), axis=0, kind="stable")
        out[:, gaps] = np.take_along_axis(sub, order, axis=0)
    return out, n


def rolling_realized_vol(returns: pd.DataFrame | np.ndarray, window: int = 21,
                         annualization: int = ANNUALIZATION) -> np.ndarray:
    r"""Rolling realised volatility :math:`\sqrt{252}\; \mathrm{std}_{ddof=1}(r_{t-w+1..t})` at every row.

    Parameters
    ----------
    returns : (T, S) array or DataFrame of daily simple returns (decimal).
    window : int
        Window length ``w`` in sessions (rows).

    Returns
    -------
    ndarray, shape (T, S)
        NaN where the window is incomplete or contains a NaN — the same as
        ``returns.rolling(w).std() * sqrt(252)`` in pandas. Apply it to :func:`right_align` output to get
        the "drop NaNs" convention of this module.

    Notes
    -----
    Window sums by cumulative sums of column-centred data (each column is centred on its own valid
    mean first, which keeps the one-pass variance well conditioned), so the cost is O(T·S).
    """
    a = _as_array(returns)
    T, S = a.shape
    valid = ~np.isnan(a)
    cnt = valid.sum(0)
    mu = np.where(valid, a, 0.0).sum(0) / np.maximum(cnt, 1)
    x = np.where(valid, a - mu, 0.0)
    out = np.empty((T, S))
    if window > T or window < 2:
        out.fill(np.nan)
        return out
    # the same operations as var = (s2 - s1·s1 / w) / (w - 1), vol = √(var · 252), in place (no temporaries)
    c = np.empty((T + 1, S))
    c[0] = 0.0
    _cumsum_rows(x, c[1:])
    s1 = c[window:] - c[:-window]
    np.multiply(x, x, out=x)
    _cumsum_rows(x, c[1:])
    var = c[window:] - c[:-window]
    cm = np.empty((T + 1, S), dtype=np.int32)
    cm[0] = 0
    _cumsum_rows(valid, cm[1:])
    short = (cm[window:] - cm[:-window]) < window
    np.multiply(s1, s1, out=s1)
    s1 /= window
    var -= s1
    var /= window - 1
    np.maximum(var, 0.0, out=var)
    var *= annualization
    vol = out[window - 1:]
    np.sqrt(var, out=vol)
    vol[short] = np.nan
    out[:window - 1] = np.nan
    return out


def realized_vol(returns: pd.DataFrame | np.ndarray, window: int,
                 annualization: int = ANNUALIZATION) -> np.ndarray:
    """Realised volatility of each series' last ``window`` valid returns.

    Sample standard deviation (ddof=1) × √252 of the last ``window`` non-missing returns of each
    column (see the module's missing-data rule); NaN when a series has fewer than ``window`` valid
    returns. Shape ``(S,)``.
    """
    aligned, _ = right_align(returns)
    if aligned.shape[0] < window:
        return np.full(aligned.shape[1], np.nan)
    return aligned[-window:].std(axis=0, ddof=1) * np.sqrt(annualization)


class HarFit(NamedTuple):
    """HAR-RV fit per series (arrays of length S, or (S, 4) for ``params``).

    ``params`` columns: ``[const, beta_d, beta_w, beta_m]`` (arch names ``Const``, ``y[0:1]``,
    ``y[0:5]``, ``y[0:22]``); ``r_squared``: in-sample R²; ``n_obs``: regression rows used
    (valid values − 22). Series that could not be fitted have NaN params and R².
    """

    params: np.ndarray
    r_squared: np.ndarray
    n_obs: np.ndarray


def _har_block(y: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred, masked normal equations for one column block of right-aligned data (zeros above)."""
    T, S = y.shape
    Tp = T - _HOLD_BACK
    C = np.zeros((T + 1, S))
    _cumsum_rows(y, C[1:])
    D = np.empty((4, Tp, S))
    D[0] = y[_HOLD_BACK - 1:T - 1]                          # y_{t-1}
    np.subtract(C[_HOLD_BACK:T], C[_HOLD_BACK - 5:T - 5], out=D[1])
    D[1] *= 1.0 / 5.0                                        # mean y_{t-5..t-1}
    np.subtract(C[_HOLD_BACK:T], C[0:T - _HOLD_BACK], out=D[2])
    D[2] *= 1.0 / 22.0                                       # mean y_{t-22..t-1}
    D[3] = y[_HOLD_BACK:]                                    # target y_t
    # training row t' (t = t' + 22) is usable when all 22 lags are the series' own valid values
    m = (np.arange(Tp)[:, None] >= (T - n)[None, :]).astype(np.float64)
    cnt = np.maximum(m.sum(0), 1.0)
    D *= m
    mu = D.sum(1) / cnt                                      # (4, S)
    D -= mu[:, None, :]
    D *= m
    G = np.empty((S, 4, 4))
    for k in range(4):
        for j in range(k, 4):
            G[:, k, j] = G[:, j, k] = np.einsum("ts,ts->s", D[k], D[j])
    Gx = G[:, :3, :3]
    d = np.sqrt(np.einsum("sii->si", Gx))
    with np.errstate(invalid="ignore", divide="ignore"):
        Gn = Gx / (d[:, :, None] * d[:, None, :])
        ok = np.all(d > 0, axis=1) & (np.abs(np.linalg.det(np.where(np.isfinite(Gn), Gn, 0.0))) > 1e-12)
    Gs = np.where(ok[:, None, None], Gx, np.eye(3))
    slopes = np.linalg.solve(Gs, G[:, :3, 3:])[..., 0]
    const = mu[3] - np.einsum("ks,sk->s", mu[:3], slopes)
    params = np.column_stack([const, slopes])
    with np.errstate(invalid="ignore", divide="ignore"):
        ssr = G[:, 3, 3] - np.einsum("sk,sk->s", slopes, G[:, :3, 3])
        r2 = 1.0 - ssr / G[:, 3, 3]
    params[~ok] = np.nan
    r2[~ok] = np.nan
    return params, r2


def har_fit(y: pd.DataFrame | np.ndarray, *, min_valid: int = 63) -> HarFit:
    r"""Fit the HAR-RV regression to every column of a daily variance proxy, in closed form.

    .. math::

        y_t = b_0 + b_1\, y_{t-1} + b_2\, \tfrac{1}{5}\sum_{k=1}^{5} y_{t-k}
              + b_3\, \tfrac{1}{22}\sum_{k=1}^{22} y_{t-k} + \varepsilon_t

    by OLS over :math:`t = 22, \dots, n-1` (hold-back 22). This is exactly
    ``arch.univariate.HARX(y, lags=[1, 5, 22], rescale=False).fit()`` (ConstantVariance, Normal,
    closed-form OLS), computed for all series at once with centred masked normal equations in column
    blocks of 512.

    Parameters
    ----------
    y : (T, S) array or DataFrame
        Daily variance proxy per series, e.g. squared daily returns :math:`r_t^2` (decimal²). NaNs are
        dropped per series (module rule), so a series is fitted on its own valid values.
    min_valid : int
        Minimum number of valid values per series (default 63, the original system's minimum for
        volatility; must be ≥ 26 so that at least 4 regression rows exist). Below it: NaN.

    Returns
    -------
    HarFit
    """
    return _har_fit_aligned(*right_align(y), min_valid)


def _har_fit_aligned(aligned: np.ndarray, n: np.ndarray, min_valid: int) -> HarFit:
    T, S = aligned.shape
    params = np.full((S, 4), np.nan)
    r2 = np.full(S, np.nan)
    n_obs = np.maximum(n - _HOLD_BACK, 0)
    if T <= _HOLD_BACK + 3:
        return HarFit(params, r2, n_obs)
    filled = np.nan_to_num(aligned, nan=0.0)
    for a in range(0, S, _CHUNK):
        b = min(a + _CHUNK, S)
        p, r = _har_block(np.ascontiguousarray(filled[:, a:b]), n[a:b])
        params[a:b], r2[a:b] = p, r
    bad = n < max(min_valid, _HOLD_BACK + 4)
    params[bad] = np.nan
    r2[bad] = np.nan
    return HarFit(params, r2, n_obs)


def har_forecast(y: pd.DataFrame | np.ndarray, params: np.ndarray, horizon: int = 21) -> np.ndarray:
    r"""Iterated multi-step HAR mean forecasts from the end of each series.

    .. math::

        \hat y_{n+h} = b_0 + b_1 \tilde y_{n+h-1} + b_2 \tfrac{1}{5}\sum_{k=1}^{5} \tilde y_{n+h-k}
                     + b_3 \tfrac{1}{22}\sum_{k=1}^{22} \tilde y_{n+h-k},
        \qquad \tilde y_j = y_j \ (j \le n),\ \hat y_j \ (j > n),

    for :math:`h = 1..H` — identical to ``res.forecast(horizon=H).mean`` of arch's HARX at the last
    observation. Vectorised over series (the loop is over the H steps only).

    Parameters
    ----------
    y : (T, S) array or DataFrame
        The same variance proxy passed to :func:`har_fit` (NaNs dropped per series).
    params : (S, 4) ndarray
        ``HarFit.params``.
    horizon : int
        Number of sessions H.

    Returns
    -------
    ndarray, shape (S, H)
        Forecast daily variances (same units as ``y``); NaN rows where params are NaN.
    """
    return _har_forecast_aligned(right_align(y)[0], params, horizon)


def _har_forecast_aligned(aligned: np.ndarray, params: np.ndarray, horizon: int) -> np.ndarray:
    S = aligned.shape[1]
    buf = np.full((S, _HOLD_BACK + horizon), np.nan)
    k = min(_HOLD_BACK, aligned.shape[0])
    buf[:, _HOLD_BACK - k:_HOLD_BACK] = aligned[-k:].T if k else buf[:, :0]
    b0, b1, b2, b3 = (params[:, i] for i in range(4))
    for h in range(horizon):
        j = _HOLD_BACK + h
        buf[:, j] = (b0 + b1 * buf[:, j - 1] + b2 * buf[:, j - 5:j].mean(1)
                     + b3 * buf[:, j - _HOLD_BACK:j].mean(1))
    return buf[:, _HOLD_BACK:]


def _trend(rv: np.ndarray, points: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """OLS slope (per session) and R² of the last ``points`` values of each column on time."""
    v = rv[-points:]
    t = np.arange(points, dtype=np.float64)
    tc = t - t.mean()
    vc = v - v.mean(0)
    stt = (tc * tc).sum()
    # elementwise, then summed down each column: a column's bits do not depend on how many columns there
    # are (a BLAS product blocks by the matrix's width; a symbol's row must not depend on who else is held)
    svt = (tc[:, None] * vc).sum(0)
    svv = (vc * vc).sum(0)
    slope = svt / stt
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(svv > 0, svt * svt / (stt * svv), 0.0)
    r2 = np.where(np.isnan(slope), np.nan, r2)
    return slope, r2


def volatility_metrics(returns: pd.DataFrame, *, min_obs: int = 63, horizon: int = 21,
                       trend_points: int = 21, trend_slope: float = 0.001, trend_r2: float = 0.3,
                       min_percentile_points: int = 100) -> pd.DataFrame:
    r"""All volatility analytics of §9.4 for each column of a returns matrix, at its last row.

    Parameters
    ----------
    returns : DataFrame, shape (T, S)
        Daily simple returns (decimal), index = sessions (oldest first) ending at the calculation
        date, columns = series (symbols or portfolios). NaNs are dropped per series (module rule).
    min_obs : int
        Minimum valid returns for the HAR model (default 63).
    horizon : int
        Forecast horizon H in sessions (default 21).

    Returns
    -------
    DataFrame indexed by series (the columns of ``returns``), columns:

    ``n_obs``
        valid returns.
    ``realized_vol_21d``, ``realized_vol_63d``
        sample std (ddof=1) of the last 21 / 63 valid returns × √252; NaN with fewer valid returns.
    ``vol_daily``, ``vol_weekly``, ``vol_monthly``
        HAR components: :math:`|r_n|\sqrt{252}`, 5-return and 21-return realised vol.
    ``expected_vol_21d``
        HAR-RV on the squared returns :math:`y_t = r_t^2` (see :func:`har_fit`), iterated forward
        ``H = 21`` sessions (:func:`har_forecast`):

        .. math::

            \sigma^{exp}_{21} = \sqrt{252 \cdot \tfrac{1}{H}\sum_{h=1}^{H} \hat y_{n+h}}

        i.e. the **annualised volatility expected over the next 21 sessions** (not a one-day
        forecast). NaN with fewer than ``min_obs`` valid returns or when the mean forecast variance is
        negative (an OLS HAR can extrapolate below zero; we do not floor it).
    ``har_r_squared``, ``har_const``, ``har_beta_d``, ``har_beta_w``, ``har_beta_m``
        in-sample R² and coefficients of the HAR regression.
    ``vol_trend``, ``trend_slope``, ``trend_strength``
        OLS of the last 21 rolling-21 annualised vols on time (0..20): slope per session and R².
        ``"increasing"`` if slope > 0.001 and R² > 0.3, ``"decreasing"`` if slope < −0.001 and
        R² > 0.3, else ``"stable"``; ``trend_strength = R²``. Needs 21 complete windows, i.e. ≥ 41
        valid returns, else None/NaN.
    ``vol_percentile``
        share (0..1) of all available rolling-21 vols of the series (current one included in the
        denominator) strictly below the current rolling-21 vol; needs ≥ 100 rolling values (≥ 120
        valid returns), else NaN.
    """
    cols = returns.columns
    r, n = right_align(returns)
    S = r.shape[1]
    # column blocks of _COLUMNS (the arrays of one block stay near the cache; a remainder under half a block
    # joins the last one). Every step is per column, each block keeps right_align's memory order (a view's
    # copy in order "K") and starts on a multiple of the HAR's _CHUNK, so a column's bits are those of one
    # pass over all columns: no block is a single column (numpy sums that as a contiguous vector) unless
    # S is 1, and the HAR's column chunks are the same.
    edges = [*range(0, S - _COLUMNS // 2, _COLUMNS), S] if S > _COLUMNS else [0, S]
    k = len(edges) - 1
    parts = [_metrics_block(r if k == 1 else np.array(r[:, a:b], order="K"), n[a:b], min_obs=min_obs, horizon=horizon,
                            trend_points=trend_points, trend_slope=trend_slope, trend_r2=trend_r2,
                            min_percentile_points=min_percentile_points)
             for a, b in zip(edges[:-1], edges[1:], strict=True)]
    out = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    return pd.DataFrame(out, index=cols)


def _metrics_block(r: np.ndarray, n: np.ndarray, *, min_obs: int, horizon: int, trend_points: int,
                   trend_slope: float, trend_r2: float, min_percentile_points: int) -> dict[str, np.ndarray]:
    """:func:`volatility_metrics`' columns for right-aligned returns ``r`` (T, S) with ``n`` valid each."""
    S = r.shape[1]
    sq = np.sqrt(ANNUALIZATION)

    def last_std(w: int) -> np.ndarray:
        if r.shape[0] < w:
            return np.full(S, np.nan)
        return r[-w:].std(axis=0, ddof=1) * sq

    rv21 = last_std(21)
    y = r * r
    fit = _har_fit_aligned(y, n, min_obs)                    # y is already right-aligned
    fc = _har_forecast_aligned(y, fit.params, horizon)
    with np.errstate(invalid="ignore"):
        mean_var = fc.mean(1)
        expected = np.where(mean_var >= 0, np.sqrt(ANNUALIZATION * np.maximum(mean_var, 0.0)), np.nan)

    roll = rolling_realized_vol(r, 21)
    if roll.shape[0] >= trend_points:
        slope, r2 = _trend(roll, trend_points)
    else:
        slope, r2 = np.full(S, np.nan), np.full(S, np.nan)
    trend = np.where(np.isnan(slope), None,
                     np.where((slope > trend_slope) & (r2 > trend_r2), "increasing",
                              np.where((slope < -trend_slope) & (r2 > trend_r2), "decreasing", "stable")))
    current = roll[-1] if roll.shape[0] else np.full(S, np.nan)
    n_roll = (~np.isnan(roll)).sum(0)
    with np.errstate(invalid="ignore"):
        below = (roll < current[None, :]).sum(0)
        pct = np.where((n_roll >= min_percentile_points) & ~np.isnan(current), below / np.maximum(n_roll, 1),
                       np.nan)

    return {
        "n_obs": n,
        "realized_vol_21d": rv21,
        "realized_vol_63d": last_std(63),
        "vol_daily": np.abs(r[-1]) * sq if r.shape[0] else np.full(S, np.nan),
        "vol_weekly": last_std(5),
        "vol_monthly": rv21,
        "expected_vol_21d": expected,
        "har_r_squared": fit.r_squared,
        "har_const": fit.params[:, 0],
        "har_beta_d": fit.params[:, 1],
        "har_beta_w": fit.params[:, 2],
        "har_beta_m": fit.params[:, 3],
        "vol_trend": trend,
        "trend_slope": slope,
        "trend_strength": r2,
        "vol_percentile": pct,
    }


def volatility_metrics_at(returns: pd.DataFrame, dates: Sequence, symbols: Sequence[str], *, window: int = 252,
                          block: int = 4096, **kwargs) -> pd.DataFrame:
    """:func:`volatility_metrics` of many (date, symbol) pairs at once, each over its own window.

    Pair k's series is ``symbols[k]``'s returns over the ``window`` rows of ``returns`` ending at the row of
    ``dates[k]`` (fewer when the index starts later). Every pair becomes one column of a ``(window, pairs)``
    matrix — a short window padded with NaN rows on top, which the module's per-series NaN rule drops, so
    the padding changes nothing — and the kernel runs on blocks of ``block`` columns: vectorised over
    dates × symbols, memory ``O(window × block)``.

    Parameters
    ----------
    returns : DataFrame, shape (T, S)
        Daily simple returns, index = sessions (Timestamps, ascending), columns = symbols.
    dates, symbols : sequences of length K
        The pairs; every symbol must be a column of ``returns``. A date that is not in its index gets an
        all-missing series (``n_obs`` 0, NaN metrics).
    window : int
        Rows per series (default 252).
    kwargs
        Passed to :func:`volatility_metrics`.

    Returns
    -------
    DataFrame, K rows in the pairs' order, the columns of :func:`volatility_metrics` (default RangeIndex).
    """
    ends = returns.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(list(dates))))
    cols = returns.columns.get_indexer(list(symbols))
    if (cols < 0).any():
        raise ValueError("every symbol must be a column of returns")
    ends = np.where(ends < 0, -1, ends)  # not a row: every window row is before the first, i.e. missing
    R = returns.to_numpy(dtype=np.float64)
    # each symbol's valid returns once, in time order (one flat array, symbol after symbol, a NaN at the end):
    # a window's valid returns are a slice of its symbol's, gathered straight into the right-aligned layout
    # right_align would sort them into (valid values at the bottom, NaN above), so it finds nothing to sort
    valid = ~np.isnan(R)
    flat = np.append(R.T[valid.T], np.nan)
    start = np.concatenate([[0], np.cumsum(valid.sum(0))[:-1]]).astype(np.int64)
    upto = np.zeros((R.shape[0] + 1, R.shape[1]), dtype=np.int64)          # valid returns in rows < t
    _cumsum_rows(valid, upto[1:])
    hi = upto[ends + 1, cols]                                              # rows <= end (0 when end is -1)
    lo = upto[np.clip(ends + 1 - window, 0, None), cols]                   # rows before the window
    j = np.arange(window - 1, -1, -1)                                      # distance from the window's end
    parts = []
    for a in range(0, len(ends), block):
        b = min(a + block, len(ends))
        n_k = (hi[a:b] - lo[a:b])[:, None]
        pos = np.where(j[None, :] < n_k, start[cols[a:b], None] + hi[a:b, None] - 1 - j[None, :], len(flat) - 1)
        vals = flat[pos]                                                   # (k, window), aligned
        parts.append(volatility_metrics(pd.DataFrame(vals.T), **kwargs))
    if not parts:
        return volatility_metrics(pd.DataFrame(np.empty((window, 0))), **kwargs).reset_index(drop=True)
    out = pd.concat(parts, ignore_index=True)
    out["vol_trend"] = out["vol_trend"].astype(object).where(out["vol_trend"].notna(), None)  # None, as one call
    return out


def _nav_weights(positions: pd.DataFrame, equity: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Lots merged per (portfolio, symbol), their portfolio codes and weights MV / equity (0 when the
    portfolio's equity is missing or ≤ 0)."""
    mv = positions.groupby(["portfolio_id", "symbol"], sort=True, observed=True)["market_value"].sum()
    pids, p_code = np.unique(mv.index.get_level_values(0).to_numpy(dtype=object), return_inverse=True)
    eq = pd.Series(equity).reindex(pids).to_numpy(dtype=np.float64)
    ok = np.isfinite(eq) & (eq > 0)
    denom = np.where(ok, eq, 1.0)[p_code]
    w = np.where(ok[p_code], mv.to_numpy(dtype=np.float64) / denom, 0.0)
    return mv, p_code, w


def holding_weights(positions: pd.DataFrame, equity: pd.Series) -> pd.DataFrame:
    """Static portfolio weights for :func:`portfolio_returns`, from one day's holdings.

    Parameters
    ----------
    positions : DataFrame
        Columns ``[portfolio_id, symbol, market_value]`` for one calculation date (dollars, signed;
        several lots per symbol allowed). For options pass the underlying symbol and the option's
        market value.
    equity : Series
        Each portfolio's equity (NAV) on that date, by ``portfolio_id``.

    Returns
    -------
    DataFrame, shape (P, S)
        ``w_{p,i} = MV_{p,i} / equity_p`` with lots merged per symbol first — the same signed MV / equity
        as the portfolio's betas and factor exposures (domain spec decision 8), so the series is the
        return of the NAV with the cash earning 0: a book half in SPY and half in cash has exactly half
        SPY's volatility. 0 where a portfolio does not hold the symbol; a portfolio whose equity is
        missing or ≤ 0 gets all-zero weights (and the caller no volatility).
    """
    mv, p_code, w = _nav_weights(positions, equity)
    wide = pd.Series(w, index=mv.index).unstack("symbol", fill_value=0.0).astype(np.float64)
    return wide


def holding_returns(asset_returns: pd.DataFrame, positions: pd.DataFrame, equity: pd.Series) -> pd.DataFrame:
    """:func:`portfolio_returns` of :func:`holding_weights`, without the dense (P, S) weight matrix.

    Same weights (lots merged per symbol, signed ``MV / equity``) and the same rule for missing
    returns, as one sparse (P, S) × (S, T) product: memory O(positions), not O(portfolios × symbols).
    Columns sorted by portfolio id, as :func:`holding_weights` orders them; a portfolio whose equity is
    missing or ≤ 0 gets an all-NaN column (no volatility rather than a made-up one).
    """
    mv, p_code, w = _nav_weights(positions, equity)
    pids = np.unique(mv.index.get_level_values(0).to_numpy(dtype=object))
    col = asset_returns.columns.get_indexer(mv.index.get_level_values(1))
    ok = col >= 0
    W = sparse.csr_matrix((w[ok], (p_code[ok], col[ok])), shape=(len(pids), asset_returns.shape[1]))
    R = np.nan_to_num(asset_returns.to_numpy(np.float64), nan=0.0)
    out = np.asarray((W @ R.T).T)
    eq = pd.Series(equity).reindex(pids).to_numpy(dtype=np.float64)
    out[:, ~(np.isfinite(eq) & (eq > 0))] = np.nan
    return pd.DataFrame(out, index=asset_returns.index, columns=pd.Index(pids, name=mv.index.names[0]))


def holding_volatility_at(asset_returns: pd.DataFrame, positions: pd.DataFrame, equity: pd.Series, *,
                          window: int = 252, first_row: int = 0, block: int = 4096, **kwargs) -> pd.DataFrame:
    """:func:`volatility_metrics` of every (date, portfolio)'s :func:`holding_returns`, all dates at once.

    For each (date d, portfolio p) of ``positions``: the NAV return series of p with d's holdings as static
    weights (lots merged per symbol, signed ``MV / equity`` on d, a missing return counts 0, as in
    :func:`holding_returns`) over the ``window`` rows of ``asset_returns`` ending at d's row, rows before
    ``first_row`` left out; its metrics as :func:`volatility_metrics` gives them. Equal to calling
    :func:`holding_returns` on each date's window and :func:`volatility_metrics` on the result, up to
    floating-point summation order, without a Python loop per date.

    Parameters
    ----------
    asset_returns : DataFrame, shape (T, S)
        Daily simple returns (decimal), index = sessions (Timestamps, ascending), columns = symbols.
    positions : DataFrame
        Columns ``[calculation_date, portfolio_id, symbol, market_value]`` (dollars, signed; several
        lots per symbol allowed; for options the underlying symbol); dates must be rows of
        ``asset_returns``. A symbol that is not a column contributes nothing.
    equity : Series
        Equity (NAV, dollars) by ``(calculation_date, portfolio_id)``; missing or ≤ 0: NaN metrics.
    window : int
        Rows per series (default 252), ending at the date's row.
    first_row : int
        First usable row of ``asset_returns`` (1 when row 0 is the NaN of a first difference).
    block : int
        (date, portfolio) pairs per pass: memory O(block × (T + window)).
    kwargs
        Passed to :func:`volatility_metrics`.

    Returns
    -------
    DataFrame
        One row per (date, portfolio) sorted by both: ``calculation_date``, ``portfolio_id`` and the
        columns of :func:`volatility_metrics`.

    Notes
    -----
    The weights of all pairs form one sparse (pairs, S) matrix W; a block of pairs' full series is
    ``W_blk · R^T`` (T × block, missing returns as 0), each pair's window is then gathered as in
    :func:`volatility_metrics_at` (rows before ``first_row`` or before the index are NaN and dropped).
    """
    # lots merged per (date, portfolio, symbol) as a sorted groupby on the three columns does it (the same
    # groups, order and sums), on integer codes in the keys' own order rather than on dates and strings
    d_code, d_uniq = pd.factorize(positions["calculation_date"], sort=True)
    q_code, q_uniq = pd.factorize(positions["portfolio_id"], sort=True)
    s_code, s_uniq = pd.factorize(positions["symbol"], sort=True)
    n_q, n_s = max(len(q_uniq), 1), max(len(s_uniq), 1)
    kept = (d_code >= 0) & (q_code >= 0) & (s_code >= 0)                   # a groupby drops missing keys
    key = ((d_code.astype(np.int64) * n_q + q_code) * n_s + s_code)[kept]
    mv = pd.Series(positions["market_value"].to_numpy(dtype=np.float64)[kept]).groupby(key, sort=True).sum()
    k = mv.index.to_numpy()
    dq, p_code = np.unique(k // n_s, return_inverse=True)                  # (date, portfolio) pairs, sorted
    pairs = pd.MultiIndex.from_arrays([d_uniq.take(dq // n_q), q_uniq.take(dq % n_q)])
    eq = pd.Series(equity).reindex(pairs).to_numpy(dtype=np.float64)
    ok = np.isfinite(eq) & (eq > 0)
    w = np.where(ok[p_code], mv.to_numpy(dtype=np.float64) / np.where(ok, eq, 1.0)[p_code], 0.0)
    col = asset_returns.columns.get_indexer(s_uniq.take(k % n_s))
    has = col >= 0
    W = sparse.csr_matrix((w[has], (p_code[has], col[has])), shape=(len(pairs), asset_returns.shape[1]))
    R = np.nan_to_num(asset_returns.to_numpy(np.float64), nan=0.0)
    ends = asset_returns.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(pairs.get_level_values(0))))
    if (ends < 0).any():
        raise ValueError("every date must be a row of asset_returns")
    offsets = np.arange(-window + 1, 1)
    parts = []
    for a in range(0, len(pairs), block):
        b = min(a + block, len(pairs))
        series = np.asarray(W[a:b] @ R.T)                                 # (k, T): the pairs' full series
        rows = ends[a:b, None] + offsets[None, :]                         # (k, window)
        k = np.arange(b - a)[:, None]
        vals = np.where(rows >= first_row, series[k, np.maximum(rows, 0)], np.nan)   # NaN rows are dropped
        vals[~ok[a:b]] = np.nan                                           # no equity: no volatility
        parts.append(volatility_metrics(pd.DataFrame(vals.T), **kwargs))
    out = (pd.concat(parts, ignore_index=True) if parts
           else volatility_metrics(pd.DataFrame(np.empty((window, 0))), **kwargs).reset_index(drop=True))
    out["vol_trend"] = out["vol_trend"].astype(object).where(out["vol_trend"].notna(), None)
    out.insert(0, "portfolio_id", pairs.get_level_values(1).to_numpy(dtype=object))
    out.insert(0, "calculation_date", pairs.get_level_values(0).to_numpy(dtype=object))
    return out


def portfolio_returns(asset_returns: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    r"""Daily portfolio returns from static weights: :math:`R_{t,p} = \sum_i w_{p,i} r_{t,i}`.

    Parameters
    ----------
    asset_returns : DataFrame, shape (T, S)
        Daily simple returns (decimal); columns = symbols.
    weights : DataFrame, shape (P, S')
        Weights per portfolio (rows) and symbol (columns), e.g. :func:`holding_weights`. Symbols are
        aligned by name; a weighted symbol missing from ``asset_returns`` and NaN returns both count
        as a 0 return (as in the original system), so a gap does not wipe out the whole portfolio's day.

    Returns
    -------
    DataFrame, shape (T, P)
        Index = ``asset_returns.index``, columns = ``weights.index``. One dense matrix product.
    """
    W = weights.reindex(columns=asset_returns.columns, fill_value=0.0).fillna(0.0).to_numpy(np.float64)
    R = np.nan_to_num(asset_returns.to_numpy(np.float64), nan=0.0)
    return pd.DataFrame(R @ W.T, index=asset_returns.index, columns=weights.index)
