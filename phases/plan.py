"""Plan the run: resolve the sessions it covers and open its ``batch_run_history`` record.

Writes ``start-date``, ``end-date`` and ``has-work`` files into ``--outputs-dir`` (Argo output parameters;
the local runner reads them too), so every later step gets the same explicit dates even though phase 3
moves the snapshot watermark while the run is under way.

It also decides the run's shards (:mod:`shared.sharding`): ``ceil(positions held in the range /
SIGMABATCH_SHARD_POSITIONS)`` of them, or ``SIGMABATCH_SHARDS``, one for a ``--portfolio`` run, and writes
them to ``shards`` as a JSON list (``["1/4", "2/4", "3/4", "4/4"]``): the steps that fan out (``fan_out`` in
:mod:`workflows.dag`, by portfolio or by symbol: the same list) run once per item with ``--shard K/N``. Its details give the positions per shard.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared import runs, sharding
from shared.storage import repository as repo


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outputs-dir", default="", metavar="DIR", help="folder for the output parameter files")
    p.add_argument("--trigger", default="manual", choices=runs.TRIGGERS, help="what started the run")
    p.add_argument("--workflow-name", default="", help="the Argo workflow name, when there is one")


def plan_shards(ctx: PhaseContext) -> tuple[int, list[int]]:
    """The run's shard count and the positions per shard (positions held in the range by the portfolios in
    scope). One shard for a ``--portfolio`` run or a run with nothing to do."""
    rng = ctx.range
    if rng is None or ctx.portfolio_id:
        return 1, []
    with ctx.transaction() as s:
        counts = repo.count_positions(s, start=rng.start, end=rng.end)
    n = sharding.shard_count(sum(counts.values()), ctx.settings.shard_positions, ctx.settings.shards)
    return n, sharding.shard_positions(counts, n)


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    start = rng.start.isoformat() if rng else ""
    end = rng.end.isoformat() if rng else ""
    n_shards, per_shard = plan_shards(ctx)
    if ctx.args.outputs_dir:
        out = Path(ctx.args.outputs_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "start-date").write_text(start)
        (out / "end-date").write_text(end)
        (out / "has-work").write_text("true" if rng else "false")
        (out / "shards").write_text(json.dumps([str(s) for s in sharding.shards(n_shards)]))
    with ctx.transaction() as session:
        runs.start_run(
            session, ctx.run_id, trigger=ctx.args.trigger, start=rng.start if rng else None,
            end=rng.end if rng else None, sessions=len(rng.sessions) if rng else 0,
            portfolio_id=ctx.portfolio_id, workflow_name=ctx.args.workflow_name or None,
        )
    if rng is None:
        return PhaseResult(status="skipped", message="up to date: no missing session",
                           details={"start_date": "", "end_date": "", "sessions": 0})
    ctx.log.info("planned %s in %d portfolio shard(s)", rng, n_shards)
    return PhaseResult(details={"start_date": start, "end_date": end, "sessions": len(rng.sessions),
                                "detected": rng.detected, "portfolio_shards": n_shards,
                                "shard_positions": per_shard})


main = entrypoint("plan", "Resolve the run's sessions (explicit or detected) and record the run's start.", run,
                  add_arguments=_args, allow_empty=True, keep_lock=True)

if __name__ == "__main__":
    raise SystemExit(main())
