"""What every network adapter shares: a per-provider rate limiter, retries with backoff, timeouts.

* :class:`TokenBucket` — ``rate_per_minute`` requests per minute with a small burst; ``acquire`` blocks.
* :class:`RetryPolicy` / :func:`call_with_retry` — exponential backoff with full jitter, **only** for
  transient failures (:func:`is_transient`: HTTP 429 and 5xx, timeouts, connection errors); anything else
  (401, 404, malformed JSON) fails at once.
* :class:`TransientHTTPError` / :class:`PermanentHTTPError` — what our HTTP code raises for a bad status.
* :class:`JsonHttpClient` — ``GET`` JSON with a timeout on every call, the limiter and the retries
  (used by the FMP adapter; the other adapters plug the same pieces into their client libraries).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import requests

from shared.errors import ProviderError

log = logging.getLogger("sigmabatch.providers")
T = TypeVar("T")

#: HTTP statuses worth retrying.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSIENT_NAMES = frozenset({
    "Timeout", "TimeoutError", "ConnectTimeout", "ReadTimeout", "ConnectionError", "ConnectTimeoutError",
    "ReadTimeoutError", "NewConnectionError", "MaxRetryError", "ProtocolError", "ChunkedEncodingError",
    "RemoteDisconnected", "DNSError", "ProxyError", "SSLError", "IncompleteRead",
})


class TransientHTTPError(requests.exceptions.HTTPError):
    """HTTP 429 / 5xx: retried. Subclasses ``requests.HTTPError`` (an ``OSError``) so client libraries
    that treat I/O errors as transient (yfinance) let it through to us."""

    def __init__(self, status: int, url: str, body: str = "") -> None:
        self.status = status
        self.url = url
        super().__init__(f"HTTP {status} from {_redact(url)}" + (f": {body[:120]}" if body else ""))


class PermanentHTTPError(ProviderError):
    """HTTP 4xx other than 408/425/429 (bad key, unknown path): not retried."""

    def __init__(self, status: int, url: str, body: str = "") -> None:
        self.status = status
        super().__init__(f"HTTP {status} from {_redact(url)}" + (f": {body[:120]}" if body else ""))


def _redact(url: str) -> str:
    """Drop query strings (they may carry API keys) from URLs shown in messages."""
    return url.split("?", 1)[0]


def is_transient(exc: BaseException) -> bool:
    """True for failures a retry may cure: 429/5xx, timeouts, connection and DNS errors."""
    if isinstance(exc, TransientHTTPError):
        return True
    if isinstance(exc, PermanentHTTPError):
        return False
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_STATUSES
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and status:  # curl_cffi's timeouts carry a response with status 0: no reply
        return status in TRANSIENT_STATUSES
    if isinstance(exc, (TimeoutError, socket.timeout, ConnectionError, urllib.error.URLError)):
        return True
    if isinstance(exc, json.JSONDecodeError):
        return False
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _TRANSIENT_NAMES:
        return True
    return type(exc).__name__ == "YFRateLimitError"


class TokenBucket:
    """``rate_per_minute`` tokens per minute, at most ``burst`` at once; thread-safe. ``rate <= 0`` = no limit."""

    def __init__(self, rate_per_minute: float, burst: int = 5, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = float(rate_per_minute) / 60.0
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.updated = clock()
        self.waited = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    self.waited += waited
                    return waited
                delay = (1.0 - self.tokens) / self.rate
            self.sleep(delay)
            waited += delay


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; delay before try k+1 is uniform(0, min(max_delay, base * 2**k))."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        cap = min(self.max_delay, self.base_delay * (2 ** attempt))
        return (rng or random).uniform(0.0, cap)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, *, what: str,
                    sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> T:
    """Call ``fn``; on a transient failure wait (backoff + jitter) and retry, up to ``policy.attempts`` tries.

    The last transient failure (or any permanent one, at once) propagates unchanged.
    """
    attempts = max(1, policy.attempts)
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            wait = policy.delay(attempt, rng)
            log.warning("%s: %s (%s); retry %d/%d in %.2fs", what, type(exc).__name__, exc, attempt + 1,
                        attempts - 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def describe(exc: BaseException) -> str:
    """A short operator-facing description of a failure (no URLs with keys)."""
    text = str(exc).replace("\n", " ")
    if "apikey=" in text or "api_key=" in text:
        text = text.split("?", 1)[0]
    return f"{type(exc).__name__}: {text[:200]}"


class JsonHttpClient:
    """``GET`` JSON from ``base_url`` with a timeout, a rate limiter and retries on transient errors."""

    def __init__(self, name: str, base_url: str, *, timeout: float, retry: RetryPolicy, limiter: TokenBucket,
                 params: Mapping[str, str] | None = None, session: requests.Session | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.limiter = limiter
        self.params = dict(params or {})
        self.session = session or requests.Session()
        self.requests = 0

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"

        def once() -> Any:
            self.limiter.acquire()
            self.requests += 1
            resp = self.session.get(url, params={**self.params, **(params or {})}, timeout=self.timeout)
            if resp.status_code in TRANSIENT_STATUSES:
                raise TransientHTTPError(resp.status_code, url, resp.text)
            if resp.status_code >= 400:
                raise PermanentHTTPError(resp.status_code, url, resp.text)
            try:
                return resp.json()
            except ValueError as exc:
                raise ProviderError(f"{self.name}: malformed JSON from {_redact(url)}: {exc}") from None

        return call_with_retry(once, self.retry, what=f"{self.name} GET {_redact(url)}")


class CircuitBreaker:
    """Opens after ``threshold`` consecutive transient failures with no success in between.

    With no network every symbol would otherwise pay its own retries (1,200 symbols x 3 tries); once the
    breaker is open the remaining symbols are reported as not tried, so an outage fails in seconds."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = max(1, threshold)
        self.failures = 0
        self.last_error = ""
        self._lock = threading.Lock()

    def success(self) -> None:
        with self._lock:
            self.failures = 0

    def failure(self, exc: BaseException) -> None:
        if not is_transient(exc):
            return
        with self._lock:
            self.failures += 1
            self.last_error = describe(exc)

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold

    def reason(self, name: str) -> str:
        return f"not tried: {name} unreachable ({self.failures} consecutive failures; last: {self.last_error})"


@dataclass
class FetchResult:
    """Rows served plus the symbols that failed with an error after the retries (symbol -> reason).

    Symbols the provider does not know are in neither: they are simply absent from ``frame``."""

    frame: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)


def fetch_each(symbols: Sequence[str], work: Callable[[str], T], *, name: str, what: str, retry: RetryPolicy,
               is_unknown: Callable[[BaseException], bool] = lambda exc: False,
               sleep: Callable[[float], None] | None = None) -> tuple[dict[str, T], dict[str, str]]:
    """``work(symbol)`` for each symbol with retries, in order; returns (results, errors).

    A failure ``is_unknown`` recognises means "no such symbol" (neither result nor error)."""
    results: dict[str, T] = {}
    errors: dict[str, str] = {}
    kwargs = {"sleep": sleep} if sleep else {}
    breaker = CircuitBreaker()
    for sym in symbols:
        if breaker.open:
            errors[sym] = breaker.reason(name)
            continue
        try:
            results[sym] = call_with_retry(lambda s=sym: work(s), retry, what=f"{name} {what} {sym}", **kwargs)
            breaker.success()
        except Exception as exc:
            if is_unknown(exc):
                breaker.success()
                continue
            breaker.failure(exc)
            errors[sym] = describe(exc)
    if errors:
        log.warning("%s: %s failed for %d symbol(s): %s", name, what, len(errors),
                    "; ".join(f"{s}: {e}" for s, e in list(errors.items())[:5]))
    return results, errors


def raise_if_all_failed(name: str, what: str, errors: dict[str, str], requested: int) -> None:
    """A provider that failed for every symbol asked is down: raise instead of returning nothing."""
    if errors and len(errors) >= requested:
        first = next(iter(errors.values()))
        raise ProviderError(f"{name}: {what} failed for all {requested} symbol(s); first error: {first}")
