"""Payload builders in each provider's real response format, and route handlers for :class:`FakeServer`.

Series are given as ``{symbol: DataFrame(date, close, volume)}`` with *unadjusted* closes plus optional
splits ``{symbol: [(date, ratio)]}``; each provider serves them the way it really does (Yahoo ``Close``
and Polygon ``adjusted=true`` closes are split-adjusted; Yahoo reports splits as chart events, Polygon
under /v3/reference/splits, FMP under historical-price-full/stock_split).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tests.providers.httpfake import Reply, payload

NY = ZoneInfo("America/New_York")


def series(closes: list[float], start: date = date(2026, 3, 2), volume: float = 1_000_000.0) -> pd.DataFrame:
    from shared.calendar import session_index

    days = [d.date() for d in session_index(start, start + timedelta(days=len(closes) * 2 + 10))][: len(closes)]
    return pd.DataFrame({"date": days, "close": closes, "volume": volume})


def adjusted(frame: pd.DataFrame, splits: list[tuple[date, float]]) -> pd.DataFrame:
    """Split-adjust unadjusted closes: rows before each split date are divided by its ratio."""
    f = frame.copy()
    for day, ratio in splits:
        before = f["date"] < day
        f.loc[before, "close"] = f.loc[before, "close"] / ratio
        f.loc[before, "volume"] = f.loc[before, "volume"] * ratio
    return f


def _open_ts(d: date) -> int:
    return int(datetime.combine(d, time(9, 30), NY).timestamp())


# --- Yahoo chart API v8 -----------------------------------------------------------------------------

def yahoo_chart(symbol: str, frame: pd.DataFrame, splits: list[tuple[date, float]] = ()) -> dict:
    adj = adjusted(frame, list(splits))
    ts = [_open_ts(d) for d in adj["date"]]
    close = [round(float(c), 4) for c in adj["close"]]
    events = {}
    if splits:
        events["splits"] = {str(_open_ts(d)): {"date": _open_ts(d), "numerator": float(r), "denominator": 1.0,
                                               "splitRatio": f"{r:g}:1"} for d, r in splits}
    last = close[-1] if close else None
    return {"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "fullExchangeName": "NasdaqGS",
                 "instrumentType": "EQUITY", "firstTradeDate": 345479400, "regularMarketTime": ts[-1] if ts else 0,
                 "hasPrePostMarketData": True, "gmtoffset": -18000, "timezone": "EST",
                 "exchangeTimezoneName": "America/New_York", "regularMarketPrice": last,
                 "chartPreviousClose": close[0] if close else None, "priceHint": 2,
                 "dataGranularity": "1d", "range": "",
                 "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]},
        "timestamp": ts,
        **({"events": events} if events else {}),
        "indicators": {"quote": [{"open": close, "high": [round(c * 1.01, 4) for c in close],
                                  "low": [round(c * 0.99, 4) for c in close], "close": close,
                                  "volume": [int(v) for v in adj["volume"]]}],
                       "adjclose": [{"adjclose": close}]},
    }], "error": None}}


YAHOO_NOT_FOUND = {"chart": {"result": None, "error": {"code": "Not Found",
                                                         "description": "No data found, symbol may be delisted"}}}


def yahoo_handler(data: dict[str, pd.DataFrame], splits: dict[str, list[tuple[date, float]]] | None = None):
    splits = splits or {}

    def handle(path: str, q: dict[str, str]) -> Reply:
        if path.startswith("/v1/test/getcrumb"):
            return Reply(200, "Xy1crumbZ")
        if not path.startswith("/v8/finance/chart/"):
            return Reply(404, "")
        sym = path.rsplit("/", 1)[1]
        if sym not in data:
            return Reply(404, YAHOO_NOT_FOUND)
        f = data[sym]
        if "period1" in q:
            lo = datetime.fromtimestamp(int(q["period1"]), NY).date()
            hi = datetime.fromtimestamp(int(q["period2"]), NY).date()
            f = f[(f["date"] >= lo) & (f["date"] < hi)]
        else:  # range=1d (yfinance's time-zone probe)
            f = f.tail(1)
        sp = [(d, r) for d, r in splits.get(sym, []) if len(f) and f["date"].min() <= d <= f["date"].max()]
        return Reply(200, yahoo_chart(sym, f, sp))

    return handle


def yahoo_profile_handler(path: str, q: dict[str, str]) -> Reply:
    if path.startswith("/v10/finance/quoteSummary/AAPL"):
        return Reply(200, payload("yahoo_quotesummary_AAPL.json"))
    if path.startswith("/v7/finance/quote"):
        return Reply(200, payload("yahoo_quote_AAPL.json") if q.get("symbols") == "AAPL"
                     else {"quoteResponse": {"result": [], "error": None}})
    if path.startswith("/ws/fundamentals-timeseries/v1/finance/timeseries/AAPL"):
        return Reply(200, _yahoo_timeseries(q.get("type", "")))
    if path.startswith("/v10/finance/quoteSummary/"):
        return Reply(404, {"quoteSummary": {"result": None, "error": {
            "code": "Not Found", "description": "Quote not found for symbol: NOPE"}}})
    return Reply(404, "")


def _yahoo_timeseries(types: str) -> dict:
    values = {"TotalRevenue": 124.3e9, "GrossProfit": 58.3e9, "OperatingIncome": 42.8e9, "NetIncome": 36.3e9,
              "TotalAssets": 344.1e9, "TotalLiabilitiesNetMinorityInterest": 277.3e9,
              "StockholdersEquity": 66.8e9, "CurrentAssets": 133.2e9, "CurrentLiabilities": 144.4e9,
              "CashAndCashEquivalents": 30.3e9, "TotalDebt": 96.8e9, "OperatingCashFlow": 29.9e9,
              "CapitalExpenditure": -2.9e9, "FreeCashFlow": 27.0e9}
    result = []
    for t in types.split(","):
        key = t.removeprefix("quarterly").removeprefix("annual").removeprefix("trailing")
        if key not in values:
            continue
        dates = ["2025-09-27", "2025-12-27"]
        ts = [int(datetime.fromisoformat(d).timestamp()) for d in dates]
        result.append({"meta": {"symbol": ["AAPL"], "type": [t]}, "timestamp": ts, t: [
            {"dataId": 20100, "asOfDate": d, "periodType": "3M", "currencyCode": "USD",
             "reportedValue": {"raw": values[key] * (1 + 0.01 * k), "fmt": "x"}} for k, d in enumerate(dates)]})
    return {"timeseries": {"result": result, "error": None}}


def unadjusted_with_split(n: int = 30, split_at: int = 20, ratio: float = 2.0, level: float = 200.0,
                          start: date = date(2026, 3, 2)) -> tuple[pd.DataFrame, date]:
    """A gently trending series whose raw close halves at ``split_at`` (the split date)."""
    rng = np.random.default_rng(3)
    closes = level * np.exp(np.cumsum(rng.normal(0, 0.005, n)))
    closes[split_at:] /= ratio
    frame = series([round(float(c), 4) for c in closes], start)
    return frame, frame["date"].iloc[split_at]


# --- Polygon ----------------------------------------------------------------------------------------

def _midnight_ms(d: date) -> int:
    return int(datetime.combine(d, time(0, 0), NY).timestamp() * 1000)


def polygon_aggs(symbol: str, frame: pd.DataFrame) -> dict:
    results = [{"v": float(v), "vw": round(c * 1.001, 4), "o": c, "c": c, "h": round(c * 1.01, 4),
                "l": round(c * 0.99, 4), "t": _midnight_ms(d), "n": 412345}
               for d, c, v in zip(frame["date"], frame["close"].astype(float), frame["volume"], strict=True)]
    out = {"ticker": symbol, "queryCount": len(results), "resultsCount": len(results), "adjusted": True,
           "status": "OK", "request_id": "6a7e466379af0a71039d60cc78e72282", "count": len(results)}
    if results:
        out["results"] = results
    return out


def polygon_handler(data: dict[str, pd.DataFrame], splits: dict[str, list[tuple[date, float]]] | None = None):
    splits = splits or {}

    def handle(path: str, q: dict[str, str]) -> Reply:
        if path.startswith("/v2/aggs/ticker/"):
            parts = path.split("/")  # /v2/aggs/ticker/{T}/range/1/day/{from}/{to}
            sym, lo, hi = parts[4], date.fromisoformat(parts[8]), date.fromisoformat(parts[9])
            f = adjusted(data[sym], splits.get(sym, [])) if sym in data else pd.DataFrame(
                columns=["date", "close", "volume"])
            f = f[(f["date"] >= lo) & (f["date"] <= hi)]
            return Reply(200, polygon_aggs(sym, f))
        if path.startswith("/v3/reference/splits"):
            sym = q.get("ticker", "")
            items = [{"id": f"E{k}", "execution_date": d.isoformat(), "split_from": 1, "split_to": r, "ticker": sym}
                     for k, (d, r) in enumerate(splits.get(sym, []))
                     if q.get("execution_date.gte", "0") <= d.isoformat() <= q.get("execution_date.lte", "9")]
            return Reply(200, {"results": items, "status": "OK", "request_id": "b1c9e1f0"})
        if path.startswith("/v3/reference/tickers/"):
            sym = path.rsplit("/", 1)[1]
            if sym == "AAPL":
                return Reply(200, payload("polygon_ticker_AAPL.json"))
            return Reply(404, {"status": "NOT_FOUND", "request_id": "2f1ad6f4", "message": "Ticker not found."})
        return Reply(404, {"status": "NOT_FOUND", "message": "Not found"})

    return handle


# --- FMP --------------------------------------------------------------------------------------------

def fmp_history(symbol: str, frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {}
    rows = [{"date": d.isoformat(), "open": c, "high": round(c * 1.01, 4), "low": round(c * 0.99, 4), "close": c,
             "adjClose": round(c * 0.995, 4), "volume": float(v), "unadjustedVolume": float(v),
             "change": 0.0, "changePercent": 0.0, "vwap": c, "label": d.strftime("%B %d, %y"),
             "changeOverTime": 0.0}
            for d, c, v in zip(frame["date"], frame["close"].astype(float), frame["volume"], strict=True)]
    return {"symbol": symbol, "historical": rows[::-1]}  # newest first, like FMP


def fmp_handler(data: dict[str, pd.DataFrame], splits: dict[str, list[tuple[date, float]]] | None = None):
    splits = splits or {}

    def handle(path: str, q: dict[str, str]) -> Reply:
        if q.get("apikey") != "test-fmp-key":
            return Reply(401, {"Error Message": "Invalid API KEY. Please retry or visit our documentation."})
        if path.startswith("/api/v3/historical-price-full/stock_split/"):
            sym = path.rsplit("/", 1)[1]
            hist = [{"date": d.isoformat(), "label": d.strftime("%B %d, %y"), "numerator": r, "denominator": 1}
                    for d, r in splits.get(sym, [])]
            return Reply(200, {"symbol": sym, "historical": hist} if hist else {})
        if path.startswith("/api/v3/historical-price-full/"):
            sym = path.rsplit("/", 1)[1]
            if sym not in data:
                return Reply(200, {})
            f = adjusted(data[sym], splits.get(sym, []))
            f = f[(f["date"] >= date.fromisoformat(q["from"])) & (f["date"] <= date.fromisoformat(q["to"]))]
            return Reply(200, fmp_history(sym, f))
        if path.startswith("/api/v3/profile/"):
            sym = path.rsplit("/", 1)[1]
            return Reply(200, payload("fmp_profile_AAPL.json") if sym == "AAPL" else [])
        return Reply(404, {"Error Message": "not found"})

    return handle
