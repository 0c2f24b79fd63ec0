"""Phase 3 — P&L, equity roll-forward and one snapshot per portfolio and session.

Reads closes from the price-cache snapshot only. The state before the first session comes from each
portfolio's previous snapshot (or its inception equity). All sessions of the run are computed at once
(:func:`shared.analytics.pnl.roll_forward`) and written in one transaction: a re-run leaves the same rows.
A long range over many portfolios goes in chunks of portfolios (``SIGMABATCH_CHUNK_PORTFOLIO_DATES``
portfolio × session pairs each), each written on its own: memory is bounded whatever the range.

A snapshot is only booked on prices of that session. From the first session on which a symbol a portfolio
holds has no close (a stale price would be carried forward as a zero P&L), that portfolio gets no snapshot
for the rest of the range; nor does a portfolio whose existing snapshots stop before the session preceding
the range (its equity would be rolled over the missing sessions). The step is then ``partial`` and names the portfolios,
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
        if ctx.portfolio_scope is not None:  # a shard's portfolios
            portfolios = portfolios[portfolios["id"].isin(ctx.portfolio_scope)].reset_index(drop=True)
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
    # Memory grows with positions x sessions: a long range over many portfolios goes in chunks of portfolios
    # (SIGMABATCH_CHUNK_PORTFOLIO_DATES portfolio x session pairs each), each written on its own. A
    # portfolio's chain is its own, so the rows are the same whatever the chunking (a re-run rewrites them).
    ids = sorted(set(state["portfolio_id"]) | set(positions["portfolio_id"]))
    size = max(ctx.settings.chunk_portfolio_dates // max(len(rng.sessions), 1), 1)
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)] or [[]]
    written, unpriced, stale = 0, 0, {}
    for i, chunk in enumerate(chunks, start=1):
        members = set(chunk)
        part = state[state["portfolio_id"].isin(members)] if len(chunks) > 1 else state
        pos = positions[positions["portfolio_id"].isin(members)].reset_index(drop=True) if len(chunks) > 1 \
            else positions
        held = closes[sorted(set(pos["symbol"]))] if len(chunks) > 1 else closes  # a column's result is its own
        snaps = roll_forward(pos, held, rng.sessions, part, flows)
        snaps, part_stale = _only_fresh(snaps, pos, held, rng.sessions)
        stale.update(part_stale)
        snaps["run_id"] = ctx.run_id
        with ctx.transaction() as s:
            written += repo.upsert(s, m.PortfolioSnapshot, snaps)
        unpriced += int(snaps["positions_without_price"].sum()) if not snaps.empty else 0
        if len(chunks) > 1 and (i % 20 == 0 or i == len(chunks)):
            ctx.log.info("chunk %d/%d of portfolios done", i, len(chunks))
        del snaps, pos, held
    stale = dict(sorted(stale.items()))
    ctx.log.info("snapshots written", extra={"snapshots": written, "portfolios": len(state)})
    details = {"portfolios": len(state), "sessions": len(rng.sessions), "position_days_marked_at_entry_price": unpriced,
               "portfolio_chunks": len(chunks)}
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
    """Portfolios whose chain of snapshots reaches the session before ``start`` (or has not begun: a first
    run, or a backfill starting the chain there); the others, with their last snapshot date, are not rolled
    forward over the hole (an earlier run left sessions unbooked)."""
    prev_session = calendar.previous_session(start)
    last = {} if previous.empty else dict(zip(previous["portfolio_id"], pd.to_datetime(previous["snapshot_date"]).dt.date,
                                              strict=True))
    gap = state["portfolio_id"].map(lambda p: p in last and last[p] != prev_session).astype(bool)
    gaps = {p: str(last[p]) for p in state.loc[gap, "portfolio_id"]}
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
