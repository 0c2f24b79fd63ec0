"""Migration 0011 keys factor_exposures and symbol_factor_exposures date first, keeping the rows and the
delete cascade and the position views over the symbol betas, and back (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import inspect, text

from shared.storage import models as m
from shared.storage.db import get_engine
from tests.storage.test_migration_0007 import _rows, _to
from tests.storage.test_repository import _snapshot

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
KEYS = {"factor_exposures": (["calculation_date", "portfolio_id", "factor_id"],
                             ["portfolio_id", "factor_id", "calculation_date"]),
        "symbol_factor_exposures": (["calculation_date", "symbol", "factor_id"],
                                    ["symbol", "factor_id", "calculation_date"])}


def _seed(engine) -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                       "VALUES ('p1', 'P1', 'USD', 100000, true)"))
        c.execute(text("INSERT INTO positions (id, portfolio_id, symbol, position_type, investment_class, quantity, "
                       "entry_price, entry_date) VALUES (1, 'p1', 'AAA', 'LONG', 'PUBLIC', 10, 9, :d)"), {"d": D1})
        for i, name in ((1, "Market Beta (90D)"), (2, "Value")):
            c.execute(text("INSERT INTO factor_definitions (id, name, factor_type, calculation_method, display_order, "
                           "is_active) VALUES (:i, :n, 'style', 'ols', :i, true)"), {"i": i, "n": name})
        for d in (D1, D2):
            c.execute(m.PortfolioSnapshot.__table__.insert(), _snapshot("p1", d))
            for f in (1, 2):
                c.execute(text("INSERT INTO factor_exposures (portfolio_id, factor_id, calculation_date, "
                               "exposure_value, exposure_dollar) VALUES ('p1', :f, :d, 0.5, 5e4)"), {"f": f, "d": d})
                c.execute(text("INSERT INTO symbol_factor_exposures (symbol, factor_id, calculation_date, beta_value, "
                               "calculation_method) VALUES ('AAA', :f, :d, :b, 'ols')"), {"f": f, "d": d, "b": f + 0.25})


def _all(engine) -> dict[str, list[tuple]]:
    return {t: _rows(engine, f"SELECT * FROM {t}") for t in (*KEYS, "position_market_betas")}


def test_upgrade_keys_the_factor_tables_date_first_keeping_rows_then_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0010")
    _seed(engine)
    before = _all(engine)
    assert [len(v) for v in before.values()] == [4, 4, 2]
    _to(engine, "0011")
    insp = inspect(engine)
    assert {t: insp.get_pk_constraint(t)["constrained_columns"] for t in KEYS} == {t: k[0] for t, k in KEYS.items()}
    assert not [ix for t in KEYS for ix in insp.get_indexes(t) if ix["name"].endswith("_date")]
    assert _all(engine) == before  # the rows, and the position view over the symbol betas
    with engine.begin() as c:  # the 0004 cascade from portfolios survived the table copy (SQLite)
        c.execute(text("DELETE FROM positions"))
        c.execute(text("DELETE FROM portfolios"))
    assert _all(engine)["factor_exposures"] == []
    _to(engine, "0010", down=True)
    insp = inspect(engine)
    assert {t: insp.get_pk_constraint(t)["constrained_columns"] for t in KEYS} == {t: k[1] for t, k in KEYS.items()}
    assert _all(engine)["symbol_factor_exposures"] == before["symbol_factor_exposures"]
    _to(engine, "head")
    engine.dispose()
