"""Migration 0009 drops the per-row foreign keys of the large fact tables to their reference tables,
keeping the rows and the delete cascade from ``portfolios``, and back; the repository refuses a write
that refers to an unknown id (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from shared.errors import UnknownReferenceError
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, transaction
from tests.storage.test_migration_0007 import _rows, _to

D1 = date(2026, 3, 2)
CHILDREN = {"factor_exposures": "factor_definitions", "symbol_factor_exposures": "factor_definitions",
            "stress_test_results": "stress_test_scenarios"}


def _seed(engine) -> None:
    with engine.begin() as c:
        c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                       "VALUES ('p1', 'P1', 'USD', 100000, true)"))
        c.execute(text("INSERT INTO factor_definitions (id, name, factor_type, calculation_method, display_order, "
                       "is_active) VALUES (1, 'Value', 'style', 'ols', 1, true)"))
        c.execute(text("INSERT INTO stress_test_scenarios (scenario_id, name, category, severity, shock_config, "
                       "active) VALUES ('s1', 'S1', 'c', 'base', '{}', true)"))
        c.execute(text("INSERT INTO factor_exposures (portfolio_id, factor_id, calculation_date, exposure_value, "
                       "exposure_dollar) VALUES ('p1', 1, :d, 0.5, 50000)"), {"d": D1})
        c.execute(text("INSERT INTO symbol_factor_exposures (symbol, factor_id, calculation_date, beta_value, "
                       "calculation_method) VALUES ('AAA', 1, :d, 1.25, 'ols')"), {"d": D1})
        c.execute(text("INSERT INTO stress_test_results (portfolio_id, scenario_id, calculation_date, direct_pnl, "
                       "correlated_pnl, correlation_effect) VALUES ('p1', 's1', :d, -1.5, -2.5, -1.0)"), {"d": D1})


def _all(engine) -> dict[str, list[tuple]]:
    return {t: _rows(engine, f"SELECT * FROM {t}") for t in CHILDREN}


def _fks(engine) -> dict[str, list[str]]:
    insp = inspect(engine)
    return {t: sorted(fk["referred_table"] for fk in insp.get_foreign_keys(t)) for t in CHILDREN}


def test_upgrade_drops_the_reference_keys_keeping_rows_and_cascade_then_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0008")
    _seed(engine)
    before = _all(engine)
    assert all(len(v) == 1 for v in before.values())
    assert _fks(engine) == {t: [ref] for t, ref in CHILDREN.items()}
    _to(engine, "0009")
    assert _fks(engine) == {t: [] for t in CHILDREN}
    assert _all(engine) == before
    with engine.begin() as c:  # the 0004 cascade from portfolios survived the table copy (SQLite)
        c.execute(text("DELETE FROM portfolios WHERE id = 'p1'"))
    assert _all(engine)["factor_exposures"] == [] and _all(engine)["stress_test_results"] == []
    _to(engine, "0008", down=True)
    assert _fks(engine) == {t: [ref] for t, ref in CHILDREN.items()}
    assert _all(engine)["symbol_factor_exposures"] == before["symbol_factor_exposures"]
    _to(engine, "head")
    engine.dispose()


@pytest.mark.parametrize("model, frame", [
    (m.StressTestPnl, {"portfolio_id": ["p1", "p1"], "scenario_id": ["s1", "nope"], "direct_pnl": [1.0, 2.0],
                       "correlated_pnl": [1.0, 2.0], "correlation_effect": [0.0, 0.0], "loss_capped": False}),
    (m.FactorExposure, {"portfolio_id": ["p1"], "factor_id": [999_999], "exposure_value": [0.1],
                        "exposure_dollar": [1e4]}),
    (m.SymbolFactorExposure, {"symbol": ["AAA"], "factor_id": [999_999], "beta_value": [1.0],
                              "calculation_method": ["ols"]}),
])
def test_a_write_referring_to_an_unknown_id_is_refused_whole(engine, model, frame):
    with transaction(engine) as s:
        repo.upsert(s, m.StressTestScenario, pd.DataFrame([{"scenario_id": "s1", "name": "S1", "category": "c",
                                                            "severity": "base", "shock_config": {}}]))
        repo.seed_factor_definitions(s)
    rows = pd.DataFrame({**frame, "calculation_date": D1})
    for write in (lambda s: repo.replace(s, model, rows, {"calculation_date": [D1]}),
                  lambda s: repo.upsert(s, model, rows)):
        with pytest.raises(UnknownReferenceError, match="nothing written"), transaction(engine) as s:
            write(s)
    with engine.connect() as c:
        assert c.execute(text(f"SELECT count(*) FROM {model.__tablename__}")).scalar_one() == 0
