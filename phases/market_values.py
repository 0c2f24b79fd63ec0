"""Phase 4 — position market values as of the run's last session (positions hold current state).

Mark = last close on or before the end date from the price-cache snapshot (entry price when the symbol
has no close, e.g. an unpriced option). Positions closed by then get a zero market value. Current state
only moves forward: a backfill or re-run of older dates, ``--force`` included, never overwrites values
from a later date (the guard is in storage: ``bulk_update(..., as_of="market_value_date")``); history
lives in the dated tables.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.pnl import marks, multipliers
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

#: Only the last close on or before the run's last session.
HISTORY = History(sessions=0)


def market_values(positions: pd.DataFrame, closes: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """[id, last_price, market_value, unrealized_pnl, market_value_date] for ``positions`` at ``as_of``."""
    # only the last row of marks: the (sessions x positions) matrix would be ~600 MB at 200,000 positions
    mk = marks(closes.ffill().tail(1), positions["symbol"].tolist())[-1] if len(closes) \
        else np.full(len(positions), np.nan)
    price = np.where(np.isnan(mk), positions["entry_price"].to_numpy(dtype="float64"), mk)
    qm = positions["quantity"].to_numpy(dtype="float64") * multipliers(positions["position_type"])
    exit_ = pd.to_datetime(positions["exit_date"])
    is_open = exit_.isna().to_numpy() | (exit_ > pd.Timestamp(as_of)).to_numpy()
    mv = np.where(is_open, qm * price, 0.0)
    upnl = np.where(is_open, mv - qm * positions["entry_price"].to_numpy(dtype="float64"), 0.0)
    return pd.DataFrame({"id": positions["id"].to_numpy(), "last_price": price, "market_value": mv,
                         "unrealized_pnl": upnl, "market_value_date": as_of})


def run(ctx: PhaseContext) -> PhaseResult:
    end = ctx.range.end
    with ctx.transaction() as s:
        positions = repo.load_positions(s, ctx.portfolio_scope, end=end)
    stale = pd.to_datetime(positions["market_value_date"])
    positions = positions[stale.isna() | (stale <= pd.Timestamp(end))]  # (storage enforces it too)
    if positions.empty:
        return PhaseResult(status="ok", message="no position to update")
    closes = ctx.price_cache.wide(sorted(set(positions["symbol"])))
    values = market_values(positions, closes.loc[: pd.Timestamp(end)], end)
    with ctx.transaction() as s:
        written = repo.bulk_update(s, m.Position, values, as_of="market_value_date")
    return PhaseResult(updated={"positions": written}, details={"as_of": end.isoformat(),
                       "open_positions": int((values["market_value"] != 0).sum())})


main = entrypoint("market-values", "Phase 4: update each position's last price and market value.", run)

if __name__ == "__main__":
    raise SystemExit(main())
