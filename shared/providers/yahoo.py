"""Yahoo Finance through ``yfinance``: daily closes (with split events), profiles and statements.

How it talks to Yahoo: every request goes through one session of our own (:func:`make_session`), a
``curl_cffi`` session (what yfinance prefers; plain ``requests`` if curl_cffi is missing) that

* sends every ``*.yahoo.com`` URL to ``base_url`` instead when one is configured (tests: a loopback server),
* applies our timeout to every call and takes a token from the provider's rate limiter first,
* raises :class:`~shared.providers.resilience.TransientHTTPError` on 429/5xx, so a throttled or failing Yahoo
  is never mistaken for "no data for this symbol" (yfinance itself turns most HTTP problems into
  empty frames and log lines).

Prices are fetched per symbol with ``Ticker.history(auto_adjust=False, actions=True)`` (the chart API
v8 serves one symbol per request; ``yf.download`` does the same in threads but only logs per-ticker
failures), in batches of ``batch_size`` symbols over a small thread pool, each with retries. ``Close`` is
split-adjusted and not dividend-adjusted (domain spec §3.6); the ``Stock Splits`` column of the same
payload feeds :meth:`YahooProvider.fetch_splits`.

Per symbol the outcome is one of: rows; *unknown* (Yahoo says no data / not found: absent from the result);
*failed* (an error after the retries: listed in the :class:`FetchResult`, so the fallback chain moves it on).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from shared.providers.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    SPLIT_COLUMNS,
    STATEMENT_COLUMNS,
    empty_frame,
)
from shared.providers.resilience import (
    TRANSIENT_STATUSES,
    CircuitBreaker,
    FetchResult,
    RetryPolicy,
    TokenBucket,
    TransientHTTPError,
    call_with_retry,
    describe,
    raise_if_all_failed,
)
from shared.providers.symbols import normalize_symbol, yahoo_symbol

log = logging.getLogger("sigmabatch.providers.yahoo")
NAME = "yfinance"


_DATA_PATHS = ("/v8/", "/v7/", "/v10/", "/ws/")


def make_session(base_url: str | None, timeout: float, limiter: TokenBucket) -> Any:
    """A yfinance-compatible session with URL routing, timeouts, rate limiting and 429/5xx -> exception."""
    try:
        from curl_cffi import requests as backend

        base_cls: type = backend.Session
        kwargs: dict[str, Any] = {"impersonate": "chrome"}
    except ImportError:  # pragma: no cover - curl_cffi is a yfinance dependency
        import requests as backend

        base_cls, kwargs = backend.Session, {}

    target = base_url.rstrip("/") if base_url else None

    class _Session(base_cls):  # type: ignore[misc, valid-type]
        def request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
            parts = urlsplit(url)
            if target and (parts.hostname or "").endswith("yahoo.com"):
                url = target + parts.path + (f"?{parts.query}" if parts.query else "")
            kw["timeout"] = timeout
            if parts.path.startswith(_DATA_PATHS):  # cookie/crumb/consent requests are not rate-limited
                limiter.acquire()
            resp = super().request(method, url, *args, **kw)
            if resp.status_code in TRANSIENT_STATUSES:
                raise TransientHTTPError(resp.status_code, url, resp.text[:200])
            return resp

    return _Session(**kwargs)


def _is_unknown_symbol(exc: BaseException) -> bool:
    """Yahoo's ways of saying "no such symbol / no data in that range"."""
    name = type(exc).__name__
    if name in ("YFPricesMissingError", "YFTzMissingError", "YFInvalidPeriodError"):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status == 404


_STATEMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "income": ("income", {"TotalRevenue": "revenue", "GrossProfit": "gross_profit",
                          "OperatingIncome": "operating_income", "NetIncome": "net_income"}),
    "balance": ("balance-sheet", {"TotalAssets": "total_assets",
                                  "TotalLiabilitiesNetMinorityInterest": "total_liabilities",
                                  "StockholdersEquity": "total_equity", "CurrentAssets": "current_assets",
                                  "CurrentLiabilities": "current_liabilities",
                                  "CashAndCashEquivalents": "cash", "TotalDebt": "total_debt"}),
    "cashflow": ("cash-flow", {"OperatingCashFlow": "operating_cash_flow",
                               "CapitalExpenditure": "capital_expenditure", "FreeCashFlow": "free_cash_flow"}),
}

#: ``Ticker.info`` key -> PROFILE_COLUMNS name.
_INFO_KEYS = {
    "longName": "company_name", "sector": "sector", "industry": "industry", "exchange": "exchange",
    "country": "country", "marketCap": "market_cap", "beta": "beta", "trailingPE": "pe_ratio",
    "forwardPE": "forward_pe", "dividendYield": "dividend_yield", "fiftyTwoWeekHigh": "week_52_high",
    "fiftyTwoWeekLow": "week_52_low", "targetMeanPrice": "target_mean_price", "forwardEps": "forward_eps",
    "revenueGrowth": "revenue_growth", "earningsGrowth": "earnings_growth", "profitMargins": "profit_margin",
}


def _dividend_yield(info: dict[str, Any]) -> float | None:
    """As a fraction. Yahoo's ``dividendYield`` switched to percent in 2025, so prefer rate / price."""
    rate = info.get("dividendRate")
    price = info.get("currentPrice") or info.get("regularMarketPrice") or info.get("previousClose")
    if isinstance(rate, (int, float)) and isinstance(price, (int, float)) and price > 0:
        return float(rate) / float(price)
    trailing = info.get("trailingAnnualDividendYield")
    if isinstance(trailing, (int, float)):
        return float(trailing)
    raw = info.get("dividendYield")
    return float(raw) / 100.0 if isinstance(raw, (int, float)) else None


class YahooProvider:
    """Prices, splits, profiles and statements from Yahoo Finance via yfinance (see the module docstring)."""

    name = NAME

    def __init__(self, *, base_url: str | None = None, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 limiter: TokenBucket | None = None, batch_size: int = 50, workers: int = 4,
                 sleep: Callable[[float], None] | None = None) -> None:
        import yfinance as yf

        self._yf = yf
        yf.config.debug.hide_exceptions = False  # we classify every failure ourselves
        yf.config.network.retries = 0            # retries are ours (backoff + jitter, only transient)
        self.base_url = base_url
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or TokenBucket(120, burst=10)
        self.batch_size = max(1, batch_size)
        self.workers = max(1, workers)
        self._sleep = sleep
        self.session = make_session(base_url, timeout, self.limiter)
        self._splits: dict[str, tuple[date, date, pd.DataFrame]] = {}
        self._lock = threading.Lock()
        self.last_errors: dict[str, str] = {}

    # --- plumbing ---------------------------------------------------------------------------------

    def _ticker(self, symbol: str):
        return self._yf.Ticker(yahoo_symbol(symbol), session=self.session)

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        def once() -> Any:
            from yfinance.data import YfData

            YfData.cache_get.cache_clear()  # yfinance memoises responses (errors too) per URL
            return fn()

        kwargs = {"sleep": self._sleep} if self._sleep else {}
        return call_with_retry(once, self.retry, what=what, **kwargs)

    def _per_symbol(self, symbols: Sequence[str], work: Callable[[str], Any], what: str
                    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Run ``work(symbol)`` with retries, batch by batch over the thread pool; (results, errors)."""
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        breaker = CircuitBreaker()

        def one(sym: str) -> None:
            if breaker.open:
                errors[sym] = breaker.reason(NAME)
                return
            try:
                out = self._call(lambda: work(sym), f"{NAME} {what} {sym}")
            except Exception as exc:
                if _is_unknown_symbol(exc):
                    breaker.success()
                    log.debug("%s: %s unknown to Yahoo (%s)", what, sym, describe(exc))
                    return
                breaker.failure(exc)
                errors[sym] = describe(exc)
                return
            breaker.success()
            if out is not None:
                results[sym] = out

        wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols if normalize_symbol(s)))
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="yfinance") as pool:
            for i in range(0, len(wanted), self.batch_size):
                list(pool.map(one, wanted[i: i + self.batch_size]))
        return results, errors

    @staticmethod
    def _raise_if_all_failed(errors: dict[str, str], n: int, what: str) -> None:
        raise_if_all_failed(NAME, what, errors, n)

    # --- prices and splits --------------------------------------------------------------------------

    def fetch_prices_detailed(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        def work(sym: str) -> pd.DataFrame:
            hist = self._ticker(sym).history(start=start.isoformat(), end=(end + timedelta(days=1)).isoformat(),
                                             interval="1d", auto_adjust=False, actions=True, repair=False,
                                             timeout=self.timeout)
            return hist

        results, errors = self._per_symbol(symbols, work, "prices")
        frames = []
        for sym, hist in results.items():
            if hist is None or hist.empty or "Close" not in hist:
                continue
            days = pd.to_datetime(hist.index).tz_localize(None).normalize() if getattr(
                hist.index, "tz", None) is not None else pd.to_datetime(hist.index).normalize()
            f = pd.DataFrame({"date": [d.date() for d in days], "symbol": sym,
                              "close": pd.to_numeric(hist["Close"], errors="coerce").to_numpy(),
                              "volume": pd.to_numeric(hist.get("Volume"), errors="coerce").to_numpy()
                              if "Volume" in hist else np.nan, "data_source": NAME})
            f = f[f["close"].notna() & (f["date"] >= start) & (f["date"] <= end)]
            frames.append(f)
            if "Stock Splits" in hist:
                ratio = pd.to_numeric(hist["Stock Splits"], errors="coerce").to_numpy()
                mask = np.isfinite(ratio) & (ratio > 0)
                splits = pd.DataFrame({"symbol": sym, "date": [d.date() for d in days[mask]],
                                       "ratio": ratio[mask]})
                with self._lock:
                    self._splits[sym] = (start, end, splits)
        self.last_errors = errors
        if errors:
            log.warning("%s: prices failed for %d symbol(s): %s", NAME, len(errors),
                        "; ".join(f"{s}: {e}" for s, e in list(errors.items())[:5]))
        self._raise_if_all_failed(errors, len(set(map(normalize_symbol, symbols))), "prices")
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(PRICE_COLUMNS)
        return FetchResult(frame.reindex(columns=list(PRICE_COLUMNS)).reset_index(drop=True), errors)

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return self.fetch_prices_detailed(symbols, start, end).frame

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Splits in ``[start, end]``: from the chart payloads already fetched when they cover the range,
        else from a chart request (``events=split``)."""
        out, todo = [], []
        for sym in dict.fromkeys(map(normalize_symbol, symbols)):
            seen = self._splits.get(sym)
            if seen and seen[0] <= start and seen[1] >= end:
                out.append(seen[2])
            else:
                todo.append(sym)
        if todo:
            self.fetch_prices_detailed(todo, start, end)
            out.extend(self._splits[s][2] for s in todo if s in self._splits)
        frames = [f for f in out if not f.empty]
        if not frames:
            return empty_frame(SPLIT_COLUMNS)
        f = pd.concat(frames, ignore_index=True)
        return f[(f["date"] >= start) & (f["date"] <= end)].reset_index(drop=True)

    # --- profiles and fundamentals ----------------------------------------------------------------

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        results, errors = self._per_symbol(symbols, lambda s: self._ticker(s).info, "profile")
        self._raise_if_all_failed(errors, len(set(map(normalize_symbol, symbols))), "profiles")
        rows = []
        for sym, info in results.items():
            if not info or not (info.get("longName") or info.get("shortName") or info.get("quoteType")):
                continue
            row: dict[str, Any] = {"symbol": sym}
            for key, col in _INFO_KEYS.items():
                row[col] = info.get(key)
            row["company_name"] = row["company_name"] or info.get("shortName")
            row["dividend_yield"] = _dividend_yield(info)
            quote_type = str(info.get("quoteType") or "").upper()
            row["is_etf"] = quote_type == "ETF"
            row["is_fund"] = quote_type in ("ETF", "MUTUALFUND")
            ts = info.get("earningsTimestamp")
            row["next_earnings_date"] = pd.Timestamp(ts, unit="s").date() if isinstance(ts, (int, float)) else None
            row["data_source"] = NAME
            rows.append(row)
        if not rows:
            return empty_frame(PROFILE_COLUMNS)
        return pd.DataFrame(rows).reindex(columns=list(PROFILE_COLUMNS))

    def fetch_statements(self, symbols: Sequence[str]) -> pd.DataFrame:
        def work(sym: str) -> list[pd.DataFrame]:
            t = self._ticker(sym)
            frames = []
            for statement, (kind, items) in _STATEMENTS.items():
                for freq, scale in (("q", "quarterly"), ("a", "yearly")):
                    getter = {"income": t.get_income_stmt, "balance-sheet": t.get_balance_sheet,
                              "cash-flow": t.get_cash_flow}[kind]
                    table = getter(freq=scale, pretty=False)
                    if table is None or table.empty:
                        continue
                    table = table.reindex([k for k in items if k in table.index])
                    long = table.rename(index=items).stack().rename("value").reset_index()
                    long.columns = ["item", "period_date", "value"]
                    long["statement"], long["frequency"] = statement, freq
                    frames.append(long)
            return frames

        results, errors = self._per_symbol(symbols, work, "statements")
        self._raise_if_all_failed(errors, len(set(map(normalize_symbol, symbols))), "statements")
        frames = [f.assign(symbol=sym) for sym, fs in results.items() for f in fs]
        if not frames:
            return empty_frame(STATEMENT_COLUMNS)
        out = pd.concat(frames, ignore_index=True)
        out["period_date"] = pd.to_datetime(out["period_date"]).dt.date
        out["fiscal_year"] = [d.year for d in out["period_date"]]
        out["fiscal_quarter"] = pd.array([(d.month - 1) // 3 + 1 if f == "q" else None
                                          for d, f in zip(out["period_date"], out["frequency"], strict=True)],
                                         dtype="Int64")
        out = out[np.isfinite(out["value"].astype(float))]
        return out.reindex(columns=list(STATEMENT_COLUMNS)).reset_index(drop=True)
