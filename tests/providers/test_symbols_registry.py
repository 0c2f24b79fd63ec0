"""Symbol helpers, test doubles and provider selection."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from shared.errors import ConfigError, ProviderError
from shared.providers.base import PRICE_COLUMNS, MarketData
from shared.providers.failing import EmptyProvider, FailingProvider, InMemoryPriceProvider
from shared.providers.file import FilePriceProvider
from shared.providers.registry import build_market_data
from shared.providers.symbols import is_option_symbol, is_skipped_symbol, normalize_symbol, yahoo_symbol
from shared.providers.synthetic import SyntheticMarket
from shared.settings import NEW_YORK, Settings


def test_normalize_and_yahoo():
    assert normalize_symbol("  brk.b ") == "BRK.B"
    assert normalize_symbol(None) == ""
    assert normalize_symbol(float("nan")) == normalize_symbol(pd.NA) == normalize_symbol(np.nan) == ""
    assert is_skipped_symbol(float("nan"))
    assert yahoo_symbol("brk.b") == "BRK-B"
    assert yahoo_symbol("AAPL") == "AAPL"


@pytest.mark.parametrize("symbol", ["", "  ", None, "HOME_EQUITY", "money_market", "EQ5D6A2D8F", "FO_ABC",
                                    "EQ_PRIVATE1", "AAPL250117C00150000", "SPY240621P00400000",
                                    " aapl250117c00150000 "])
def test_skipped(symbol):
    assert is_skipped_symbol(symbol)


@pytest.mark.parametrize("symbol", ["AAPL", "BRK.B", "EQIX", "FOX", "SPY", "A1234567C1234567"])
def test_not_skipped(symbol):
    assert not is_skipped_symbol(symbol)


def test_option_symbol():
    assert is_option_symbol("AAPL250117C00150000")
    assert not is_option_symbol("AAPL250117X00150000")
    assert not is_option_symbol("250117C0015000")


def test_failing_provider():
    f = FailingProvider("boom")
    for call in (lambda: f.fetch_prices(["A"], date(2026, 1, 1), date(2026, 1, 2)),
                 lambda: f.fetch_profiles(["A"]), lambda: f.fetch_statements(["A"]),
                 lambda: f.fetch_rates(["DGS10"], date(2026, 1, 1), date(2026, 1, 2)),
                 lambda: f.fetch_sector_weights("SP500", date(2026, 1, 1)),
                 lambda: f.fetch_splits(["A"], date(2026, 1, 1), date(2026, 1, 2))):
        with pytest.raises(ProviderError, match="boom"):
            call()
    assert len(f.calls) == 6


def test_empty_and_in_memory_providers():
    e = EmptyProvider("x")
    assert e.fetch_prices(["A"], date(2026, 1, 1), date(2026, 1, 2)).empty
    frame = pd.DataFrame({"date": ["2026-01-02", "2026-01-05", "2026-01-06"], "symbol": ["a", "A", "B"],
                          "close": [1.0, 2.0, 3.0]})
    mem = InMemoryPriceProvider(frame)
    out = mem.fetch_prices(["A"], date(2026, 1, 1), date(2026, 1, 5))
    assert tuple(out.columns) == PRICE_COLUMNS
    assert out["close"].tolist() == [1.0, 2.0] and out["date"].tolist() == [date(2026, 1, 2), date(2026, 1, 5)]
    assert mem.calls == [(("A",), date(2026, 1, 1), date(2026, 1, 5))]
    assert mem.fetch_prices(["Z"], date(2026, 1, 1), date(2026, 1, 5)).empty


def test_registry_synthetic_is_memoised():
    s = Settings(provider="synthetic", synthetic_symbols=12, synthetic_seed=3)
    md = build_market_data(s)
    assert isinstance(md, MarketData) and md.name == "synthetic"
    assert isinstance(md.prices, SyntheticMarket) and len(md.prices.stock_symbols) == 12
    assert md.prices is md.profiles is md.fundamentals is md.rates is md.benchmarks
    assert build_market_data(s).prices is md.prices
    assert build_market_data(Settings(synthetic_symbols=12, synthetic_seed=4)).prices is not md.prices
    pinned = build_market_data(Settings(synthetic_symbols=12, synthetic_seed=3,
                                        now=datetime(2026, 3, 2, 18, tzinfo=NEW_YORK))).prices
    assert pinned.as_of == date(2026, 3, 2)


def test_registry_file(tmp_path):
    md = build_market_data(Settings(provider=f"file:{tmp_path / 'px.csv'}"))
    assert isinstance(md.prices, FilePriceProvider) and md.profiles is md.prices and md.benchmarks is md.prices
    assert md.fundamentals.fetch_statements(["A"]).empty
    assert md.rates.fetch_rates(["DGS10"], date(2026, 1, 1), date(2026, 1, 2)).empty


def test_registry_failing_and_unavailable():
    md = build_market_data(Settings(provider="failing"))
    with pytest.raises(ProviderError):
        md.prices.fetch_prices(["SPY"], date(2026, 1, 1), date(2026, 1, 2))
    # polygon alone without its key: nothing left to serve -> a clear ConfigError, no crash
    with pytest.raises(ConfigError, match="no market-data provider is enabled: polygon: POLYGON_API_KEY is not set"):
        build_market_data(Settings(provider="polygon", provider_chain=("polygon",)))
    with pytest.raises(ConfigError, match="unknown provider 'bloomberg'"):
        build_market_data(Settings(provider="bloomberg"))
    with pytest.raises(ConfigError, match="needs a path"):
        build_market_data(Settings(provider="file:"))
