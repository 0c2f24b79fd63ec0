"""Which sessions keep rows that are not stored for every session: a rule on the date, never on the run.

The pairwise correlation matrix of every portfolio is large (about 1.6 M rows a session at 10,000
portfolios), so it is kept only for the latest ``keep`` sessions (``SIGMABATCH_PAIRWISE_SESSIONS``,
default 1), counted back from the last completed session at the run's reference time. Whether session
``d`` has pairwise rows therefore depends on ``d`` and on when the batch ran, never on the range of the run
that computed it: a forced re-run of three old sessions adds no matrix the full run did not have.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from shared import calendar

__all__ = ["first_kept_session", "kept_sessions"]


def first_kept_session(latest: date, keep: int) -> date:
    """The oldest session that keeps its rows: ``keep - 1`` sessions before ``latest`` (its session)."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    return calendar.shift_sessions_clamped(latest, -(keep - 1))


def kept_sessions(sessions: Iterable[date], latest: date, keep: int) -> list[date]:
    """The sessions among ``sessions`` inside the latest ``keep`` sessions up to ``latest``, ascending."""
    lo = first_kept_session(latest, keep)
    return sorted(d for d in set(sessions) if lo <= d <= latest)
