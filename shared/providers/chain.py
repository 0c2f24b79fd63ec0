"""The fallback chain: ask each provider in order for the symbols still missing.

:class:`FallbackPriceProvider` serves prices, splits and profiles. For prices, each provider is asked only
for the symbols no earlier provider served; rows keep ``data_source`` = the provider that served them.
A provider that raises (outage, bad key, malformed payload) or fails for some symbols does not stop the
chain: the next provider is asked, and every failure is **recorded** in :attr:`FallbackPriceProvider.events`
(and logged as a warning) so phase 1 can report it. Only when no provider served anything and at least one
failed does the chain raise :class:`~shared.errors.ProviderError`, naming every failure: a run with no
network fails fast instead of writing an empty day.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd

from shared.errors import ProviderError
from shared.providers.base import PRICE_COLUMNS, PROFILE_COLUMNS, SPLIT_COLUMNS, empty_frame
from shared.providers.resilience import FetchResult, describe
from shared.providers.symbols import normalize_symbol

log = logging.getLogger("sigmabatch.providers.chain")


def fetch_detailed(provider: Any, symbols: Sequence[str], start: date, end: date) -> FetchResult:
    """``fetch_prices_detailed`` when the provider has it, else ``fetch_prices`` with no per-symbol errors."""
    if hasattr(provider, "fetch_prices_detailed"):
        return provider.fetch_prices_detailed(symbols, start, end)
    return FetchResult(provider.fetch_prices(symbols, start, end))


class FallbackPriceProvider:
    """Prices, splits and profiles from ``providers`` in order (see the module docstring)."""

    def __init__(self, providers: Sequence[Any], disabled: dict[str, str] | None = None) -> None:
        if not providers:
            raise ProviderError("no market-data provider is enabled: " + "; ".join(
                f"{k}: {v}" for k, v in (disabled or {}).items()))
        self.providers = list(providers)
        self.name = self.providers[0].name if len(self.providers) == 1 else ">".join(p.name for p in self.providers)
        self.disabled = dict(disabled or {})
        self.events: list[dict[str, Any]] = []
        self.served_by: dict[str, str] = {}

    def _record(self, provider: str, what: str, symbols: Sequence[str], error: str) -> None:
        syms = sorted(symbols)
        self.events.append({"provider": provider, "what": what, "symbols": syms[:50], "n_symbols": len(syms),
                            "error": error})
        log.warning("%s: %s failed for %d symbol(s) (%s): %s; trying the next provider", provider, what, len(syms),
                    ", ".join(syms[:5]) + (" …" if len(syms) > 5 else ""), error)

    # --- prices ---------------------------------------------------------------------------------------

    def fetch_prices_detailed(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        remaining = list(dict.fromkeys(s for s in map(normalize_symbol, symbols) if s))
        frames: list[pd.DataFrame] = []
        failed: dict[str, str] = {}
        for p in self.providers:
            if not remaining:
                break
            try:
                res = fetch_detailed(p, remaining, start, end)
            except Exception as exc:
                self._record(p.name, "prices", remaining, describe(exc))
                failed.update({s: f"{p.name}: {describe(exc)}" for s in remaining})
                continue
            frame = res.frame
            if not frame.empty:
                frame = frame.assign(symbol=frame["symbol"].map(normalize_symbol))
                frame["data_source"] = frame["data_source"].fillna(p.name) if "data_source" in frame else p.name
                frames.append(frame)
            served = set(frame["symbol"]) if not frame.empty else set()
            for s in served:
                self.served_by[s] = p.name
                failed.pop(s, None)
            if res.errors:
                by_error: dict[str, list[str]] = {}
                for s, e in res.errors.items():
                    by_error.setdefault(e, []).append(s)
                    failed[normalize_symbol(s)] = f"{p.name}: {e}"
                for e, syms in by_error.items():
                    self._record(p.name, "prices", syms, e)
            remaining = [s for s in remaining if s not in served]
        if not frames and failed:
            raise ProviderError("no provider could serve prices: " + "; ".join(
                f"{e['provider']}: {e['error']}" for e in self.events if e["what"] == "prices"))
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(PRICE_COLUMNS)
        return FetchResult(frame.reindex(columns=list(PRICE_COLUMNS)),
                           {s: e for s, e in failed.items() if s in remaining})

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return self.fetch_prices_detailed(symbols, start, end).frame

    # --- splits ---------------------------------------------------------------------------------------

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Splits from the provider that served each symbol's prices (the first one for the others),
        falling back along the chain when that provider fails."""
        wanted = list(dict.fromkeys(s for s in map(normalize_symbol, symbols) if s))
        order = [p.name for p in self.providers]
        groups: dict[str, list[str]] = {}
        for s in wanted:
            groups.setdefault(self.served_by.get(s, order[0]), []).append(s)
        frames = []
        for first, syms in groups.items():
            for p in self.providers[order.index(first):]:
                if not hasattr(p, "fetch_splits"):
                    continue
                try:
                    frames.append(p.fetch_splits(syms, start, end))
                    break
                except Exception as exc:
                    self._record(p.name, "splits", syms, describe(exc))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_frame(SPLIT_COLUMNS)
        return pd.concat(frames, ignore_index=True).drop_duplicates(["symbol", "date"]).reset_index(drop=True)

    # --- profiles -------------------------------------------------------------------------------------

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        remaining = list(dict.fromkeys(s for s in map(normalize_symbol, symbols) if s))
        frames = []
        errors = 0
        for p in self.providers:
            if not remaining or not hasattr(p, "fetch_profiles"):
                continue
            try:
                f = p.fetch_profiles(remaining)
            except Exception as exc:
                errors += 1
                self._record(p.name, "profiles", remaining, describe(exc))
                continue
            if not f.empty:
                frames.append(f)
                remaining = [s for s in remaining if s not in set(f["symbol"])]
        if not frames and errors:
            raise ProviderError("no provider could serve profiles: " + "; ".join(
                f"{e['provider']}: {e['error']}" for e in self.events if e["what"] == "profiles"))
        if not frames:
            return empty_frame(PROFILE_COLUMNS)
        return pd.concat(frames, ignore_index=True).reindex(columns=list(PROFILE_COLUMNS))
