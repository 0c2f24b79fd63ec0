"""Phase 3 — P&L, equity roll-forward and one snapshot per portfolio and session.

Reads closes from the price-cache snapshot only. The state before the first session comes from each
portfolio's previous snapshot (or its inception equity). All sessions of the run are computed at once
(:func:`shared.analytics.pnl.roll_forward`) and written in one transaction: a re-run leaves the same rows.

A snapshot is only booked on prices of that session. From the first session on which a symbol a portfolio
holds has no close (a stale price would be carried forward as a zero P&L), that portfolio gets no snapshot
for the rest of the range; nor does a portfolio whose chain of snapshots has a gap before the range (its
equity would be rolled over the missing sessions). The step is then ``partial`` and names the portfolios,
symbols and sessions; a later run, once prices are there, books them (the run detects them as missing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared import calendar
from shared.analytics.pnl import roll_forward, stale_marks
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
    state, gaps = _without_gaps(state, previous, rng.start)
    closes = ctx.price_cache.wide(sorted(set(positions["symbol"])))
    snaps = roll_forward(positions, closes, rng.sessions, state, flows)
    snaps, stale = _only_fresh(snaps, positions, closes, rng.sessions)
    snaps["run_id"] = ctx.run_id
    with ctx.transaction() as s:
        written = repo.upsert(s, m.PortfolioSnapshot, snaps)
    unpriced = int(snaps["positions_without_price"].sum()) if not snaps.empty else 0
    ctx.log.info("snapshots written", extra={"snapshots": written, "portfolios": len(state)})
    details = {"portfolios": len(state), "sessions": len(rng.sessions), "position_days_marked_at_entry_price": unpriced}
    notes = []
    if stale:
        details["not_booked_stale_prices"] = stale
        notes.append("no snapshot from the first session without a fresh close: " + "; ".join(
            f"{pid} from {v['from']} ({', '.join(v['symbols'][:10])} on {', '.join(v['sessions'][:5])}"
            + (" …" if len(v["sessions"]) > 5 else "") + ")" for pid, v in list(stale.items())[:10]))
    if gaps:
        details["not_booked_gap_before_range"] = gaps
        notes.append("no snapshot before the range on the previous session (a gap in the chain): "
                     + "; ".join(f"{pid} (last {last})" for pid, last in list(gaps.items())[:10]))
    message = " · ".join(notes)
    if message:
        ctx.log.warning(message)
    return PhaseResult(rows={"portfolio_snapshots": written}, details=details,
                       status="partial" if message else "ok", message=message)


def _without_gaps(state: pd.DataFrame, previous: pd.DataFrame, start) -> tuple[pd.DataFrame, dict[str, str]]:
    """Portfolios whose last snapshot before ``start`` is on the session before it (or that began after
    it); the others, with their last snapshot date ("none"), are not rolled forward over the gap."""
    prev_session = calendar.previous_session(start)
    last = {} if previous.empty else dict(zip(previous["portfolio_id"], pd.to_datetime(previous["snapshot_date"]).dt.date,
                                              strict=True))
    began_before = pd.to_datetime(state["inception"]).dt.date <= prev_session
    gap = began_before & state["portfolio_id"].map(lambda p: last.get(p) != prev_session)
    gaps = {p: str(last.get(p, "none")) for p in state.loc[gap, "portfolio_id"]}
    return state[~gap].reset_index(drop=True), gaps


def _only_fresh(snaps: pd.DataFrame, positions: pd.DataFrame, closes: pd.DataFrame, sessions) -> tuple[pd.DataFrame, dict]:
    """The snapshots of each portfolio up to the session before its first stale mark, and per portfolio
    left out: the first session not booked, the symbols and the sessions without a close."""
    stale = stale_marks(positions, closes, sessions)
    if snaps.empty or not stale.any():
        return snaps, {}
    dates = list(sessions)
    pids = positions["portfolio_id"].to_numpy()
    syms = positions["symbol"].to_numpy()
    out: dict[str, dict] = {}
    for pid in sorted(set(pids[np.flatnonzero(stale.any(axis=0))])):
        cols = np.flatnonzero((pids == pid) & stale.any(axis=0))
        rows = np.flatnonzero(stale[:, cols].any(axis=1))
        out[str(pid)] = {"from": str(dates[rows[0]]), "symbols": sorted({str(x) for x in syms[cols]}),
                         "sessions": [str(dates[t]) for t in rows]}
    first = pd.to_datetime(snaps["portfolio_id"].map({p: v["from"] for p, v in out.items()}))
    keep = first.isna() | (pd.to_datetime(snaps["snapshot_date"]) < first)
    return snaps[keep.to_numpy()].reset_index(drop=True), out


main = entrypoint("pnl-snapshots", "Phase 3: daily P&L, equity roll-forward and portfolio snapshots.", run)

if __name__ == "__main__":
    raise SystemExit(main())
