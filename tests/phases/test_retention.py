"""Issue 19, bounded growth: 30 nightly runs keep the pairwise matrices of the latest 10 sessions only
(``SIGMABATCH_PAIRWISE_SESSIONS``) and, with ``SIGMABATCH_RETAIN_SESSIONS``, the other large dated tables
of the latest N; a forced re-run of an old session resurrects nothing. The DAG runs in this process
(:mod:`tests.dagrun`) on a tiny market (12 stocks, the demo books): the issue's 30 nights on PostgreSQL,
the same rules over 10 nights with retentions of 3 and 4 sessions on SQLite (the rules are the same code;
the nights are what the suite's time goes to).
Timing (night 30 against night 1) is in the benchmark: ``python -m bench --retention``.
"""

from __future__ import annotations

import os
from datetime import date

import pytest
from sqlalchemy import text

from shared import calendar
from shared.retention import RETAINED, prune_history
from shared.storage import models as m
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO
from tests.dagrun import run_dag

pytestmark = pytest.mark.slow

FIRST = date(2026, 10, 1)  # night 1
BOOK_SESSIONS = 3  # the demo books are entered this many sessions before night 1
#: database -> (nights, pairwise sessions kept, other dated tables' sessions kept)
NIGHTS = {"postgresql": (30, 10, 12), "sqlite": (10, 3, 4)}
PAIRWISE, RETAIN = NIGHTS["postgresql"][1:]


def _clock(day: date) -> str:
    return f"{day.isoformat()}T18:00:00-04:00"


def _env(url: str, tmp, now: date, retain: int = RETAIN, pairwise: int = PAIRWISE) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "12",
                "SIGMABATCH_NOW": _clock(now), "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS),
                "SIGMABATCH_PAIRWISE_SESSIONS": str(pairwise), "SIGMABATCH_RETAIN_SESSIONS": str(retain),
                # a close missing on a night (the synthetic market drops a few) must not leave books behind
                "SIGMABATCH_MIN_COVERAGE": "0", "SIGMABATCH_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)})
    return env


def _dates(url: str, table: str, column: str = "calculation_date") -> list[str]:
    eng = get_engine(url)
    with eng.connect() as c:
        out = sorted(str(r[0]) for r in c.execute(text(f"SELECT DISTINCT {column} FROM {table}")))
    eng.dispose()
    return out


def _latest(n: int, last: date) -> list[str]:
    return [calendar.shift_sessions(last, -k).isoformat() for k in range(n - 1, -1, -1)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def thirty_nights(request, tmp_path_factory):
    """A database after its nightly runs (consecutive sessions from FIRST, ``NIGHTS``): (url, tmp, nights,
    (pairwise, retain))."""
    from shared.demo import seed_demo
    from shared.settings import Settings

    tmp = tmp_path_factory.mktemp(f"retention-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'sigmabatch.db'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    n_nights, pairwise, retain = NIGHTS[request.param]
    nights = [FIRST]
    while len(nights) < n_nights:
        nights.append(calendar.next_session(nights[-1]))
    eng = get_engine(url)
    migrate(eng)
    with transaction(eng) as s:
        seed_demo(s, Settings.from_env({"SIGMABATCH_NOW": _clock(FIRST), "SIGMABATCH_SYNTHETIC_SYMBOLS": "12",
                                        "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS)}))
    eng.dispose()
    for k, night in enumerate(nights, start=1):
        s, e = run_dag(_env(url, tmp, night, retain, pairwise), tmp)
        assert e == night.isoformat(), (k, s, e)
        kept = _dates(url, "pairwise_correlations")
        assert kept and len(kept) <= pairwise and kept[-1] == night.isoformat(), (k, kept)
    return url, tmp, nights, (pairwise, retain)


@pytest.fixture(scope="module")
def pg_module_url(pg_available):
    """A PostgreSQL schema for the module (the 30 nights are built once per database); unreachable
    PostgreSQL fails under CI=true, as everywhere (tests/conftest.py)."""
    from tests.conftest import pg_schema

    with pg_schema() as url:
        yield url


def test_after_30_nights_the_tables_hold_the_latest_sessions_only(thirty_nights):
    url, _tmp, nights, (pairwise, retain) = thirty_nights
    assert _dates(url, "pairwise_correlations") == _latest(pairwise, nights[-1])
    for model, column in RETAINED.items():
        assert _dates(url, model.__tablename__, column) == _latest(retain, nights[-1]), model.__tablename__
    # what the retention leaves alone: every night's snapshots (the P&L chain) and the prices
    assert set(_latest(len(nights), nights[-1])) <= set(_dates(url, "portfolio_snapshots", "snapshot_date"))


def test_a_forced_rerun_of_an_old_session_resurrects_nothing(thirty_nights):
    url, tmp, nights, (pairwise, retain) = thirty_nights
    old = nights[1].isoformat()
    before = {t.__tablename__: _dates(url, t.__tablename__, c) for t, c in
              {**RETAINED, m.PairwiseCorrelation: "calculation_date"}.items()}
    s, e = run_dag(_env(url, tmp, nights[-1], retain, pairwise), tmp, start=old, end=old, force=True)
    assert (s, e) == (old, old)
    after = {t: _dates(url, t, "metrics_date" if t == "symbol_daily_metrics" else "calculation_date")
             for t in before}
    assert after == before
    assert old not in after["pairwise_correlations"] and old not in after["correlation_calculations"]


def test_retain_zero_keeps_everything_and_prune_is_a_rule_on_the_date(sqlite_url):
    """Unit: 0 deletes nothing; N deletes exactly the rows before the N-th latest session, every table."""
    import pandas as pd

    from shared.storage import repository as repo

    eng = get_engine(sqlite_url)
    migrate(eng)
    days = _latest(5, date(2026, 11, 27))
    with transaction(eng) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p1", "name": "p1", "equity_balance": 1e6, "currency": "USD",
                                                   "is_active": True}]))
        repo.insert(s, m.SymbolDailyMetrics, pd.DataFrame({"symbol": "AAA", "metrics_date": pd.to_datetime(days).date}))
        repo.insert(s, m.CorrelationCluster, pd.DataFrame({
            "portfolio_id": "p1", "duration_days": 90, "calculation_date": pd.to_datetime(days).date,
            "cluster_number": 1, "symbol": "AAA"}))
        repo.insert(s, m.PairwiseCorrelation, pd.DataFrame({
            "portfolio_id": "p1", "duration_days": 90, "calculation_date": pd.to_datetime(days).date,
            "symbol_1": "AAA", "symbol_2": "BBB", "correlation_value": 0.5}))
    with transaction(eng) as s:
        assert prune_history(s, date(2026, 11, 27), 0) == {}
    with transaction(eng) as s:
        deleted = prune_history(s, date(2026, 11, 27), 2, pairwise_keep=4)
    assert deleted["symbol_daily_metrics"] == 3 and deleted["correlation_clusters"] == 3
    assert deleted["pairwise_correlations"] == 1
    assert _dates(sqlite_url, "symbol_daily_metrics", "metrics_date") == days[-2:]
    assert _dates(sqlite_url, "correlation_clusters") == days[-2:]
    assert _dates(sqlite_url, "pairwise_correlations") == days[-4:]
    eng.dispose()


def test_the_pairwise_retention_prunes_portfolios_outside_the_run(thirty_nights):
    """A matrix of a portfolio the run does not compute (scoped run, a book not booked) is pruned by date too
    (record-run; risk-correlations prunes the portfolios it computes)."""
    url, tmp, nights, (pairwise, retain) = thirty_nights
    eng = get_engine(url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO pairwise_correlations (portfolio_id, duration_days, calculation_date, symbol_1, "
                       "symbol_2, correlation_value) VALUES ('demo-etf-heavy', 90, :d, 'AAA', 'BBB', 0.5)"),
                  {"d": nights[0]})
    eng.dispose()
    last = nights[-1].isoformat()
    run_dag(_env(url, tmp, nights[-1], retain, pairwise), tmp, start=last, end=last, force=True,
            portfolio="demo-long-only")
    assert _dates(url, "pairwise_correlations") == _latest(pairwise, nights[-1])


def test_record_run_prunes_under_the_lock_and_a_failing_retention_still_releases_it(sqlite_url, monkeypatch, capsys):
    """record-run applies the rules only while the run holds the lock; if they fail, the outcome stays
    recorded, the exit code 0 and the lock released (the next run applies the same rule)."""
    from phases import record_run
    from shared import locking

    monkeypatch.setenv("SIGMABATCH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SIGMABATCH_NOW", _clock(date(2026, 11, 27)))
    eng = get_engine(sqlite_url)
    migrate(eng)
    calls = []
    monkeypatch.setattr(record_run, "_retention", lambda *a: calls.append(a) or {"pairwise_correlations": 7})
    locking.acquire(eng, "run-a", timeout=0)
    assert record_run.main(["--run-id", "run-a"]) == 0 and len(calls) == 1
    assert "retention deleted 7 rows" in capsys.readouterr().out
    assert locking.owner(eng) is None
    assert record_run.main(["--run-id", "run-b"]) == 0 and len(calls) == 1  # not the lock holder: no retention

    def boom(*a):
        raise RuntimeError("disk full")

    monkeypatch.setattr(record_run, "_retention", boom)
    locking.acquire(eng, "run-c", timeout=0)
    assert record_run.main(["--run-id", "run-c"]) == 0
    assert locking.owner(eng) is None
    with transaction(eng) as s:
        assert s.execute(text("SELECT status FROM batch_run_history WHERE run_id = 'run-c'")).scalar_one()
    eng.dispose()
