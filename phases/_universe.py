"""The symbols a run is about: its positions' symbols (scoped by ``--portfolio``) and option underlyings."""

from __future__ import annotations

import pandas as pd

from phases._runtime import PhaseContext
from shared.errors import BadInputError
from shared.providers.symbols import is_skipped_symbol, normalize_symbol
from shared.storage import repository as repo


def run_positions(ctx: PhaseContext) -> pd.DataFrame:
    """Non-deleted positions held at some point during the run."""
    with ctx.transaction() as s:
        return repo.load_positions(s, [ctx.portfolio_id] if ctx.portfolio_id else None,
                                   start=ctx.range.start, end=ctx.range.end)


def held_symbols(ctx: PhaseContext) -> pd.DataFrame:
    """The distinct (symbol, underlying_symbol, investment_class) of :func:`run_positions`: what the symbol
    steps need of the book, one row a symbol rather than one a position (bounded by the symbols, not the book)."""
    with ctx.transaction() as s:
        return repo.load_held_symbols(s, [ctx.portfolio_id] if ctx.portfolio_id else None,
                                      start=ctx.range.start, end=ctx.range.end)


def position_symbols(positions: pd.DataFrame) -> list[str]:
    """Priceable symbols of ``positions``: their own (unless skipped, e.g. OCC options) and underlyings."""
    under = positions["underlying_symbol"].dropna().unique().tolist() if "underlying_symbol" in positions else []
    raw = positions["symbol"].unique().tolist() + [s for s in under if s]  # distinct first: lots share symbols
    return sorted({n for n in map(normalize_symbol, raw) if n and not is_skipped_symbol(n)})


def scoped_prices(ctx: PhaseContext) -> pd.DataFrame:
    """The snapshot's closes (sessions × symbols): every symbol, or for ``--portfolio`` runs only the
    portfolio's symbols and the factor ETFs."""
    from shared.analytics.factors import FACTOR_ETFS

    prices = ctx.price_cache.wide()
    if ctx.portfolio_id:
        wanted = set(position_symbols(run_positions(ctx))) | set(FACTOR_ETFS)
        prices = prices[[c for c in prices.columns if c in wanted]]
    return prices


def require_etfs(prices: pd.DataFrame, etfs: list[str] | tuple[str, ...], needed_for: str) -> None:
    """Bad input (exit 2, not retried) when some of ``etfs`` has no close at all in ``prices``."""
    missing = [e for e in etfs if e not in prices.columns or not prices[e].notna().any()]
    if missing:
        raise BadInputError(f"the price data has no closes for factor ETF(s) {', '.join(missing)}: "
                            f"{needed_for} need(s) {', '.join(etfs)}")
