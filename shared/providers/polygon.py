"""Polygon.io through ``polygon-api-client``: daily aggregates, splits and ticker details.

The client is built with ``RESTClient(api_key, base=..., connect_timeout, read_timeout, retries=0)``; its
``urllib3.Timeout`` is passed on every request (polygon-api-client 1.16 builds it but does not pass it, so a
stalled server would hang the batch), and retries are ours (backoff with jitter, transient failures only) rather than
urllib3's fixed backoff. Each HTTP request takes a token from the provider's rate limiter (Polygon's free
tier allows 5 requests a minute). Responses are read raw and decoded here, because the client quietly
returns an empty list for a malformed body; a malformed body is an error for us.

Closes come from ``/v2/aggs/ticker/{T}/range/1/day/{from}/{to}?adjusted=true`` (split-adjusted), splits from
``/v3/reference/splits``, profiles from ``/v3/reference/tickers/{T}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from shared.errors import ProviderError
from shared.providers.base import PRICE_COLUMNS, PROFILE_COLUMNS, SPLIT_COLUMNS, empty_frame
from shared.providers.resilience import (
    FetchResult,
    RetryPolicy,
    TokenBucket,
    fetch_each,
    raise_if_all_failed,
)
from shared.providers.symbols import normalize_symbol

NAME = "polygon"
DEFAULT_BASE = "https://api.polygon.io"
NEW_YORK = ZoneInfo("America/New_York")


def _is_unknown(exc: BaseException) -> bool:
    return type(exc).__name__ == "BadResponse" and "NOT_FOUND" in str(exc)


def polygon_symbol(symbol: str) -> str:
    """Polygon spells share classes with a dot (``BRK.B``), like our neutral symbols."""
    return normalize_symbol(symbol)


class PolygonProvider:
    """Prices, splits and profiles from Polygon (see the module docstring)."""

    name = NAME

    def __init__(self, api_key: str, *, base_url: str | None = None, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, limiter: TokenBucket | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        from polygon import RESTClient

        self.client = RESTClient(api_key, connect_timeout=timeout, read_timeout=timeout, retries=0,
                                 base=(base_url or DEFAULT_BASE).rstrip("/"), pagination=True)
        self.limiter = limiter or TokenBucket(5, burst=5)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        pool = self.client.client
        raw_request = pool.request

        def limited(*args: Any, **kwargs: Any) -> Any:
            self.limiter.acquire()
            kwargs.setdefault("timeout", self.client.timeout)  # the client builds a Timeout but never passes it
            return raw_request(*args, **kwargs)

        pool.request = limited  # every HTTP request of this client (pages included) takes a token and a timeout
        self.last_errors: dict[str, str] = {}

    def _decode(self, resp: Any, what: str) -> dict:
        try:
            obj = json.loads(resp.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProviderError(f"{NAME}: malformed JSON in {what}: {exc}") from None
        if not isinstance(obj, dict):
            raise ProviderError(f"{NAME}: unexpected payload in {what}: {type(obj).__name__}")
        if obj.get("status") == "ERROR":
            raise ProviderError(f"{NAME}: {what}: {obj.get('error') or obj.get('message')}")
        return obj

    def _each(self, symbols: Sequence[str], work: Callable[[str], Any], what: str):
        wanted = list(dict.fromkeys(s for s in map(normalize_symbol, symbols) if s))
        results, errors = fetch_each(wanted, work, name=NAME, what=what, retry=self.retry, is_unknown=_is_unknown,
                                     sleep=self._sleep)
        raise_if_all_failed(NAME, what, errors, len(wanted))
        return results, errors

    # --- prices and splits --------------------------------------------------------------------------

    def fetch_prices_detailed(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        def work(sym: str) -> list[dict]:
            resp = self.client.get_aggs(polygon_symbol(sym), 1, "day", start.isoformat(), end.isoformat(),
                                        adjusted=True, sort="asc", limit=50000, raw=True)
            obj = self._decode(resp, f"aggs {sym}")
            return list(obj.get("results") or [])

        results, errors = self._each(symbols, work, "prices")
        self.last_errors = errors
        rows = [(pd.Timestamp(bar["t"], unit="ms", tz="UTC").tz_convert(NEW_YORK).date(), sym, bar.get("c"),
                 bar.get("v"))
                for sym, bars in results.items() for bar in bars if isinstance(bar, dict) and "t" in bar]
        if not rows:
            return FetchResult(empty_frame(PRICE_COLUMNS), errors)
        f = pd.DataFrame(rows, columns=["date", "symbol", "close", "volume"]).assign(data_source=NAME)
        f["close"] = pd.to_numeric(f["close"], errors="coerce")
        f["volume"] = pd.to_numeric(f["volume"], errors="coerce")
        f = f[f["close"].notna() & (f["date"] >= start) & (f["date"] <= end)]
        return FetchResult(f.reindex(columns=list(PRICE_COLUMNS)).reset_index(drop=True), errors)

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return self.fetch_prices_detailed(symbols, start, end).frame

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        def work(sym: str) -> list[dict]:
            resp = self.client.list_splits(ticker=polygon_symbol(sym), execution_date_gte=start.isoformat(),
                                           execution_date_lte=end.isoformat(), limit=1000, raw=True)
            return list(self._decode(resp, f"splits {sym}").get("results") or [])

        results, _ = self._each(symbols, work, "splits")
        rows = [(sym, date.fromisoformat(s["execution_date"]), float(s["split_to"]) / float(s["split_from"]))
                for sym, items in results.items() for s in items
                if s.get("execution_date") and s.get("split_from") and s.get("split_to")]
        if not rows:
            return empty_frame(SPLIT_COLUMNS)
        return pd.DataFrame(rows, columns=list(SPLIT_COLUMNS))

    # --- profiles -----------------------------------------------------------------------------------

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        def work(sym: str) -> dict:
            resp = self.client.get_ticker_details(polygon_symbol(sym), raw=True)
            return self._decode(resp, f"ticker details {sym}").get("results") or {}

        results, _ = self._each(symbols, work, "profiles")
        rows = []
        for sym, d in results.items():
            if not d:
                continue
            kind = str(d.get("type") or "").upper()
            rows.append({"symbol": sym, "company_name": d.get("name"), "industry": d.get("sic_description"),
                         "exchange": d.get("primary_exchange"),
                         "country": "United States" if d.get("locale") == "us" else d.get("locale"),
                         "market_cap": d.get("market_cap"), "is_etf": kind in ("ETF", "ETN"),
                         "is_fund": kind in ("ETF", "ETN", "FUND", "MF"), "data_source": NAME})
        if not rows:
            return empty_frame(PROFILE_COLUMNS)
        return pd.DataFrame(rows).reindex(columns=list(PROFILE_COLUMNS))
