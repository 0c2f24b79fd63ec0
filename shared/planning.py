"""Which sessions a run covers: explicit ranges are validated, missing ones are detected.

Detection follows the old system's "minimum watermark" (domain spec §2.2): for every active portfolio
take its latest snapshot date (or, when it has none, the day before its first position's entry date);
the run starts at the first session after the lowest of those and ends at the last completed session.

Snapshots alone miss the work of a step that failed after them (risk-exposures failing on a night whose
P&L snapshots were written). So detection is also per step (:func:`detect_missed`): a session that an
earlier run planned but where some step of the DAG has no finished record (``batch_phase_runs``: ok,
partial or skipped) in any run covering it starts the range there, within the last
:data:`CATCH_UP_SESSIONS` sessions (older gaps need an explicit backfill).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.orm import Session

from shared import calendar
from shared.errors import BadInputError
from shared.storage import repository as repo


@dataclass(frozen=True)
class RunRange:
    start: date
    end: date
    sessions: tuple[date, ...]
    detected: bool
    #: An explicit start moved back by :func:`chain_start` (the date the user asked for), else None.
    requested_start: date | None = None

    def __str__(self) -> str:
        moved = f", from {self.requested_start} moved back to close a gap" if self.requested_start else ""
        return f"{self.start}..{self.end} ({len(self.sessions)} sessions{moved})"

    def chunks(self, size: int) -> list[RunRange]:
        """Consecutive sub-ranges of at most ``size`` sessions each, in order (one when it fits)."""
        size = max(int(size), 1)
        return [RunRange(part[0], part[-1], part, self.detected, self.requested_start)
                for part in (self.sessions[i:i + size] for i in range(0, len(self.sessions), size))]


def parse_date(value: str | None, flag: str) -> date | None:
    if value is None or not str(value).strip():
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise BadInputError(f"{flag}={value!r} is not a date (expected YYYY-MM-DD)") from None


def check_portfolio(session: Session, portfolio_id: str | None) -> None:
    """A scoped run needs an existing, active portfolio with positions."""
    if not portfolio_id:
        return
    if repo.load_portfolios(session, portfolio_id).empty:
        raise BadInputError(f"unknown or inactive portfolio {portfolio_id!r}")
    if repo.load_positions(session, [portfolio_id]).empty:
        raise BadInputError(f"portfolio {portfolio_id!r} has no positions")


def check_equity(session: Session, portfolio_id: str | None) -> None:
    """Every active portfolio in scope needs a positive inception equity (returns are relative to it)."""
    pf = repo.load_portfolios(session, portfolio_id, columns=["id", "equity_balance"])
    if pf.empty:
        raise BadInputError("no active portfolio: import some with `sigmabatch import` (or run the demo)")
    bad = pf.loc[~(pf["equity_balance"] > 0), "id"].tolist() if not pf.empty else []
    if bad:
        raise BadInputError(f"portfolio(s) with zero, negative or missing equity_balance: {', '.join(bad)}")


def _watermarks_and_first_entries(session: Session, portfolio_id: str | None):
    """Active portfolios in scope: their latest snapshot dates, and their first entry dates (a Series by
    portfolio id); ``None`` when no portfolio in scope has positions. Both aggregated in SQL: one row a
    portfolio read, never one a position."""
    marks = repo.snapshot_watermarks(session, [portfolio_id] if portfolio_id else None)
    if marks.empty:
        return None
    first = repo.first_entry_dates(session, [portfolio_id] if portfolio_id else None)
    first = first[first.index.isin(marks["portfolio_id"])]
    if first.empty:
        return None
    return marks, first


def detect_start(session: Session, portfolio_id: str | None) -> date | None:
    """First session not yet covered by every active portfolio (None when no portfolio has positions)."""
    found = _watermarks_and_first_entries(session, portfolio_id)
    if found is None:
        return None
    marks, first_entry = found
    marks = marks[marks["portfolio_id"].isin(first_entry.index)]
    lasts = []
    for pid, last in zip(marks["portfolio_id"], marks["last_snapshot"], strict=True):
        lasts.append(last if last is not None and last == last else first_entry[pid] - timedelta(days=1))
    return calendar.next_session(min(lasts))


#: How many sessions back from the run's last session a detected range looks for missed per-step work.
CATCH_UP_SESSIONS = 20


def required_steps() -> tuple[str, ...]:
    """The DAG's steps that must finish for a session to be complete (not plan, not the report)."""
    from workflows import dag

    return tuple(s.name for s in dag.STEPS if not s.outputs_dates and not s.writes_report)


def detect_missed(session: Session, portfolio_id: str | None, end: date) -> date | None:
    """The first session, within :data:`CATCH_UP_SESSIONS` before ``end``, that an earlier run covered but
    where some step never finished in any run covering it (with the failed run's portfolio scope or all)."""
    since = calendar.shift_sessions(calendar.session_on_or_before(end), -CATCH_UP_SESSIONS)
    runs, done = repo.load_run_coverage(session, since)
    steps = required_steps()
    if portfolio_id:
        runs_in_scope = [r for r in runs if r["portfolio_id"] in (None, portfolio_id)]
    else:
        runs_in_scope = runs
    first: date | None = None
    for run in runs_in_scope:
        missing = [s for s in steps if (run["run_id"], s) not in done]
        if not missing:
            continue
        lo, hi = max(_as_date(run["start_date"]), since), min(_as_date(run["end_date"]), end)
        for day in calendar.sessions(lo, hi) if lo <= hi else []:
            if first is not None and day >= first:
                break
            if any(not _covered(runs, done, day, step, run["portfolio_id"]) for step in missing):
                first = day
                break
    return first


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _covered(runs: list[dict], done: set[tuple[str, str]], day: date, step: str, scope: str | None) -> bool:
    return any((r["run_id"], step) in done and r["portfolio_id"] in (None, scope)
               and _as_date(r["start_date"]) <= day <= _as_date(r["end_date"]) for r in runs)


def resolve_range(
    session: Session,
    *,
    start: date | None,
    end: date | None,
    latest: date,
    portfolio_id: str | None = None,
    force: bool = False,
    close_gaps: bool = False,
) -> RunRange | None:
    """The run's sessions, or ``None`` when everything is up to date.

    ``latest`` is the last completed session (from the clock or the scheduled time); explicit dates may
    not go beyond it. With ``force`` and nothing missing, the last session is recomputed. With
    ``close_gaps`` (the run's plan), an explicit start after a hole in some portfolio's snapshot chain
    moves back to the hole (:func:`chain_start`); the steps then take the planned range as it is.
    """
    check_portfolio(session, portfolio_id)
    check_equity(session, portfolio_id)
    if end is None:
        end = latest
    detected = start is None
    if start is None:
        start = detect_start(session, portfolio_id)
        missed = detect_missed(session, portfolio_id, end) if start is not None else None
        if missed is not None and missed < start:
            start = missed
        if start is None or start > end:
            if not force:
                return None
            start = calendar.session_on_or_before(end)
    requested = None
    if close_gaps and not detected:
        calendar.validate_range(start, end, latest=latest)  # the range asked for is refused as it is
        earlier = chain_start(session, _on_or_after(start), portfolio_id)
        if earlier is not None and earlier < start:
            requested, start = start, earlier
    days = calendar.validate_range(start, end, latest=latest)
    return RunRange(days[0], days[-1], tuple(days), detected, requested)


def chain_start(session: Session, start: date, portfolio_id: str | None) -> date | None:
    """The first session some portfolio in scope lacks before ``start``, when its chain of snapshots does not
    reach the session before ``start`` (None when every chain does, or began at ``start`` or later).

    A session's equity is the previous session's equity rolled forward, so an explicit range that starts
    after a hole in a portfolio's snapshots must start at the hole: pnl-snapshots never books past a gap."""
    found = _watermarks_and_first_entries(session, portfolio_id)
    if found is None or start <= calendar.first_session():
        return None
    first = {p: _on_or_after(_as_date(d)) for p, d in found[1].items()}
    previous = calendar.previous_session(start)
    began = [p for p, d in first.items() if d <= previous]
    if not began:
        return None
    every = portfolio_id is None and len(began) == len(first)  # the whole book: no id list to send
    dates = repo.latest_snapshot_dates_before(session, None if every else began, start)
    last = {r.portfolio_id: _as_date(r.snapshot_date) for r in dates.itertuples()}
    firsts = [first[p] if p not in last else calendar.next_session(last[p]) for p in began
              if last.get(p) != previous]
    return min(firsts) if firsts else None


def _on_or_after(d: date) -> date:
    return calendar.next_session(d - timedelta(days=1))
