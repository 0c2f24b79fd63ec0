"""Splits (pure): which symbols' stored history must be re-fetched after a provider reports a split.

Providers serve split-adjusted closes, but only as of the day they are asked: rows stored before a split
are in pre-split units, and the first post-split row would then show an artificial return of
``1/ratio - 1`` (-50% for a 2:1 split). When a provider reports a split dated after a symbol's cached
history starts, and either the cache ends before the split (so its rows were fetched unadjusted) or the
stored/fetched closes jump across the split date by about the split ratio, phase 1 re-fetches the
symbol's whole window and replaces its rows, so the stored history is adjusted consistently.
"""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

#: A jump across the split date counts as "the split, unadjusted" when ratio * jump is within this of 1
#: (in log terms) and the split explains the jump better than no split.
SPLIT_JUMP_TOLERANCE = 0.2


def split_like_jump(prices: pd.DataFrame, symbol: str, day: date, ratio: float) -> bool:
    """True when the last close before ``day`` and the first on/after it differ by about ``ratio``."""
    if not ratio or ratio <= 0 or math.isclose(ratio, 1.0):
        return False
    p = prices[prices["symbol"] == symbol]
    before, after = p[p["date"] < day], p[p["date"] >= day]
    if before.empty or after.empty:
        return False
    prev = float(before.sort_values("date")["close"].iloc[-1])
    nxt = float(after.sort_values("date")["close"].iloc[0])
    if prev <= 0 or nxt <= 0:
        return False
    jump = math.log(nxt / prev)
    explained = abs(jump + math.log(ratio))
    return explained < SPLIT_JUMP_TOLERANCE and explained < abs(jump)


def symbols_to_refetch(splits: pd.DataFrame, coverage: pd.DataFrame, prices: pd.DataFrame) -> dict[str, list[str]]:
    """``{symbol: [reasons]}`` for the symbols whose stored history a reported split makes inconsistent.

    ``coverage``: the cache before this run (``symbol, first, last``); ``prices``: stored rows plus the
    rows fetched this run (``date, symbol, close``)."""
    out: dict[str, list[str]] = {}
    if splits is None or splits.empty or coverage is None or coverage.empty:
        return out
    cov = coverage.set_index("symbol")
    for row in splits.itertuples(index=False):
        sym, day, ratio = str(row.symbol), row.date, float(row.ratio)
        if sym not in cov.index or not cov.at[sym, "first"] < day:
            continue  # no stored history before the split: whatever we fetch now is adjusted
        if cov.at[sym, "last"] < day:
            out.setdefault(sym, []).append(f"{ratio:g}:1 split on {day} after the cached history")
        elif split_like_jump(prices, sym, day, ratio):
            out.setdefault(sym, []).append(f"{ratio:g}:1 split on {day} not reflected in stored closes")
    return out
