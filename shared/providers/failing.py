"""Test doubles: a provider that always fails, one that has nothing, and one serving a given price frame."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from shared.errors import ProviderError
from shared.providers.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    RATE_COLUMNS,
    SECTOR_WEIGHT_COLUMNS,
    SPLIT_COLUMNS,
    STATEMENT_COLUMNS,
    empty_frame,
)
from shared.providers.symbols import normalize_symbol


class FailingProvider:
    """Every method raises :class:`ProviderError` with ``message`` (simulates an outage)."""

    name = "failing"

    def __init__(self, message: str = "provider unavailable (simulated outage)") -> None:
        self.message = message
        self.calls: list[str] = []

    def _fail(self, method: str) -> ProviderError:
        self.calls.append(method)
        return ProviderError(f"{self.name}.{method}: {self.message}")

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        raise self._fail("fetch_prices")

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        raise self._fail("fetch_splits")

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        raise self._fail("fetch_profiles")

    def fetch_statements(self, symbols: Sequence[str]) -> pd.DataFrame:
        raise self._fail("fetch_statements")

    def fetch_rates(self, series: Sequence[str], start: date, end: date) -> pd.DataFrame:
        raise self._fail("fetch_rates")

    def fetch_sector_weights(self, benchmark_code: str, as_of: date) -> pd.DataFrame:
        raise self._fail("fetch_sector_weights")


class EmptyProvider:
    """Knows nothing: every method returns an empty frame with the right columns."""

    def __init__(self, name: str = "empty") -> None:
        self.name = name

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return empty_frame(PRICE_COLUMNS)

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return empty_frame(SPLIT_COLUMNS)

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        return empty_frame(PROFILE_COLUMNS)

    def fetch_statements(self, symbols: Sequence[str]) -> pd.DataFrame:
        return empty_frame(STATEMENT_COLUMNS)

    def fetch_rates(self, series: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return empty_frame(RATE_COLUMNS)

    def fetch_sector_weights(self, benchmark_code: str, as_of: date) -> pd.DataFrame:
        return empty_frame(SECTOR_WEIGHT_COLUMNS)


class InMemoryPriceProvider:
    """Serves a given price frame (``date, symbol, close`` [, ``volume``, ``data_source``]).

    ``date`` may hold dates, datetimes or ISO strings; symbols are normalised. ``calls`` records each
    request as ``(symbols, start, end)`` so tests can assert what was asked.
    """

    def __init__(self, frame: pd.DataFrame, name: str = "memory") -> None:
        self.name = name
        f = frame.copy()
        f["date"] = pd.to_datetime(f["date"]).dt.date
        f["symbol"] = f["symbol"].map(normalize_symbol)
        if "volume" not in f:
            f["volume"] = float("nan")
        if "data_source" not in f:
            f["data_source"] = name
        self.frame = f.reindex(columns=list(PRICE_COLUMNS)).sort_values(["symbol", "date"], ignore_index=True)
        self.calls: list[tuple[tuple[str, ...], date, date]] = []

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        self.calls.append((tuple(symbols), start, end))
        wanted = {normalize_symbol(s) for s in symbols}
        f = self.frame
        keep = f["symbol"].isin(wanted) & (f["date"] >= start) & (f["date"] <= end)
        out = f.loc[keep].reset_index(drop=True)
        return out if len(out) else empty_frame(PRICE_COLUMNS)

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        return empty_frame(SPLIT_COLUMNS)
