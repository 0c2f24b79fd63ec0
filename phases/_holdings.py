"""Holdings as of every session of a run, for the risk phases: one row per held position and date.

Built with the P&L kernel's as-of logic (held at the close of d: entry <= d < exit), marked at the last
close on or before d from the price-cache snapshot, and joined with each portfolio's equity on d from
phase 3's snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult
from shared.analytics.pnl import position_pnl
from shared.errors import BadInputError
from shared.storage import repository as repo

SNAPSHOT_COLUMNS = ("portfolio_id", "snapshot_date", "equity_balance", "gross_exposure")
POSITION_COLUMNS = ("id", "portfolio_id", "symbol", "underlying_symbol", "position_type", "investment_class",
                    "quantity", "entry_price", "entry_date", "exit_price", "exit_date")


@dataclass
class Book:
    holdings: pd.DataFrame  # calculation_date, portfolio_id, position_id, symbol, underlying_symbol, investment_class, position_type, market_value
    equity: pd.Series  # (calculation_date, portfolio_id) -> equity
    snapshots: pd.DataFrame  # SNAPSHOT_COLUMNS of the run's snapshots
    closes: pd.DataFrame  # sessions × symbols over the whole cached window


def nothing_held(ctx: PhaseContext) -> PhaseResult:
    """The result of a risk step over a range in which no portfolio in scope held a position."""
    msg = f"no portfolio held a position between {ctx.range.start} and {ctx.range.end}: nothing to compute"
    ctx.log.info(msg)
    return PhaseResult(status="skipped", message=msg)


def load_book(ctx: PhaseContext) -> Book | None:
    """The run's holdings, equity and closes; None when no portfolio in scope held a position in the
    range and phase 3 wrote no snapshot for it (the step then skips: :func:`nothing_held`). Bad input
    when positions were held but there is no snapshot."""
    rng = ctx.range
    pids = ctx.portfolio_scope
    with ctx.transaction() as s:
        positions = repo.load_positions(s, pids, start=rng.start, end=rng.end, columns=POSITION_COLUMNS)
        snaps = repo.load_snapshots(s, pids, rng.start, rng.end, columns=SNAPSHOT_COLUMNS)
    if snaps.empty:
        if positions.empty:
            return None
        raise BadInputError(f"no portfolio snapshot between {rng.start} and {rng.end}: run pnl-snapshots first")
    cache = ctx.price_cache
    symbols = sorted(set(positions["symbol"].unique()) | set(positions["underlying_symbol"].dropna().unique()))
    closes = cache.wide(None)
    dates = list(rng.sessions)
    res = position_pnl(positions, closes.reindex(columns=sorted(set(closes.columns) | set(symbols))), dates)
    snaps["snapshot_date"] = pd.to_datetime(snaps["snapshot_date"]).dt.date
    equity = snaps.set_index(["snapshot_date", "portfolio_id"])["equity_balance"]
    equity.index = equity.index.set_names(["calculation_date", "portfolio_id"])
    # a (date, position) is kept when its portfolio has a snapshot that date: one lookup in a dates ×
    # portfolios table, before the frame is built (its columns taken from the positions' own arrays)
    p_code, p_uniq = pd.factorize(positions["portfolio_id"].to_numpy(dtype=object))
    has = np.zeros((len(dates), len(p_uniq) + 1), dtype=bool)
    d_row = pd.Index(dates).get_indexer(snaps["snapshot_date"].to_numpy(dtype=object))
    s_col = pd.Index(p_uniq).get_indexer(snaps["portfolio_id"].to_numpy(dtype=object))
    ok = (d_row >= 0) & (s_col >= 0)
    has[d_row[ok], s_col[ok]] = True
    t_idx, p_idx = np.nonzero(res["held"])
    keep = has[t_idx, p_code[p_idx]]
    t_idx, p_idx = t_idx[keep], p_idx[keep]
    d_arr = np.array(dates, dtype=object)
    holdings = pd.DataFrame({
        "calculation_date": d_arr[t_idx],
        "portfolio_id": positions["portfolio_id"].array.take(p_idx),
        "position_id": positions["id"].to_numpy()[p_idx],
        "symbol": positions["symbol"].array.take(p_idx),
        "underlying_symbol": positions["underlying_symbol"].to_numpy()[p_idx],  # object, as before
        "investment_class": positions["investment_class"].fillna("PUBLIC").str.upper().array.take(p_idx),
        "position_type": positions["position_type"].array.take(p_idx),
        "market_value": res["value"][t_idx, p_idx],
    })
    return Book(holdings, equity, snaps, closes)


