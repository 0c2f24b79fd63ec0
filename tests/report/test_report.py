"""Issue 9: a synthetic run's report has its sections and figures, embedded, with the run's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.report import fmt
from shared.storage.db import get_engine
from tests.report.conftest import sigmabatch
from tests.report.dom import parse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(synthetic_run):
    path = synthetic_run.tmp / "var" / "runs" / synthetic_run.run_id / "report.html"
    assert path.exists(), "the local runner's report step writes var/runs/<run-id>/report.html"
    html = path.read_text(encoding="utf-8")
    return html, parse(html)


@pytest.fixture(scope="module")
def db(synthetic_run):
    eng = get_engine(synthetic_run.url)
    with eng.connect() as c:
        end = c.execute(text("select end_date from batch_run_history where run_id = :r"),
                        {"r": synthetic_run.run_id}).scalar_one()
        equity = dict(c.execute(text("select portfolio_id, equity_balance from portfolio_snapshots "
                                     "where snapshot_date = :d"), {"d": end}).fetchall())
        worst = dict(c.execute(text("select portfolio_id, min(correlated_pnl) from stress_test_results "
                                    "where calculation_date = :d group by portfolio_id"), {"d": end}).fetchall())
        n_stress = dict(c.execute(text("select portfolio_id, count(*) from stress_test_results "
                                       "where calculation_date = :d group by portfolio_id"), {"d": end}).fetchall())
        phases = [r[0] for r in c.execute(text("select phase from batch_phase_runs where run_id = :r and "
                                               "phase <> 'report'"), {"r": synthetic_run.run_id})]
        pairs = c.execute(text("select symbol_1, symbol_2 from pairwise_correlations where portfolio_id = :p"),
                          {"p": max(equity, key=equity.get)}).fetchall()
    eng.dispose()
    return {"end": str(end), "equity": equity, "worst": worst, "n_stress": n_stress, "phases": phases,
            "pairs": pairs}


def test_run_prints_the_report_path(synthetic_run):
    assert f"Report: var/runs/{synthetic_run.run_id}/report.html" in synthetic_run.stdout


def test_run_section_has_the_timeline_phases_and_rows(report, db, synthetic_run):
    html, dom = report
    run = dom.by_id("run")
    assert run is not None and synthetic_run.run_id in run.text()
    timeline = dom.by_id("timeline")
    assert timeline is not None and timeline.find_all("svg"), "the phase timeline is a chart"
    svg_text = timeline.text()
    for phase in db["phases"]:
        assert phase in svg_text, f"{phase} missing from the timeline"
    table_text = " ".join(td.text() for td in run.find_all("td"))
    assert all(p in table_text for p in db["phases"])
    assert dom.by_id("rows-written").find_all("svg")
    quality = dom.by_id("quality")
    assert quality is not None and "Symbols with prices" in quality.text() and "Findings" in quality.text()


def test_summary_links_to_every_portfolio_section(report, db):
    _, dom = report
    summary = dom.by_id("summary")
    hrefs = {a.attrs["href"] for a in summary.find_all("a")}
    assert hrefs == {f"#{fmt.anchor(pid)}" for pid in db["equity"]}
    for pid in db["equity"]:
        section = dom.by_id(fmt.anchor(pid))
        assert section is not None and section.tag == "section", pid
        assert len(section.find_all("svg")) >= 6, f"{pid}: equity, P&L, volatility, factors, sectors, stress"


def test_numbers_from_the_database_appear(report, db):
    _, dom = report
    summary_text = dom.by_id("summary").text()
    for pid, equity in db["equity"].items():
        section_text = dom.by_id(fmt.anchor(pid)).text()
        assert fmt.money(equity) in summary_text and fmt.money(equity) in section_text, pid
        worst = fmt.money(db["worst"][pid])
        assert worst in summary_text, (pid, worst)
        assert worst in section_text, (pid, worst)


def test_stress_table_and_heatmap(report, db):
    _, dom = report
    for pid, n in db["n_stress"].items():
        table = dom.by_id(fmt.anchor(pid)).find_all("table")
        stress = [t for t in table if "stress" in t.attrs.get("class", "")]
        assert len(stress) == 1 and len(stress[0].find_all("tbody")[0].find_all("tr")) == n, pid
    largest = max(db["equity"], key=db["equity"].get)
    heat = dom.by_id("heatmap")
    assert heat is not None and heat.find_all("svg")
    assert any(a.attrs.get("id") == fmt.anchor(largest) for a in heat.ancestors()), "heatmap of the largest portfolio"
    symbols = {s for pair in db["pairs"] for s in pair}
    assert symbols and all(s in heat.text() for s in symbols)


def test_self_contained(report):
    html, dom = report
    assert dom.find_all("script") == [] and dom.find_all("link") == [] and dom.find_all("iframe") == []
    for node in dom.iter():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr, "")
            assert not re.match(r"(?i)\s*(https?:)?//", value), (node.tag, attr, value)
    assert not re.search(r"(?i)url\(\s*['\"]?(https?:)?//", html) and "@import" not in html
    assert len(dom.find_all("svg")) >= 2 + 6 * 5 + 1


def test_report_command_renders_a_run_again(synthetic_run, tmp_path):
    out = tmp_path / "again.html"
    proc = sigmabatch(synthetic_run.env, synthetic_run.tmp, "report", "--run", synthetic_run.run_id, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and out.stat().st_size > 50_000
    latest = sigmabatch(synthetic_run.env, synthetic_run.tmp, "report")
    assert latest.returncode == 0, latest.stderr
    assert Path(synthetic_run.tmp, latest.stdout.strip()).name == f"{synthetic_run.run_id}.html"
    missing = sigmabatch(synthetic_run.env, synthetic_run.tmp, "report", "--run", "no-such-run")
    assert missing.returncode == 2 and "no run 'no-such-run'" in missing.stderr


def test_large_books_get_sections_for_the_largest_portfolios_only(synthetic_run, db, tmp_path, monkeypatch):
    """10,000 portfolios must not mean 10,000 sections: only the largest ones get charts."""
    from shared.report import data as report_data
    from shared.report import write_report
    from shared.storage.db import transaction

    monkeypatch.setattr(report_data, "MAX_PORTFOLIO_SECTIONS", 2)
    with transaction(get_engine(synthetic_run.url)) as s:
        written = write_report(s, synthetic_run.run_id, tmp_path / "r.html")
    html = written.path.read_text(encoding="utf-8")
    assert written.portfolios == 2
    assert f"the 2 largest of {len(db['equity'])}" in html
    for pid in sorted(db["equity"], key=db["equity"].get)[-2:]:
        assert fmt.anchor(pid) in html


def test_charts_drawn_in_worker_processes_give_the_same_page(synthetic_run):
    """The report step draws the portfolio sections in a process pool: same bytes as one process."""
    from datetime import UTC, datetime

    from shared.report import load_report_data, render
    from shared.storage.db import transaction

    with transaction(get_engine(synthetic_run.url)) as s:
        data = load_report_data(s, synthetic_run.run_id, generated_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert len(data.portfolios) >= 2
    data.portfolios = data.portfolios[:2]  # two sections are enough to go through the pool
    one, problems_one = render(data, workers=1)
    two, problems_two = render(data, workers=2)
    assert one == two and problems_one == problems_two == []
