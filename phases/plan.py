"""Plan the run: resolve the sessions it covers and open its ``batch_run_history`` record.

Writes ``start-date``, ``end-date`` and ``has-work`` files into ``--outputs-dir`` (Argo output parameters;
the local runner reads them too), so every later step gets the same explicit dates even though phase 3
moves the snapshot watermark while the run is under way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared import runs


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outputs-dir", default="", metavar="DIR", help="folder for the output parameter files")
    p.add_argument("--trigger", default="manual", choices=runs.TRIGGERS, help="what started the run")
    p.add_argument("--workflow-name", default="", help="the Argo workflow name, when there is one")


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    start = rng.start.isoformat() if rng else ""
    end = rng.end.isoformat() if rng else ""
    if ctx.args.outputs_dir:
        out = Path(ctx.args.outputs_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "start-date").write_text(start)
        (out / "end-date").write_text(end)
        (out / "has-work").write_text("true" if rng else "false")
    with ctx.transaction() as session:
        runs.start_run(
            session, ctx.run_id, trigger=ctx.args.trigger, start=rng.start if rng else None,
            end=rng.end if rng else None, sessions=len(rng.sessions) if rng else 0,
            portfolio_id=ctx.portfolio_id, workflow_name=ctx.args.workflow_name or None,
        )
    if rng is None:
        return PhaseResult(status="skipped", message="up to date: no missing session",
                           details={"start_date": "", "end_date": "", "sessions": 0})
    ctx.log.info("planned %s", rng)
    return PhaseResult(details={"start_date": start, "end_date": end, "sessions": len(rng.sessions),
                                "detected": rng.detected})


main = entrypoint("plan", "Resolve the run's sessions (explicit or detected) and record the run's start.", run,
                  add_arguments=_args, allow_empty=True, keep_lock=True)

if __name__ == "__main__":
    raise SystemExit(main())
