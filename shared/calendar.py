"""The NYSE trading calendar (pandas-market-calendars): the one calendar every module uses.

Sessions are plain :class:`datetime.date` values. The schedule is built once per process over a wide
range (1990-2045) and kept as a sorted numpy array, so every look-up is a binary search.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from shared.errors import BadInputError

#: A session counts as completed this long after the (possibly early) close, New York time.
SETTLE_MINUTES = 30
_FIRST = date(1990, 1, 1)
_LAST = date(2045, 12, 31)


def _cache_file():
    """Where the built schedule is kept between processes (building it takes 1-3 s; every phase is a
    process): ``$XDG_CACHE_HOME/sigmabatch/`` keyed by the pandas-market-calendars version."""
    import os
    from importlib.metadata import version
    from pathlib import Path

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sigmabatch" / f"nyse-{version('pandas_market_calendars')}-{_FIRST}-{_LAST}.npz"


def _build_schedule() -> tuple[np.ndarray, np.ndarray]:
    """(session days as datetime64[D], New York close as seconds after midnight)."""
    import pandas_market_calendars as pmc

    cal = pmc.get_calendar("NYSE")
    sched = cal.schedule(start_date=_FIRST.isoformat(), end_date=_LAST.isoformat())
    closes = sched["market_close"].dt.tz_convert("America/New_York")
    secs = (closes.dt.hour * 3600 + closes.dt.minute * 60 + closes.dt.second).to_numpy(dtype=np.int64)
    return pd.DatetimeIndex(sched.index).normalize().to_numpy(dtype="datetime64[D]"), secs


@lru_cache(maxsize=1)
def _schedule() -> pd.DataFrame:
    days = secs = None
    try:
        path = _cache_file()
        if path.exists():
            with np.load(path) as z:
                days, secs = z["days"].astype("datetime64[D]"), z["close_seconds"]
    except Exception:  # a cache problem only costs the rebuild
        path = None
    if days is None:
        days, secs = _build_schedule()
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                np.savez(tmp, days=days.astype(np.int64), close_seconds=secs)
                tmp.replace(path)
        except OSError:
            pass
    close = [time(int(s) // 3600, int(s) % 3600 // 60, int(s) % 60) for s in secs]
    return pd.DataFrame({"close": np.array(close, dtype=object)},
                        index=pd.DatetimeIndex(days.astype("datetime64[ns]")))


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


def session_count(start: date, end: date) -> int:
    """Number of NYSE sessions in ``[start, end]`` (both inclusive)."""
    arr = _session_array()
    return int(np.searchsorted(arr, _d64(end), side="right") - np.searchsorted(arr, _d64(start), side="left"))


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
    i = int(np.searchsorted(arr, _d64(d), side="right")) - 1 + n
    if not 0 <= i < len(arr):  # a negative index would silently wrap around
        raise ValueError(f"{n:+d} sessions from {d} is outside the calendar ({_to_date(arr[0])}..{_to_date(arr[-1])})")
    return _to_date(arr[i])


def first_session() -> date:
    """The first session the calendar knows (its coverage starts in 1990)."""
    return _to_date(_session_array()[0])


def shift_sessions_clamped(d: date, n: int) -> date:
    """:func:`shift_sessions`, clamped to the calendar's first and last sessions."""
    arr = _session_array()
    i = int(np.searchsorted(arr, _d64(d), side="right")) - 1 + n
    return _to_date(arr[min(max(i, 0), len(arr) - 1)])


def session_on_or_before_clamped(d: date) -> date:
    """:func:`session_on_or_before`, or the calendar's first session for a day before it."""
    return first_session() if d < first_session() else session_on_or_before(d)


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


def last_session() -> date:
    """The last session the calendar knows."""
    return _to_date(_session_array()[-1])


def check_coverage(d: date, what: str = "date") -> None:
    """:class:`BadInputError` for a day outside the calendar's coverage (it is never clamped silently)."""
    first, last = first_session(), last_session()
    if d < first or d > last:
        raise BadInputError(f"{what} {d} is outside the NYSE calendar's coverage ({first} .. {last})")


def validate_range(start: date, end: date, *, latest: date | None = None) -> list[date]:
    """Sessions of ``[start, end]``; :class:`BadInputError` for an impossible or empty range, or one
    reaching outside the calendar's coverage.

    ``latest`` (the last completed session) rejects ranges that reach into the future.
    """
    check_coverage(start, "start date")
    check_coverage(end, "end date")
    if end < start:
        raise BadInputError(f"end date {end} is before start date {start}")
    if latest is not None and end > latest:
        raise BadInputError(f"end date {end} is after the last completed NYSE session {latest}")
    days = sessions(start, end)
    if not days:
        raise BadInputError(f"no NYSE session between {start} and {end} (weekends/holidays only)")
    return days
