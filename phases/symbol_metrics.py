"""Phase 1.75 — symbol metrics for every session of the run: returns, valuation, data quality.

Independent of phase 1.5 (they run in parallel). Returns 1d, MTD, YTD, 1m, 3m, 1y use the last close on
or before each reference date (MTD/YTD from the prior month-/year-end close), from the price-cache
snapshot. Descriptive fields (sector, industry, company name) come from the profile. Valuation fields
(``market_cap``, ``pe_ratio``) stay null in these dated rows: the profile only knows them as of its own fetch,
so copying them onto a session would make the session's row depend on when it was computed (they live
in ``company_profiles``, as of ``last_updated``). Data quality (0-100) = 30 has a price + 30 has a
1-day return + 20 has a profile + 20 has enough history for factor betas (≥ 30 returns in the last 90
sessions) — the last one is checked on prices, so this phase does not wait for 1.5. A symbol shard
(``--shard K/N``) computes and upserts only its shard's symbols (:meth:`PhaseContext.symbol_scope`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import scoped_prices
from shared.analytics.metrics import symbol_return_metrics
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

BETA_WINDOW, BETA_MIN_OBS = 90, 30
#: The close one year back (1-year return; YTD's prior year-end lies within it) and the 90-return window.
HISTORY = History(sessions=BETA_WINDOW, years=1)


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    prices = scoped_prices(ctx)
    own = set(ctx.symbol_scope(prices.columns))  # a symbol's row depends on its own closes only
    prices = prices[[c for c in prices.columns if c in own]]
    if prices.shape[1] == 0:  # a symbol shard that holds none of the snapshot's symbols
        return PhaseResult(rows={"symbol_daily_metrics": 0}, details={"symbols": 0, "sessions": len(rng.sessions)})
    with ctx.transaction() as s:
        profiles = repo.load_profiles(s, list(prices.columns))
    prof = profiles.set_index("symbol") if not profiles.empty else pd.DataFrame(
        columns=["sector", "industry", "company_name"])
    ret = prices / prices.shift(1) - 1.0
    enough_all = (ret.notna().rolling(BETA_WINDOW, min_periods=1).sum() >= BETA_MIN_OBS)
    del ret
    # Memory grows with symbols x sessions: a long backfill goes in chunks of sessions (as symbol-factors:
    # SIGMABATCH_CHUNK_SYMBOL_DATES pairs each), each written on its own; a session's row depends on the
    # session alone, so the rows are the same whatever the chunking.
    chunks = rng.chunks(max(ctx.settings.chunk_symbol_dates // max(prices.shape[1], 1), 1))
    n, last = 0, None
    for chunk in chunks:
        metrics = symbol_return_metrics(prices, list(chunk.sessions))
        for c in ("sector", "industry", "company_name"):
            metrics[c] = metrics["symbol"].map(prof[c])
        enough = enough_all.reindex(pd.DatetimeIndex(pd.to_datetime(list(chunk.sessions)))).stack()
        enough.index = enough.index.set_names(["metrics_date", "symbol"])
        key = pd.MultiIndex.from_arrays([pd.to_datetime(metrics["metrics_date"]), metrics["symbol"]])
        has_hist = enough.reindex(key).fillna(False).to_numpy(dtype=bool)
        metrics["data_quality_score"] = (30.0 * metrics["current_price"].notna() + 30.0 * metrics["return_1d"].notna()
                                         + 20.0 * metrics["symbol"].isin(prof.index) + 20.0 * has_hist)
        with ctx.transaction() as s:
            n += repo.upsert(s, m.SymbolDailyMetrics, metrics)
        if chunk is chunks[-1]:
            last = metrics[pd.to_datetime(metrics["metrics_date"]) == pd.Timestamp(rng.end)]
        del metrics, enough, key, has_hist
    return PhaseResult(rows={"symbol_daily_metrics": n},
                       details={"symbols": prices.shape[1], "sessions": len(rng.sessions), "chunks": len(chunks),
                                "mean_quality_last_session": float(np.round(last["data_quality_score"].mean(), 2))
                                if last is not None and len(last) else None,
                                "null_ytd_last_session": int(last["return_ytd"].isna().sum())
                                if last is not None and len(last) else 0,
                                # integer sums (scores are multiples of 10), so the symbol shards' records fold
                                # into the mean over every symbol (shared.runs.fold_shards sums integers)
                                "quality_points_last_session": int(last["data_quality_score"].sum())
                                if last is not None and len(last) else 0,
                                "symbols_last_session": len(last) if last is not None else 0})


main = entrypoint("symbol-metrics", "Phase 1.75: symbol returns (1d, MTD, YTD, 1m, 3m, 1y), valuation and data "
                  "quality for every session of the run.", run)

if __name__ == "__main__":
    raise SystemExit(main())
