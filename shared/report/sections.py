"""The sections of the page: the run, data coverage and quality, the portfolio summary, one section per
portfolio. A chart that fails to draw becomes a placeholder and a note in ``problems`` (the report
still renders; the phase then reports itself partial)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.report import fmt
from shared.report import portfolio_charts as pc
from shared.report import run_charts as rc
from shared.report.data import PortfolioData, ReportData
from shared.report.findings import coverage, findings
from shared.report.page import Num, Raw, badge, chart, kpis, table
from shared.report.style import placeholder

log = logging.getLogger("sigmabatch.report")


class Charts:
    """Draws charts, turning a failure into a placeholder and remembering it."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __call__(self, label: str, fn: Callable[..., str], *args) -> str:
        try:
            return fn(*args)
        except Exception as exc:  # one broken chart must not cost the whole report
            log.warning("chart %s failed: %s", label, exc, exc_info=True)
            self.problems.append(f"{label}: {type(exc).__name__}: {exc}")
            return placeholder(label, f"could not be drawn ({type(exc).__name__})")


def run_section(data: ReportData, charts: Charts) -> str:
    run = data.run
    status = run.status if run.status != "running" else run.phase_outcome
    facts = kpis([
        ("status", status + (" (so far)" if run.steps_to_come else "")),
        ("sessions", f"{run.sessions}" if run.sessions else "–"),
        ("first session", fmt.when(run.start)), ("last session", fmt.when(run.end)),
        ("phases", str(len(run.phases))), ("retries", str(sum(p.retries for p in run.phases))),
        ("rows written", f"{sum(run.rows_total.values()):,}"),
    ])
    rows = []
    for p in run.phases:
        updated = (p.details or {}).get("rows_updated") or {}
        written = ", ".join([*(f"{k} {v:,}" for k, v in p.rows.items() if v),
                             *(f"{k} {v:,} updated" for k, v in updated.items() if v)]) or "–"
        d = p.details or {}
        # a fanned-out step: its shards, how many recorded, and the slowest (the step's duration is its)
        name = (f"{p.name} ×{d['shards']} shards ({d.get('shards_recorded', d['shards'])} recorded, slowest "
                f"{d.get('slowest_shard', '–')})" if d.get("shards") else p.name)
        rows.append([p.number, name, Raw(badge(p.status)), p.started_at.strftime("%H:%M:%S") if p.started_at else "–", Num(fmt.seconds(p.seconds)),
                     Num(str(p.attempt)), written, p.error or ""])
    phase_table = table(["phase", "step", "status", "started", "duration", "attempts", "rows inserted / updated",
                         "error"],
                        rows, numeric=(4, 5))
    timing = ('<p class="muted">Durations are measured by each phase, from its start (once Python and its '
              "libraries are loaded) to the recording of its outcome. The live table and summary of "
              "<code>sigmabatch run</code> time each step from outside, as a subprocess: from its launch to its "
              "exit, interpreter start and imports included, so they read one to a few seconds longer per step."
              + (" This report was written by the run's own report step: the run is recorded as finished right "
                 "after it." if run.status == "running" and not run.steps_to_come else "") + "</p>")
    return (
        '<section id="run"><h2>The run</h2>'
        f'<p class="muted">Run <code>{fmt.esc(run.run_id)}</code>, triggered by {fmt.esc(run.trigger)}, '
        f"started {fmt.esc(fmt.when(run.started_at))}"
        + (f", completed {fmt.esc(fmt.when(run.completed_at))}" if run.completed_at else "")
        + (f", portfolio {fmt.esc(run.portfolio_id)} only" if run.portfolio_id else "") + ".</p>"
        + facts
        + chart(charts("timeline", rc.timeline, run.phases), "Bars from each phase's start to its end; colour = "
                "status. Phases that ran in parallel overlap.", ident="timeline")
        + phase_table + timing
        + chart(charts("rows written", rc.rows_written, run.rows_total), ident="rows-written")
        + "</section>"
    )


def quality_section(data: ReportData) -> str:
    cov = coverage(data)
    cov_table = table(["what", "coverage", ""], [[c.label, Num(c.value), "complete" if c.complete else "incomplete"]
                                                 for c in cov], numeric=(1,))
    items = findings(data)
    if items:
        lis = "".join(f'<li class="{f.level}"><strong>{fmt.esc(f.level)}</strong> · {fmt.esc(f.area)}: '
                      f"{fmt.esc(f.text)}</li>" for f in items)
        found = f'<ul class="findings">{lis}</ul>'
    else:
        found = '<p class="muted">No data-quality findings.</p>'
    counts = {lvl: sum(f.level == lvl for f in items) for lvl in ("error", "warning", "info")}
    return ('<section id="quality"><h2>Data coverage and quality</h2>' + cov_table
            + f"<h3>Findings ({counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes)</h3>"
            + found + "</section>")


def _worst_stress(p: PortfolioData) -> float | None:
    if not p.stress.empty:
        return float(p.stress["correlated_pnl"].min())
    return None


def summary_section(data: ReportData) -> str:
    rows = []
    for p in data.portfolios:
        last = p.last
        link = Raw(f'<a href="#{fmt.anchor(p.id)}">{fmt.esc(p.name)}</a> <span class="muted">{fmt.esc(p.id)}</span>')
        if last is None:
            rows.append([link, *["–"] * 9])
            continue
        window = p.run_window
        run_pnl = float(window["daily_pnl"].sum()) if not window.empty else None
        worst = _worst_stress(p)
        rows.append([
            link, Num(fmt.money(last["equity_balance"])), Num(fmt.money(last["daily_pnl"], sign=True), last["daily_pnl"]),
            Num(fmt.money(run_pnl, sign=True), run_pnl), Num(fmt.pct(last["drawdown"], 1), last["drawdown"]),
            Num(fmt.num(last["beta_calculated_90d"])), Num(fmt.pct(last["realized_volatility_21d"], 1)),
            Num(fmt.pct(last["expected_volatility_21d"], 1)), Num(fmt.money(worst), worst),
            Num(str(int(last["num_positions"]))),
        ])
    headers = ["portfolio", "equity", "P&L last session", "P&L in run", "drawdown", "beta 90d", "vol 21d",
               "forecast vol", "worst stress", "positions"]
    as_of = f" on {data.as_of}" if data.as_of else ""
    shown = len(data.portfolios)
    if data.portfolios_total > shown:
        as_of += f" — the {shown} largest of {data.portfolios_total:,}"
    return (f'<section id="summary"><h2>Portfolios{fmt.esc(as_of)}</h2>'
            + table(headers, rows, numeric=range(1, 10), cls="summary")
            + '<p class="muted">Click a portfolio for its charts. "P&amp;L in run" sums the sessions this run '
              "processed; drawdown is from the peak of the return index (capital flows excluded).</p></section>")


#: The stress model in one line (shared.analytics.stress, docs/risk-model.md).
STRESS_FOOTNOTE = ("Correlated P&amp;L: every factor moves by its expectation given all of the scenario's shocks, "
                   "m = Σ·S Σ_SS⁻¹ s (Σ: EWMA covariance of SPY, the six style ETFs and TLT, λ 0.94, 252 "
                   "sessions to this date), applied to the market beta and to style and rate exposures net of "
                   "the market; direct: the shocks alone on the same exposures. A yield change Δy is the TLT "
                   "return −D·Δy (D = 17 years unless configured); losses are capped at 99 % of equity.")


def _stress_table(p: PortfolioData) -> str:
    if p.stress.empty:
        return ""
    eq = p.equity
    rows = [[r.name, r.category, r.severity, Num(fmt.money(r.direct_pnl), r.direct_pnl),
             Num(fmt.money(r.correlated_pnl), r.correlated_pnl), Num(fmt.money(r.correlation_effect), r.correlation_effect),
             Num(fmt.pct(r.correlated_pnl / eq, 1) if eq else "–", r.correlated_pnl)]
            for r in p.stress.sort_values("correlated_pnl").itertuples()]
    return (table(["scenario", "category", "severity", "direct P&L", "correlated P&L", "correlation effect",
                   "of equity"], rows, numeric=(3, 4, 5, 6), cls="stress")
            + f'<p class="muted footnote">{STRESS_FOOTNOTE}</p>')


def portfolio_section(data: ReportData, p: PortfolioData, charts: Charts) -> str:
    aid = fmt.anchor(p.id)
    head = (f'<section id="{aid}" class="portfolio"><a class="top" href="#summary">back to summary</a>'
            f"<h2>{fmt.esc(p.name)} <span class=\"muted\">{fmt.esc(p.id)}</span></h2>")
    last = p.last
    if last is None:
        return head + placeholder("Portfolio", "no snapshot up to the last session") + "</section>"
    corr = p.correlation or {}
    facts = kpis([
        ("equity", fmt.money(last["equity_balance"])), ("inception equity", fmt.money(p.inception_equity)),
        ("cumulative P&L", fmt.money(last["cumulative_pnl"], sign=True)),
        ("gross / net exposure", f"{fmt.money_short(last['gross_exposure'])} / {fmt.money_short(last['net_exposure'])}"),
        ("positions (long/short)", f"{int(last['num_positions'])} ({int(last['num_long_positions'])}/"
                                   f"{int(last['num_short_positions'])})"),
        ("top-3 concentration", fmt.pct(last["top_3_concentration"], 1)),
        ("effective positions", fmt.num(last["effective_num_positions"], 1)),
        ("avg correlation", fmt.num(corr.get("overall_correlation"))),
    ])
    h = p.history
    parts = [
        chart(charts(f"{p.id} equity", pc.equity_drawdown, f"{aid}-equity", h),
              "Drawdown of the return index (capital flows excluded)."
              + (" Shaded: the sessions of this run." if len(p.run_window) < len(h) else "")),
        chart(charts(f"{p.id} pnl", pc.daily_pnl, f"{aid}-pnl", h)),
        chart(charts(f"{p.id} volatility", pc.volatility, f"{aid}-vol", h),
              "Forecast: HAR model on that day for the next 21 sessions.", wide=True),
        chart(charts(f"{p.id} factors", pc.factor_bars, f"{aid}-factors", p.factors)),
        chart(charts(f"{p.id} sectors", pc.sector_bars, f"{aid}-sectors", last.get("sector_exposure"))),
        chart(charts(f"{p.id} stress", pc.stress_bars, f"{aid}-stress", p.stress, p.equity), wide=True),
    ]
    body = head + facts + '<div class="grid">' + "".join(parts) + "</div>"
    body += f'<h3 id="{aid}-stress-table">Stress tests on {fmt.esc(data.as_of)}</h3>' + (_stress_table(p) or
                                                                                         '<p class="muted">none</p>')
    if data.heatmap_portfolio == p.id:
        meta = data.heatmap_meta
        title = (f"Correlations, {meta.get('window', '?')}-session window, {meta.get('calculation_date', '')}"
                 if meta else "Correlations")
        body += ('<h3>Correlation heatmap (largest portfolio)</h3>'
                 + chart(charts(f"{p.id} heatmap", pc.heatmap, f"{aid}-heatmap", data.heatmap, title),
                         "Pairwise correlations of daily returns of the positions included in the correlation "
                         "analysis.", ident="heatmap", square=True))
    return body + "</section>"
