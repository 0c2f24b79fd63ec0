"""Phase 0 — company profiles: refresh profiles older than the configured age; benchmark sector weights.

Symbols: the run's position symbols and the factor ETFs. A profile is fetched when missing, older than
``SIGMABATCH_PROFILE_MAX_AGE_DAYS`` (default 3) or with ``--force``. ETFs and funds are flagged by the
provider. The symbol universe records first/last seen dates and sectors. The benchmark's (SP500) sector
weights as of every session of the run are stored for phase 6 (each session its own, so a session's
sector comparison does not depend on the run that computed it; a provider without history for a date
gives none for that date).

A symbol shard (``--shard K/N``) fetches, upserts and records in the universe only its shard's symbols
(:meth:`PhaseContext.symbol_scope`; a symbol's profile and universe row depend on that symbol alone). The
run-wide data, the benchmark's sector weights and the treasury yields, are fetched and written by shard 1
only (:attr:`PhaseContext.lead_shard`), and so are their details; every step that reads them runs after
every shard. The book is read as its distinct held symbols, never one row a position.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import held_symbols, position_symbols
from shared.analytics.factors import FACTOR_ETFS
from shared.storage import models as m
from shared.storage import repository as repo

BENCHMARK = "SP500"
#: Treasury yields (percent) kept as macro series for the rates view.
RATE_SERIES = ("DGS10", "DGS2", "DGS3MO")
RATES_LOOKBACK_DAYS = 366


def run(ctx: PhaseContext) -> PhaseResult:
    end = ctx.range.end
    now = ctx.settings.current_time()
    symbols = ctx.symbol_scope(set(position_symbols(held_symbols(ctx))) | set(FACTOR_ETFS))  # the shard's
    with ctx.transaction() as s:
        existing = repo.load_profiles(s, symbols)
        universe = repo.load_symbol_universe(s, symbols)
    fresh_after = now - timedelta(days=ctx.settings.profile_max_age_days)
    if ctx.force or existing.empty:
        stale = symbols
    else:
        last = pd.to_datetime(existing.set_index("symbol")["last_updated"], utc=True)
        stale = [s for s in symbols if s not in last.index or last[s] < fresh_after]
    md = ctx.market_data
    profiles = md.profiles.fetch_profiles(stale) if stale else pd.DataFrame()
    missing = sorted(set(stale) - set(profiles.get("symbol", [])))
    if not profiles.empty:
        profiles = profiles.assign(last_updated=now)
        profiles["is_etf"] = profiles["is_etf"].fillna(False).astype(bool)
        profiles["is_fund"] = profiles["is_fund"].fillna(False).astype(bool)
    uni = _universe_rows(universe, symbols, profiles, existing, ctx.range.start, end)
    lead = ctx.lead_shard  # the run-wide rows: written once, by shard 1 (or the unsharded step)
    weights = benchmark_weights(md.benchmarks, ctx.range.sessions) if lead else pd.DataFrame()
    rates = _rates(ctx, md, end) if lead else pd.DataFrame()
    rows = {"company_profiles": 0, "symbol_universe": 0}
    with ctx.transaction() as s:
        rows["company_profiles"] = repo.upsert(s, m.CompanyProfile, profiles)
        rows["symbol_universe"] = repo.upsert(s, m.SymbolUniverse, uni)
        if lead:
            rows["benchmarks_sector_weights"] = repo.replace(
                s, m.BenchmarkSectorWeight, weights, {"benchmark_code": [BENCHMARK], "asof_date": list(ctx.range.sessions)})
            rows["macro_series"] = repo.upsert(s, m.MacroSeries, rates)
    # integer counts (the shards' records fold into sums); the run-wide details from the lead shard only
    details = {"symbols": len(symbols), "refreshed": len(profiles), "fresh": len(symbols) - len(stale),
               "without_profile": missing[:50], "without_profile_count": len(missing)}
    if lead:
        details.update({"max_age_days": ctx.settings.profile_max_age_days,
                        "benchmark_sectors": int(weights["sector"].nunique()) if not weights.empty else 0,
                        "rate_series": sorted(set(rates["series"])) if not rates.empty else []})
    message = ""
    if missing:
        message = f"no profile for {len(missing)} symbol(s): {', '.join(missing[:10])}"
        ctx.log.warning(message)
    return PhaseResult(rows=rows, details=details, status="ok", message=message)


def benchmark_weights(provider, sessions) -> pd.DataFrame:
    """The benchmark's sector weights as of each session (``asof_date``), as the provider gives them."""
    frames = []
    for d in sessions:
        w = provider.fetch_sector_weights(BENCHMARK, d)
        if not w.empty:
            frames.append(w.assign(benchmark_code=BENCHMARK, asof_date=d, data_source=provider.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _rates(ctx: PhaseContext, md, end) -> pd.DataFrame:
    """Treasury yields over the price window; a rates outage is reported, not fatal (nothing uses them yet)."""
    try:
        rates = md.rates.fetch_rates(list(RATE_SERIES), end - timedelta(days=RATES_LOOKBACK_DAYS), end)
    except Exception as exc:  # reported in the log and the details
        ctx.log.warning("rates from %s unavailable: %s", md.rates.name, exc)
        return pd.DataFrame()
    return rates.assign(data_source=md.rates.name) if not rates.empty else rates


def _universe_rows(universe: pd.DataFrame, symbols: list[str], profiles: pd.DataFrame, existing: pd.DataFrame,
                   start, end) -> pd.DataFrame:
    """First/last seen only widen: a backfill of older dates moves ``first_seen_date`` back, never
    ``last_seen_date``."""
    prof = pd.concat([existing, profiles]).drop_duplicates("symbol", keep="last").set_index("symbol") \
        if not (existing.empty and profiles.empty) else pd.DataFrame()
    prev = universe.set_index("symbol") if not universe.empty else pd.DataFrame()
    rows = []
    for s in symbols:
        first = prev.at[s, "first_seen_date"] if s in prev.index else start
        last = max(prev.at[s, "last_seen_date"], end) if s in prev.index else end
        is_etf = bool(prof.at[s, "is_etf"]) if s in prof.index else s in FACTOR_ETFS
        rows.append({"symbol": s, "asset_type": "etf" if is_etf else "equity",
                     "sector": prof.at[s, "sector"] if s in prof.index else None,
                     "industry": prof.at[s, "industry"] if s in prof.index else None,
                     "first_seen_date": min(first, start), "last_seen_date": last, "is_active": True})
    return pd.DataFrame(rows)


main = entrypoint("company-profiles", "Phase 0: refresh stale company profiles and benchmark sector weights.", run)

if __name__ == "__main__":
    raise SystemExit(main())
