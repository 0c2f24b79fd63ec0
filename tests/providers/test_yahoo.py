"""The Yahoo adapter against a loopback server speaking the chart API v8 / quoteSummary / timeseries."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from shared.errors import ProviderError
from shared.providers.base import PRICE_COLUMNS, PROFILE_COLUMNS, STATEMENT_COLUMNS
from shared.providers.yahoo import YahooProvider
from tests.providers import fakes
from tests.providers.httpfake import FakeServer, Reply, payload

START, END = date(2026, 3, 1), date(2026, 4, 30)


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _chart_route(srv, handler):
    srv.route("/", lambda p, q: Reply(404, ""))
    srv.route("/v1/test/getcrumb", Reply(200, "Xy1crumbZ"))
    srv.route("/v8/finance/chart/", handler)


def test_recorded_chart_payload_and_symbol_spelling(server, fast):
    _chart_route(server, lambda p, q: Reply(200, payload("yahoo_chart_AAPL.json")))
    out = YahooProvider(base_url=server.url, **fast).fetch_prices(["AAPL", "brk.b"], START, END)
    assert tuple(out.columns) == PRICE_COLUMNS
    aapl = out[out["symbol"] == "AAPL"]
    assert aapl["date"].tolist() == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert aapl["close"].tolist() == [227.48, 229.05, 228.61]  # Close, not Adj Close (domain spec §3.6)
    assert set(out["data_source"]) == {"yfinance"} and "BRK.B" in set(out["symbol"])
    assert any(p == "/v8/finance/chart/BRK-B" for p, _ in server.requests)  # Yahoo spelling on the wire


def test_429_then_success_is_retried(server, fast):
    frame = fakes.series([100.0, 101.0, 102.0])
    ok = fakes.yahoo_handler({"AAPL": frame})
    calls = {"n": 0}

    def flaky(p, q):
        calls["n"] += 1
        return Reply(429, "Too Many Requests") if calls["n"] <= 2 else ok(p, q)

    _chart_route(server, flaky)
    res = YahooProvider(base_url=server.url, **fast).fetch_prices_detailed(["AAPL"], START, END)
    assert res.errors == {} and res.frame["close"].tolist() == [100.0, 101.0, 102.0]
    assert calls["n"] >= 3


def test_500_for_one_symbol_is_reported_not_swallowed(server, fast):
    ok = fakes.yahoo_handler({"AAPL": fakes.series([100.0, 101.0])})
    _chart_route(server, lambda p, q: Reply(500, "Internal Server Error") if "MSFT" in p else ok(p, q))
    res = YahooProvider(base_url=server.url, **fast).fetch_prices_detailed(["AAPL", "MSFT"], START, END)
    assert set(res.frame["symbol"]) == {"AAPL"}
    assert "MSFT" in res.errors and "HTTP 500" in res.errors["MSFT"]
    assert server.hits("/v8/finance/chart/MSFT") == 3  # three tries


def test_outage_for_every_symbol_raises(server, fast):
    _chart_route(server, lambda p, q: Reply(503, "Service Unavailable"))
    with pytest.raises(ProviderError, match="yfinance: prices failed for all 2 symbol"):
        YahooProvider(base_url=server.url, **fast).fetch_prices(["AAPL", "MSFT"], START, END)


def test_timeout_is_bounded(server, fast):
    """A server that never answers: the client's timeout fires on every try and the retries stop at 3."""
    _chart_route(server, lambda p, q: Reply(200, payload("yahoo_chart_AAPL.json"), hold=True))
    with pytest.raises(ProviderError, match="(?i)timeout|timed out"):
        YahooProvider(base_url=server.url, **fast).fetch_prices(["AAPL"], START, END)
    assert server.hits("/v8/finance/chart/AAPL") == 3  # the policy's 3 tries, then the error


def test_empty_data_and_unknown_symbol_are_absent(server, fast):
    empty = fakes.yahoo_chart("EMPTY", fakes.series([]))
    ok = fakes.yahoo_handler({"AAPL": fakes.series([100.0])})
    _chart_route(server, lambda p, q: Reply(200, empty) if "EMPTY" in p else ok(p, q))
    res = YahooProvider(base_url=server.url, **fast).fetch_prices_detailed(["AAPL", "EMPTY", "NOPE"], START, END)
    assert set(res.frame["symbol"]) == {"AAPL"} and res.errors == {}


def test_malformed_json_is_an_error(server, fast):
    _chart_route(server, lambda p, q: Reply(200, '{"chart": {"result": [{"meta": '))
    with pytest.raises(ProviderError, match="prices failed for all 1"):
        YahooProvider(base_url=server.url, **fast).fetch_prices(["AAPL"], START, END)


def test_splits_come_from_chart_events(server, fast):
    frame, day = fakes.unadjusted_with_split()
    _chart_route(server, fakes.yahoo_handler({"AAPL": frame}, {"AAPL": [(day, 2.0)]}))
    p = YahooProvider(base_url=server.url, **fast)
    prices = p.fetch_prices(["AAPL"], START, END)
    # Close is split-adjusted: no -50% day
    assert prices["close"].pct_change().abs().max() < 0.1
    splits = p.fetch_splits(["AAPL"], START, END)
    assert splits.to_dict("records") == [{"symbol": "AAPL", "date": day, "ratio": 2.0}]


def test_profiles_and_statements(server, fast):
    _chart_route(server, fakes.yahoo_handler({}))
    for prefix in ("/v10", "/v7", "/ws"):
        server.route(prefix, fakes.yahoo_profile_handler)
    p = YahooProvider(base_url=server.url, **fast)
    prof = p.fetch_profiles(["AAPL", "NOPE"])
    assert tuple(prof.columns) == PROFILE_COLUMNS and prof["symbol"].tolist() == ["AAPL"]
    row = prof.iloc[0]
    assert row["company_name"] == "Apple Inc." and row["sector"] == "Technology"
    assert row["market_cap"] == 3.412e12 and row["beta"] == 1.24 and not row["is_etf"]
    assert row["dividend_yield"] == pytest.approx(1.04 / 229.87)
    st = p.fetch_statements(["AAPL"])
    assert tuple(st.columns) == STATEMENT_COLUMNS
    rev = st[(st["item"] == "revenue") & (st["frequency"] == "q")]
    assert sorted(rev["period_date"]) == [date(2025, 9, 27), date(2025, 12, 27)]
    assert set(st["statement"]) == {"income", "balance", "cashflow"}
    assert pd.Series(st["fiscal_quarter"]).dropna().isin([1, 2, 3, 4]).all()
