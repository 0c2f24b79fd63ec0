"""Phases 1.5 and 1.75 read prices from the price-cache snapshot file, never from the database."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from phases import symbol_factors, symbol_metrics
from shared import calendar
from shared.analytics.metrics import symbol_return_metrics
from shared.providers.synthetic import SyntheticMarket
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction
from shared.storage.price_cache import read_price_cache, write_price_cache

END = date(2026, 11, 27)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("SIGMABATCH_DATABASE_URL", url)
    monkeypatch.setenv("SIGMABATCH_NOW", "2026-11-27T18:00:00-05:00")
    engine = get_engine(url)
    migrate(engine)
    market = SyntheticMarket(12, seed=3)
    start = calendar.shift_sessions(END, -4)
    prices = market.fetch_prices(market.symbols, start - timedelta(days=366), END)
    path = write_price_cache(tmp_path / "cache.parquet", prices, start - timedelta(days=366), END)
    with transaction(engine) as s:  # the database holds different (wrong) closes: they must not be used
        wrong = prices.assign(close=1.0)
        repo.upsert(s, m.MarketDataCache, wrong)
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p", "name": "p", "equity_balance": 1e6, "currency": "USD",
                                                    "is_active": True}]))
        repo.upsert(s, m.Position, pd.DataFrame([{"portfolio_id": "p", "symbol": market.stock_symbols[0],
                                                  "position_type": "LONG", "quantity": 10.0, "entry_price": 10.0,
                                                  "entry_date": start - timedelta(days=30), "investment_class": "PUBLIC"}]),
                    conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    return engine, path, start


def test_symbol_metrics_use_the_snapshot(setup):
    engine, path, start = setup
    assert symbol_metrics.main(["--start-date", start.isoformat(), "--end-date", END.isoformat(),
                                "--price-cache", str(path)]) == 0
    with transaction(engine) as s:
        got = repo.read_frame(s, m.SymbolDailyMetrics.__table__.select())
    expected = symbol_return_metrics(read_price_cache(path).wide(), calendar.sessions(start, END))
    merged = got.merge(expected.assign(metrics_date=pd.to_datetime(expected["metrics_date"]).dt.date),
                       on=["symbol", "metrics_date"], suffixes=("", "_exp"))
    assert len(merged) == len(expected) > 0
    pd.testing.assert_series_equal(merged["current_price"], merged["current_price_exp"], check_names=False)
    assert (merged["current_price"] != 1.0).all()


def test_symbol_factors_use_the_snapshot(setup):
    engine, path, start = setup
    assert symbol_factors.main(["--start-date", start.isoformat(), "--end-date", END.isoformat(),
                                "--price-cache", str(path)]) == 0
    with transaction(engine) as s:
        betas = repo.load_symbol_betas(s, calendar.sessions(start, END))
    mkt = betas[betas["factor"] == "Market Beta (90D)"]
    assert mkt["calculation_date"].nunique() == 5
    # with the database's constant closes every return would be 0 and no beta could be fitted
    spy = mkt[mkt["symbol"] == "SPY"]["beta_value"]
    assert spy.round(10).eq(1.0).all()


def test_corrupt_snapshot_is_a_clear_bad_input(setup, tmp_path, capsys):
    _, _, start = setup
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    code = symbol_factors.main(["--start-date", start.isoformat(), "--end-date", END.isoformat(),
                                "--price-cache", str(bad)])
    assert code == 2
    assert "is corrupt or not a sigmabatch snapshot" in capsys.readouterr().err
