"""Phase 1.75 kernel: per-symbol price returns over standard horizons (domain spec §6, decision 2).

Every price look-up is "the last close on or before" a reference date, read from the wide close frame on
the session grid. A close is carried forward over a symbol's missing sessions for at most
:data:`MAX_STALE_SESSIONS` sessions: a symbol whose last close is older than that (delisted, long halt, bad
feed) has no price, and so no returns, rather than a stale one.

Reference dates for a calculation date ``d`` (its session: the last session on or before ``d``):

===========  ==================================================================
return_1d    the session before ``d``'s session
return_mtd   the last calendar day of the previous month (prior month-end close)
return_ytd   Dec 31 of the previous year (prior year-end close)
return_1m    ``d - DateOffset(months=1)``
return_3m    ``d - DateOffset(months=3)``
return_1y    ``d - DateOffset(years=1)``
===========  ==================================================================

Return = current / reference - 1 (decimal), null when either price is missing. The 1-day return is
also null when the symbol has no close on ``d``'s session itself (a carried close would give 0.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

__all__ = ["MAX_STALE_SESSIONS", "METRICS_COLUMNS", "data_quality_score", "symbol_return_metrics"]

#: A close is usable for this many sessions: on its own session and the next 9 (the last 10 sessions).
MAX_STALE_SESSIONS = 10

METRICS_COLUMNS: tuple[str, ...] = (
    "metrics_date",
    "symbol",
    "current_price",
    "return_1d",
    "return_mtd",
    "return_ytd",
    "return_1m",
    "return_3m",
    "return_1y",
)


def _carried_prices(prices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) closes carried forward at most ``MAX_STALE_SESSIONS - 1`` sessions past the last real one,
    and the (T, N) mask of real closes."""
    p = prices.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    p[~(p > 0.0) | np.isinf(p)] = np.nan
    n_rows = p.shape[0]
    have = ~np.isnan(p)
    row = np.where(have, np.arange(n_rows)[:, None], -1)
    last = np.maximum.accumulate(row, axis=0)  # (T, N) row of the last real close, -1 if none yet
    filled = np.take_along_axis(p, np.maximum(last, 0), axis=0)
    stale = (last < 0) | (np.arange(n_rows)[:, None] - last >= MAX_STALE_SESSIONS)
    filled[stale] = np.nan
    return filled, have


def _row_on_or_before(index: pd.DatetimeIndex, when: pd.DatetimeIndex) -> np.ndarray:
    """Row of the last session on or before each date; -1 when there is none."""
    return index.searchsorted(when, side="right") - 1


def symbol_return_metrics(prices: pd.DataFrame, calc_dates: Sequence[date]) -> pd.DataFrame:
    """Current price and 1d / MTD / YTD / 1m / 3m / 1y returns for every symbol and calculation date.

    Parameters
    ----------
    prices : pandas.DataFrame, shape (T, N)
        Wide closes; index = consecutive NYSE sessions (ascending ``DatetimeIndex``), columns = symbols,
        NaN = no close. Needs at least one year (plus a few sessions) of history before the earliest
        calculation date for ``return_1y``; a reference date before the first row gives null.
    calc_dates : sequence of datetime.date, length D
        Calculation dates (normally sessions; a non-session date uses the last session before it).

    Returns
    -------
    pandas.DataFrame, D x N rows
        Columns :data:`METRICS_COLUMNS`: ``metrics_date`` (datetime.date), ``symbol``,
        ``current_price`` (last close on or before the date, null if none in the last
        :data:`MAX_STALE_SESSIONS` sessions), and the six returns (decimal; null when the current or the
        reference price is missing). The same staleness limit applies to reference prices.
    """
    idx = pd.DatetimeIndex(prices.index).normalize()
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise ValueError("prices index must be strictly increasing sessions")
    cd = pd.DatetimeIndex([pd.Timestamp(d) for d in calc_dates]).normalize()
    filled, have = _carried_prices(prices)
    n_sym = filled.shape[1]

    def at(rows: np.ndarray) -> np.ndarray:
        vals = filled[np.maximum(rows, 0)]
        vals[rows < 0] = np.nan
        return vals  # (D, N)

    cur_row = _row_on_or_before(idx, cd)
    current = at(cur_row)
    refs = {
        "return_1d": np.where(cur_row >= 1, cur_row - 1, -1),
        "return_mtd": _row_on_or_before(idx, cd.to_period("M").start_time - pd.Timedelta(days=1)),
        "return_ytd": _row_on_or_before(idx, cd.to_period("Y").start_time - pd.Timedelta(days=1)),
        "return_1m": _row_on_or_before(idx, cd - pd.DateOffset(months=1)),
        "return_3m": _row_on_or_before(idx, cd - pd.DateOffset(months=3)),
        "return_1y": _row_on_or_before(idx, cd - pd.DateOffset(years=1)),
    }
    dates = np.empty(len(cd), dtype=object)
    dates[:] = [d.date() for d in cd]
    data: dict[str, np.ndarray] = {
        "metrics_date": np.repeat(dates, n_sym),
        "symbol": np.tile(np.asarray(prices.columns, dtype=object), len(cd)),
        "current_price": current.reshape(-1),
    }
    for name, rows in refs.items():
        data[name] = (current / at(rows) - 1.0).reshape(-1)
    # the 1-day return is the session's own move: none when the symbol has no close on d's session
    # (a carried close would make it a fake 0.0)
    traded = np.zeros((len(cd), n_sym), dtype=bool) if not len(have) else have[np.maximum(cur_row, 0)] & (
        cur_row >= 0)[:, None]
    data["return_1d"] = np.where(traded.reshape(-1), data["return_1d"], np.nan)
    return pd.DataFrame(data, columns=list(METRICS_COLUMNS))


def data_quality_score(has_price, has_return_1d, has_profile, has_factors):
    """Data-quality score 0-100: 30 (price) + 30 (1d return) + 20 (company profile) + 20 (factor betas).

    Parameters
    ----------
    has_price, has_return_1d, has_profile, has_factors : array-like of bool, same length (or scalars)
        Flags per symbol; null counts as False.

    Returns
    -------
    pandas.Series of int64 (index of the first Series argument) if any argument is a Series, else an
    ``ndarray`` of int64.
    """
    args = (has_price, has_return_1d, has_profile, has_factors)
    index = next((a.index for a in args if isinstance(a, pd.Series)), None)

    def flag(a) -> np.ndarray:
        if isinstance(a, pd.Series):
            a = a.reindex(index)
        arr = np.asarray(a, dtype=object)
        return np.logical_not(pd.isna(arr)) & arr.astype(bool)

    score = 30 * flag(has_price) + 30 * flag(has_return_1d) + 20 * flag(has_profile) + 20 * flag(has_factors)
    score = np.asarray(score, dtype=np.int64)
    return pd.Series(score, index=index, name="data_quality_score") if index is not None else score
