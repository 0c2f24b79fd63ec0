"""Token bucket, retry policy and the transient-error rules."""

from __future__ import annotations

import json
import random

import pytest
import requests

from shared.errors import ProviderError
from shared.providers.resilience import (
    PermanentHTTPError,
    RetryPolicy,
    TokenBucket,
    TransientHTTPError,
    call_with_retry,
    is_transient,
)


def test_token_bucket_waits_for_tokens():
    now = [0.0]
    slept: list[float] = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    b = TokenBucket(60, burst=2, clock=lambda: now[0], sleep=sleep)  # 1 per second
    assert b.acquire() == 0 and b.acquire() == 0
    assert b.acquire() == pytest.approx(1.0)
    assert sum(slept) == pytest.approx(1.0)
    assert TokenBucket(0).acquire() == 0.0  # 0 = unlimited


def test_retry_backoff_with_jitter_only_on_transient():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientHTTPError(429, "http://x/y?apikey=secret")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=3.0)
    assert call_with_retry(flaky, policy, what="t", sleep=slept.append, rng=random.Random(1)) == "ok"
    assert len(slept) == 2 and 0 <= slept[0] <= 1.0 and 0 <= slept[1] <= 2.0
    assert "secret" not in str(TransientHTTPError(429, "http://x/y?apikey=secret"))

    def permanent():
        calls.append(1)
        raise PermanentHTTPError(404, "http://x")

    calls.clear()
    with pytest.raises(PermanentHTTPError):
        call_with_retry(permanent, policy, what="t", sleep=slept.append)
    assert len(calls) == 1


@pytest.mark.parametrize("exc,expected", [
    (TransientHTTPError(503, "u"), True), (requests.ConnectionError("refused"), True),
    (requests.ReadTimeout("slow"), True), (TimeoutError("slow"), True), (TimeoutError(), True),
    (PermanentHTTPError(401, "u"), False), (json.JSONDecodeError("x", "", 0), False),
    (ProviderError("malformed"), False), (ValueError("bad"), False),
])
def test_is_transient(exc, expected):
    assert is_transient(exc) is expected


def test_curl_timeout_with_an_empty_response_is_transient():
    """curl_cffi's ``Timeout`` carries a response object with status 0 (nothing was received): a timeout,
    retried, not an HTTP status that says "do not retry"."""
    from curl_cffi.requests.exceptions import Timeout

    exc = Timeout("Operation timed out after 500 milliseconds with 0 bytes received")
    exc.response = type("R", (), {"status_code": 0})()
    assert is_transient(exc) is True
