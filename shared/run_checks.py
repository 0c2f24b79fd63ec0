"""Checks on a ``sigmabatch run`` request, made before anything is taken or recorded (no lock, no run row,
no ``var/runs/<id>`` folder): numeric options, the dates against the calendar, and a confirmation for runs
longer than a year. Each failure is a :class:`BadInputError` (exit 2) whose message names the option."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared import calendar
from shared.errors import BadInputError
from shared.planning import RunRange, parse_date

#: A run spanning more calendar days than this needs ``--yes``.
CONFIRM_DAYS = 366


@dataclass(frozen=True)
class RunDates:
    start: date | None
    end: date | None
    latest: date


def check_count(value: int | None, flag: str, minimum: int) -> None:
    """An integer option must be at least ``minimum`` (``--max-parallel 0`` would wait forever)."""
    if value is None or value < minimum:
        raise BadInputError(f"{flag} must be at least {minimum} (got {value})")


def check_dates(start_raw: str, end_raw: str, latest: date) -> RunDates:
    """Parse the dates and check them against the calendar without any database: each date inside the
    calendar's coverage, start not after end, end not after the last completed session, and a bounded
    range with at least one session."""
    start = parse_date(start_raw, "--start-date")
    end = parse_date(end_raw, "--end-date")
    for flag, d in (("--start-date", start), ("--end-date", end)):
        if d is not None:
            calendar.check_coverage(d, flag)
    if start is not None:
        calendar.validate_range(start, end or latest, latest=latest)
    elif end is not None and end > latest:
        raise BadInputError(f"end date {end} is after the last completed NYSE session {latest}")
    return RunDates(start, end, latest)


def check_size(rng: RunRange, portfolios: int, confirmed: bool) -> None:
    """A run longer than a year is only started with ``--yes``; the message says how much work it is."""
    days = (rng.end - rng.start).days
    if days <= CONFIRM_DAYS or confirmed:
        return
    n = len(rng.sessions)
    raise BadInputError(
        f"{rng.start}..{rng.end} is {n:,} sessions x {portfolios:,} portfolio(s) = {n * portfolios:,} "
        "portfolio-sessions (more than a year): add --yes to run it"
    )
