"""Run report: one self-contained HTML page for the run (charts inline), the DAG's last step.

Reads what the run recorded (``batch_run_history``, ``batch_phase_runs``) and what it computed (snapshots,
factor exposures, stress tests, correlations) and writes ``--out`` (default
``<artifacts>/reports/<run-id>.html``). In Argo the file is the step's output artifact, shown in the UI;
locally the runner passes ``var/runs/<run-id>/report.html``. It writes no table; a chart that cannot be
drawn becomes a placeholder and the phase is recorded as partial. The portfolio sections (six charts each,
most of the step's time) are drawn in ``--workers`` processes, by default one per usable CPU, at most 4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.report import default_report_path, write_report


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="", metavar="PATH",
                   help="where to write the HTML (default: <SIGMABATCH_ARTIFACTS>/reports/<run-id>.html)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes drawing the portfolio charts (default 0: the usable CPUs, at most 4, one per 8 portfolios; 1: none)")


def report_path(ctx: PhaseContext) -> Path:
    if ctx.args.out:
        return Path(ctx.args.out)
    base = Path("/tmp/sigmabatch") if ctx.settings.artifacts_are_s3 else ctx.settings.artifacts_path
    return default_report_path(base, ctx.run_id)


def run(ctx: PhaseContext) -> PhaseResult:
    out = report_path(ctx)
    with ctx.transaction() as session:
        written = write_report(session, ctx.run_id, out, workers=ctx.args.workers or None)
    ctx.log.info("report written", extra={"path": str(out), "portfolios": written.portfolios,
                                          "figures": written.figures, "bytes": written.bytes})
    details = {"report": str(out), "portfolios": written.portfolios, "figures": written.figures,
               "bytes": written.bytes, "chart_problems": written.problems[:20]}
    if written.problems:
        return PhaseResult(details=details, status="partial",
                           message=f"{len(written.problems)} chart(s) could not be drawn: {written.problems[0]}")
    return PhaseResult(details=details, message=f"report: {out}")


main = entrypoint("report", "Write the run's HTML report (phases, data quality, per-portfolio charts).", run,
                  add_arguments=_args, allow_empty=True)

if __name__ == "__main__":
    raise SystemExit(main())
