"""A factor ETF missing from the price data is bad input (exit 2, not retried) naming the ETFs, and nothing
is written — not a ValueError with exit 1 (issue 15)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared.providers.synthetic import SyntheticMarket
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction
from shared.storage.price_cache import write_price_cache

DAY = date(2026, 11, 27)
ARGS = ["--start-date", DAY.isoformat(), "--end-date", DAY.isoformat()]
DROPPED = ("VTV", "USMV")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    market = SyntheticMarket(6, seed=5)
    symbols = [s for s in market.symbols if s not in DROPPED]
    prices = market.fetch_prices(symbols, date(2025, 10, 1), DAY)
    cache = write_price_cache(tmp_path / "cache.parquet", prices, date(2025, 10, 1), DAY)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = get_engine(url)
    migrate(engine)
    zero = dict.fromkeys(("net_asset_value", "cash_value", "long_value", "short_value", "gross_exposure",
                          "net_exposure", "daily_pnl", "daily_unrealized_pnl", "daily_realized_pnl",
                          "daily_capital_flow", "cumulative_pnl", "cumulative_realized_pnl",
                          "cumulative_capital_flow"), 0.0)
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "alpha", "name": "alpha", "equity_balance": 1e6,
                                                   "currency": "USD", "is_active": True}]))
        repo.upsert(s, m.Position, pd.DataFrame([{"portfolio_id": "alpha", "symbol": market.stock_symbols[0],
                                                  "position_type": "LONG", "quantity": 10.0, "entry_price": 50.0,
                                                  "entry_date": date(2026, 11, 20), "investment_class": "PUBLIC"}]),
                    conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
        repo.upsert(s, m.PortfolioSnapshot, pd.DataFrame([{
            "portfolio_id": "alpha", "snapshot_date": DAY, **zero, "equity_balance": 1e6, "num_positions": 0,
            "num_long_positions": 0, "num_short_positions": 0, "positions_without_price": 0}]))
    for k, v in {"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
                 "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00"}.items():
        monkeypatch.setenv(k, v)
    return engine, cache


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(text(f"select count(*) from {t}")).scalar_one()
                for t in ("symbol_factor_exposures", "stress_test_results", "stress_test_summaries",
                          "stress_test_scenarios")}


@pytest.mark.parametrize("step", ["symbol_factors", "stress_tests"])
def test_missing_factor_etf_is_bad_input(setup, capsys, step):
    import importlib

    engine, cache = setup
    before = counts(engine)
    code = importlib.import_module(f"phases.{step}").main([*ARGS, "--price-cache", str(cache)])
    out = capsys.readouterr()
    assert code == 2, out.out[-2000:] + out.err[-2000:]
    assert "no closes for factor ETF(s) VTV, USMV" in out.err
    assert counts(engine) == before
