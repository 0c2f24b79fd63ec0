"""Phase 1 — market data: provider -> validated closes -> ``market_data_cache`` -> price-cache snapshot.

Symbols: every non-deleted position held during the run (scoped to ``--portfolio`` if given), option
underlyings, the 17 factor ETFs and, for unscoped runs, every symbol already cached. The window starts
where the history of every step that reads the snapshot begins (:func:`workflows.dag.price_history`,
declared in sessions by each phase: 252 sessions and one calendar year before the run's first session,
plus the sessions a close may be carried), so session ``d`` sees the same closes whatever the run's range.
Each symbol fetches only what the cache lacks in that window (modes of domain spec §3.2: cached,
incremental, gap fill, full backfill); symbols with the same gap share one provider call. Splits reported by the
provider trigger a re-fetch of the affected symbols' whole window (:mod:`shared.corporate_actions`).
Everything is fetched and validated before anything is written. The snapshot holds every close of those
symbols in that window; the data-quality summary (:mod:`shared.data_quality`) goes into the phase details.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import position_symbols
from shared import calendar
from shared.analytics.factors import FACTOR_ETFS
from shared.analytics.pnl import stale_closes
from shared.corporate_actions import symbols_to_refetch
from shared.data_quality import assess, combine
from shared.errors import BadInputError
from shared.history import history_start
from shared.providers.base import PRICE_COLUMNS, SPLIT_COLUMNS, empty_frame
from shared.providers.chain import fetch_detailed
from shared.providers.symbols import is_plausible_symbol, is_skipped_symbol, normalize_symbol
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.price_cache import PriceCacheWriter
from shared.validation import validate_prices

#: A cached history starting within this many days after the fetch window's start counts as complete. The
#: fetch window starts this many days before the history the steps need, so the tolerance never leaves a
#: needed session unfetched (a symbol listed later is asked for its head again, cheaply, by range group).
HEAD_TOLERANCE_DAYS = 7
#: Domain spec §3.2: fewer rows than this in the window -> full fetch; a history with interior holes and
#: fewer than FULL_HISTORY_ROWS rows -> gap fill (the whole window again).
MIN_ROWS = 50
FULL_HISTORY_ROWS = 250
GAP_FILL_MIN_DENSITY = 0.95


def run_symbols(positions: pd.DataFrame, cached: list[str]) -> tuple[list[str], list[str]]:
    """(symbols to fetch, skipped position symbols) for a run."""
    wanted = set(FACTOR_ETFS) | set(cached) | set(position_symbols(positions))
    skipped = {n for n in map(normalize_symbol, positions["symbol"].unique().tolist()) if is_skipped_symbol(n)}
    invalid = {s for s in wanted if not is_plausible_symbol(s)}
    return sorted(wanted - invalid), sorted(skipped | invalid)


def fetch_modes(coverage: pd.DataFrame, symbols: list[str], start: date, end: date) -> dict[str, str]:
    """Per symbol: ``cached``, ``incremental`` (head/tail ranges), ``gap_fill`` or ``full_backfill``."""
    last_session = calendar.session_on_or_before(end)
    cov = {} if coverage.empty else {  # plain tuples: one dict look-up per symbol, no frame access
        sym: (first, last, int(rows)) for sym, first, last, rows in zip(
            coverage["symbol"].tolist(), coverage["first"].tolist(), coverage["last"].tolist(),
            coverage["rows"].tolist(), strict=True)}
    modes: dict[str, str] = {}
    for s in symbols:
        if s not in cov or cov[s][2] < MIN_ROWS:
            modes[s] = "full_backfill"
            continue
        first, last, rows = cov[s]
        expected = calendar.session_count(first, last)
        if rows < FULL_HISTORY_ROWS and rows < GAP_FILL_MIN_DENSITY * expected:
            modes[s] = "gap_fill"
        elif first > start + timedelta(days=HEAD_TOLERANCE_DAYS) or last < last_session:
            modes[s] = "incremental"
        else:
            modes[s] = "cached"
    return modes


def fetch_plan(coverage: pd.DataFrame, symbols: list[str], start: date, end: date) -> dict[tuple[date, date], list[str]]:
    """Group symbols by the (from, to) range the cache lacks (the whole window for gap fill / full backfill)."""
    cov = coverage.set_index("symbol") if not coverage.empty else coverage
    last_session = calendar.session_on_or_before(end)
    plan: dict[tuple[date, date], list[str]] = defaultdict(list)
    for s, mode in fetch_modes(coverage, symbols, start, end).items():
        if mode in ("full_backfill", "gap_fill"):
            plan[(start, end)].append(s)
        elif mode == "incremental":
            first, last = cov.at[s, "first"], cov.at[s, "last"]
            if first > start + timedelta(days=HEAD_TOLERANCE_DAYS):
                plan[(start, first - timedelta(days=1))].append(s)
            if last < last_session:
                plan[(last + timedelta(days=1), end)].append(s)
    return dict(plan)


def _fetch(provider, plan: dict[tuple[date, date], list[str]]) -> tuple[pd.DataFrame, dict[str, str]]:
    frames, errors = [], {}
    for (a, b), syms in plan.items():
        if a <= b and syms:
            res = fetch_detailed(provider, syms, a, b)
            frames.append(res.frame)
            errors.update(res.errors)
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames else empty_frame(PRICE_COLUMNS)), errors


def _splits(provider, symbols: list[str], start: date, end: date, log) -> pd.DataFrame:
    if not hasattr(provider, "fetch_splits") or not symbols:
        return empty_frame(SPLIT_COLUMNS)
    try:
        return provider.fetch_splits(symbols, start, end)
    except Exception as exc:  # reported, not fatal: prices are already split-adjusted by the provider
        log.warning("could not fetch splits from %s: %s", provider.name, exc)
        return empty_frame(SPLIT_COLUMNS)


def _reject_bad_input(provider, positions, coverage, with_rows: set[str], fetch_errors) -> None:
    """Bad provider rows, or position symbols no provider knows: a clear error before anything is written."""
    rejected = getattr(provider, "rejected", None)
    if rejected is not None and len(rejected):
        listing = "; ".join(f"line {r.line}: {r.symbol} {r.date} ({r.reason})" for r in rejected.head(10).itertuples())
        raise BadInputError(f"provider {provider.name} has {len(rejected)} invalid price row(s): {listing}")
    have_any = set(coverage["symbol"]) | with_rows
    unknown = sorted(set(position_symbols(positions)) - have_any - set(fetch_errors))
    if unknown:
        raise BadInputError(f"no price data at all from {provider.name} for position symbol(s) "
                            f"{', '.join(unknown[:20])}: unknown symbols? fix the positions (nothing was written)")


def usable_closes(prices: pd.DataFrame, symbols: list[str], sessions, *, start: date) -> np.ndarray:
    """(sessions × symbols) booleans: the symbol has a usable close on the session of the run: one on the
    session, or one carried over a short hole of the series (:func:`shared.analytics.pnl.stale_closes`)."""
    p = prices[prices["symbol"].isin(set(symbols))] if not prices.empty else prices
    wide = (p.pivot(index="date", columns="symbol", values="close") if not p.empty else pd.DataFrame())
    idx = pd.DatetimeIndex(calendar.session_index(start, sessions[-1]))
    wide.index = pd.DatetimeIndex(pd.to_datetime(wide.index)) if not wide.empty else wide.index
    wide = wide.reindex(index=idx, columns=list(symbols))
    usable = ~stale_closes(wide).to_numpy()  # a close, or a short hole inside the series
    usable &= wide.notna().to_numpy().any(axis=0)[None, :]  # a symbol with no close at all is missing
    rows = idx.get_indexer(pd.DatetimeIndex(pd.to_datetime(list(sessions))))
    return usable[rows]


def thin_sessions(prices: pd.DataFrame, symbols: list[str], sessions, min_coverage: float, *,
                  start: date, listed: int = 50, usable: np.ndarray | None = None) -> dict:
    """Sessions of the run on which less than ``min_coverage`` % of ``symbols`` have a usable close
    (:func:`usable_closes`, or ``usable`` if given: the same array built in parts of symbols).
    ``{"count", "sessions", "symbols", "symbols_count", "coverage_pct"}`` (lists capped at ``listed``), or
    ``{}`` when every session is covered."""
    if not symbols or not sessions:
        return {}
    ok = usable_closes(prices, symbols, sessions, start=start) if usable is None else usable
    pct = 100.0 * ok.sum(axis=1) / len(symbols)
    low = np.flatnonzero(pct < min_coverage)
    if not len(low):
        return {}
    lacking = np.flatnonzero(~ok[low].all(axis=0))
    names = [symbols[i] for i in lacking]
    return {"count": int(len(low)), "sessions": [str(sessions[i]) for i in low[:listed]],
            "symbols": names[:listed], "symbols_count": len(names),
            "coverage_pct": {str(sessions[i]): round(float(pct[i]), 2) for i in low[:listed]}}


def thin_message(thin: dict, min_coverage: float) -> str:
    days = thin["sessions"]
    span = days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"
    more = f" (+{thin['symbols_count'] - 10} more)" if thin["symbols_count"] > 10 else ""
    return (f"stale or missing prices on {thin['count']} session(s) {span} (coverage below "
            f"SIGMABATCH_MIN_COVERAGE={min_coverage:g}%): no close for {', '.join(thin['symbols'][:10])}{more}")


def symbol_chunks(symbols: list[str], size: int) -> list[list[str]]:
    """``symbols`` (sorted) in consecutive chunks of at most ``size``: the run's symbol x session pairs over
    ``SIGMABATCH_CHUNK_SYMBOL_DATES`` (the window's sessions); one chunk for a usual universe."""
    return [symbols[i:i + size] for i in range(0, len(symbols), size)] or [[]]


def _spill_path(folder: Path, i: int) -> Path:
    return folder / f"chunk-{i:05d}.pkl"


def _unspill_all(folder: Path, chunks: list[list[str]]):
    for i in range(len(chunks)):
        yield pd.read_pickle(_spill_path(folder, i))


def _fetch_chunks(provider, plan, chunks: list[list[str]], folder: Path, log) -> tuple[dict, dict[str, str]]:
    """Fetch and validate the plan chunk by chunk of symbols, each chunk's valid rows spilled to
    ``folder``; (counts and the symbols with new rows, provider errors). Raises on invalid rows."""
    errors: dict[str, str] = {}
    stats = {"rows": 0, "non_sessions": 0, "with_rows": set()}
    for i, chunk in enumerate(chunks):
        members = set(chunk)
        part = {rng: [s for s in syms if s in members] for rng, syms in plan.items()} if len(chunks) > 1 else plan
        fetched, errs = _fetch(provider, part)
        errors.update(errs)
        check = validate_prices(fetched, provider.name) if not fetched.empty else None
        rows = check.prices if check is not None else empty_frame(PRICE_COLUMNS)
        stats["rows"] += len(fetched)
        stats["non_sessions"] += check.dropped_non_sessions if check else 0
        stats["with_rows"] |= set(rows["symbol"].unique().tolist())
        rows.to_pickle(_spill_path(folder, i))
        del fetched, check, rows
        if len(chunks) > 1:
            log.info("fetched chunk %d/%d (%d symbols)", i + 1, len(chunks), len(chunk))
    return stats, errors


def _write_chunks(ctx: PhaseContext, chunks: list[list[str]], folder: Path, refetched: pd.DataFrame,
                  needed: list[str], splits: pd.DataFrame, load_start: date) -> tuple[int, dict]:
    """Write the spilled rows (less the re-fetched symbols') and ``refetched`` in one transaction, and the
    snapshot of every close of the chunks' symbols then stored, chunk by chunk; (rows written, what the
    details need: symbols with a close / on the end session, snapshot rows, quality and coverage parts)."""
    rng = ctx.range
    replaced = sorted(set(refetched["symbol"])) if not refetched.empty else []
    out = {"have": set(), "on_end": set(), "rows": 0, "quality": [], "by_source": {}}
    usable = []
    snapshot = PriceCacheWriter(ctx.price_cache_out, load_start, rng.end)
    try:
        with ctx.transaction() as s:
            repo.delete_prices(s, replaced, load_start, rng.end)
            written = repo.upsert(s, m.MarketDataCache, refetched)
            for i, chunk in enumerate(chunks):
                new_rows = pd.read_pickle(_spill_path(folder, i))
                if replaced and not new_rows.empty:
                    new_rows = new_rows[~new_rows["symbol"].isin(set(replaced))]
                written += repo.upsert(s, m.MarketDataCache, new_rows)
                if not new_rows.empty:
                    for k, v in new_rows.groupby("data_source")["symbol"].nunique().items():
                        out["by_source"][str(k)] = out["by_source"].get(str(k), 0) + int(v)
                del new_rows
                prices = repo.load_prices(s, chunk, load_start, rng.end)
                snapshot.append(prices)
                out["rows"] += len(prices)
                out["have"] |= set(prices["symbol"].unique().tolist())
                out["on_end"] |= set(prices.loc[prices["date"] == rng.end, "symbol"].unique().tolist())
                out["quality"].append(assess(prices, chunk, rng.end, splits=splits))
                members = set(chunk)
                part = [x for x in needed if x in members]
                if part and rng.sessions:
                    usable.append(usable_closes(prices, part, list(rng.sessions), start=load_start))
                del prices
    except BaseException:
        snapshot.abort()
        raise
    snapshot.close()
    out["by_source"] = dict(sorted(out["by_source"].items()))
    out["usable"] = np.hstack(usable) if usable else np.zeros((len(rng.sessions), 0), dtype=bool)
    return written, out


def window_start(first_session: date) -> date:
    """First day of the fetch window for a run starting at ``first_session``: the history every step
    reading the snapshot declares (:func:`workflows.dag.price_history`), less the head tolerance."""
    from workflows.dag import price_history

    return history_start(first_session, price_history()) - timedelta(days=HEAD_TOLERANCE_DAYS)


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    load_start = window_start(rng.start)
    provider = ctx.market_data.prices
    with ctx.transaction() as s:
        positions = repo.load_positions(s, [ctx.portfolio_id] if ctx.portfolio_id else None,
                                        start=rng.start, end=rng.end)
        cached = [] if ctx.portfolio_id else repo.cached_symbols(s)
        symbols, skipped = run_symbols(positions, cached)
        coverage = repo.price_coverage(s, symbols, load_start, rng.end)
    modes = fetch_modes(coverage, symbols, load_start, rng.end)
    plan = fetch_plan(coverage, symbols, load_start, rng.end) if not ctx.force else {(load_start, rng.end): symbols}
    ctx.log.info("fetching %d symbol group(s) from %s", len(plan), provider.name,
                 extra={"symbols": len(symbols), "skipped": len(skipped)})
    # 1. everything is fetched and validated before anything is written: chunk by chunk of symbols, each
    #    chunk's rows spilled to a scratch file (memory bounded whatever the number of symbols × sessions)
    chunks = symbol_chunks(symbols, max(ctx.settings.chunk_symbol_dates // calendar.session_count(
        load_start, rng.end), 1))
    spill = tempfile.TemporaryDirectory(prefix="sigmabatch-market-data-")
    try:
        fetched, fetch_errors = _fetch_chunks(provider, plan, chunks, Path(spill.name), ctx.log)
        _reject_bad_input(provider, positions, coverage, fetched["with_rows"], fetch_errors)
        splits = _splits(provider, symbols, load_start, rng.end, ctx.log)
        refetch, refetched = {}, empty_frame(PRICE_COLUMNS)
        if not splits.empty:
            split_symbols = sorted(set(splits["symbol"]))
            with ctx.transaction() as s:
                stored = repo.load_prices(s, split_symbols, load_start, rng.end)
            new_split = [f[f["symbol"].isin(set(split_symbols))] for f in _unspill_all(Path(spill.name), chunks)]
            combined = pd.concat([stored, *new_split], ignore_index=True).drop_duplicates(["symbol", "date"],
                                                                                        keep="last")
            refetch = {} if ctx.force else symbols_to_refetch(splits, coverage, combined)
        if refetch:
            ctx.log.warning("re-fetching the whole window of %d symbol(s) after splits: %s", len(refetch),
                            "; ".join(f"{k}: {', '.join(v)}" for k, v in list(refetch.items())[:10]))
            again, errs = _fetch(provider, {(load_start, rng.end): sorted(refetch)})
            fetch_errors.update(errs)
            if not again.empty:
                refetched = validate_prices(again, provider.name).prices
        # 2. write (one transaction), and the snapshot from what is then stored, chunk by chunk
        needed = sorted((set(position_symbols(positions)) | set(FACTOR_ETFS)) & set(symbols))
        written, out = _write_chunks(ctx, chunks, Path(spill.name), refetched, needed, splits, load_start)
    finally:
        spill.cleanup()
    have, on_end = out["have"], out["on_end"]
    missing = sorted(set(symbols) - have)
    coverage_pct = round(100.0 * len(on_end) / max(len(symbols), 1), 2)
    quality = combine(out["quality"])
    mode_counts: dict[str, int] = defaultdict(int)
    for mode in modes.values():
        mode_counts["full_backfill" if ctx.force else mode] += 1
    never_cached = set(symbols) - (set(coverage["symbol"]) if not coverage.empty else set())
    unknown = sorted((never_cached & set(missing)) - set(fetch_errors))  # asked, not known by any provider
    events = list(getattr(provider, "events", []))
    details = {
        "symbols_requested": len(symbols), "symbols_with_data": len(have), "symbols_on_end_date": len(on_end),
        "data_coverage_pct": coverage_pct, "missing_symbols": missing[:50], "skipped_symbols": skipped[:50],
        "unknown_symbols": unknown[:50], "fetch_groups": len(plan), "fetch_modes": dict(mode_counts), "rows_fetched": fetched["rows"],
        "price_cache": str(ctx.price_cache_out),
        "price_cache_rows": out["rows"], "window": f"{load_start}..{rng.end}",
        "non_session_rows_dropped": fetched["non_sessions"], "provider_breakdown": out["by_source"],
        "provider_errors": events[:20] if events else [
            {"symbol": k, "error": v} for k, v in list(fetch_errors.items())[:20]],
        "splits": [{"symbol": r.symbol, "date": str(r.date), "ratio": float(r.ratio)}
                   for r in splits.itertuples(index=False)][:20],
        "split_refetched": {k: v for k, v in list(refetch.items())[:20]},
        "data_quality": quality, "symbol_chunks": len(chunks),
    }
    ctx.log.info("price cache written", extra={"path": str(ctx.price_cache_out), "rows": out["rows"],
                                                "coverage_pct": coverage_pct, "chunks": len(chunks)})
    status, message = "ok", ""
    if missing:
        status = "partial"
        message = f"no price data for {len(missing)} symbol(s): {', '.join(missing[:10])}"
        ctx.log.warning(message)
    # coverage per session over what the run values: the held symbols and the factor ETFs (a cached symbol
    # nobody holds any more, e.g. a delisted one, does not make every later run partial)
    thin = thin_sessions(empty_frame(PRICE_COLUMNS), needed, list(rng.sessions), ctx.settings.min_coverage,
                         start=load_start, usable=out["usable"])
    if thin:
        details["sessions_below_min_coverage"] = thin
        status = "partial"
        note = thin_message(thin, ctx.settings.min_coverage)
        message = f"{message}; {note}" if message else note
        ctx.log.warning(note)
    if events or fetch_errors:
        failed = sorted({e["provider"] for e in events}) or ["provider"]
        note = f"provider failures reported ({', '.join(failed)}): see details.provider_errors"
        message = f"{message}; {note}" if message else note
        ctx.log.warning(note)
    return PhaseResult(rows={"market_data_cache": written}, details=details, status=status, message=message)


main = entrypoint("market-data", "Phase 1: fetch closes, store them and write the price-cache snapshot.", run)

if __name__ == "__main__":
    raise SystemExit(main())
