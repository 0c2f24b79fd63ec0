"""Demo portfolios for an empty database (``make run``): five books over the synthetic market.

Long-only, long/short, concentrated, ETF-heavy and one holding options (plus a lot closed mid-way), all
entered ``default_sessions`` sessions before the last completed session at that day's close, so the
first run builds that many sessions of snapshots over a year of loaded prices.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlalchemy.orm import Session

from shared import calendar
from shared.providers.registry import build_market_data
from shared.settings import Settings
from shared.storage import models as m
from shared.storage import repository as repo

BOOKS = {
    "demo-long-only": ("Long-only equities", 1_000_000.0),
    "demo-long-short": ("Long/short equities", 500_000.0),
    "demo-concentrated": ("Concentrated", 250_000.0),
    "demo-etf-heavy": ("ETF-heavy allocation", 750_000.0),
    "demo-options": ("Equities with options", 400_000.0),
}


def _occ(underlying: str, expiry, kind: str, strike: float) -> str:
    return f"{underlying}{expiry:%y%m%d}{kind}{int(round(strike * 1000)):08d}"


def seed_demo(session: Session, settings: Settings) -> list[str]:
    """Insert the demo portfolios and positions; returns their ids."""
    market = build_market_data(settings).prices
    special = {getattr(market, a, None) for a in ("late_listed", "delisted", "late_listed_symbol", "delisted_symbol")}
    stocks = [s for s in market.stock_symbols if s not in special]
    if len(stocks) < 3:
        from shared.errors import BadInputError

        raise BadInputError("the demo portfolios need at least 6 synthetic stocks (SIGMABATCH_SYNTHETIC_SYMBOLS)")
    stocks = (stocks * (16 // len(stocks) + 1))[:16]  # small markets: reuse names, duplicates are skipped
    latest = calendar.last_completed_session(settings.current_time())
    entry = calendar.shift_sessions(latest, -settings.default_sessions)
    later = calendar.shift_sessions(latest, -settings.default_sessions // 2)
    exit_day = calendar.shift_sessions(latest, -settings.default_sessions // 3)
    etfs = ["SPY", "QQQ", "TLT", "GLD", "VNQ", "IWM"]
    px = market.fetch_prices(sorted(set(stocks[:16]) | set(etfs)), entry - timedelta(days=10), latest)
    px["date"] = pd.to_datetime(px["date"]).dt.date
    wide = px.pivot(index="date", columns="symbol", values="close").sort_index().ffill()

    def close(sym, day):
        return float(wide.loc[:day, sym].iloc[-1])

    lots: list[dict] = []

    def add(pid, sym, dollars, *, day=entry, ptype=None, exit_date=None):
        if any(lot["portfolio_id"] == pid and lot["symbol"] == sym for lot in lots):
            return
        price = close(sym, day)
        qty = round(dollars / price)
        lots.append({"portfolio_id": pid, "symbol": sym, "quantity": float(qty), "entry_price": round(price, 4),
                     "entry_date": day, "position_type": ptype or ("LONG" if qty > 0 else "SHORT"),
                     "investment_class": "PUBLIC", "exit_date": exit_date,
                     "exit_price": round(close(sym, exit_date), 4) if exit_date else None})

    for s in stocks[:10]:
        add("demo-long-only", s, 90_000)
    for s in stocks[2:8]:
        add("demo-long-short", s, 70_000)
    for s in stocks[10:14]:
        add("demo-long-short", s, -55_000)
    add("demo-long-short", stocks[14], 40_000, day=later)
    for s, w in zip(stocks[4:7], (110_000, 70_000, 50_000), strict=True):
        add("demo-concentrated", s, w)
    for s, w in zip(etfs, (200_000, 120_000, 150_000, 60_000, 50_000, 80_000), strict=True):
        add("demo-etf-heavy", s, w)
    for s in stocks[:2]:
        add("demo-etf-heavy", s, 40_000)
    for s in stocks[5:9]:
        add("demo-options", s, 60_000)
    add("demo-options", stocks[15], 50_000, exit_date=exit_day)
    und = stocks[5]
    spot = close(und, entry)
    expiry = calendar.shift_sessions(latest, 120)
    for kind, ptype, qty, prem in (("C", "LC", 5.0, 0.06), ("P", "SP", -4.0, 0.04)):
        strike = round(spot * (1.05 if kind == "C" else 0.9))
        lots.append({"portfolio_id": "demo-options", "symbol": _occ(und, expiry, kind, strike), "quantity": qty,
                     "entry_price": round(spot * prem, 2), "entry_date": entry, "position_type": ptype,
                     "investment_class": "OPTIONS", "underlying_symbol": und, "exit_date": None,
                     "exit_price": None, "strike_price": float(strike), "expiration_date": expiry})
    portfolios = pd.DataFrame([{"id": pid, "name": name, "equity_balance": eq, "currency": "USD", "is_active": True}
                               for pid, (name, eq) in BOOKS.items()])
    repo.upsert(session, m.Portfolio, portfolios)
    repo.upsert(session, m.Position, pd.DataFrame(lots),
                conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    return list(BOOKS)
