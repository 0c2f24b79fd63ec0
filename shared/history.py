"""How much price history a step reads before a run's first session, declared in sessions.

A date's numbers must depend on the date alone (domain spec decision 12): session ``d`` gets the same
values from the nightly run of ``d``, from any backfill containing ``d``, from an onboarding or from a
forced re-run. Every step that reads the price-cache snapshot therefore declares, next to the windows that
need it, the history it reads before the session it computes (``HISTORY`` in its phase module), and the
snapshot is sized from the union of those declarations (:func:`workflows.dag.price_history`), never from
the run's range or a number of calendar days.

Two kinds of look-back exist:

* **windows of sessions** (90/180/252 returns, the previous close): ``sessions`` closes before ``d``;
* **calendar references** (the close one year before ``d``, the prior year-end close for YTD):
  ``years`` calendar years before ``d``, then the session on or before that day.

Every "last close on or before" look-up may carry a close forward over missing sessions for at most
:data:`STALE_SESSIONS` sessions (:data:`shared.analytics.metrics.MAX_STALE_SESSIONS`), so that many extra
sessions are added before the earliest reference. Where the provider simply has no older data, the value
is null for the same reason whatever the launch shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from shared import calendar
from shared.analytics.metrics import MAX_STALE_SESSIONS

__all__ = ["STALE_SESSIONS", "History", "history_start"]

#: A close counts for its own session and the next 9: a reference close may be carried from up to this many
#: sessions before the reference session.
STALE_SESSIONS = MAX_STALE_SESSIONS


@dataclass(frozen=True)
class History:
    """The price history a step reads before the session it computes.

    Attributes
    ----------
    sessions : int
        Closes of this many sessions before the calculation session (e.g. 252 for a 252-return window:
        the first return needs the close before it).
    years : int
        Calendar years before the calculation session (1-year return; YTD's prior year-end close lies
        within one year).
    """

    sessions: int = 0
    years: int = 0

    def __post_init__(self) -> None:
        if self.sessions < 0 or self.years < 0:
            raise ValueError("history must not be negative")

    @staticmethod
    def union(needs: Iterable[History]) -> History:
        """The smallest history covering every one of ``needs``."""
        needs = list(needs)
        return History(max((h.sessions for h in needs), default=0), max((h.years for h in needs), default=0))


def history_start(first_session: date, history: History) -> date:
    """The first session whose close a run starting at ``first_session`` may read under ``history``.

    ``min(first − sessions, session on or before (first − years))`` moved back by :data:`STALE_SESSIONS`
    sessions for carried closes; clamped to the first session of the calendar.
    """
    first = calendar.session_on_or_before(first_session)
    earliest = calendar.shift_sessions_clamped(first, -history.sessions)
    if history.years:
        back = (pd.Timestamp(first) - pd.DateOffset(years=history.years)).date()
        earliest = min(earliest, calendar.session_on_or_before_clamped(back))
    return calendar.shift_sessions_clamped(earliest, -STALE_SESSIONS)
