"""Choose the providers of a run from ``settings.provider`` (the one place that maps specs to classes)."""

from __future__ import annotations

import logging
from datetime import date
from functools import lru_cache
from typing import Any

from shared.errors import ConfigError
from shared.providers.base import MarketData
from shared.providers.failing import EmptyProvider, FailingProvider
from shared.providers.file import FilePriceProvider
from shared.providers.synthetic import SyntheticMarket
from shared.settings import NETWORK_PROVIDERS, Settings, validate_provider

log = logging.getLogger("sigmabatch.providers")
#: Environment variable holding each network provider's key (yfinance needs none).
API_KEYS = {"polygon": "POLYGON_API_KEY", "fmp": "FMP_API_KEY", "fred": "FRED_API_KEY"}


@lru_cache(maxsize=8)
def synthetic_market(n_stocks: int, seed: int, as_of: date | None = None) -> SyntheticMarket:
    """One :class:`SyntheticMarket` per (n, seed, as_of) per process (building one costs ~0.1 s)."""
    return SyntheticMarket(n_stocks, seed, as_of=as_of)


def build_market_data(settings: Settings) -> MarketData:
    """The :class:`MarketData` for ``settings.provider``.

    * ``synthetic``: one memoised :class:`SyntheticMarket` serves all five kinds; profiles and fundamentals
      are as of ``settings.now`` when set (else today).
    * ``file:PATH``: :class:`FilePriceProvider` for prices, profiles and benchmark weights; fundamentals and
      rates are empty.
    * ``failing``: :class:`FailingProvider` everywhere (outage drills).
    * ``yfinance`` / ``polygon`` / ``fmp``: the :class:`FallbackPriceProvider` over
      ``settings.provider_chain`` with the named provider first (default yfinance -> polygon -> fmp) for
      prices, splits and profiles; yfinance for fundamentals; FRED for rates. A provider whose API key is
      missing is left out with a logged line; none left is a :class:`ConfigError`.
    """
    spec = settings.provider.strip()
    validate_provider(spec, "provider")
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        as_of = settings.current_time().date() if settings.now is not None else None  # New York date
        m = synthetic_market(settings.synthetic_symbols, settings.synthetic_seed, as_of)
        return MarketData(prices=m, profiles=m, fundamentals=m, rates=m, benchmarks=m)
    if kind == "file":
        f = FilePriceProvider(arg)
        empty = EmptyProvider(f.name)
        return MarketData(prices=f, profiles=f, fundamentals=empty, rates=empty, benchmarks=f)
    if kind == "failing":
        fail = FailingProvider(arg or "provider unavailable (simulated outage)")
        return MarketData(prices=fail, profiles=fail, fundamentals=fail, rates=fail, benchmarks=fail)
    if kind in NETWORK_PROVIDERS:
        return network_market_data(settings, kind)
    raise ConfigError(f"provider {spec!r} is not supported")  # pragma: no cover - validate_provider guards


def _resilience(settings: Settings, name: str) -> dict[str, Any]:
    from shared.providers.resilience import RetryPolicy, TokenBucket

    rate = settings.rate_limits.get(name, 0.0)
    return {"timeout": settings.http_timeout,
            "retry": RetryPolicy(attempts=settings.http_retries, base_delay=settings.http_backoff,
                                 max_delay=max(8.0, settings.http_backoff)),
            "limiter": TokenBucket(rate, burst=max(1, min(10, int(rate) or 1)))}


def build_provider(settings: Settings, name: str) -> tuple[Any | None, str | None]:
    """(adapter, None), or (None, why it is disabled) when its API key is missing."""
    env = API_KEYS.get(name)
    key = settings.api_key(name) if env else None
    if env and not key:
        return None, f"{env} is not set"
    if name == "yfinance":
        from shared.providers.yahoo import YahooProvider

        return YahooProvider(base_url=settings.yahoo_url, batch_size=settings.batch_size,
                             **_resilience(settings, name)), None
    if name == "polygon":
        from shared.providers.polygon import PolygonProvider

        return PolygonProvider(key, base_url=settings.polygon_url, **_resilience(settings, name)), None
    if name == "fmp":
        from shared.providers.fmp import FmpProvider

        return FmpProvider(key, base_url=settings.fmp_url, **_resilience(settings, name)), None
    if name == "fred":
        from shared.providers.fred import FredRatesProvider

        return FredRatesProvider(key, base_url=settings.fred_url, **_resilience(settings, name)), None
    raise ConfigError(f"provider {name!r} is not supported")  # pragma: no cover


def network_market_data(settings: Settings, first: str) -> MarketData:
    """The real providers: the price chain with ``first`` at its head, yfinance fundamentals, FRED rates."""
    from shared.providers.chain import FallbackPriceProvider

    order = [first, *[n for n in settings.provider_chain if n != first]]
    enabled, disabled = [], {}
    for name in order:
        adapter, why = build_provider(settings, name)
        if adapter is None:
            disabled[name] = why
            log.warning("provider %s disabled: %s", name, why)
        else:
            enabled.append(adapter)
    if not enabled:
        raise ConfigError("no market-data provider is enabled: "
                          + "; ".join(f"{k}: {v}" for k, v in disabled.items()))
    chain = FallbackPriceProvider(enabled, disabled)
    log.info("price provider chain: %s", " -> ".join(p.name for p in enabled))
    yahoo = next((p for p in enabled if p.name == "yfinance"), None)
    fred, why = build_provider(settings, "fred")
    if fred is None:
        log.warning("provider fred disabled: %s (no macro series)", why)
        fred = EmptyProvider("fred")
    return MarketData(prices=chain, profiles=chain, fundamentals=yahoo or EmptyProvider(chain.name), rates=fred,
                      benchmarks=EmptyProvider(chain.name))
