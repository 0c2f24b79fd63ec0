"""Phase 3 — P&L, equity roll-forward and one snapshot per portfolio and session.

Reads closes from the price-cache snapshot only. The state before the first session comes from each
portfolio's previous snapshot (or its inception equity). All sessions of the run are computed at once
(:func:`shared.analytics.pnl.roll_forward`) and written in one transaction: a re-run leaves the same rows.
"""

from __future__ import annotations

import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared import calendar
from shared.analytics.pnl import roll_forward
from shared.errors import BadInputError
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

#: The previous session's close (the day's P&L is measured from it).
HISTORY = History(sessions=1)


def start_state(portfolios: pd.DataFrame, previous: pd.DataFrame, positions: pd.DataFrame) -> pd.DataFrame:
    """Per portfolio: equity and cumulative totals at the start, and its inception (first entry date)."""
    state = portfolios[["id", "equity_balance"]].rename(columns={"id": "portfolio_id", "equity_balance": "equity"})
    for c in ("cumulative_pnl", "cumulative_realized_pnl", "cumulative_capital_flow"):
        state[c] = 0.0
    if not previous.empty:
        prev = previous.set_index("portfolio_id")
        has = state["portfolio_id"].isin(prev.index)
        ids = state.loc[has, "portfolio_id"]
        state.loc[has, "equity"] = prev.loc[ids, "equity_balance"].to_numpy()
        for c in ("cumulative_pnl", "cumulative_realized_pnl", "cumulative_capital_flow"):
            state.loc[has, c] = prev.loc[ids, c].to_numpy()
    inception = positions.groupby("portfolio_id")["entry_date"].min()
    state["inception"] = state["portfolio_id"].map(inception)
    return state[state["inception"].notna()].reset_index(drop=True)


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    with ctx.transaction() as s:
        portfolios = repo.load_portfolios(s, ctx.portfolio_id)
        if portfolios.empty:
            raise BadInputError("no active portfolio to process")
        pids = portfolios["id"].tolist()
        positions = repo.load_positions(s, pids, start=calendar.previous_session(rng.start), end=rng.end)
        all_positions = repo.load_positions(s, pids)
        previous = repo.latest_snapshots_before(s, pids, rng.start)
        flows = repo.load_equity_changes(s, pids, calendar.previous_session(rng.start), rng.end)
    bad_equity = portfolios.loc[portfolios["equity_balance"] <= 0, "id"].tolist()
    if bad_equity:
        raise BadInputError(f"portfolio(s) with zero or negative inception equity: {', '.join(bad_equity)}")
    state = start_state(portfolios, previous, all_positions)
    closes = ctx.price_cache.wide(sorted(set(positions["symbol"])))
    snaps = roll_forward(positions, closes, rng.sessions, state, flows)
    snaps["run_id"] = ctx.run_id
    with ctx.transaction() as s:
        written = repo.upsert(s, m.PortfolioSnapshot, snaps)
    unpriced = int(snaps["positions_without_price"].sum()) if not snaps.empty else 0
    ctx.log.info("snapshots written", extra={"snapshots": written, "portfolios": len(state)})
    return PhaseResult(
        rows={"portfolio_snapshots": written},
        details={"portfolios": len(state), "sessions": len(rng.sessions),
                 "position_days_marked_at_entry_price": unpriced},
    )


main = entrypoint("pnl-snapshots", "Phase 3: daily P&L, equity roll-forward and portfolio snapshots.", run)

if __name__ == "__main__":
    raise SystemExit(main())
