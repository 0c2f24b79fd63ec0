"""Rendering without a database: escaping, empty runs, and a chart that fails."""

from __future__ import annotations

import re
from datetime import date, datetime

import pandas as pd

from shared.report import render
from shared.report.data import PhaseRow, PortfolioData, ReportData, RunData
from tests.report.dom import parse


def _run(**kw) -> RunData:
    base = dict(run_id="r-<1>", trigger="manual", status="running", start=date(2026, 11, 27), end=date(2026, 11, 27),
                sessions=1, portfolio_id=None, started_at=datetime(2026, 11, 27, 18), completed_at=None, errors=[],
                coverage={}, phases=[
                    PhaseRow("plan", "-", "Plan", "ok", 1, datetime(2026, 11, 27, 18), datetime(2026, 11, 27, 18, 0, 1),
                             1.0, {}, {"sessions": 1}, None),
                    PhaseRow("market-data", "1", "Market data", "failed", 3, datetime(2026, 11, 27, 18, 0, 1),
                             datetime(2026, 11, 27, 18, 0, 9), 8.0, {}, {}, "provider <down> & out"),
                ])
    base.update(kw)
    return RunData(**base)


def _portfolio(name: str) -> PortfolioData:
    return PortfolioData(id="x/<y>", name=name, currency="USD", inception_equity=1e6, history=pd.DataFrame(),
                         factors=pd.DataFrame(), stress=pd.DataFrame(), stress_summary=None, correlation=None)


def test_text_is_escaped_and_failures_are_findings():
    data = ReportData(run=_run(), as_of=date(2026, 11, 27), portfolios=[_portfolio("<script>alert(1)</script> & Co")])
    html, problems = render(data)
    dom = parse(html)
    assert dom.find_all("script") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "provider &lt;down&gt; &amp; out" in html
    assert "failed" in dom.by_id("quality").text() and "2 retries" in dom.by_id("quality").text()
    section = dom.by_id("p-x__y_")
    assert section is not None and "no snapshot" in section.text()
    assert problems == []
    assert "partial (so far)" in dom.by_id("run").text(), "a running run shows the outcome of its phases so far"


def test_a_run_without_portfolios_or_phases_still_renders():
    data = ReportData(run=_run(phases=[], start=None, end=None, sessions=0), as_of=None, portfolios=[])
    html, problems = render(data)
    dom = parse(html)
    assert dom.by_id("run") is not None and dom.by_id("summary") is not None
    assert "no phase recorded" in dom.by_id("timeline").text()
    assert problems == []


def test_a_chart_that_fails_becomes_a_placeholder(monkeypatch):
    from shared.report import run_charts

    def boom(_phases):
        raise ValueError("bad data")

    monkeypatch.setattr(run_charts, "timeline", boom)
    html, problems = render(ReportData(run=_run(), as_of=None, portfolios=[]))
    assert problems == ["timeline: ValueError: bad data"]
    assert "could not be drawn" in parse(html).by_id("timeline").text()


def _all_steps(status: str = "ok") -> list[PhaseRow]:
    from workflows import dag

    t0 = datetime(2026, 11, 27, 18)
    return [PhaseRow(s.name, s.phase, s.title, status, 1, t0 + pd.Timedelta(seconds=i),
                     t0 + pd.Timedelta(seconds=i + 1), 1.0, {"portfolio_snapshots": 5} if s.name == "pnl-snapshots" else {},
                     {"rows_updated": {"portfolio_snapshots": 5}} if s.name == "risk-volatility" else {}, None)
            for i, s in enumerate(dag.STEPS) if s.name != "report"]


def test_every_id_in_the_page_is_unique_and_every_reference_resolves():
    html, problems = render(ReportData(run=_run(phases=_all_steps()), as_of=None, portfolios=[]))
    assert problems == [] and html.count("<svg ") >= 2  # the timeline and the rows chart, one SVG each
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:10]
    refs = set(re.findall(r'url\(#([^)]+)\)', html)) | set(re.findall(r'href="#([^"]+)"', html))
    assert refs <= set(ids), sorted(refs - set(ids))[:10]


def test_status_is_said_once():
    """Rendered by the run's own report step (every other step recorded): the outcome is final and shown
    without "(so far)"; rendered while steps are still to come: the badge says running."""
    dom = parse(render(ReportData(run=_run(phases=_all_steps()), as_of=None, portfolios=[]))[0])
    header, run = dom.find_all("header")[0].text() if dom.find_all("header") else "", dom.by_id("run").text()
    assert "so far" not in header + run
    assert "completed" in run and "recorded as finished right after it" in run
    assert "sigmabatch run" in run and "interpreter start" in run  # why durations differ from the CLI's
    assert "portfolio_snapshots 5 updated" in run and "portfolio_snapshots 5" in run
    html = render(ReportData(run=_run(), as_of=None, portfolios=[]))[0]
    badges = re.findall(r'class="badge b-([a-z-]+)"', html)
    assert badges[0] == "running"
    assert "partial (so far)" in parse(html).by_id("run").text()



def test_a_fanned_out_step_shows_its_shards():
    """Issue 18: the report's phase table names a folded step's shards and its slowest shard."""
    row = PhaseRow("pnl-snapshots", "3", "P&L", "ok", 1, datetime(2026, 11, 27, 18, 0, 2),
                   datetime(2026, 11, 27, 18, 0, 9), 7.0, {"portfolio_snapshots": 40},
                   {"shards": 4, "shards_recorded": 4, "slowest_shard": "2/4"}, None)
    html = render(ReportData(run=_run(phases=[*_run().phases, row]), as_of=None, portfolios=[]))[0]
    assert "pnl-snapshots ×4 shards (4 recorded, slowest 2/4)" in html
    assert "plan ×" not in html
