"""Risk steps split long ranges into chunks of sessions (``RunRange.chunks``, ``chunk_sessions``)."""

from __future__ import annotations

from datetime import date

import pytest

from shared import calendar
from shared.planning import RunRange


def _range(n: int) -> RunRange:
    sessions = tuple(calendar.sessions(date(2026, 1, 2), date(2026, 12, 31))[:n])
    return RunRange(sessions[0], sessions[-1], sessions, detected=False)


@pytest.mark.parametrize(("n", "size", "sizes"), [(60, 8, [8] * 7 + [4]), (5, 8, [5]), (3, 1, [1, 1, 1]),
                                                  (4, 0, [1, 1, 1, 1])])
def test_chunks_cover_the_sessions_in_order(n, size, sizes):
    rng = _range(n)
    chunks = rng.chunks(size)
    assert [len(c.sessions) for c in chunks] == sizes
    assert tuple(d for c in chunks for d in c.sessions) == rng.sessions
    assert all(c.start == c.sessions[0] and c.end == c.sessions[-1] for c in chunks)


def test_the_chunk_size_is_the_portfolio_date_budget_over_the_portfolios(monkeypatch):
    from phases import _runtime
    from shared.settings import Settings

    class Ctx:
        settings = Settings.from_env({"SIGMABATCH_CHUNK_PORTFOLIO_DATES": "20000"})
        portfolio_id = "p1"

    assert _runtime.chunk_sessions(Ctx()) == 20000  # one portfolio
    Ctx.portfolio_id = None
    monkeypatch.setattr("shared.storage.repository.load_portfolios", lambda s: range(3000))
    Ctx.transaction = lambda self: _Null()
    assert _runtime.chunk_sessions(Ctx()) == 6
    monkeypatch.setattr("shared.storage.repository.load_portfolios", lambda s: range(30000))
    assert _runtime.chunk_sessions(Ctx()) == 1


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
