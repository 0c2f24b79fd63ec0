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


def run_status(phase_status: dict[str, str], extra_errors: bool = False) -> str:
    """completed / partial / failed from the phases' statuses (ok, partial, skipped, failed, not-run)."""
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


