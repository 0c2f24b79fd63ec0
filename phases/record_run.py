"""Record the run's outcome in ``batch_run_history`` (Argo ``onExit``; the local runner's last step).

Idempotent: re-running it (Argo retries exit handlers) rewrites the same status. It exits 0 once the
outcome is recorded (a failing exit handler would only hide the real failure), applies the retention rules
(:mod:`shared.retention`: ``SIGMABATCH_PAIRWISE_SESSIONS`` for every portfolio, ``SIGMABATCH_RETAIN_SESSIONS``;
a failure there is logged, retried by the next run, and does not change the exit code) and releases the
batch lock held by the run. The status is
``completed``, ``partial`` or ``failed``, from the phase records, the Argo workflow status and its
failed nodes (``--workflow-status``, ``--failures`` JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from shared import runs
from shared.errors import SigmabatchError
from shared.logs import setup_logging
from shared.settings import Settings
from shared.storage import models as m


def parse_failures(raw: str) -> list[dict]:
    """The failed nodes from Argo's ``{{workflow.failures}}``.

    Argo (v3.x and v4) stores that variable as ``strconv.Quote(json.Marshal(nodes))``, so the argument
    that reaches the container is a JSON *string literal* whose content is the JSON list: decode until
    it is no longer a string (a plain list, as a local caller passes it, is decoded once).
    """
    raw = (raw or "").strip()
    if not raw or raw.startswith("{{") or raw == "null":
        return []
    value: object = raw
    try:
        for _ in range(3):
            if not isinstance(value, str):
                break
            value = json.loads(value)
    except json.JSONDecodeError:
        return [{"message": raw[:2000]}]
    if value is None:
        return []
    if not isinstance(value, list):
        return [{"message": str(value)[:2000]}]
    return [
        {"node": i.get("displayName"), "template": i.get("templateName"), "phase": i.get("phase"),
         "message": i.get("message")}
        for i in value if isinstance(i, dict)
    ]


def _retention(engine, settings: Settings, args) -> dict[str, int]:
    """The retention rules at the run's reference time (:func:`shared.retention.prune_history`): the pairwise
    matrices before the latest ``SIGMABATCH_PAIRWISE_SESSIONS`` of every portfolio, and with
    ``SIGMABATCH_RETAIN_SESSIONS`` the other large dated tables' rows before the latest that many sessions;
    then vacuum ``pairwise_correlations`` (risk-correlations deletes there too) and every table that lost
    rows (PostgreSQL; it does not rely on autovacuum being on). Done while the run still holds the batch
    lock, whatever its status: a rule on the date, not on what the run computed."""
    from phases._runtime import reference_time
    from shared import calendar, retention
    from shared.storage.db import transaction, vacuum

    latest = calendar.last_completed_session(reference_time(settings, args.scheduled_time))
    with transaction(engine) as session:
        pruned = retention.prune_history(session, latest, settings.retain_sessions, settings.pairwise_sessions)
    pairwise = m.PairwiseCorrelation.__tablename__
    vacuum(engine, [pairwise, *(table for table, n in pruned.items() if n and table != pairwise)])
    return pruned


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m phases.record_run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", required=True)
    p.add_argument("--workflow-status", default="", help="Argo {{workflow.status}}: Succeeded, Failed, Error")
    p.add_argument("--failures", default="", help="Argo {{workflow.failures}} (JSON list of failed nodes)")
    p.add_argument("--trigger", default="manual", choices=runs.TRIGGERS)
    for flag in ("--start-date", "--end-date", "--portfolio", "--scheduled-time", "--force"):
        p.add_argument(flag, default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_format, settings.log_level)
        from shared.storage.db import get_engine, migrate, transaction

        engine = get_engine(settings.database_url)
        migrate(engine)
        failures = parse_failures(args.failures)
        forced = None
        if args.workflow_status in ("Failed", "Error") and not failures:
            failures = [{"message": f"workflow {args.workflow_status}"}]
        with transaction(engine) as session:
            runs.ensure_run(session, args.run_id, args.trigger)
            status = runs.finish_run(session, args.run_id, status=forced, errors=failures)
        from shared import locking

        pruned = {}
        try:
            if locking.owner(engine) == args.run_id:
                pruned = _retention(engine, settings, args)
        except Exception as exc:  # the outcome is recorded; the next run applies the same date rule again
            logging.getLogger("sigmabatch.record-run").error("retention not applied: %s", exc)
        finally:
            locking.release(engine, args.run_id)
    except SigmabatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"run {args.run_id}: {status}"
          + (f"; retention deleted {sum(pruned.values()):,} rows" if any(pruned.values()) else ""))
    return 0  # recorded; the run's own outcome is in batch_run_history (and `sigmabatch run`'s exit code)


if __name__ == "__main__":
    raise SystemExit(main())
