"""Rendering without a database: escaping, empty runs, and a chart that fails."""

from __future__ import annotations

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
