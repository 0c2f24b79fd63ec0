"""Phase 1 — market data: provider -> validated closes -> ``market_data_cache`` -> price-cache snapshot.

Symbols: every non-deleted position held during the run (scoped to ``--portfolio`` if given), option
underlyings, the 17 factor ETFs and, for unscoped runs, every symbol already cached. Each symbol fetches
only what the cache lacks in ``[start − 366 days, end]``; symbols with the same gap share one provider
call. The snapshot holds every close of those symbols in that window.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import position_symbols
from shared import calendar
from shared.analytics.factors import FACTOR_ETFS
from shared.errors import BadInputError
from shared.providers.symbols import is_skipped_symbol, normalize_symbol
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.price_cache import write_price_cache
from shared.validation import validate_prices

LOOKBACK_DAYS = 366
#: A cached history starting within this many days after the window start counts as complete.
HEAD_TOLERANCE_DAYS = 7


def run_symbols(positions: pd.DataFrame, cached: list[str]) -> tuple[list[str], list[str]]:
    """(symbols to fetch, skipped position symbols) for a run."""
    wanted = set(FACTOR_ETFS) | set(cached) | set(position_symbols(positions))
    skipped = {n for n in map(normalize_symbol, positions["symbol"]) if is_skipped_symbol(n)}
    return sorted(wanted), sorted(skipped)


def fetch_plan(coverage: pd.DataFrame, symbols: list[str], start: date, end: date) -> dict[tuple[date, date], list[str]]:
    """Group symbols by the (from, to) range the cache lacks."""
    cov = coverage.set_index("symbol") if not coverage.empty else coverage
    last_session = calendar.session_on_or_before(end)
    plan: dict[tuple[date, date], list[str]] = defaultdict(list)
    for s in symbols:
        if cov.empty or s not in cov.index:
            plan[(start, end)].append(s)
            continue
        first, last = cov.at[s, "first"], cov.at[s, "last"]
        if first > start + timedelta(days=HEAD_TOLERANCE_DAYS):
            plan[(start, first - timedelta(days=1))].append(s)
        if last < last_session:
            plan[(last + timedelta(days=1), end)].append(s)
    return dict(plan)


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    load_start = rng.start - timedelta(days=LOOKBACK_DAYS)
    provider = ctx.market_data.prices
    with ctx.transaction() as s:
        positions = repo.load_positions(s, [ctx.portfolio_id] if ctx.portfolio_id else None,
                                        start=rng.start, end=rng.end)
        cached = [] if ctx.portfolio_id else repo.cached_symbols(s)
        symbols, skipped = run_symbols(positions, cached)
        coverage = repo.price_coverage(s, symbols, load_start, rng.end)
    plan = fetch_plan(coverage, symbols, load_start, rng.end) if not ctx.force else {(load_start, rng.end): symbols}
    ctx.log.info("fetching %d symbol group(s) from %s", len(plan), provider.name,
                 extra={"symbols": len(symbols), "skipped": len(skipped)})
    frames = [provider.fetch_prices(syms, a, b) for (a, b), syms in plan.items() if a <= b]
    fetched = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    check = validate_prices(fetched, provider.name) if not fetched.empty else None
    new_rows = check.prices if check is not None else pd.DataFrame()
    rejected = getattr(provider, "rejected", None)
    if rejected is not None and len(rejected):
        listing = "; ".join(f"line {r.line}: {r.symbol} {r.date} ({r.reason})" for r in rejected.head(10).itertuples())
        raise BadInputError(f"provider {provider.name} has {len(rejected)} invalid price row(s): {listing}")
    have_any = set(coverage["symbol"]) | set(new_rows.get("symbol", []))
    unknown = sorted(set(position_symbols(positions)) - have_any)
    if unknown:
        raise BadInputError(f"no price data at all from {provider.name} for position symbol(s) "
                            f"{', '.join(unknown[:20])}: unknown symbols? fix the positions (nothing was written)")
    with ctx.transaction() as s:
        written = repo.upsert(s, m.MarketDataCache, new_rows)
        prices = repo.load_prices(s, symbols, load_start, rng.end)
    write_price_cache(ctx.price_cache_out, prices, load_start, rng.end)
    have = set(prices["symbol"])
    on_end = set(prices.loc[prices["date"] == rng.end, "symbol"])
    missing = sorted(set(symbols) - have)
    coverage_pct = round(100.0 * len(on_end) / max(len(symbols), 1), 2)
    details = {
        "symbols_requested": len(symbols), "symbols_with_data": len(have), "symbols_on_end_date": len(on_end),
        "data_coverage_pct": coverage_pct, "missing_symbols": missing[:50], "skipped_symbols": skipped[:50],
        "fetch_groups": len(plan), "rows_fetched": len(fetched), "price_cache": str(ctx.price_cache_out),
        "price_cache_rows": len(prices), "window": f"{load_start}..{rng.end}",
        "non_session_rows_dropped": check.dropped_non_sessions if check else 0,
    }
    ctx.log.info("price cache written", extra={"path": str(ctx.price_cache_out), "rows": len(prices),
                                                "coverage_pct": coverage_pct})
    status, message = "ok", ""
    if missing:
        status = "partial"
        message = f"no price data for {len(missing)} symbol(s): {', '.join(missing[:10])}"
        ctx.log.warning(message)
    return PhaseResult(rows={"market_data_cache": written}, details=details, status=status, message=message)


main = entrypoint("market-data", "Phase 1: fetch closes, store them and write the price-cache snapshot.", run)

if __name__ == "__main__":
    raise SystemExit(main())
