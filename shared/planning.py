"""Which sessions a run covers: explicit ranges are validated, missing ones are detected.

Detection follows the old system's "minimum watermark" (domain spec §2.2): for every active portfolio
take its latest snapshot date (or, when it has none, the day before its first position's entry date);
the run starts at the first session after the lowest of those and ends at the last completed session.
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

    def __str__(self) -> str:
        return f"{self.start}..{self.end} ({len(self.sessions)} sessions)"

    def chunks(self, size: int) -> list[RunRange]:
        """Consecutive sub-ranges of at most ``size`` sessions each, in order (one when it fits)."""
        size = max(int(size), 1)
        return [RunRange(part[0], part[-1], part, self.detected)
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
    pf = repo.load_portfolios(session, portfolio_id)
    if pf.empty:
        raise BadInputError("no active portfolio: import some with `sigmabatch import` (or run the demo)")
    bad = pf.loc[~(pf["equity_balance"] > 0), "id"].tolist() if not pf.empty else []
    if bad:
        raise BadInputError(f"portfolio(s) with zero, negative or missing equity_balance: {', '.join(bad)}")


def detect_start(session: Session, portfolio_id: str | None) -> date | None:
    """First session not yet covered by every active portfolio (None when no portfolio has positions)."""
    marks = repo.snapshot_watermarks(session, [portfolio_id] if portfolio_id else None)
    if marks.empty:
        return None
    positions = repo.load_positions(session, marks["portfolio_id"].tolist())
    if positions.empty:
        return None
    first_entry = positions.groupby("portfolio_id")["entry_date"].min()
    marks = marks[marks["portfolio_id"].isin(first_entry.index)]
    lasts = []
    for pid, last in zip(marks["portfolio_id"], marks["last_snapshot"], strict=True):
        lasts.append(last if last is not None and last == last else first_entry[pid] - timedelta(days=1))
    return calendar.next_session(min(lasts))


def resolve_range(
    session: Session,
    *,
    start: date | None,
    end: date | None,
    latest: date,
    portfolio_id: str | None = None,
    force: bool = False,
) -> RunRange | None:
    """The run's sessions, or ``None`` when everything is up to date.

    ``latest`` is the last completed session (from the clock or the scheduled time); explicit dates may
    not go beyond it. With ``force`` and nothing missing, the last session is recomputed.
    """
    check_portfolio(session, portfolio_id)
    check_equity(session, portfolio_id)
    if end is None:
        end = latest
    detected = start is None
    if start is None:
        start = detect_start(session, portfolio_id)
        if start is None or start > end:
            if not force:
                return None
            start = calendar.session_on_or_before(end)
    days = calendar.validate_range(start, end, latest=latest)
    return RunRange(days[0], days[-1], tuple(days), detected)
