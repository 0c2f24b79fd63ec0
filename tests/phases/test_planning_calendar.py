"""Issue 20: planning and calendar at their edges — when a session counts as completed (16:29 / 16:31 New
York, early closes), holidays inside a range, provider rows dated on weekends or holidays, and which
sessions a run covers when one portfolio is behind the others."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from shared import calendar
from shared.planning import resolve_range
from shared.storage import models as m
from shared.storage.db import get_engine, migrate, transaction
from shared.validation import validate_prices

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize("now,expected", [
    (datetime(2026, 11, 24, 16, 29, tzinfo=NY), date(2026, 11, 23)),   # the close + 30 minutes not reached
    (datetime(2026, 11, 24, 16, 31, tzinfo=NY), date(2026, 11, 24)),
    (datetime(2026, 11, 24, 16, 30, tzinfo=NY), date(2026, 11, 24)),
    (datetime(2026, 11, 24, 21, 29, tzinfo=ZoneInfo("UTC")), date(2026, 11, 23)),  # 16:29 EST given in UTC
    (datetime(2026, 11, 24, 21, 31, tzinfo=ZoneInfo("UTC")), date(2026, 11, 24)),
    (datetime(2026, 11, 24, 9, 0, tzinfo=NY), date(2026, 11, 23)),
    (datetime(2026, 7, 14, 16, 29, tzinfo=NY), date(2026, 7, 13)),      # summer time (EDT)
    (datetime(2026, 7, 14, 16, 31, tzinfo=NY), date(2026, 7, 14)),
    (datetime(2026, 11, 27, 13, 29, tzinfo=NY), date(2026, 11, 25)),    # early close 13:00, Thanksgiving before
    (datetime(2026, 11, 27, 13, 31, tzinfo=NY), date(2026, 11, 27)),
    (datetime(2026, 12, 24, 13, 31, tzinfo=NY), date(2026, 12, 24)),    # Christmas Eve early close
    (datetime(2026, 11, 26, 18, 0, tzinfo=NY), date(2026, 11, 25)),     # Thanksgiving: no session today
    (datetime(2026, 11, 28, 18, 0, tzinfo=NY), date(2026, 11, 27)),     # Saturday
], ids=["16:29", "16:31", "16:30", "16:29-utc", "16:31-utc", "09:00", "16:29-edt", "16:31-edt", "13:29-early-close",
        "13:31-early-close", "christmas-eve-13:31", "thanksgiving", "saturday"])
def test_last_completed_session(now, expected):
    assert calendar.last_completed_session(now) == expected


def test_early_close_times():
    assert calendar.close_time(date(2026, 11, 27)).hour == 13
    assert calendar.close_time(date(2026, 12, 24)).hour == 13
    assert calendar.close_time(date(2018, 12, 24)).hour == 13
    assert calendar.close_time(date(2026, 11, 25)).hour == 16


def test_holidays_inside_a_range():
    days = calendar.validate_range(date(2026, 11, 20), date(2026, 12, 1))
    assert days == [date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25),
                    date(2026, 11, 27), date(2026, 11, 30), date(2026, 12, 1)]
    assert date(2018, 12, 5) not in calendar.sessions(date(2018, 12, 3), date(2018, 12, 7))  # a one-off closure
    assert calendar.previous_session(date(2026, 11, 27)) == date(2026, 11, 25)
    assert calendar.next_session(date(2026, 12, 24)) == date(2026, 12, 28)


def test_weekend_and_holiday_rows_from_a_provider_are_dropped():
    rows = pd.DataFrame({"date": [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28),
                                  date(2026, 11, 29), date(2026, 11, 30)],
                         "symbol": "AAPL", "close": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "volume": 1.0})
    checked = validate_prices(rows, "test")
    assert pd.to_datetime(checked.prices["date"]).dt.date.tolist() == [date(2026, 11, 25), date(2026, 11, 27),
                                                                       date(2026, 11, 30)]
    assert checked.prices["close"].tolist() == [1.0, 3.0, 6.0] and checked.dropped_non_sessions == 3


@pytest.fixture
def book_db(tmp_path):
    """Three portfolios: two snapshotted up to 2026-11-24, one only up to 2026-11-18 (behind), one with no
    snapshot yet whose first lot entered 2026-11-20."""
    eng = get_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(eng)
    with eng.begin() as c:
        c.execute(m.Portfolio.__table__.insert(), [
            {"id": p, "name": p, "equity_balance": 1e5, "currency": "USD", "is_active": True}
            for p in ("ahead", "ahead2", "behind", "new")])
        c.execute(m.Position.__table__.insert(), [
            {"portfolio_id": p, "symbol": "AAPL", "position_type": "LONG", "investment_class": "PUBLIC",
             "quantity": 1.0, "entry_price": 1.0, "entry_date": d}
            for p, d in (("ahead", date(2026, 11, 2)), ("ahead2", date(2026, 11, 2)), ("behind", date(2026, 11, 2)),
                         ("new", date(2026, 11, 20)))])
        snaps = []
        for p, last in (("ahead", date(2026, 11, 24)), ("ahead2", date(2026, 11, 24)), ("behind", date(2026, 11, 18))):
            for d in calendar.sessions(date(2026, 11, 2), last):
                snaps.append({"portfolio_id": p, "snapshot_date": d, **{c: 0.0 for c in (
                    "net_asset_value", "cash_value", "long_value", "short_value", "gross_exposure", "net_exposure",
                    "daily_pnl", "daily_unrealized_pnl", "daily_realized_pnl", "daily_capital_flow", "cumulative_pnl",
                    "cumulative_realized_pnl", "cumulative_capital_flow", "equity_balance")},
                    "num_positions": 1, "num_long_positions": 1, "num_short_positions": 0})
        c.execute(m.PortfolioSnapshot.__table__.insert(), snaps)
    yield eng
    eng.dispose()


def test_a_portfolio_behind_the_others_sets_the_start(book_db):
    """The lowest watermark wins: the run starts the session after the portfolio furthest behind."""
    with transaction(book_db) as s:
        rng = resolve_range(s, start=None, end=None, latest=date(2026, 11, 25))
    assert (rng.start, rng.end, rng.detected) == (date(2026, 11, 19), date(2026, 11, 25), True)
    assert len(rng.sessions) == 5


def test_a_new_portfolio_starts_at_its_first_entry(book_db):
    with transaction(book_db) as s:
        s.execute(m.Portfolio.__table__.update().where(m.Portfolio.id == "behind").values(is_active=False))
        rng = resolve_range(s, start=None, end=None, latest=date(2026, 11, 25))
    assert rng.start == date(2026, 11, 20)


def test_up_to_date_means_nothing_to_do(book_db):
    with transaction(book_db) as s:
        for p in ("behind", "new"):
            s.execute(m.Portfolio.__table__.update().where(m.Portfolio.id == p).values(is_active=False))
        assert resolve_range(s, start=None, end=None, latest=date(2026, 11, 24)) is None
        rng = resolve_range(s, start=None, end=None, latest=date(2026, 11, 24) + timedelta(days=1))
    assert rng.sessions == (date(2026, 11, 25),)


def test_an_explicit_start_after_a_hole_in_a_chain_moves_back_to_the_hole(book_db):
    """'behind' has snapshots to 11-18 and 'new' none since its entry on 11-20: a backfill asked from 11-23
    starts at 11-19 (P&L rolls the previous session's equity forward; it never books past a gap)."""
    with transaction(book_db) as s:
        rng = resolve_range(s, start=date(2026, 11, 23), end=date(2026, 11, 24), latest=date(2026, 11, 25),
                            close_gaps=True)
        assert (rng.start, rng.requested_start) == (date(2026, 11, 19), date(2026, 11, 23))
        assert "moved back" in str(rng)
        # a start every chain reaches stays; a step given the planned range takes it as it is
        assert resolve_range(s, start=date(2026, 11, 19), end=date(2026, 11, 24), latest=date(2026, 11, 25),
                             close_gaps=True).start == date(2026, 11, 19)
        assert resolve_range(s, start=date(2026, 11, 23), end=date(2026, 11, 24),
                             latest=date(2026, 11, 25)).start == date(2026, 11, 23)
        s.execute(m.Portfolio.__table__.update().where(m.Portfolio.id == "behind").values(is_active=False))
        rng = resolve_range(s, start=date(2026, 11, 23), end=date(2026, 11, 24), latest=date(2026, 11, 25),
                            close_gaps=True)
    assert rng.start == date(2026, 11, 20)  # 'new' entered on 11-20 and has no snapshot yet


def test_first_entries_and_chains_are_read_per_portfolio(book_db):
    """Plan reads per-portfolio aggregates (first entry, last snapshot before the start), not the positions or
    the snapshots: a portfolio's first entry is its earliest non-deleted lot, and a snapshot on or after the
    requested start does not hide the hole before it."""
    lot = {"symbol": "MSFT", "position_type": "LONG", "investment_class": "PUBLIC", "quantity": 1.0,
           "entry_price": 1.0}
    with transaction(book_db) as s:
        s.execute(m.Position.__table__.insert(), [
            {**lot, "portfolio_id": "new", "entry_date": date(2026, 11, 23), "deleted_at": None},  # a later lot
            {**lot, "portfolio_id": "new", "entry_date": date(2026, 11, 17),  # a deleted earlier one
             "deleted_at": datetime(2026, 11, 21, tzinfo=NY)}])
        s.execute(m.Portfolio.__table__.update().where(m.Portfolio.id == "behind").values(is_active=False))
        assert resolve_range(s, start=None, end=None, latest=date(2026, 11, 25)).start == date(2026, 11, 20)
        s.execute(m.Portfolio.__table__.update().where(m.Portfolio.id == "behind").values(is_active=True))
        snap = s.execute(m.PortfolioSnapshot.__table__.select().where(
            m.PortfolioSnapshot.portfolio_id == "behind")).mappings().first()
        s.execute(m.PortfolioSnapshot.__table__.insert(), [{**{k: v for k, v in snap.items() if k != "id"},
                                                            "snapshot_date": date(2026, 11, 23)}])
        rng = resolve_range(s, start=date(2026, 11, 23), end=date(2026, 11, 24), latest=date(2026, 11, 25),
                            close_gaps=True)
    assert (rng.start, rng.requested_start) == (date(2026, 11, 19), date(2026, 11, 23))
