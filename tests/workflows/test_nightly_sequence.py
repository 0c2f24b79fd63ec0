"""Issue 20: a real nightly sequence on one database, with values asserted.

Night 1 (clock D−1): the demo books are seeded 3 sessions before D−1 and the run detects and computes
their sessions. Then a new book is imported whose lot entered on D−2, behind the others. Night 2 (clock D):
the run must detect D−2..D (the lowest watermark: the new book's missed sessions are filled), carry every
demo book's equity from its stored D−3 snapshot (not restart from the inception equity), recompute D−2
and D−1 to the same values, and start the new book from its inception equity with the P&L of its lot.
The DAG's steps run in this process (:mod:`tests.dagrun`).
"""

from __future__ import annotations

import os
from datetime import date

import pandas as pd
import pytest

from shared import calendar
from shared.storage import models as m
from shared.storage.db import get_engine, migrate, transaction
from tests.dagrun import run_dag

D = date(2026, 11, 13)
D1, D2, D3 = (calendar.shift_sessions(D, -k) for k in (1, 2, 3))


def _env(url: str, tmp, day: date) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "12",
                "SIGMABATCH_NOW": f"{day.isoformat()}T18:00:00-05:00", "SIGMABATCH_DEFAULT_SESSIONS": "3"})
    return env


def _snapshots(url: str) -> pd.DataFrame:
    with get_engine(url).connect() as c:
        s = pd.read_sql_table("portfolio_snapshots", c)
    s["snapshot_date"] = pd.to_datetime(s["snapshot_date"]).dt.date
    return s.set_index(["portfolio_id", "snapshot_date"]).sort_index()


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    from shared.demo import seed_demo
    from shared.settings import Settings

    tmp = tmp_path_factory.mktemp("nightly")
    url = f"sqlite:///{tmp / 'n.db'}"
    eng = get_engine(url)
    migrate(eng)
    with transaction(eng) as s:
        seed_demo(s, Settings.from_env({k: v for k, v in _env(url, tmp, D1).items() if k.startswith("SIGMABATCH_")}))
    first = run_dag(_env(url, tmp, D1), tmp)
    after_first = _snapshots(url)
    with eng.begin() as c:
        sym = c.execute(m.Position.__table__.select().where(m.Position.investment_class == "PUBLIC")).first().symbol
        c.execute(m.Portfolio.__table__.insert(), [{"id": "late-book", "name": "imported behind",
                                                    "equity_balance": 200_000.0, "currency": "USD", "is_active": True}])
        c.execute(m.Position.__table__.insert(), [{"portfolio_id": "late-book", "symbol": sym, "position_type": "LONG",
                                                   "investment_class": "PUBLIC", "quantity": 300.0, "entry_price": 50.0,
                                                   "entry_date": D2}])
        c.execute(m.EquityChange.__table__.insert(), [{"portfolio_id": "late-book", "change_date": D, "amount": 1_000.0}])
    second = run_dag(_env(url, tmp, D), tmp)
    with eng.connect() as c:
        closes = pd.read_sql_table("market_data_cache", c)
    eng.dispose()
    closes["date"] = pd.to_datetime(closes["date"]).dt.date
    return first, after_first, second, _snapshots(url), sym, closes.set_index(["symbol", "date"])["close"]


def test_night_one_covers_the_demo_books(nights):
    first, after_first, *_ = nights
    assert first[1] == D1.isoformat()
    assert after_first.index.get_level_values("snapshot_date").max() == D1


def test_night_two_fills_the_sessions_of_the_book_behind(nights):
    _, _, second, snaps, *_ = nights
    assert second == (D2.isoformat(), D.isoformat())
    assert sorted(snaps.loc["late-book"].index) == [D2, D1, D]


def test_equity_is_carried_from_the_stored_snapshot(nights):
    _, after_first, _, snaps, *_ = nights
    demo = sorted(set(after_first.index.get_level_values(0)))
    assert demo
    for pid in demo:
        prev = after_first.loc[(pid, D3), "equity_balance"]  # written on night 1, not recomputed on night 2
        assert snaps.loc[(pid, D3), "equity_balance"] == prev
        for d in (D2, D1, D):
            row = snaps.loc[(pid, d)]
            assert row["equity_balance"] == pytest.approx(prev + row["daily_pnl"] + row["daily_capital_flow"],
                                                          rel=1e-12)
            prev = row["equity_balance"]
        for d in (D2, D1):  # recomputed on night 2: the same numbers as night 1
            for c in ("equity_balance", "daily_pnl", "cumulative_pnl", "gross_exposure"):
                assert snaps.loc[(pid, d), c] == pytest.approx(after_first.loc[(pid, d), c], rel=1e-12), (pid, d, c)
        # the first session of night 2 earns its return on the carried equity, and totals carry on
        row, base = snaps.loc[(pid, D2)], after_first.loc[(pid, D3)]
        assert row["daily_return"] == pytest.approx(row["daily_pnl"] / base["equity_balance"], rel=1e-12)
        assert row["cumulative_pnl"] == pytest.approx(base["cumulative_pnl"] + row["daily_pnl"], rel=1e-12)


def test_the_new_book_starts_from_its_inception_equity(nights):
    *_, snaps, sym, closes = nights
    late = snaps.loc["late-book"]
    pnl = [300.0 * (closes[(sym, D2)] - 50.0), 300.0 * (closes[(sym, D1)] - closes[(sym, D2)]),
           300.0 * (closes[(sym, D)] - closes[(sym, D1)])]
    assert late["daily_pnl"].tolist() == pytest.approx(pnl, rel=1e-12)
    assert late["daily_capital_flow"].tolist() == [0.0, 0.0, 1_000.0]
    assert late["equity_balance"].tolist() == pytest.approx(
        [200_000.0 + pnl[0], 200_000.0 + pnl[0] + pnl[1], 201_000.0 + sum(pnl)], rel=1e-12)
    assert late["cumulative_pnl"].iloc[-1] == pytest.approx(sum(pnl), rel=1e-12)
    assert late.loc[D, "long_value"] == pytest.approx(300.0 * closes[(sym, D)], rel=1e-12)
