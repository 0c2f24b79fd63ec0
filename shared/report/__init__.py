"""The run report: one self-contained HTML page per run, with inline SVG charts.

:func:`write_report` loads a run from the database (:mod:`shared.report.data`), renders the page
(:mod:`shared.report.sections`, :mod:`shared.report.page`) and writes it. Pure rendering lives in
:func:`render`, which takes the loaded :class:`ReportData` and touches neither the database nor the disk.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared.report import fmt
from shared.report.data import ReportData, load_report_data

__all__ = ["ReportData", "Written", "default_report_path", "default_workers", "load_report_data", "render",
           "write_report"]


@dataclass
class Written:
    path: Path
    run_id: str
    portfolios: int
    figures: int
    bytes: int
    problems: list[str] = field(default_factory=list)


def render(data: ReportData, workers: int = 1) -> tuple[str, list[str]]:
    """The HTML page and the list of charts that could not be drawn.

    ``workers`` > 1 draws the portfolio sections (six charts each, most of the time) in that many
    processes; the page is the same.
    """
    from shared.report import page
    from shared.report.sections import Charts, quality_section, run_section, summary_section

    charts = Charts()
    run = data.run
    # A run still under way shows "running" here and the outcome so far in the run section; a run whose
    # report step renders it (only the recording is left) shows the outcome of its phases, which is final.
    status = run.status if run.status != "running" else ("running" if run.steps_to_come else run.phase_outcome)
    dates = f"{run.start} .. {run.end}" if run.start else "no sessions"
    header = (f"<h1>sigmabatch run report</h1><div class=\"meta\">Run <strong>{fmt.esc(run.run_id)}</strong> · "
              f"{fmt.esc(dates)} · {page.badge(status)} · generated {fmt.esc(fmt.when(data.generated_at))}</div>")
    body = [run_section(data, charts), quality_section(data), summary_section(data)]
    body += _portfolio_sections(data, charts, workers)
    nav = [("run", "Run"), ("quality", "Data quality"), ("summary", "Portfolios")]
    nav += [(fmt.anchor(p.id), p.id) for p in data.portfolios]
    if data.heatmap is not None:
        nav.append(("heatmap", "Heatmap"))
    html = page.document(title=f"sigmabatch · {run.run_id} · {dates}", header=header, nav=nav, body="".join(body))
    return html, charts.problems


_DATA: ReportData | None = None  # a worker's copy of the report data (set once by its initializer)


def _portfolio_sections(data: ReportData, charts, workers: int) -> list[str]:
    from shared.report.sections import portfolio_section

    n = len(data.portfolios)
    if workers <= 1 or n < 2:
        return [portfolio_section(data, p, charts) for p in data.portfolios]
    # spawned, not forked: the parent holds a database connection and Arrow's thread pools
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx, initializer=_init_worker,
                             initargs=(data,)) as pool:
        done = list(pool.map(_portfolio_section_at, range(n)))
    for _html, problems in done:
        charts.problems.extend(problems)
    return [html for html, _problems in done]


def _init_worker(data: ReportData) -> None:
    global _DATA
    _DATA = data


def _portfolio_section_at(i: int) -> tuple[str, list[str]]:
    from shared.report.sections import Charts, portfolio_section

    charts = Charts()
    return portfolio_section(_DATA, _DATA.portfolios[i], charts), charts.problems


#: Portfolio sections a chart process must have to pay for its start (a spawned interpreter importing
#: pandas and matplotlib costs about as much CPU as drawing eight sections).
SECTIONS_PER_WORKER = 8


def default_workers(portfolios: int | None = None) -> int:
    """Processes for the charts: the CPUs this process may use (its affinity, and in a container its
    cgroup CPU quota), at most 4 (each costs an interpreter), and with ``portfolios`` given no more than
    one per :data:`SECTIONS_PER_WORKER` sections (a small report is drawn in-process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>" (a pod's CPU limit)
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    if portfolios is not None:
        cpus = min(cpus, portfolios // SECTIONS_PER_WORKER)
    return max(1, min(cpus, 4))


def default_report_path(artifacts: Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return Path(artifacts) / "reports" / f"{safe}.html"


def write_report(session, run_id: str, out: Path, *, generated_at: datetime | None = None,
                 workers: int | None = 1) -> Written:
    """Load the run, render its report (charts in ``workers`` processes; ``None``: :func:`default_workers`
    for its number of portfolios) and write it to ``out`` (parent folders are created)."""
    data = load_report_data(session, run_id, generated_at=generated_at or datetime.now().astimezone())
    if workers is None:
        workers = default_workers(len(data.portfolios))
    html, problems = render(data, workers=workers)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return Written(out, run_id, len(data.portfolios), html.count("<svg "), len(html.encode()), problems)
