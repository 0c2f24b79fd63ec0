"""Choose the providers of a run from ``settings.provider`` (the one place that maps specs to classes)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from shared.errors import ConfigError
from shared.providers.base import MarketData
from shared.providers.failing import EmptyProvider, FailingProvider
from shared.providers.file import FilePriceProvider
from shared.providers.synthetic import SyntheticMarket
from shared.settings import Settings, validate_provider

_NOT_YET = ("yfinance", "polygon", "fmp")


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
    * ``yfinance`` / ``polygon`` / ``fmp``: :class:`ConfigError` until those adapters exist.
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
    if kind in _NOT_YET:
        raise ConfigError(f"provider {kind!r} is not available yet: use synthetic or file:PATH for now")
    raise ConfigError(f"provider {spec!r} is not supported")  # pragma: no cover - validate_provider guards
