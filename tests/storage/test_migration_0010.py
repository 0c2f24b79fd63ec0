"""Migration 0010: stress results stored as numbers, exposures and scenario sessions, and the
``stress_test_results`` view rebuilds each row's JSON as the batch wrote it before (SQLite, PostgreSQL).

The rows before the migration are made the way the stress phase made them until 0010 (the factor-impact
dicts of :func:`shared.analytics.stress.stress_test_dates` and one metadata dict per date, scenario and
cap), so reading them back through the view after the upgrade is the "same values as before" check; a
downgrade puts the JSON columns back into a table.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect, select, text

from shared.analytics.stress import (
    FACTORS,
    ewma_covariances,
    implied_factor_moves_stack,
    scenario_shocks,
    stress_test_dates,
)
from shared.scenarios import load_scenarios
from shared.storage import jsontext
from shared.storage import models as m
from shared.storage.db import get_engine, transaction
from tests.storage.test_migration_0007 import _to

DAYS = [date(2026, 3, 2), date(2026, 3, 3)]
NAMES = ["Market Beta (90D)", "Value", "Growth", "Momentum", "Quality", "Size", "Low Volatility", "IR Beta"]


def _old_rows() -> list[dict]:
    """Three books (one cash only) on two dates with the old per-row JSON, as phase 6d wrote it up to 0009."""
    rng = np.random.default_rng(7)
    active = [s for s in load_scenarios() if s.active]
    fret = pd.DataFrame(rng.normal(0, 0.01, (300, len(FACTORS))), columns=FACTORS,
                        index=pd.bdate_range("2025-01-01", periods=300))
    covs, used = ewma_covariances(fret, [298, 299])
    idx = pd.MultiIndex.from_product([DAYS, ["p1", "p2", "p3"]], names=["calculation_date", "portfolio_id"])
    expo = pd.DataFrame(rng.normal(0, 5e4, (len(idx), len(NAMES))), index=idx, columns=NAMES)
    expo.loc[(slice(None), "p3"), :] = np.nan                                     # cash only: no exposure
    date_code = np.repeat([0, 1], 3)
    equity = np.full(len(idx), 1e5)
    equity[0] = 1e3                                                              # a capped loss somewhere
    spy = pd.DataFrame(rng.normal(0, 0.2, (2, 7)), columns=NAMES[1:])
    out = stress_test_dates(expo, date_code, active, covs, equity, spy_betas=spy, tlt_market_beta=np.array([0.1, -0.2]))
    moves = implied_factor_moves_stack(covs, scenario_shocks(active)).round(6)
    rows = []
    for i, r in enumerate(out.itertuples(index=False)):
        di, pid = date_code[r.row], idx[r.row][1]
        si = i % len(active)
        meta = {"scenario_name": active[si].name, "category": active[si].category,
                "model": "conditional_ewma_covariance", "covariance_date": DAYS[di].isoformat(),
                "data_days": int(used[di]), "covariance": True, "tlt_duration": 17.0,
                "loss_capped": bool(r.loss_capped), "implied_moves": dict(zip(FACTORS, moves[di, si].tolist(), strict=True))}
        rows.append({"portfolio_id": pid, "scenario_id": r.scenario_id, "calculation_date": DAYS[di],
                     "direct_pnl": r.direct_pnl, "correlated_pnl": r.correlated_pnl,
                     "correlation_effect": r.correlation_effect, "factor_impacts": r.factor_impacts,
                     "calculation_metadata": meta})
    assert any(x["calculation_metadata"]["loss_capped"] for x in rows)
    return rows


def _seed_0009(engine, rows: list[dict]) -> None:
    with engine.begin() as c:
        for pid in ("p1", "p2", "p3"):
            c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                           "VALUES (:p, :p, 'USD', 100000, true)"), {"p": pid})
        for s in load_scenarios():
            c.execute(text("INSERT INTO stress_test_scenarios (scenario_id, name, category, severity, shock_config, "
                           "active) VALUES (:i, :n, :c, :s, :k, :a)"),
                      {"i": s.id, "n": s.name, "c": s.category, "s": s.severity, "k": jsontext.dumps(dict(s.shocks)),
                       "a": s.active})
        c.execute(text("INSERT INTO stress_test_results (portfolio_id, scenario_id, calculation_date, direct_pnl, "
                       "correlated_pnl, correlation_effect, factor_impacts, calculation_metadata) VALUES "
                       "(:portfolio_id, :scenario_id, :calculation_date, :direct_pnl, :correlated_pnl, "
                       ":correlation_effect, :fi, :md)"),
                  [{**r, "fi": jsontext.dumps(r["factor_impacts"]), "md": jsontext.dumps(r["calculation_metadata"])}
                   for r in rows])


def _approx(a, b) -> bool:
    """Equal JSON documents, numbers to 1e-12 relative (SQLite prints 15 to 17 significant digits)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_approx(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str):
        return a == b
    return a == pytest.approx(b, rel=1e-12, abs=1e-9)


def _view(engine) -> dict[tuple, dict]:
    with transaction(engine) as s:
        rows = s.execute(select(m.StressTestResult.__table__)).mappings().all()
    return {(r["portfolio_id"], r["scenario_id"], str(r["calculation_date"])): dict(r) for r in rows}


def test_upgrade_keeps_every_stress_result_readable_as_before_and_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0009")
    rows = _old_rows()
    _seed_0009(engine, rows)
    _to(engine, "0010")
    insp = inspect(engine)
    assert "stress_test_results" in insp.get_view_names()
    with engine.connect() as c:
        counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("stress_test_pnl", "stress_exposures", "stress_scenario_sessions")}
    assert counts == {"stress_test_pnl": len(rows), "stress_exposures": 6, "stress_scenario_sessions": 2 * 19}
    got = _view(engine)
    assert len(got) == len(rows)
    for r in rows:
        g = got[(r["portfolio_id"], r["scenario_id"], str(r["calculation_date"]))]
        for col in ("direct_pnl", "correlated_pnl", "correlation_effect"):
            assert g[col] == r[col], col
        assert _approx(g["factor_impacts"], r["factor_impacts"]), (r["scenario_id"], g["factor_impacts"],
                                                                   r["factor_impacts"])
        assert _approx(g["calculation_metadata"], r["calculation_metadata"]), (g["calculation_metadata"],
                                                                               r["calculation_metadata"])
    with engine.begin() as c:  # the cascade from portfolios reaches the new tables
        c.execute(text("DELETE FROM portfolios WHERE id = 'p1'"))
    assert not [k for k in _view(engine) if k[0] == "p1"]
    _to(engine, "0009", down=True)
    assert "stress_test_results" in inspect(engine).get_table_names()
    with engine.connect() as c:
        back = c.execute(text("SELECT portfolio_id, factor_impacts, calculation_metadata FROM stress_test_results "
                              "WHERE portfolio_id = 'p2'")).fetchall()
    assert len(back) == 2 * 19 and all(b[1] is not None and b[2] is not None for b in back)
    _to(engine, "head")
    engine.dispose()
