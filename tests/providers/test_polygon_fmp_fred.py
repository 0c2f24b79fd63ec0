"""Polygon (polygon-api-client), FMP (requests) and FRED (fredapi) adapters against loopback servers."""

from __future__ import annotations

from datetime import date

import pytest

from shared.errors import ProviderError
from shared.providers.base import PRICE_COLUMNS, RATE_COLUMNS
from shared.providers.fmp import FmpProvider
from shared.providers.fred import FredRatesProvider
from shared.providers.polygon import PolygonProvider
from tests.providers import fakes
from tests.providers.httpfake import FakeServer, Reply, payload

START, END = date(2026, 3, 1), date(2026, 4, 30)


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _flaky(status: int, times: int, then):
    calls = {"n": 0}

    def handle(p, q):
        calls["n"] += 1
        return Reply(status, "oops") if calls["n"] <= times else then(p, q)

    return handle


# --- Polygon --------------------------------------------------------------------------------------------

def polygon(server, fast) -> PolygonProvider:
    return PolygonProvider("test-polygon-key", base_url=server.url, **fast)


def test_polygon_recorded_aggs(server, fast):
    server.route("/v2/aggs/ticker/AAPL/", Reply(200, payload("polygon_aggs_AAPL.json")))
    out = polygon(server, fast).fetch_prices(["AAPL"], START, END)
    assert tuple(out.columns) == PRICE_COLUMNS
    assert out["date"].tolist() == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert out["close"].tolist() == [227.48, 229.05, 228.61] and set(out["data_source"]) == {"polygon"}
    path, query = server.requests[0]
    assert path == "/v2/aggs/ticker/AAPL/range/1/day/2026-03-01/2026-04-30" and query["adjusted"] == "true"


def test_polygon_429_and_500_are_retried(server, fast):
    ok = fakes.polygon_handler({"AAPL": fakes.series([10.0, 11.0])})
    server.route("/", _flaky(429, 1, _flaky(500, 1, ok)))
    res = polygon(server, fast).fetch_prices_detailed(["AAPL"], START, END)
    assert res.errors == {} and res.frame["close"].tolist() == [10.0, 11.0]
    assert server.hits("/v2/aggs") == 3


def test_polygon_outage_timeout_empty_malformed(server, fast):
    server.route("/v2/aggs/ticker/DOWN/", Reply(502, "Bad Gateway"))
    server.route("/v2/aggs/ticker/SLOW/", Reply(200, payload("polygon_aggs_AAPL.json"), hold=True))
    server.route("/v2/aggs/ticker/EMPTY/", Reply(200, fakes.polygon_aggs("EMPTY", fakes.series([]))))
    server.route("/v2/aggs/ticker/BAD/", Reply(200, '{"results": [{"c": 1'))
    server.route("/v2/aggs/ticker/AAPL/", Reply(200, payload("polygon_aggs_AAPL.json")))
    res = polygon(server, fast).fetch_prices_detailed(["AAPL", "DOWN", "SLOW", "EMPTY", "BAD"], START, END)
    assert set(res.frame["symbol"]) == {"AAPL"}
    assert set(res.errors) == {"DOWN", "SLOW", "BAD"}  # EMPTY: known to have no data, not an error
    assert "malformed JSON" in res.errors["BAD"] and server.hits("/v2/aggs/ticker/BAD/") == 1  # not retried
    assert server.hits("/v2/aggs/ticker/DOWN/") == 3
    assert server.hits("/v2/aggs/ticker/SLOW/") == 3  # a server that never answers: 3 timed-out tries
    with pytest.raises(ProviderError, match="polygon: prices failed for all 1"):
        polygon(server, fast).fetch_prices(["DOWN"], START, END)


def test_polygon_bad_key_is_an_error(server, fast):
    server.route("/", Reply(401, {"status": "ERROR", "request_id": "x", "error": "Unknown API Key"}))
    with pytest.raises(ProviderError, match="Unknown API Key"):
        polygon(server, fast).fetch_prices(["AAPL"], START, END)


def test_polygon_splits_and_details(server, fast):
    frame, day = fakes.unadjusted_with_split()
    server.route("/", fakes.polygon_handler({"AAPL": frame}, {"AAPL": [(day, 2.0)]}))
    p = polygon(server, fast)
    assert p.fetch_prices(["AAPL"], START, END)["close"].pct_change().abs().max() < 0.1  # adjusted=true
    assert p.fetch_splits(["AAPL"], START, END).to_dict("records") == [{"symbol": "AAPL", "date": day, "ratio": 2.0}]
    prof = p.fetch_profiles(["AAPL", "NOPE"])
    assert prof["symbol"].tolist() == ["AAPL"] and prof.iloc[0]["company_name"] == "Apple Inc."
    assert prof.iloc[0]["exchange"] == "XNAS" and prof.iloc[0]["data_source"] == "polygon"


# --- FMP ------------------------------------------------------------------------------------------------

def fmp(server, fast, key: str = "test-fmp-key") -> FmpProvider:
    return FmpProvider(key, base_url=server.url, **fast)


def test_fmp_recorded_history_newest_first(server, fast):
    server.route("/api/v3/historical-price-full/AAPL", Reply(200, payload("fmp_history_AAPL.json")))
    out = fmp(server, fast).fetch_prices(["AAPL"], START, END)
    assert out["date"].tolist() == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert out["close"].tolist() == [227.48, 229.05, 228.61] and set(out["data_source"]) == {"fmp"}
    assert server.requests[0][1] == {"from": "2026-03-01", "to": "2026-04-30", "apikey": "test-fmp-key"}


def test_fmp_symbol_spelling_profile_splits(server, fast):
    frame, day = fakes.unadjusted_with_split()
    server.route("/", fakes.fmp_handler({"BRK-B": frame, "AAPL": frame}, {"AAPL": [(day, 2.0)]}))
    p = fmp(server, fast)
    out = p.fetch_prices(["BRK.B", "NOPE"], START, END)
    assert set(out["symbol"]) == {"BRK.B"} and len(out) == len(frame)
    assert p.fetch_splits(["AAPL"], START, END).to_dict("records") == [{"symbol": "AAPL", "date": day, "ratio": 2.0}]
    prof = p.fetch_profiles(["AAPL", "NOPE"])
    assert prof["symbol"].tolist() == ["AAPL"]
    assert prof.iloc[0]["week_52_low"] == 169.21 and prof.iloc[0]["week_52_high"] == 260.1


def test_fmp_errors(server, fast):
    ok = fakes.fmp_handler({"AAPL": fakes.series([5.0, 6.0])})
    server.route("/api/v3/historical-price-full/AAPL", _flaky(429, 2, ok))
    server.route("/api/v3/historical-price-full/DOWN", Reply(500, "Internal Server Error"))
    server.route("/api/v3/historical-price-full/SLOW", Reply(200, {}, hold=True))
    server.route("/api/v3/historical-price-full/BAD", Reply(200, "<html>maintenance</html>"))
    res = fmp(server, fast).fetch_prices_detailed(["AAPL", "DOWN", "SLOW", "BAD"], START, END)
    assert res.frame["close"].tolist() == [5.0, 6.0]
    assert set(res.errors) == {"DOWN", "SLOW", "BAD"} and "malformed JSON" in res.errors["BAD"]
    assert server.hits("/api/v3/historical-price-full/SLOW") == 3  # 3 timed-out tries
    assert "apikey" not in res.errors["DOWN"]  # keys never reach messages
    with pytest.raises(ProviderError, match="Invalid API KEY"):
        fmp(server, fast, key="wrong").fetch_prices(["AAPL"], START, END)


# --- FRED -----------------------------------------------------------------------------------------------

def fred(server, fast) -> FredRatesProvider:
    return FredRatesProvider("test-fred-key", base_url=server.url, **fast)


def test_fred_observations(server, fast):
    server.route("/series/observations", _flaky(503, 1, lambda p, q: Reply(200, payload("fred_DGS10.xml"))))
    out = fred(server, fast).fetch_rates(["DGS10"], date(2026, 3, 2), date(2026, 3, 6))
    assert tuple(out.columns) == RATE_COLUMNS
    assert out["date"].tolist() == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5), date(2026, 3, 6)]  # "." dropped
    assert out["value"].tolist() == [4.21, 4.18, 4.25, 4.27] and set(out["series"]) == {"DGS10"}
    _, query = server.requests[-1]
    assert query == {"series_id": "DGS10", "observation_start": "2026-03-02", "observation_end": "2026-03-06",
                     "api_key": "test-fred-key"}


def test_fred_errors(server, fast):
    server.route("/series/observations", lambda p, q: {
        "DGS10": Reply(200, payload("fred_DGS10.xml")),
        "NOPE": Reply(400, payload("fred_error_400.xml")),
        "BAD": Reply(200, "<observations><observation date="),
        "SLOW": Reply(200, payload("fred_DGS10.xml"), hold=True),
    }[q["series_id"]])
    out = fred(server, fast).fetch_rates(["DGS10", "NOPE", "BAD", "SLOW"], date(2026, 3, 2), date(2026, 3, 6))
    assert set(out["series"]) == {"DGS10"}
    assert sum(1 for _, q in server.requests if q.get("series_id") == "SLOW") == 3  # 3 timed-out tries
    with pytest.raises(ProviderError, match="The series does not exist"):
        fred(server, fast).fetch_rates(["NOPE"], date(2026, 3, 2), date(2026, 3, 6))
    with pytest.raises(ProviderError, match="malformed XML"):
        fred(server, fast).fetch_rates(["BAD"], date(2026, 3, 2), date(2026, 3, 6))
