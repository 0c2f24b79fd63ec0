"""Run tracking: one ``batch_run_history`` row per run and one ``batch_phase_runs`` row per phase."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.storage import models as m
from shared.storage import repository as repo

TRIGGERS = ("cron", "backfill", "onboarding", "manual")
#: Without these a run produced nothing usable: their failure fails the run; any other failure makes it partial.
CRITICAL_PHASES = frozenset({"plan", "market-data", "pnl-snapshots"})


#: The status of a run whose plan found no session to process (a holiday, a day already covered).
NOTHING_TO_DO = "nothing-to-do"


def run_status(phase_status: dict[str, str], extra_errors: bool = False) -> str:
    """completed / partial / failed / nothing-to-do from the phases' statuses (ok, partial, skipped,
    failed, not-run). Nothing to do: plan skipped (no session) and no other phase ran."""
    if phase_status == {"plan": "skipped"} and not extra_errors:
        return NOTHING_TO_DO
    failed = {p for p, st in phase_status.items() if st == "failed"}
    if failed & CRITICAL_PHASES:
        return "failed"
    if failed or extra_errors or "partial" in phase_status.values():
        return "partial"
    return "completed"


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


def start_run(
    session: Session, run_id: str, *, trigger: str, start: date | None, end: date | None, sessions: int,
    portfolio_id: str | None = None, workflow_name: str | None = None,
) -> None:
    """Create (or reset, on a re-run with the same id) the run's history row with status running."""
    frame = pd.DataFrame([{
        "run_id": run_id, "triggered_by": trigger, "workflow_name": workflow_name, "portfolio_id": portfolio_id,
        "start_date": start, "end_date": end, "sessions": sessions, "status": "running",
        "started_at": utcnow(), "completed_at": None, "error_summary": None,
    }])
    repo.upsert(session, m.BatchRunHistory, frame)


def ensure_run(session: Session, run_id: str, trigger: str = "manual") -> None:
    """Make sure a history row exists for a phase started on its own."""
    if session.get(m.BatchRunHistory, run_id) is None:
        start_run(session, run_id, trigger=trigger, start=None, end=None, sessions=0)


_STATUS_RANK = {"failed": 4, "running": 3, "partial": 2, "ok": 1, "skipped": 0}


def _merge_details(details: list[dict]) -> dict[str, Any]:
    """One details dict from the shards': integer counts summed, dicts merged, anything else the first
    shard's that has it."""
    out: dict[str, Any] = {}
    for d in details:
        for k, v in (d or {}).items():
            if k not in out:
                out[k] = dict(v) if isinstance(v, dict) else v
            elif isinstance(v, int) and not isinstance(v, bool) and isinstance(out[k], int):
                out[k] += v
            elif isinstance(v, dict) and isinstance(out[k], dict):
                for kk, vv in v.items():
                    cur = out[k].get(kk)
                    both_int = isinstance(vv, int) and isinstance(cur, int) and not isinstance(vv, bool)
                    out[k][kk] = cur + vv if both_int else (vv if cur is None else cur)
    return out


def fold_shards(phases: pd.DataFrame) -> pd.DataFrame:
    """``batch_phase_runs`` rows with the shards of a step (``pnl-snapshots[2/4]``) folded into one row per
    step: the worst status (``failed`` when a shard has no record), rows summed, from the first start to
    the last finish, ``duration_seconds`` the slowest shard's, and in ``details`` the integer counts
    summed plus ``shards`` (N), ``shards_recorded``, ``slowest_shard`` and per shard its status and
    seconds (``shard_runs``). Rows of unsharded steps are unchanged; the order is kept."""
    from shared.sharding import split_phase

    if phases.empty:
        return phases
    split = [split_phase(p) for p in phases["phase"]]
    if all(sh is None for _, sh in split):
        return phases
    rows: list[dict] = []
    groups: dict[str, list[tuple[Any, dict]]] = {}
    for (step, shard), rec in zip(split, phases.to_dict("records"), strict=True):
        if shard is None:
            rows.append(rec)
            continue
        if step not in groups:
            groups[step] = []
            rows.append({"phase": step, "_fold": True})
        groups[step].append((shard, rec))
    out = []
    for rec in rows:
        if not rec.get("_fold"):
            out.append(rec)
            continue
        members = sorted(groups[rec["phase"]], key=lambda x: x[0])
        count = max(sh.count for sh, _ in members)
        recs = [r for _, r in members]
        statuses = [r["status"] for r in recs]
        if len({sh.index for sh, _ in members if sh.count == count}) < count:
            statuses.append("failed")
        slowest = max(members, key=lambda x: x[1].get("duration_seconds") or 0.0)
        rows_written: dict[str, int] = {}
        for r in recs:
            for k, v in (r.get("rows_written") or {}).items():
                rows_written[k] = rows_written.get(k, 0) + int(v)
        details = _merge_details([r.get("details") or {} for r in recs])
        details.update({"shards": count, "shards_recorded": len(recs), "slowest_shard": str(slowest[0]),
                        "shard_runs": {str(sh): {"status": r["status"], "seconds": r.get("duration_seconds"),
                                                 "attempt": r.get("attempt")} for sh, r in members}})
        errors = [f"shard {sh}: {r['error']}" for sh, r in members if r.get("error")]
        missing = count - len({sh.index for sh, _ in members if sh.count == count})
        if missing > 0:
            errors.append(f"{missing} of {count} shards not recorded")
        out.append({**recs[0], "phase": rec["phase"],
                    "status": max(statuses, key=lambda st: _STATUS_RANK.get(st, 1)),
                    "attempt": max(int(r.get("attempt") or 1) for r in recs),
                    "started_at": min(r["started_at"] for r in recs),
                    "finished_at": max((r["finished_at"] for r in recs if r.get("finished_at") is not None),
                                       default=None),
                    "duration_seconds": slowest[1].get("duration_seconds"),
                    "rows_written": rows_written, "details": details,
                    "error": " | ".join(errors) or None})
    return pd.DataFrame(out, columns=phases.columns)


def record_phase(
    session: Session, run_id: str, phase: str, *, status: str, started_at: datetime, finished_at: datetime,
    rows: dict[str, int] | None = None, details: dict[str, Any] | None = None, error: str | None = None,
) -> None:
    existing = session.get(m.BatchPhaseRun, (run_id, phase))
    attempt = 1 if existing is None else existing.attempt + 1
    frame = pd.DataFrame([{
        "run_id": run_id, "phase": phase, "status": status, "attempt": attempt, "started_at": started_at,
        "finished_at": finished_at, "duration_seconds": (finished_at - started_at).total_seconds(),
        "rows_written": rows or {}, "details": details or {}, "error": error,
    }])
    repo.upsert(session, m.BatchPhaseRun, frame)


def mark_abandoned(session: Session, run_id: str, *, by: str, at: datetime | None = None,
                   reason: str | None = None) -> bool:
    """Mark a run that was still ``running`` as ``abandoned`` (when, and by what: the run that took its lock
    over, a signal, ``sigmabatch unlock``). Returns whether a row changed."""
    at = at or utcnow()
    values: dict[str, Any] = {"status": "abandoned", "abandoned_at": at, "abandoned_by": by[:128], "completed_at": at}
    if reason:
        values["error_summary"] = [{"phase": None, "status": "abandoned", "error": reason}]
    res = session.execute(update(m.BatchRunHistory)
                          .where(m.BatchRunHistory.run_id == run_id, m.BatchRunHistory.status == "running")
                          .values(**values))
    return (res.rowcount or 0) > 0


def finish_run(session: Session, run_id: str, *, status: str | None = None,
               errors: list[dict[str, Any]] | None = None) -> str:
    """Close the run. Without an explicit status: :func:`run_status` of the phase rows. A run already
    marked ``abandoned`` stays so (its late exit handler changes nothing)."""
    phases = repo.load_phase_runs(session, run_id)
    if status is None:
        statuses = dict(zip(phases["phase"], phases["status"], strict=True)) if not phases.empty else {}
        status = run_status(statuses, extra_errors=bool(errors))
    failed = phases[phases["status"].isin(["failed", "partial"])] if not phases.empty else phases
    summary = list(errors or []) + [
        {"phase": r.phase, "status": r.status, "error": r.error} for r in failed.itertuples()
    ]
    coverage = None
    if not phases.empty and (phases["phase"] == "market-data").any():
        details = phases.loc[phases["phase"] == "market-data", "details"].iloc[0] or {}
        coverage = {k: details[k] for k in ("data_coverage_pct", "symbols_requested", "symbols_with_data",
                                            "symbols_on_end_date", "missing_symbols", "data_quality") if k in details}
    current = session.get(m.BatchRunHistory, run_id)
    if current is not None and current.status == "abandoned":
        return "abandoned"
    session.execute(
        update(m.BatchRunHistory).where(m.BatchRunHistory.run_id == run_id)
        .values(status=status, completed_at=utcnow(), error_summary=summary or None, data_coverage=coverage)
    )
    return status


