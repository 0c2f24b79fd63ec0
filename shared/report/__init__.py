"""The run report: one self-contained HTML page per run, with inline SVG charts.

:func:`write_report` loads a run from the database (:mod:`shared.report.data`), renders the page
(:mod:`shared.report.sections`, :mod:`shared.report.page`) and writes it. Pure rendering lives in
:func:`render`, which takes the loaded :class:`ReportData` and touches neither the database nor the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared.report import fmt
from shared.report.data import ReportData, load_report_data

__all__ = ["ReportData", "Written", "default_report_path", "load_report_data", "render", "write_report"]


@dataclass
class Written:
    path: Path
    run_id: str
    portfolios: int
    figures: int
    bytes: int
    problems: list[str] = field(default_factory=list)


def render(data: ReportData) -> tuple[str, list[str]]:
    """The HTML page and the list of charts that could not be drawn."""
    from shared.report import page
    from shared.report.sections import (
        Charts,
        portfolio_section,
        quality_section,
        run_section,
        summary_section,
    )

    charts = Charts()
    run = data.run
    status = run.status if run.status != "running" else run.phase_outcome
    dates = f"{run.start} .. {run.end}" if run.start else "no sessions"
    header = (f"<h1>sigmabatch run report</h1><div class=\"meta\">Run <strong>{fmt.esc(run.run_id)}</strong> · "
              f"{fmt.esc(dates)} · {page.badge(status)} · generated {fmt.esc(fmt.when(data.generated_at))}</div>")
    body = [run_section(data, charts), quality_section(data), summary_section(data)]
    body += [portfolio_section(data, p, charts) for p in data.portfolios]
    nav = [("run", "Run"), ("quality", "Data quality"), ("summary", "Portfolios")]
    nav += [(fmt.anchor(p.id), p.id) for p in data.portfolios]
    if data.heatmap is not None:
        nav.append(("heatmap", "Heatmap"))
    html = page.document(title=f"sigmabatch · {run.run_id} · {dates}", header=header, nav=nav, body="".join(body))
    return html, charts.problems


def default_report_path(artifacts: Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return Path(artifacts) / "reports" / f"{safe}.html"


def write_report(session, run_id: str, out: Path, *, generated_at: datetime | None = None) -> Written:
    """Load the run, render its report and write it to ``out`` (parent folders are created)."""
    data = load_report_data(session, run_id, generated_at=generated_at or datetime.now().astimezone())
    html, problems = render(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return Written(out, run_id, len(data.portfolios), html.count("<svg "), len(html.encode()), problems)
