"""Financial Modeling Prep over HTTP (``requests``): daily closes, splits and company profiles.

Endpoints (v3): ``/api/v3/historical-price-full/{SYM}?from=&to=`` (``historical``: newest first; ``close`` is
split-adjusted), ``/api/v3/historical-price-full/stock_split/{SYM}`` and ``/api/v3/profile/{SYM}``. An unknown
symbol comes back as ``{}`` or ``[]``; FMP reports key and quota problems as ``{"Error Message": ...}``,
sometimes with status 200, which we turn into errors. Every call has a timeout, takes a token from the
rate limiter and is retried on 429/5xx/timeouts (:class:`~shared.providers.resilience.JsonHttpClient`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import pandas as pd

from shared.errors import ProviderError
from shared.providers.base import PRICE_COLUMNS, PROFILE_COLUMNS, SPLIT_COLUMNS, empty_frame
from shared.providers.resilience import (
    FetchResult,
    JsonHttpClient,
    RetryPolicy,
    TokenBucket,
    fetch_each,
    raise_if_all_failed,
)
from shared.providers.symbols import normalize_symbol

NAME = "fmp"
DEFAULT_BASE = "https://financialmodelingprep.com"


def fmp_symbol(symbol: str) -> str:
    """FMP spells share classes with a dash (``BRK-B``)."""
    return normalize_symbol(symbol).replace(".", "-")


def _checked(obj: Any, what: str) -> Any:
    if isinstance(obj, dict) and "Error Message" in obj:
        raise ProviderError(f"{NAME}: {what}: {obj['Error Message']}")
    return obj


class FmpProvider:
    name = NAME

    def __init__(self, api_key: str, *, base_url: str | None = None, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, limiter: TokenBucket | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.http = JsonHttpClient(NAME, base_url or DEFAULT_BASE, timeout=timeout, retry=RetryPolicy(attempts=1),
                                   limiter=limiter or TokenBucket(300, burst=10), params={"apikey": api_key})
        self._sleep = sleep
        self.last_errors: dict[str, str] = {}

    def _each(self, symbols: Sequence[str], work: Callable[[str], Any], what: str):
        wanted = list(dict.fromkeys(s for s in map(normalize_symbol, symbols) if s))
        results, errors = fetch_each(wanted, work, name=NAME, what=what, retry=self.retry, sleep=self._sleep)
        raise_if_all_failed(NAME, what, errors, len(wanted))
        return results, errors

    def fetch_prices_detailed(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        def work(sym: str) -> list[dict]:
            obj = _checked(self.http.get(f"api/v3/historical-price-full/{fmp_symbol(sym)}",
                                         {"from": start.isoformat(), "to": end.isoformat()}), f"prices {sym}")
            if not isinstance(obj, dict):
                raise ProviderError(f"{NAME}: unexpected payload for prices {sym}: {type(obj).__name__}")
            return list(obj.get("historical") or [])

        results, errors = self._each(symbols, work, "prices")
        self.last_errors = errors
        rows = [(r.get("date"), sym, r.get("close"), r.get("volume")) for sym, hist in results.items() for r in hist
                if isinstance(r, dict)]
        if not rows:
            return FetchResult(empty_frame(PRICE_COLUMNS), errors)
        f = pd.DataFrame(rows, columns=["date", "symbol", "close", "volume"]).assign(data_source=NAME)
        f["date"] = pd.to_datetime(f["date"], errors="coerce").dt.date
        f["close"] = pd.to_numeric(f["close"], errors="coerce")
        f["volume"] = pd.to_numeric(f["volume"], errors="coerce")
        f = f[f["date"].notna() & f["close"].notna()]
        f = f[(f["date"] >= start) & (f["date"] <= end)].sort_values(["symbol", "date"])
        return FetchResult(f.reindex(columns=list(PRICE_COLUMNS)).reset_index(drop=True), errors)

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return self.fetch_prices_detailed(symbols, start, end).frame

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        def work(sym: str) -> list[dict]:
            obj = _checked(self.http.get(f"api/v3/historical-price-full/stock_split/{fmp_symbol(sym)}"),
                           f"splits {sym}")
            return list(obj.get("historical") or []) if isinstance(obj, dict) else []

        results, _ = self._each(symbols, work, "splits")
        rows = []
        for sym, items in results.items():
            for s in items:
                try:
                    day = date.fromisoformat(str(s["date"]))
                    ratio = float(s["numerator"]) / float(s["denominator"])
                except (KeyError, ValueError, TypeError, ZeroDivisionError):
                    continue
                if start <= day <= end:
                    rows.append((sym, day, ratio))
        return pd.DataFrame(rows, columns=list(SPLIT_COLUMNS)) if rows else empty_frame(SPLIT_COLUMNS)

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        def work(sym: str) -> dict:
            obj = _checked(self.http.get(f"api/v3/profile/{fmp_symbol(sym)}"), f"profile {sym}")
            return obj[0] if isinstance(obj, list) and obj else {}

        results, _ = self._each(symbols, work, "profiles")
        rows = []
        for sym, d in results.items():
            if not d:
                continue
            low, _, high = str(d.get("range") or "").partition("-")
            price, last_div = d.get("price"), d.get("lastDiv")
            rows.append({
                "symbol": sym, "company_name": d.get("companyName"), "sector": d.get("sector"),
                "industry": d.get("industry"), "exchange": d.get("exchangeShortName") or d.get("exchange"),
                "country": d.get("country"), "market_cap": d.get("mktCap"), "beta": d.get("beta"),
                "dividend_yield": (last_div / price) if isinstance(last_div, (int, float)) and price else None,
                "week_52_low": pd.to_numeric(low, errors="coerce"), "week_52_high": pd.to_numeric(high, errors="coerce"),
                "is_etf": bool(d.get("isEtf")), "is_fund": bool(d.get("isEtf") or d.get("isFund")),
                "data_source": NAME})
        if not rows:
            return empty_frame(PROFILE_COLUMNS)
        return pd.DataFrame(rows).reindex(columns=list(PROFILE_COLUMNS))
