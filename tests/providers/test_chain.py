"""The fallback chain over real adapters: the first provider fails for some symbols, the next serves them."""

from __future__ import annotations

import socket
from datetime import date

import pytest

from shared.errors import ConfigError, ProviderError
from shared.providers.chain import FallbackPriceProvider
from shared.providers.polygon import PolygonProvider
from shared.providers.registry import build_market_data
from shared.providers.yahoo import YahooProvider
from shared.settings import Settings
from tests.providers import fakes
from tests.providers.httpfake import FakeServer, Reply

START, END = date(2026, 3, 1), date(2026, 4, 30)


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def test_fallback_serves_missing_symbols_and_records_who(fast):
    a, m, z = fakes.series([100.0, 101.0]), fakes.series([50.0, 51.0]), fakes.series([7.0, 8.0])
    with FakeServer() as yahoo, FakeServer() as poly:
        ok = fakes.yahoo_handler({"AAPL": a})
        yahoo.route("/", lambda p, q: Reply(500, "boom") if "MSFT" in p else ok(p, q))  # MSFT: Yahoo outage
        poly.route("/", fakes.polygon_handler({"AAPL": a, "MSFT": m, "ZZZ": z}))       # ZZZ: Yahoo doesn't know it
        chain = FallbackPriceProvider([YahooProvider(base_url=yahoo.url, **fast),
                                       PolygonProvider("k", base_url=poly.url, **fast)])
        res = chain.fetch_prices_detailed(["AAPL", "MSFT", "ZZZ", "NOPE"], START, END)
        assert poly.hits("/v2/aggs/ticker/AAPL/") == 0  # only the missing symbols go down the chain
    src = res.frame.groupby("symbol")["data_source"].unique().map(list).to_dict()
    assert src == {"AAPL": ["yfinance"], "MSFT": ["polygon"], "ZZZ": ["polygon"]}
    assert res.errors == {}
    assert chain.served_by == {"AAPL": "yfinance", "MSFT": "polygon", "ZZZ": "polygon"}
    # the Yahoo outage for MSFT is reported, not swallowed
    assert [(e["provider"], e["symbols"]) for e in chain.events] == [("yfinance", ["MSFT"])]
    assert "HTTP 500" in chain.events[0]["error"]


def test_first_provider_down_entirely(fast):
    with FakeServer() as poly:
        poly.route("/", fakes.polygon_handler({"AAPL": fakes.series([1.0, 2.0])}))
        chain = FallbackPriceProvider([YahooProvider(base_url=_closed_port(), **fast),
                                       PolygonProvider("k", base_url=poly.url, **fast)])
        out = chain.fetch_prices(["AAPL"], START, END)
    assert out["data_source"].tolist() == ["polygon", "polygon"]
    assert chain.events[0]["provider"] == "yfinance" and "failed for all 1" in chain.events[0]["error"]


def test_every_provider_down_raises_naming_each(fast):
    chain = FallbackPriceProvider([YahooProvider(base_url=_closed_port(), **fast),
                                   PolygonProvider("k", base_url=_closed_port(), **fast)])
    with pytest.raises(ProviderError, match="no provider could serve prices: yfinance: .*; polygon: "):
        chain.fetch_prices(["AAPL"], START, END)


def test_registry_builds_the_configured_chain(caplog):
    md = build_market_data(Settings(provider="yfinance", extra={"POLYGON_API_KEY": "k"}))
    assert [p.name for p in md.prices.providers] == ["yfinance", "polygon"]
    assert "provider fmp disabled: FMP_API_KEY is not set" in caplog.text
    assert md.rates.fetch_rates(["DGS10"], START, END).empty  # FRED disabled without its key
    md = build_market_data(Settings(provider="fmp", extra={"FMP_API_KEY": "k", "FRED_API_KEY": "f"}))
    assert [p.name for p in md.prices.providers] == ["fmp", "yfinance"] and md.rates.name == "fred"
    with pytest.raises(ConfigError, match="no market-data provider is enabled"):
        build_market_data(Settings(provider="fmp", provider_chain=("fmp",)))


def test_settings_validation():
    s = Settings.from_env({"SIGMABATCH_PROVIDER_CHAIN": "polygon, yfinance", "SIGMABATCH_HTTP_TIMEOUT": "2.5",
                           "SIGMABATCH_RATE_LIMITS": "polygon=4,fmp=0", "SIGMABATCH_YAHOO_URL": "http://127.0.0.1:9/",
                           "FMP_API_KEY": "x"})
    assert s.provider_chain == ("polygon", "yfinance") and s.http_timeout == 2.5
    assert s.rate_limits["polygon"] == 4 and s.rate_limits["fmp"] == 0 and s.rate_limits["yfinance"] == 120
    assert s.yahoo_url == "http://127.0.0.1:9" and s.api_key("fmp") == "x" and s.api_key("polygon") is None
    for env, match in [({"SIGMABATCH_PROVIDER_CHAIN": "yfinance,bloomberg"}, "SIGMABATCH_PROVIDER_CHAIN"),
                       ({"SIGMABATCH_PROVIDER_CHAIN": "fmp,fmp"}, "twice"),
                       ({"SIGMABATCH_HTTP_TIMEOUT": "0"}, "SIGMABATCH_HTTP_TIMEOUT"),
                       ({"SIGMABATCH_HTTP_RETRIES": "0"}, "SIGMABATCH_HTTP_RETRIES"),
                       ({"SIGMABATCH_RATE_LIMITS": "polygon=fast"}, "SIGMABATCH_RATE_LIMITS"),
                       ({"SIGMABATCH_FMP_URL": "ftp://x"}, "SIGMABATCH_FMP_URL")]:
        with pytest.raises(ConfigError, match=match):
            Settings.from_env(env)
