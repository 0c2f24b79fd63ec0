"""Migration 0007 moves the per-position rows into per-symbol facts and views, and back (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pandas as pd
from alembic import command
from sqlalchemy import inspect, text

from shared.storage.db import alembic_config, get_engine

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
VIEWS = ("position_market_betas", "position_interest_rate_betas", "position_volatility")


def _to(engine, revision: str, down: bool = False) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(text(sql)))


def _seed_0006(engine) -> None:
    """A book at revision 0006: three lots (two of AAA, a call on AAA), old position rows on D1 and D2."""
    with engine.begin() as c:
        c.execute(text("INSERT INTO portfolios (id, name, currency, equity_balance, is_active) "
                       "VALUES ('p1', 'P1', 'USD', 100000, true)"))
        for pid, sym, under, cls, ptype in ((1, "AAA", None, "PUBLIC", "LONG"), (2, "AAA", None, "PUBLIC", "SHORT"),
                                            (3, "AAA 260619C100", "AAA", "OPTIONS", "LC")):
            c.execute(text("INSERT INTO positions (id, portfolio_id, symbol, underlying_symbol, position_type, "
                           "investment_class, quantity, entry_price, entry_date) VALUES (:i, 'p1', :s, :u, :t, :c, "
                           "1, 10, :e)"), {"i": pid, "s": sym, "u": under, "t": ptype, "c": cls, "e": date(2026, 1, 5)})
        zero = ", ".join(["0"] * 16)
        for d in (D1, D2):
            c.execute(text("INSERT INTO portfolio_snapshots (portfolio_id, snapshot_date, net_asset_value, "
                           "equity_balance, cash_value, long_value, short_value, gross_exposure, net_exposure, "
                           "daily_pnl, daily_unrealized_pnl, daily_realized_pnl, daily_capital_flow, cumulative_pnl, "
                           "cumulative_realized_pnl, cumulative_capital_flow, num_positions, num_long_positions, "
                           f"num_short_positions, positions_without_price) VALUES ('p1', :d, 1e5, 1e5, {zero})"), {"d": d})
            for pid in (1, 2, 3):
                c.execute(text("INSERT INTO position_volatility (position_id, calculation_date, portfolio_id, "
                               "realized_vol_21d, vol_trend, observations) VALUES (:p, :d, 'p1', :v, 'stable', 250)"),
                          {"p": pid, "d": d, "v": 0.2 if d == D1 else 0.3})


def test_upgrade_moves_volatility_to_symbols_and_makes_views_then_downgrade_restores(db_url):
    engine = get_engine(db_url)
    _to(engine, "0006")
    _seed_0006(engine)
    _to(engine, "head")
    insp = inspect(engine)
    assert set(VIEWS) <= set(insp.get_view_names()) and not set(VIEWS) & set(insp.get_table_names())
    # three positions' rows per date -> one symbol row (the option's underlying is AAA too)
    sv = _rows(engine, "SELECT symbol, calculation_date, realized_vol_21d, vol_trend, observations "
                       "FROM symbol_volatility")
    assert [(s, str(d), v, t, n) for s, d, v, t, n in sv] == [("AAA", str(D1), 0.2, "stable", 250),
                                                              ("AAA", str(D2), 0.3, "stable", 250)]
    pv = _rows(engine, "SELECT position_id, calculation_date, portfolio_id, realized_vol_21d FROM position_volatility")
    assert [(p, str(d), pf, v) for p, d, pf, v in pv] == [
        (p, str(d), "p1", 0.2 if d == D1 else 0.3) for p in (1, 2, 3) for d in (D1, D2)]
    # deleting a position: its rows leave the view (the 0004 trigger on positions is gone)
    with engine.begin() as c:
        c.execute(text("DELETE FROM positions WHERE id = 2"))
    assert len(_rows(engine, "SELECT * FROM position_volatility")) == 4
    _to(engine, "0006", down=True)
    insp = inspect(engine)
    assert set(VIEWS) <= set(insp.get_table_names()) and not set(VIEWS) & set(insp.get_view_names())
    assert "symbol_volatility" not in insp.get_table_names()
    back = pd.DataFrame(_rows(engine, "SELECT position_id, realized_vol_21d FROM position_volatility"))
    assert back[0].tolist() == [1, 1, 3, 3]
    with engine.begin() as c:  # the trigger is back
        c.execute(text("DELETE FROM positions WHERE id = 3"))
    assert len(_rows(engine, "SELECT * FROM position_volatility")) == 2
    _to(engine, "head")
    engine.dispose()
