"""The provider interfaces (one ``Protocol`` per data kind) and the frame layouts they return.

Every method returns a tidy :class:`pandas.DataFrame` with the columns listed here, so phases and tests
never depend on which provider served the data. Symbols are upper-case provider-neutral tickers
(``BRK.B``, not ``BRK-B``); adapters translate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd

#: Columns of a price frame: one row per (symbol, session). ``close`` is split-adjusted, in USD.
PRICE_COLUMNS = ("date", "symbol", "close", "volume", "data_source")

#: Columns of a profile frame (one row per symbol); absent values are NaN/None.
PROFILE_COLUMNS = (
    "symbol", "company_name", "sector", "industry", "exchange", "country", "market_cap", "beta",
    "pe_ratio", "forward_pe", "dividend_yield", "week_52_high", "week_52_low", "is_etf", "is_fund",
    "target_mean_price", "forward_eps", "revenue_growth", "earnings_growth", "profit_margin",
    "next_earnings_date", "data_source",
)

#: Columns of a statement frame: one row per (symbol, period_date, frequency, statement).
STATEMENT_COLUMNS = ("symbol", "statement", "period_date", "frequency", "fiscal_year", "fiscal_quarter",
                     "item", "value")

#: Columns of a macro-rate frame.
RATE_COLUMNS = ("series", "date", "value")

#: Columns of a benchmark sector-weight frame.
SECTOR_WEIGHT_COLUMNS = ("benchmark_code", "sector", "weight")

#: Columns of a split frame.
SPLIT_COLUMNS = ("symbol", "date", "ratio")


@runtime_checkable
class PriceProvider(Protocol):
    """Daily closes."""

    name: str

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Closes for ``symbols`` on sessions in ``[start, end]`` as a :data:`PRICE_COLUMNS` frame.

        Symbols the provider does not know are simply absent from the result.
        """
        ...


@runtime_checkable
class ProfileProvider(Protocol):
    name: str

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        """Company profiles as a :data:`PROFILE_COLUMNS` frame."""
        ...


@runtime_checkable
class FundamentalsProvider(Protocol):
    name: str

    def fetch_statements(self, symbols: Sequence[str]) -> pd.DataFrame:
        """Income statement, balance sheet and cash flow items as a :data:`STATEMENT_COLUMNS` frame.

        ``statement`` is one of ``income``, ``balance``, ``cashflow``; ``frequency`` is ``q`` or ``a``.
        """
        ...


@runtime_checkable
class RatesProvider(Protocol):
    name: str

    def fetch_rates(self, series: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Macro series (e.g. ``DGS10`` in percent) as a :data:`RATE_COLUMNS` frame."""
        ...


@runtime_checkable
class BenchmarkProvider(Protocol):
    name: str

    def fetch_sector_weights(self, benchmark_code: str, as_of: date) -> pd.DataFrame:
        """Benchmark sector weights (GICS names, summing to 1) as a :data:`SECTOR_WEIGHT_COLUMNS` frame."""
        ...


@dataclass(frozen=True)
class MarketData:
    """The set of providers a run uses, one per data kind."""

    prices: PriceProvider
    profiles: ProfileProvider
    fundamentals: FundamentalsProvider
    rates: RatesProvider
    benchmarks: BenchmarkProvider

    @property
    def name(self) -> str:
        return self.prices.name


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
