"""A synthetic universe at a given size, loaded into a fresh database through COPY.

Sizes (symbols = synthetic stocks; the 17 factor ETFs come on top):

====  =======  ==========  =========
size  symbols  portfolios  positions
====  =======  ==========  =========
S         500         100      2,000
M       2,000       2,000     40,000
L      10,000      10,000    200,000
XL     20,000     100,000  2,000,000
====  =======  ==========  =========

Every portfolio holds ``positions / portfolios`` distinct symbols (90 % stocks, 10 % factor ETFs, 80 %
long), entered at the close of a session in the 40 sessions before the backfill window, with equity
about its gross exposure; 8 % of the lots are closed at a session inside the window (exit at that
close). Deterministic in ``seed``.

Two starting states:

* ``nightly``: the database holds a year of closes up to the previous session (the price-cache window),
  fresh company profiles, and one snapshot per portfolio on the previous session; the run processes
  the last session only.
* ``backfill``: an onboarding: portfolios and positions only; the run fetches two years of closes and
  processes the 252 sessions of the year up to the last session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg

from shared import calendar
from shared.analytics.factors import FACTOR_ETFS
from shared.providers.synthetic import SyntheticMarket
from shared.storage import models as m
from shared.storage.bulk import encode_csv

SIZES: dict[str, tuple[int, int, int]] = {
    "S": (500, 100, 2_000),
    "M": (2_000, 2_000, 40_000),
    "L": (10_000, 10_000, 200_000),
    "XL": (20_000, 100_000, 2_000_000),  # issue 18: run sharded (python -m bench XL --shard-positions 50000)
}
NOW = "2026-11-27T18:00:00-05:00"
BACKFILL_SESSIONS = 252
SEED = 11


@dataclass(frozen=True)
class Plan:
    size: str
    symbols: int
    portfolios: int
    positions: int
    end: date  # the session the run processes last
    prev: date  # the session before it
    backfill_start: date  # first session of the one-year backfill

    @classmethod
    def of(cls, size: str, now: str = NOW, backfill_sessions: int = BACKFILL_SESSIONS,
           portfolios: int | None = None) -> Plan:
        """``portfolios``: fewer (or more) portfolios than the size has, with the same positions each
        (a reduced variant that keeps the size's symbol count)."""
        n_sym, n_pf, n_pos = SIZES[size]
        if portfolios:
            n_pf, n_pos = portfolios, portfolios * (n_pos // n_pf)
        end = calendar.last_completed_session(datetime.fromisoformat(now))
        return cls(size, n_sym, n_pf, n_pos, end, calendar.previous_session(end),
                   calendar.shift_sessions(end, -(backfill_sessions - 1)))


def book(plan: Plan, market: SyntheticMarket, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(portfolios, positions) frames; positions carry explicit ids 1..N."""
    rng = np.random.default_rng([seed, plan.symbols, plan.portfolios])
    per = plan.positions // plan.portfolios
    stocks = np.array(market.stock_symbols, dtype=object)
    etfs = np.array(FACTOR_ETFS, dtype=object)
    n_etf = max(1, round(per * 0.1))
    sym = np.empty((plan.portfolios, per), dtype=object)
    for p in range(plan.portfolios):
        sym[p, :n_etf] = rng.choice(etfs, n_etf, replace=False)
        sym[p, n_etf:] = rng.choice(stocks, per - n_etf, replace=False)
    sym = sym.ravel()
    pid = np.repeat([f"bench-{p:05d}" for p in range(plan.portfolios)], per)
    entry_days = calendar.sessions(calendar.shift_sessions(plan.backfill_start, -40),
                                   calendar.shift_sessions(plan.backfill_start, -1))
    window = calendar.sessions(plan.backfill_start, plan.prev)
    n = len(sym)
    entry_idx = rng.integers(0, len(entry_days), n)
    closed = rng.random(n) < 0.08
    exit_idx = rng.integers(0, len(window), n)
    dollars = rng.lognormal(np.log(50_000), 0.6, n) * np.where(rng.random(n) < 0.8, 1.0, -1.0)
    closes = market.close_matrix(sorted(set(sym)), entry_days[0], plan.prev).ffill()
    entry_dates = np.array(entry_days, dtype=object)[entry_idx]
    exit_dates = np.where(closed, np.array(window, dtype=object)[exit_idx], None)
    ci = closes.index.get_indexer(pd.to_datetime(entry_dates))
    cj = closes.columns.get_indexer(sym)
    entry_px = closes.to_numpy()[ci, cj]
    xi = closes.index.get_indexer(pd.to_datetime(np.where(closed, exit_dates, entry_dates)))
    exit_px = np.where(closed, closes.to_numpy()[xi, cj], np.nan)
    ok = np.isfinite(entry_px)  # a late-listed stock without a close at entry: drop the lot
    qty = np.round(dollars / np.where(ok, entry_px, 1.0))
    ok &= qty != 0
    positions = pd.DataFrame({
        "portfolio_id": pid, "symbol": sym, "position_type": np.where(qty > 0, "LONG", "SHORT"),
        "investment_class": "PUBLIC", "quantity": qty, "entry_price": np.round(entry_px, 4),
        "entry_date": entry_dates, "exit_date": exit_dates, "exit_price": np.round(exit_px, 4),
    })[ok].reset_index(drop=True)
    positions.insert(0, "id", np.arange(1, len(positions) + 1))
    gross = positions.assign(g=(positions["quantity"] * positions["entry_price"]).abs()).groupby("portfolio_id")["g"].sum()
    portfolios = pd.DataFrame({"id": gross.index, "name": [f"Bench {p}" for p in gross.index], "currency": "USD",
                               "equity_balance": np.round(gross.to_numpy() * rng.uniform(0.8, 1.25, len(gross)), 2),
                               "is_active": True})
    return portfolios, positions


def _copy(conn: psycopg.Connection, model, frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    names, data = encode_csv(model, frame)
    cols = ", ".join(f'"{c}"' for c in names)
    with conn.cursor() as cur, cur.copy(f'COPY "{model.__table__.name}" ({cols}) FROM STDIN (FORMAT csv)') as cp:
        cp.write(data)
    return len(frame)


def _prev_snapshots(portfolios: pd.DataFrame, day: date, now: datetime) -> pd.DataFrame:
    eq = portfolios["equity_balance"].to_numpy()
    zero = np.zeros(len(eq))
    return pd.DataFrame({
        "portfolio_id": portfolios["id"], "snapshot_date": day, "net_asset_value": eq, "cash_value": eq,
        "long_value": zero, "short_value": zero, "gross_exposure": zero, "net_exposure": zero, "daily_pnl": zero,
        "daily_unrealized_pnl": zero, "daily_realized_pnl": zero, "daily_return": zero, "daily_capital_flow": zero,
        "cumulative_pnl": zero, "cumulative_realized_pnl": zero, "cumulative_capital_flow": zero,
        "equity_balance": eq, "num_positions": 0, "num_long_positions": 0, "num_short_positions": 0,
        "positions_without_price": 0, "run_id": "bench-seed", "created_at": now})


def load(plan: Plan, case: str, db_url: str, conninfo: str | None, now: str = NOW, seed: int = SEED) -> dict:
    """Build the universe and write the starting state of ``case`` into the (migrated, empty) database:
    COPY on PostgreSQL (``conninfo``), the repository's executemany upsert on SQLite."""
    t0 = time.perf_counter()
    now_dt = datetime.fromisoformat(now)
    market = SyntheticMarket(plan.symbols, seed=7, as_of=plan.end)
    portfolios, positions = book(plan, market, seed)
    frames = [(m.Portfolio, portfolios), (m.Position, positions)]
    if case == "nightly":
        from phases.market_data import window_start

        start = window_start(plan.end)  # the history the night's steps declare: nothing left to fetch but the day
        prices = market.fetch_prices(market.symbols, start, plan.prev)
        frames.append((m.MarketDataCache, prices.assign(updated_at=now_dt)))
        profiles = market.fetch_profiles(market.symbols, as_of=plan.end)
        profiles["last_updated"] = now_dt - timedelta(days=1)
        profiles["fundamentals_last_fetched"] = now_dt - timedelta(days=1)
        frames.append((m.CompanyProfile, profiles))
        frames.append((m.PortfolioSnapshot, _prev_snapshots(portfolios, plan.prev, now_dt)))
    rows: dict[str, int] = {}
    if conninfo:
        with psycopg.connect(conninfo) as conn:
            for model, frame in frames:
                rows[model.__tablename__] = _copy(conn, model, frame)
            conn.execute("SELECT setval(pg_get_serial_sequence('positions', 'id'), %s)", (len(positions),))
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    else:
        from shared.storage import repository as repo
        from shared.storage.db import get_engine, transaction

        with transaction(get_engine(db_url)) as s:
            for model, frame in frames:
                rows[model.__tablename__] = repo.upsert(s, model, frame)
    return {"seconds": round(time.perf_counter() - t0, 3), "rows": rows}


#: Phase 6's result tables and their date column.
PHASE6_RESULTS = {"factor_exposures": "calculation_date", "symbol_volatility": "calculation_date",
                  "stress_test_pnl": "calculation_date", "stress_exposures": "calculation_date",
                  "stress_scenario_sessions": "calculation_date", "stress_test_summaries": "calculation_date",
                  "correlation_calculations": "calculation_date", "pairwise_correlations": "calculation_date",
                  "correlation_clusters": "calculation_date"}


def reset_nightly(db_url: str, day: date) -> None:
    """Undo a nightly run of ``day`` so the next repeat starts from the same state (rows dated ``day``)."""
    dated = {"market_data_cache": "date", "symbol_factor_exposures": "calculation_date",
             "symbol_daily_metrics": "metrics_date", "portfolio_snapshots": "snapshot_date",
             **PHASE6_RESULTS, "benchmarks_sector_weights": "asof_date"}
    _delete_dated(db_url, day, dated, also=("position_sector_tags",))


def clear_phase6_results(db_url: str, day: date) -> None:
    """Delete phase 6's results of ``day`` (and vacuum), so re-running phase 6 measures a night's first
    computation of that date, not a retry over rows it must first delete."""
    _delete_dated(db_url, day, PHASE6_RESULTS)


def _delete_dated(db_url: str, day: date, dated: dict[str, str], also: tuple[str, ...] = ()) -> None:
    from sqlalchemy import text

    from shared.storage.db import get_engine

    eng = get_engine(db_url)
    with eng.begin() as conn:
        for table, col in dated.items():
            conn.execute(text(f'DELETE FROM "{table}" WHERE "{col}" = :d'), {"d": day})
        for table in also:
            conn.execute(text(f'DELETE FROM "{table}"'))
    if eng.dialect.name == "postgresql":
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))

