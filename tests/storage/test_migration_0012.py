"""Migration 0012 keys correlation_calculations, correlation_clusters and stress_test_summaries date first,
keeping the rows and the delete cascade from portfolios, and back (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import inspect, text

from shared.storage.db import get_engine
from tests.storage.test_migration_0007 import _rows, _to

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
KEYS = {"correlation_calculations": (["calculation_date", "portfolio_id", "duration_days"],
                                     ["portfolio_id", "duration_days", "calculation_date"]),
        "correlation_clusters": (["calculation_date", "portfolio_id", "duration_days", "cluster_number", "symbol"],
                                 ["portfolio_id", "duration_days", "calculation_date", "cluster_number", "symbol"]),
        "stress_test_summaries": (["calculation_date", "portfolio_id"], ["portfolio_id", "calculation_date"])}


def _seed(engine) -> None:
    with engine.begin() as c:
        for p in ("p1", "p2"):
            c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                           "VALUES (:p, :p, 'USD', 100000, true)"), {"p": p})
            for d in (D1, D2):
                args = {"p": p, "d": d}
                c.execute(text("INSERT INTO correlation_calculations (portfolio_id, duration_days, calculation_date, "
                               "overall_correlation, data_quality) VALUES (:p, 90, :d, 0.25, 'ok')"), args)
                for k, sym in ((1, "AAA"), (1, "BBB"), (2, "CCC")):
                    c.execute(text("INSERT INTO correlation_clusters (portfolio_id, duration_days, calculation_date, "
                                   "cluster_number, symbol, avg_correlation, weight) "
                                   "VALUES (:p, 90, :d, :k, :s, 0.75, 0.5)"), {**args, "k": k, "s": sym})
                c.execute(text("INSERT INTO stress_test_summaries (portfolio_id, calculation_date, worst_pnl, "
                               "negative_scenarios) VALUES (:p, :d, -1.5, 3)"), args)


def _all(engine) -> dict[str, list[tuple]]:
    return {t: _rows(engine, f"SELECT * FROM {t}") for t in KEYS}


def _keys(engine) -> dict[str, list[str]]:
    insp = inspect(engine)
    return {t: insp.get_pk_constraint(t)["constrained_columns"] for t in KEYS}


def _date_indexes(engine) -> list[str]:
    insp = inspect(engine)
    return sorted(ix["name"] for t in KEYS for ix in insp.get_indexes(t) if ix["name"].endswith("_date"))


def test_upgrade_keys_the_risk_results_date_first_keeping_rows_then_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0011")
    _seed(engine)
    before = _all(engine)
    assert [len(v) for v in before.values()] == [4, 12, 4]
    assert len(_date_indexes(engine)) == 3
    _to(engine, "0012")
    assert _keys(engine) == {t: k[0] for t, k in KEYS.items()}
    assert _date_indexes(engine) == []
    assert _all(engine) == before
    assert {t: sorted(fk["referred_table"] for fk in inspect(engine).get_foreign_keys(t)) for t in KEYS} == \
        {t: ["portfolios"] for t in KEYS}
    with engine.begin() as c:  # the delete cascade from portfolios survived the table copy (SQLite)
        c.execute(text("DELETE FROM portfolios WHERE id = 'p1'"))
    after = _all(engine)
    assert after == {t: [r for r in rows if "p1" not in r] for t, rows in before.items()}
    _to(engine, "0011", down=True)
    assert _keys(engine) == {t: k[1] for t, k in KEYS.items()}
    assert len(_date_indexes(engine)) == 3
    assert _all(engine) == after
    _to(engine, "head")
    engine.dispose()
