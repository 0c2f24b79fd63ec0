"""Phase 1.5 kernel: symbol-level factor betas for every calculation date (domain spec §5, decisions 1-3).

One call computes, for every calculation date and every symbol column of the price frame (the ETFs
included), the 13 factor rows of :data:`shared.analytics.factors.FACTOR_DEFINITIONS`:

* 6 style betas from one ridge regression on the :data:`STYLE_FACTORS` ETF returns (90 sessions,
  >= 30 observations, alpha 1.0 on z-scored regressors, betas clipped to +/-5);
* 4 spread betas, each a univariate OLS on (long ETF return - short ETF return) (180 sessions, >= 60
  observations, clipped to +/-5);
* ``Market Beta (90D)`` (OLS on SPY) and ``IR Beta`` (OLS on TLT), 90 sessions, >= 30 observations,
  clipped to +/-5;
* ``Provider Beta (1Y)`` copied from the provider's beta (not null, not 0), the same on every date.

Windows are counted in *return rows* on the session grid: the window for date ``d`` is the ``w`` sessions
ending at ``d`` (``d`` included), and each regression uses the rows of that window where the symbol's
return and the regressor(s) are finite. Returns are simple close-to-close returns between adjacent
sessions (:func:`shared.analytics.returns.simple_returns`), never across a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from shared.analytics.factors import MARKET_ETF, RATES_ETF, SPREAD_FACTORS, STYLE_FACTORS
from shared.analytics.regression import rolling_ols_many, rolling_ridge
from shared.analytics.returns import simple_returns

__all__ = [
    "BETA_CAP",
    "OUTPUT_COLUMNS",
    "compute_symbol_beta_arrays",
    "compute_symbol_betas",
]

RIDGE_WINDOW = 90
RIDGE_MIN_OBS = 30
RIDGE_ALPHA = 1.0
SPREAD_WINDOW = 180
SPREAD_MIN_OBS = 60
OLS_WINDOW = 90
OLS_MIN_OBS = 30
BETA_CAP = 5.0
PROVIDER_WINDOW = 252

OUTPUT_COLUMNS: tuple[str, ...] = (
    "calculation_date",
    "symbol",
    "factor",
    "beta_value",
    "alpha",
    "r_squared",
    "std_error",
    "p_value",
    "observations",
    "quality_flag",
    "calculation_method",
    "regularization_alpha",
    "regression_window_days",
)

#: Every ETF the kernel regresses on.
REQUIRED_ETFS: tuple[str, ...] = tuple(
    dict.fromkeys([MARKET_ETF, RATES_ETF, *STYLE_FACTORS.values(), *(e for p in SPREAD_FACTORS.values() for e in p)])
)


def _calc_rows(index: pd.Index, calc_dates: Sequence[date]) -> tuple[np.ndarray, list[date]]:
    idx = pd.DatetimeIndex(index)
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise ValueError("prices index must be strictly increasing sessions")
    wanted = pd.DatetimeIndex([pd.Timestamp(d) for d in calc_dates]).normalize()
    rows = idx.normalize().get_indexer(wanted)
    if (rows < 0).any():
        missing = [d.date() for d, r in zip(wanted, rows, strict=True) if r < 0]
        raise ValueError(f"calculation dates are not sessions of the price index: {missing[:5]}")
    return rows.astype(np.int64), [d.date() for d in wanted]


def compute_symbol_beta_arrays(prices: pd.DataFrame, calc_dates: Sequence[date]) -> dict[str, dict]:
    """The regression part of :func:`compute_symbol_betas`, as arrays (no tidy frame).

    Parameters
    ----------
    prices : pandas.DataFrame, shape (T, N)
        Wide closes; index = consecutive NYSE sessions, columns = symbols (must include the ETFs of
        :data:`REQUIRED_ETFS`), NaN = no price.
    calc_dates : sequence of datetime.date, length D
        Calculation dates; each must be a session in ``prices.index``.

    Returns
    -------
    dict
        ``{"dates": list[date], "symbols": Index, "style": ridge result, "<factor name>": OLS result}``
        where the ridge result has ``beta`` (D, N, 6) in :data:`STYLE_FACTORS` order, ``intercept``,
        ``r_squared``, ``nobs`` (D, N), and each OLS result (4 spreads, ``Market Beta (90D)``, ``IR Beta``)
        has ``beta``, ``alpha``, ``r_squared``, ``std_error``, ``p_value``, ``nobs`` of shape (D, N).
    """
    missing = [e for e in REQUIRED_ETFS if e not in prices.columns]
    if missing:
        raise ValueError(f"prices lack factor ETF columns: {missing}")
    if prices.columns.has_duplicates:
        raise ValueError("prices has duplicate symbol columns")
    rows, dates = _calc_rows(prices.index, calc_dates)
    rets = simple_returns(prices)
    y = rets.to_numpy()
    col = {s: i for i, s in enumerate(rets.columns)}
    out: dict[str, dict] = {"dates": dates, "symbols": rets.columns}
    x_style = y[:, [col[e] for e in STYLE_FACTORS.values()]]
    out["style"] = rolling_ridge(
        y, x_style, RIDGE_WINDOW, RIDGE_MIN_OBS, alpha=RIDGE_ALPHA, cap=BETA_CAP, out_rows=rows
    )
    # Regressors with the same window share the work on y (masks, centring, window sums).
    spreads = np.column_stack([y[:, col[long_etf]] - y[:, col[short_etf]] for long_etf, short_etf in SPREAD_FACTORS.values()])
    fits = rolling_ols_many(y, spreads, SPREAD_WINDOW, SPREAD_MIN_OBS, BETA_CAP, rows)
    out.update(zip(SPREAD_FACTORS, fits, strict=True))
    x_ols = y[:, [col[MARKET_ETF], col[RATES_ETF]]]
    out["Market Beta (90D)"], out["IR Beta"] = rolling_ols_many(y, x_ols, OLS_WINDOW, OLS_MIN_OBS, BETA_CAP, rows)
    return out


def _tidy_block(
    dates: np.ndarray,
    symbols: np.ndarray,
    factor: str,
    beta: np.ndarray,
    stats: dict[str, np.ndarray | None],
    nobs: np.ndarray,
    window: int,
    method: str,
    reg_alpha: float,
) -> pd.DataFrame:
    """Rows of one factor where beta is finite; arrays are (D, N)."""
    keep = np.isfinite(beta)
    jj, nn = np.nonzero(keep)
    n_rows = len(jj)

    def pick(a: np.ndarray | None) -> np.ndarray:
        return np.full(n_rows, np.nan) if a is None else a[jj, nn]

    obs = nobs[jj, nn].astype(np.int64)
    return pd.DataFrame(
        {
            "calculation_date": dates[jj],
            "symbol": symbols[nn],
            "factor": factor,
            "beta_value": beta[jj, nn],
            "alpha": pick(stats.get("alpha")),
            "r_squared": pick(stats.get("r_squared")),
            "std_error": pick(stats.get("std_error")),
            "p_value": pick(stats.get("p_value")),
            "observations": obs,
            "quality_flag": np.where(obs >= window, "full_history", "limited_history").astype(object),
            "calculation_method": method,
            "regularization_alpha": reg_alpha,
            "regression_window_days": window,
        }
    )


def compute_symbol_betas(
    prices: pd.DataFrame,
    calc_dates: Sequence[date],
    *,
    provider_betas: pd.Series | None = None,
) -> pd.DataFrame:
    """Symbol factor betas for every calculation date, as tidy rows (one per date, symbol and factor).

    Parameters
    ----------
    prices : pandas.DataFrame, shape (T, N)
        Wide closes; index = consecutive NYSE sessions (``DatetimeIndex``), columns = symbols, NaN = no
        price. Must include SPY, TLT, VTV, VUG, MTUM, QUAL, IWM and USMV, and enough history before the
        first calculation date (180 sessions for the spreads, 90 for the rest).
    calc_dates : sequence of datetime.date
        Calculation dates, each a session of ``prices.index``.
    provider_betas : pandas.Series, optional
        Provider beta by symbol (e.g. ``company_profiles.beta``). Rows are emitted for symbols that are
        columns of ``prices`` and whose value is not null and not 0, identical on every date.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`OUTPUT_COLUMNS`: ``calculation_date`` (datetime.date), ``symbol``, ``factor`` (a
        name from ``FACTOR_DEFINITIONS``), ``beta_value`` (clipped to +/-5 except provider),
        ``alpha`` (OLS intercept, or the ridge intercept in original units; NaN for provider),
        ``r_squared`` (of the unclipped fit; the ridge R² is shared by the 6 style rows), ``std_error`` and
        ``p_value`` (OLS slope; NaN for ridge and provider), ``observations`` (int, usable return rows),
        ``quality_flag`` ('full_history' when observations >= window, else 'limited_history'),
        ``calculation_method`` ('ridge_regression', 'spread_regression', 'ols_market', 'ols_ir',
        'provider'), ``regularization_alpha`` (1.0 for ridge, NaN otherwise), ``regression_window_days``
        (90, 180 or 252). Only rows with a finite beta are returned.

    Notes
    -----
    The frame has up to 13 x D x N rows; for long backfills over thousands of symbols, call it per
    slice of dates (or use :func:`compute_symbol_beta_arrays`) to bound memory.
    """
    arr = compute_symbol_beta_arrays(prices, calc_dates)
    dates = np.empty(len(arr["dates"]), dtype=object)
    dates[:] = arr["dates"]
    symbols = np.asarray(arr["symbols"], dtype=object)
    frames: list[pd.DataFrame] = []

    style = arr["style"]
    for k, name in enumerate(STYLE_FACTORS):
        frames.append(
            _tidy_block(
                dates, symbols, name, style["beta"][:, :, k],
                {"alpha": style["intercept"], "r_squared": style["r_squared"]},
                style["nobs"], RIDGE_WINDOW, "ridge_regression", RIDGE_ALPHA,
            )
        )  # fmt: skip
    ols_specs = [(name, SPREAD_WINDOW, "spread_regression") for name in SPREAD_FACTORS]
    ols_specs += [("Market Beta (90D)", OLS_WINDOW, "ols_market"), ("IR Beta", OLS_WINDOW, "ols_ir")]
    for name, window, method in ols_specs:
        res = arr[name]
        frames.append(_tidy_block(dates, symbols, name, res["beta"], res, res["nobs"], window, method, np.nan))

    if provider_betas is not None and len(dates):
        pb = pd.to_numeric(provider_betas, errors="coerce").reindex(arr["symbols"]).to_numpy(dtype=np.float64)
        keep = np.isfinite(pb) & (pb != 0)
        beta = np.broadcast_to(np.where(keep, pb, np.nan), (len(dates), len(pb)))
        nobs = np.full(beta.shape, PROVIDER_WINDOW, dtype=np.int64)
        frames.append(
            _tidy_block(dates, symbols, "Provider Beta (1Y)", beta, {}, nobs, PROVIDER_WINDOW, "provider", np.nan)
        )

    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    out["observations"] = out["observations"].astype(np.int64)
    out["regression_window_days"] = out["regression_window_days"].astype(np.int64)
    return out.loc[:, list(OUTPUT_COLUMNS)]
