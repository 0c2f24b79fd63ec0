"""Data quality of a run's prices (pure): coverage, missing symbols, stale prices, outliers.

* **coverage**: share of requested symbols with a close on the end session.
* **missing**: requested symbols with no close at all in the window.
* **stale**: symbols whose last close is more than ``stale_sessions`` NYSE sessions before the end session.
* **outliers**: daily returns with ``|r| > outlier_return`` not explained by a reported split on that date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from shared import calendar

STALE_SESSIONS = 3
OUTLIER_RETURN = 0.5
_LISTED = 20


def assess(prices: pd.DataFrame, symbols: Sequence[str], end: date, *, splits: pd.DataFrame | None = None,
           stale_sessions: int = STALE_SESSIONS, outlier_return: float = OUTLIER_RETURN) -> dict:
    """A JSON-able summary (counts plus up to 20 names per list)."""
    symbols = sorted(set(symbols))
    last_session = calendar.session_on_or_before(end)
    p = prices[prices["symbol"].isin(symbols)] if not prices.empty else prices
    have = set(p["symbol"].unique().tolist()) if not p.empty else set()
    missing = [s for s in symbols if s not in have]
    on_end = set(p.loc[p["date"] == last_session, "symbol"].unique().tolist()) if not p.empty else set()
    stale: dict[str, str] = {}
    outliers: list[dict] = []
    if not p.empty:
        sessions = calendar.session_index(p["date"].min(), last_session)
        pos = {d.date(): i for i, d in enumerate(sessions)}
        last = p.groupby("symbol")["date"].max()
        end_pos = pos.get(last_session, len(sessions) - 1)
        for sym, d in last.items():
            if end_pos - pos.get(d, end_pos) > stale_sessions:
                stale[str(sym)] = str(d)
        split_days = set()
        if splits is not None and not splits.empty:
            split_days = {(str(r.symbol), r.date) for r in splits.itertuples(index=False)}
        q = p.sort_values(["symbol", "date"])
        ret = q.groupby("symbol")["close"].pct_change().to_numpy()
        big = np.flatnonzero(np.abs(np.nan_to_num(ret)) > outlier_return)
        for i in big:
            sym, d = str(q["symbol"].iloc[i]), q["date"].iloc[i]
            if (sym, d) not in split_days:
                outliers.append({"symbol": sym, "date": str(d), "return": round(float(ret[i]), 4)})
    by_source = ({str(k): int(v) for k, v in p.groupby("data_source")["symbol"].nunique().items()}
                 if not p.empty and "data_source" in p else {})
    coverage = round(100.0 * len(on_end) / max(len(symbols), 1), 2)
    return {
        "coverage_pct": coverage if symbols else 100.0,
        "symbols": len(symbols), "symbols_on_end_date": len(on_end),
        "missing": len(missing), "missing_symbols": missing[:_LISTED],
        "stale": len(stale), "stale_symbols": dict(list(stale.items())[:_LISTED]),
        "outliers": len(outliers), "outlier_returns": outliers[:_LISTED],
        "symbols_by_source": by_source,
    }


def combine(parts: Sequence[dict]) -> dict:
    """One summary from the summaries of disjoint sets of symbols, each assessed on its own, in symbol
    order (a run assessed in chunks of symbols): the same dict as :func:`assess` of all of them at once."""
    if len(parts) == 1:
        return parts[0]
    total = sum(q["symbols"] for q in parts)
    on_end = sum(q["symbols_on_end_date"] for q in parts)
    stale: dict[str, str] = {}
    by_source: dict[str, int] = {}
    for q in parts:
        stale.update(q["stale_symbols"])
        for k, v in q["symbols_by_source"].items():
            by_source[k] = by_source.get(k, 0) + v
    return {
        "coverage_pct": round(100.0 * on_end / max(total, 1), 2) if total else 100.0,
        "symbols": total, "symbols_on_end_date": on_end,
        "missing": sum(q["missing"] for q in parts),
        "missing_symbols": [s for q in parts for s in q["missing_symbols"]][:_LISTED],
        "stale": sum(q["stale"] for q in parts), "stale_symbols": dict(list(stale.items())[:_LISTED]),
        "outliers": sum(q["outliers"] for q in parts),
        "outlier_returns": [o for q in parts for o in q["outlier_returns"]][:_LISTED],
        "symbols_by_source": dict(sorted(by_source.items())),
    }


def summary_line(q: dict) -> str:
    """One line for the run summary."""
    if not q:
        return ""
    parts = [f"coverage {q.get('coverage_pct', 0):g}% ({q.get('symbols_on_end_date', 0)}/{q.get('symbols', 0)})",
             f"missing {q.get('missing', 0)}", f"stale {q.get('stale', 0)}", f"outliers {q.get('outliers', 0)}"]
    src = q.get("symbols_by_source") or {}
    if src:
        parts.append("sources " + ", ".join(f"{k} {v}" for k, v in sorted(src.items())))
    return " · ".join(parts)
