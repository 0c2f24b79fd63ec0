"""Migration 0008 keys pairwise_correlations date first and indexes the dates, keeping the rows, and back
(SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import inspect, text

from shared.storage.db import get_engine
from tests.storage.test_migration_0007 import _rows, _to

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
NEW_KEY = ["calculation_date", "portfolio_id", "duration_days", "symbol_1", "symbol_2"]
OLD_KEY = ["portfolio_id", "duration_days", "calculation_date", "symbol_1", "symbol_2"]
DATE_INDEXED = ("factor_exposures", "stress_test_results", "stress_test_summaries", "correlation_calculations",
                "correlation_clusters")


def _seed_0007(engine) -> list[tuple]:
    """Two portfolios' pairwise rows on two dates at revision 0007; returns them as stored."""
    with engine.begin() as c:
        for pid in ("p1", "p2"):
            c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                           "VALUES (:p, :p, 'USD', 100000, true)"), {"p": pid})
        for pid in ("p1", "p2"):
            for d in (D1, D2):
                for s1, s2, r in (("AAA", "BBB", 0.5), ("AAA", "CCC", -0.25), ("BBB", "CCC", 0.125)):
                    c.execute(text("INSERT INTO pairwise_correlations (portfolio_id, duration_days, calculation_date, "
                                   "symbol_1, symbol_2, correlation_value, data_points, statistical_significance) "
                                   "VALUES (:p, 90, :d, :a, :b, :r, 89, 0.99)"),
                              {"p": pid, "d": d, "a": s1, "b": s2, "r": r + (d == D2) + (pid == "p2") * 10})
    return _pairs(engine)


def _pairs(engine) -> list[tuple]:
    return [(p, n, str(d), a, b, r, k, s) for p, n, d, a, b, r, k, s in _rows(
        engine, "SELECT portfolio_id, duration_days, calculation_date, symbol_1, symbol_2, correlation_value, "
                "data_points, statistical_significance FROM pairwise_correlations")]


def test_upgrade_keys_pairwise_date_first_keeping_rows_then_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0007")
    before = _seed_0007(engine)
    assert len(before) == 12
    assert inspect(engine).get_pk_constraint("pairwise_correlations")["constrained_columns"] == OLD_KEY
    _to(engine, "0008")
    insp = inspect(engine)
    assert insp.get_pk_constraint("pairwise_correlations")["constrained_columns"] == NEW_KEY
    assert _pairs(engine) == before
    for table in DATE_INDEXED:
        assert [ix["column_names"] for ix in insp.get_indexes(table)
                if ix["name"] == f"ix_{table}_date"] == [["calculation_date"]], table
    # the key is still a key, and the 0003 trigger still cascades a portfolio's delete
    with engine.begin() as c:
        c.execute(text("DELETE FROM portfolios WHERE id = 'p2'"))
    assert _pairs(engine) == [r for r in before if r[0] == "p1"]
    try:
        with engine.begin() as c:
            c.execute(text("INSERT INTO pairwise_correlations (portfolio_id, duration_days, calculation_date, "
                           "symbol_1, symbol_2, correlation_value) VALUES ('p1', 90, :d, 'AAA', 'BBB', 0)"), {"d": D1})
        raise AssertionError("duplicate key accepted")
    except Exception as exc:  # IntegrityError from either dialect
        assert "duplicate" in str(exc).lower() or "unique" in str(exc).lower(), exc
    _to(engine, "0007", down=True)
    insp = inspect(engine)
    assert insp.get_pk_constraint("pairwise_correlations")["constrained_columns"] == OLD_KEY
    assert not any(ix["name"] == f"ix_{t}_date" for t in DATE_INDEXED for ix in insp.get_indexes(t))
    assert _pairs(engine) == [r for r in before if r[0] == "p1"]
    with engine.begin() as c:  # the trigger survived the way back too
        c.execute(text("DELETE FROM portfolios WHERE id = 'p1'"))
    assert _pairs(engine) == []
    _to(engine, "head")
    engine.dispose()
