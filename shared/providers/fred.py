"""FRED through ``fredapi``: Treasury yields (``DGS10``, ``DGS2``, ``DGS3MO`` …) as macro series, in percent.

fredapi reads ``{root_url}/series/observations?series_id=…`` (XML, the API's default format) with
``urlopen`` and no timeout. We keep its URL building and parsing (``Fred.get_series``) and replace only the
fetch: a timeout on every call, a token from the rate limiter (FRED allows 120 requests a minute), 429/5xx
raised as transient (retried with backoff), FRED's XML error body (``<error message=…/>``) kept in the
message. ``root_url`` is configurable so tests use a loopback server. Missing observations (``.``) are
dropped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import date
from urllib.error import HTTPError
from urllib.request import urlopen

import numpy as np
import pandas as pd

from shared.errors import ProviderError
from shared.providers.base import RATE_COLUMNS, empty_frame
from shared.providers.resilience import (
    TRANSIENT_STATUSES,
    RetryPolicy,
    TokenBucket,
    TransientHTTPError,
    fetch_each,
    raise_if_all_failed,
)

NAME = "fred"
DEFAULT_ROOT = "https://api.stlouisfed.org/fred"
TREASURY_SERIES = ("DGS3MO", "DGS2", "DGS10", "DGS30")


class FredRatesProvider:
    """:class:`~shared.providers.base.RatesProvider` over FRED (see the module docstring)."""

    name = NAME

    def __init__(self, api_key: str, *, base_url: str | None = None, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, limiter: TokenBucket | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        from fredapi import Fred

        limiter = limiter or TokenBucket(120, burst=10)

        class _Fred(Fred):
            def _Fred__fetch_data(self, url: str):  # replaces fredapi's private fetch (no timeout there)
                url += "&api_key=" + self.api_key
                limiter.acquire()
                try:
                    with urlopen(url, timeout=timeout) as response:
                        body = response.read()
                except HTTPError as exc:
                    text = exc.read().decode("utf-8", "replace")
                    if exc.code in TRANSIENT_STATUSES:
                        raise TransientHTTPError(exc.code, url, text[:200]) from None
                    try:
                        message = ET.fromstring(text).get("message") or text[:200]
                    except ET.ParseError:
                        message = text[:200]
                    raise ValueError(f"HTTP {exc.code}: {message}") from None
                try:
                    return ET.fromstring(body)
                except ET.ParseError as exc:
                    raise ProviderError(f"{NAME}: malformed XML from FRED: {exc}") from None

        self.fred = _Fred(api_key=api_key)
        self.fred.root_url = (base_url or DEFAULT_ROOT).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def fetch_rates(self, series: Sequence[str], start: date, end: date) -> pd.DataFrame:
        wanted = list(dict.fromkeys(s.strip().upper() for s in series if s.strip()))

        def work(sid: str) -> pd.Series:
            return self.fred.get_series(sid, observation_start=start.isoformat(), observation_end=end.isoformat())

        results, errors = fetch_each(wanted, work, name=NAME, what="series", retry=self.retry, sleep=self._sleep)
        raise_if_all_failed(NAME, "series", errors, len(wanted))
        frames = []
        for sid, values in results.items():
            v = pd.to_numeric(values, errors="coerce")
            v = v[np.isfinite(v.to_numpy(dtype=float))]
            frames.append(pd.DataFrame({"series": sid, "date": [pd.Timestamp(d).date() for d in v.index],
                                        "value": v.to_numpy(dtype=float)}))
        if not frames:
            return empty_frame(RATE_COLUMNS)
        return pd.concat(frames, ignore_index=True).reindex(columns=list(RATE_COLUMNS))
