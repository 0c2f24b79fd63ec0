"""Fixtures for the network adapters: fast retry settings and a private yfinance cache folder."""

from __future__ import annotations

import pytest

from shared.providers.resilience import RetryPolicy, TokenBucket


@pytest.fixture(scope="session", autouse=True)
def _yfinance_cache(tmp_path_factory):
    """yfinance keeps a time-zone / cookie cache on disk: keep it out of the home folder."""
    import yfinance as yf

    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


@pytest.fixture
def fast() -> dict:
    """Adapter keyword arguments: short timeout, 3 tries with no backoff delay, no rate limit."""
    return {"timeout": 0.5, "retry": RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0),
            "limiter": TokenBucket(0)}
