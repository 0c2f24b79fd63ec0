"""The NYSE trading calendar (pandas-market-calendars): the one calendar every module uses.

Sessions are plain :class:`datetime.date` values. The schedule is built once per process over a wide
range (1990-2045) and kept as a sorted numpy array, so every look-up is a binary search.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from shared.errors import BadInputError

#: A session counts as completed this long after the (possibly early) close, New York time.
SETTLE_MINUTES = 30
_FIRST = date(1990, 1, 1)
_LAST = date(2045, 12, 31)


@lru_cache(maxsize=1)
def _schedule() -> pd.DataFrame:
    import pandas_market_calendars as pmc

    cal = pmc.get_calendar("NYSE")
    sched = cal.schedule(start_date=_FIRST.isoformat(), end_date=_LAST.isoformat())
    closes = sched["market_close"].dt.tz_convert("America/New_York")
    return pd.DataFrame({"close": closes.dt.time.to_numpy()}, index=pd.DatetimeIndex(sched.index).normalize())


@lru_cache(maxsize=1)
def _session_array() -> np.ndarray:
    return _schedule().index.to_numpy(dtype="datetime64[D]")


def _d64(d: date) -> np.datetime64:
    return np.datetime64(d, "D")


def _to_date(x: np.datetime64) -> date:
    return pd.Timestamp(x).date()


def sessions(start: date, end: date) -> list[date]:
    """NYSE sessions in ``[start, end]`` (both inclusive), ascending."""
    arr = _session_array()
    lo = np.searchsorted(arr, _d64(start), side="left")
    hi = np.searchsorted(arr, _d64(end), side="right")
    return [_to_date(x) for x in arr[lo:hi]]


def session_index(start: date, end: date) -> pd.DatetimeIndex:
    """Like :func:`sessions` but as a ``DatetimeIndex`` (midnight, tz-naive)."""
    arr = _session_array()
    lo = np.searchsorted(arr, _d64(start), side="left")
    hi = np.searchsorted(arr, _d64(end), side="right")
    return pd.DatetimeIndex(arr[lo:hi].astype("datetime64[ns]"))


def is_session(d: date) -> bool:
    arr = _session_array()
    i = np.searchsorted(arr, _d64(d))
    return bool(i < len(arr) and arr[i] == _d64(d))


def previous_session(d: date) -> date:
    """The last session strictly before ``d``."""
    arr = _session_array()
    i = np.searchsorted(arr, _d64(d), side="left")
    return _to_date(arr[i - 1])


def next_session(d: date) -> date:
    """The first session strictly after ``d``."""
    arr = _session_array()
    i = np.searchsorted(arr, _d64(d), side="right")
    return _to_date(arr[i])


def session_on_or_before(d: date) -> date:
    arr = _session_array()
    i = np.searchsorted(arr, _d64(d), side="right")
    return _to_date(arr[i - 1])


def shift_sessions(d: date, n: int) -> date:
    """The session ``n`` sessions after (n > 0) or before (n < 0) the session on or before ``d``."""
    arr = _session_array()
    i = int(np.searchsorted(arr, _d64(d), side="right")) - 1
    return _to_date(arr[i + n])


def close_time(d: date) -> time:
    """Market close (New York time) of session ``d``: 16:00, or 13:00 on early-close days."""
    return _schedule().loc[pd.Timestamp(d), "close"]


def last_completed_session(now: datetime) -> date:
    """The most recent session whose close (plus 30 minutes) has passed at ``now`` (tz-aware)."""
    from shared.settings import NEW_YORK

    local = now.astimezone(NEW_YORK)
    today = local.date()
    if is_session(today):
        close = datetime.combine(today, close_time(today), tzinfo=NEW_YORK) + timedelta(minutes=SETTLE_MINUTES)
        if local >= close:
            return today
    return previous_session(today)


def validate_range(start: date, end: date, *, latest: date | None = None) -> list[date]:
    """Sessions of ``[start, end]``; :class:`BadInputError` for an impossible or empty range.

    ``latest`` (the last completed session) rejects ranges that reach into the future.
    """
    if end < start:
        raise BadInputError(f"end date {end} is before start date {start}")
    if latest is not None and end > latest:
        raise BadInputError(f"end date {end} is after the last completed NYSE session {latest}")
    days = sessions(start, end)
    if not days:
        raise BadInputError(f"no NYSE session between {start} and {end} (weekends/holidays only)")
    return days
