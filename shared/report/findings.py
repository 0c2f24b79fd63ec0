"""Data coverage and data-quality findings of a run, from the phases' recorded details and the snapshots.

Each phase records counts in ``batch_phase_runs.details`` (symbols priced, profiles missing, forecast
gaps …). :func:`coverage` turns them into a few "x of y" lines; :func:`findings` lists what an operator
should look at, most severe first. Unknown or absent details are simply not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.report import fmt
from shared.report.data import ReportData

LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning | info
    area: str
    text: str


@dataclass(frozen=True)
class Coverage:
    label: str
    value: str
    complete: bool


def _names(items, limit: int = 8, total: int | None = None) -> str:
    """The first ``limit`` of ``items``, and how many more of ``total`` (default: of ``items``) there are."""
    items = list(items or [])
    shown = min(len(items), limit)
    rest = max(len(items) if total is None else total, len(items)) - shown
    return ", ".join(str(i) for i in items[:limit]) + (f" and {rest} more" if rest > 0 else "")


def missing_profiles(details: dict) -> int:
    """company-profiles' symbols without a profile: the count (summed over the symbol shards when the step
    fanned out; each shard lists only some of its own names), else the length of an older record's list."""
    n = details.get("without_profile_count")
    return n if isinstance(n, int) else len(details.get("without_profile") or [])


def mean_quality(details: dict) -> float | None:
    """symbol-metrics' mean data-quality score on the last session, over every symbol: from the integer sums
    (summed over the symbol shards when the step fanned out), else the unsharded record's own mean."""
    n = details.get("symbols_last_session")
    if isinstance(n, int) and n > 0 and isinstance(details.get("quality_points_last_session"), int):
        return round(details["quality_points_last_session"] / n, 2)
    return details.get("mean_quality_last_session")


def coverage(data: ReportData) -> list[Coverage]:
    run, out = data.run, []
    if run.start and run.end:
        out.append(Coverage("Sessions", f"{run.sessions} ({run.start} .. {run.end})", True))
    md = run.phase("market-data")
    if md and "symbols_requested" in md.details:
        d = md.details
        req, have, on_end = d.get("symbols_requested", 0), d.get("symbols_with_data", 0), d.get("symbols_on_end_date", 0)
        out.append(Coverage("Symbols with prices", f"{have} of {req}", have >= req))
        out.append(Coverage("Priced on the last session", f"{on_end} of {req} ({d.get('data_coverage_pct', 0):.1f}%)",
                            on_end >= req))
    cp = run.phase("company-profiles")
    if cp and "symbols" in cp.details:
        n, miss = cp.details.get("symbols", 0), missing_profiles(cp.details)
        out.append(Coverage("Company profiles", f"{n - miss} of {n}", miss == 0))
    if data.portfolios and data.as_of:
        have = [p for p in data.portfolios if p.last is not None and p.last["snapshot_date"].date() == data.as_of]
        out.append(Coverage(f"Portfolios with a snapshot on {data.as_of}", f"{len(have)} of {len(data.portfolios)}",
                            len(have) == len(data.portfolios)))
    rx = run.phase("risk-exposures")
    if rx and "min_market_beta_coverage" in rx.details:
        c = rx.details["min_market_beta_coverage"]
        out.append(Coverage("Market-beta coverage (lowest portfolio)", fmt.pct(c, 1), not fmt.missing(c) and c >= 0.999))
    rv = run.phase("risk-volatility")
    if rv and "portfolio_dates" in rv.details:
        n, gaps = rv.details.get("portfolio_dates", 0), rv.details.get("portfolio_dates_without_forecast", 0)
        out.append(Coverage("Volatility forecasts", f"{n - gaps} of {n} portfolio-dates", gaps == 0))
    st = run.phase("stress-tests")
    if st and "scenarios_active" in st.details:
        out.append(Coverage("Stress scenarios run", f"{st.details['scenarios_active']} active of "
                            f"{st.details.get('scenarios_total', '?')}", True))
    return out  # run.coverage (batch_run_history.data_coverage) repeats market-data's details shown above


def _phase_findings(data: ReportData) -> list[Finding]:
    out: list[Finding] = []
    for p in data.run.phases:
        if p.status == "failed":
            out.append(Finding("error", p.name, f"failed: {p.error or 'no error recorded'}"))
        elif p.status == "partial":
            out.append(Finding("warning", p.name, f"partial: {p.error or p.details.get('message') or 'see its log'}"))
        if p.retries:
            out.append(Finding("info", p.name, f"needed {p.retries} retr{'y' if p.retries == 1 else 'ies'}"))
    for e in data.run.errors:
        if isinstance(e, dict) and not e.get("phase"):
            out.append(Finding("error", e.get("node") or "workflow", e.get("message") or str(e)))
    return out


def _detail_findings(data: ReportData) -> list[Finding]:
    run, out = data.run, []
    md = run.phase("market-data")
    if md:
        d = md.details
        if d.get("missing_symbols"):
            out.append(Finding("warning", "market-data", f"no price data for {len(d['missing_symbols'])} symbol(s): "
                               f"{_names(d['missing_symbols'])}"))
        on_end, req = d.get("symbols_on_end_date"), d.get("symbols_requested")
        if on_end is not None and req and on_end < req:
            out.append(Finding("warning", "market-data", f"{req - on_end} symbol(s) have no close on the last session"))
        if d.get("skipped_symbols"):
            out.append(Finding("info", "market-data", f"{len(d['skipped_symbols'])} symbol(s) not fetched (options "
                               f"or unsupported): {_names(d['skipped_symbols'], 4)}"))
        if d.get("non_session_rows_dropped"):
            out.append(Finding("info", "market-data", f"{d['non_session_rows_dropped']} price row(s) on non-sessions dropped"))
    cp = run.phase("company-profiles")
    if cp and missing_profiles(cp.details):
        out.append(Finding("warning", "company-profiles", f"no profile for {missing_profiles(cp.details)} symbol(s): "
                           f"{_names(cp.details.get('without_profile'), total=missing_profiles(cp.details))}"))
    pnl = run.phase("pnl-snapshots")
    if pnl and pnl.details.get("position_days_marked_at_entry_price"):
        out.append(Finding("info", "pnl-snapshots", f"{pnl.details['position_days_marked_at_entry_price']} "
                           "position-day(s) marked at entry price (no close yet)"))
    sm = run.phase("symbol-metrics")
    if sm:
        q = mean_quality(sm.details)
        if q is not None and q < 100:
            out.append(Finding("info", "symbol-metrics", f"mean data-quality score {q:.1f} / 100 on the last session"))
        if sm.details.get("null_ytd_last_session"):
            out.append(Finding("info", "symbol-metrics", f"{sm.details['null_ytd_last_session']} symbol(s) without a "
                               "YTD return"))
    rx = run.phase("risk-exposures")
    if rx and not fmt.missing(rx.details.get("min_market_beta_coverage")) and rx.details["min_market_beta_coverage"] < 0.999:
        out.append(Finding("warning", "risk-exposures", "some holdings have no market beta (lowest coverage "
                           f"{fmt.pct(rx.details['min_market_beta_coverage'], 1)})"))
    rv = run.phase("risk-volatility")
    if rv and rv.details.get("portfolio_dates_without_forecast"):
        out.append(Finding("warning", "risk-volatility", f"{rv.details['portfolio_dates_without_forecast']} "
                           "portfolio-date(s) without a volatility forecast"))
    return out


def _portfolio_findings(data: ReportData) -> list[Finding]:
    out = []
    for p in data.portfolios:
        if p.last is None:
            out.append(Finding("warning", p.id, "no snapshot up to the last session"))
            continue
        if data.as_of and p.last["snapshot_date"].date() < data.as_of:
            out.append(Finding("warning", p.id, f"latest snapshot is {p.last['snapshot_date'].date()}, "
                               f"not {data.as_of}"))
        if data.run.sessions and data.run.start:
            got = len(p.run_window)
            if got < data.run.sessions:
                out.append(Finding("warning", p.id, f"{got} of {data.run.sessions} session snapshots in the run"))
        if int(p.last.get("positions_without_price") or 0):
            out.append(Finding("warning", p.id, f"{int(p.last['positions_without_price'])} position(s) without a "
                               "price on the last session"))
        if p.correlation and p.correlation.get("data_quality") not in (None, "sufficient"):
            out.append(Finding("warning", p.id, f"correlation data quality: {p.correlation['data_quality']}"))
        if p.stress.empty:
            out.append(Finding("info", p.id, "no stress-test results on the last session"))
    return out


def findings(data: ReportData) -> list[Finding]:
    """Every finding, errors first, then warnings, then information."""
    items = _phase_findings(data) + _detail_findings(data) + _portfolio_findings(data)
    return sorted(items, key=lambda f: LEVELS.index(f.level))
