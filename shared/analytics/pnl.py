r"""Daily P&L, equity roll-forward and snapshot values for every portfolio and session at once.

Conventions (domain spec §8 with "Our decisions" 4 and 5):

* A position is *held at the close of* calendar date :math:`x` when ``entry_date <= x`` and
  (``exit_date`` is null or ``exit_date > x``). Soft-deleted positions never reach this module.
* Mark :math:`M_{i,t}` = the last close of the position's symbol on or before session :math:`t`; a
  position whose symbol has no close at all (e.g. an OCC option the provider does not price) is marked
  at its entry price, so it books no P&L until it is closed.
* For session :math:`t` with previous session :math:`p`:

  .. math::

      \mathrm{PnL}_{i,t} = q_i m_i \,(\mathrm{end}_{i,t} - \mathrm{base}_{i,t}),\quad
      \mathrm{base} = \begin{cases} M_{i,p} & \text{held at } p\\ \text{entry price} & \text{opened in } (p, t]
      \end{cases},\quad
      \mathrm{end} = \begin{cases} M_{i,t} & \text{held at } t\\ \text{exit price} & \text{closed in } (p, t]
      \end{cases}

  so a position closed on day :math:`t` adds (exit − previous mark), never (exit − entry) on top of
  what earlier days already booked: no double counting. The part of P&L from positions closed in
  :math:`(p, t]` is reported as realized; unrealized + realized = daily P&L.
* Equity: :math:`E_t = E_{p} + \mathrm{PnL}_t + F_t`, with :math:`F_t` the capital flows dated in
  :math:`(p, t]`; daily return = :math:`\mathrm{PnL}_t / E_p` (null when :math:`E_p \le 0`).
* Exposures use signed market values :math:`v_i = q_i m_i M_{i,t}` of positions held at :math:`t`;
  cash = :math:`E_t - \sum v_i` (negative = borrowing). :math:`m_i` is 100 for LC/LP/SC/SP, else 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from scipy import sparse

from shared.analytics.factors import OPTION_MULTIPLIER, OPTION_TYPES

#: Columns of the snapshot frame returned by :func:`roll_forward`.
SNAPSHOT_COLUMNS = (
    "portfolio_id", "snapshot_date", "net_asset_value", "cash_value", "long_value", "short_value",
    "gross_exposure", "net_exposure", "daily_pnl", "daily_unrealized_pnl", "daily_realized_pnl",
    "daily_return", "daily_capital_flow", "cumulative_pnl", "cumulative_realized_pnl",
    "cumulative_capital_flow", "equity_balance", "num_positions", "num_long_positions",
    "num_short_positions", "positions_without_price",
)


def multipliers(position_types: Sequence[str] | pd.Series) -> np.ndarray:
    """Contract multiplier per position: 100 for option types, 1 otherwise."""
    types = pd.Series(position_types, dtype="object").fillna("").str.upper()
    return np.where(types.isin(OPTION_TYPES), OPTION_MULTIPLIER, 1.0)


def _held(entry: np.ndarray, exit_: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(T, N) mask: held at the close of each date in ``at`` (datetime64[D] arrays)."""
    at = at[:, None]
    return (entry[None, :] <= at) & (np.isnat(exit_)[None, :] | (exit_[None, :] > at))


def marks(closes: pd.DataFrame, symbols: Sequence[str]) -> np.ndarray:
    """(T, N) last close on or before each row's session for each position's symbol (NaN if none)."""
    filled = closes.ffill()
    cols = pd.Index(filled.columns)
    idx = cols.get_indexer(list(symbols))
    arr = filled.to_numpy(dtype="float64")
    out = np.full((len(filled), len(idx)), np.nan)
    ok = idx >= 0
    out[:, ok] = arr[:, idx[ok]]
    return out


def position_pnl(
    positions: pd.DataFrame, closes: pd.DataFrame, dates: Sequence[date]
) -> dict[str, np.ndarray]:
    """Per-position daily P&L on ``dates``.

    Parameters
    ----------
    positions : frame with ``symbol, position_type, quantity, entry_price, entry_date, exit_date,
        exit_price`` (N rows).
    closes : wide closes, sessions × symbols, covering at least the session before ``dates[0]``.
    dates : sessions to compute (T), ascending, each in ``closes.index``.

    Returns
    -------
    dict of (T, N) arrays: ``pnl``, ``realized`` (part of pnl from closing), ``held`` (bool, at t),
    ``value`` (signed market value at t, 0 when not held), ``priced`` (bool, a market close exists).
    """
    n = len(positions)
    idx = pd.DatetimeIndex(closes.index)
    d64 = np.array(pd.to_datetime(list(dates)), dtype="datetime64[D]")
    rows = idx.get_indexer(pd.DatetimeIndex(d64))
    if (rows < 1).any():
        raise ValueError("closes must cover every date and the session before the first one")
    prev64 = idx.to_numpy(dtype="datetime64[D]")[rows - 1]
    # marks are needed on the dates and their previous sessions only: gather those rows (not the whole
    # cached year) into the (rows, positions) matrix
    need = np.unique(np.concatenate([rows, rows - 1]))
    filled = closes.ffill().to_numpy(dtype="float64")[need]
    col = pd.Index(closes.columns).get_indexer(positions["symbol"].tolist()) if n else np.zeros(0, dtype=np.intp)
    mark_need = np.full((len(need), n), np.nan)
    mark_need[:, col >= 0] = filled[:, col[col >= 0]]
    entry_px = positions["entry_price"].to_numpy(dtype="float64")
    priced_need = ~np.isnan(mark_need)
    mark_need = np.where(priced_need, mark_need, entry_px[None, :])
    at, at_prev = np.searchsorted(need, rows), np.searchsorted(need, rows - 1)
    m_t, m_p = mark_need[at], mark_need[at_prev]
    entry = pd.to_datetime(positions["entry_date"]).to_numpy(dtype="datetime64[D]")
    exit_ = pd.to_datetime(positions["exit_date"]).to_numpy(dtype="datetime64[D]")
    held_t = _held(entry, exit_, d64)
    held_p = _held(entry, exit_, prev64)
    opened = (entry[None, :] > prev64[:, None]) & (entry[None, :] <= d64[:, None])
    closed = ~np.isnat(exit_)[None, :] & (exit_[None, :] > prev64[:, None]) & (exit_[None, :] <= d64[:, None])
    exit_px = positions["exit_price"].to_numpy(dtype="float64")
    exit_px = np.where(np.isnan(exit_px)[None, :], m_t, exit_px[None, :])
    base = np.where(held_p, m_p, entry_px[None, :])
    end = np.where(held_t, m_t, exit_px)
    active = held_t | held_p | (opened & closed)
    qm = positions["quantity"].to_numpy(dtype="float64") * multipliers(positions["position_type"])
    pnl = np.where(active, qm[None, :] * (end - base), 0.0)
    realized = np.where(active & ~held_t, pnl, 0.0)
    value = np.where(held_t, qm[None, :] * m_t, 0.0)
    return {"pnl": pnl, "realized": realized, "held": held_t, "value": value, "priced": priced_need[at]}


#: A close may be missing for at most this many consecutive sessions inside a symbol's series (a halt, a
#: provider hole): the mark is then the last close (forward fill). Longer, or with no later close at all
#: (the series stopped), the carried-forward price is stale.
MAX_GAP_SESSIONS = 3


def stale_closes(closes: pd.DataFrame, max_gap: int = MAX_GAP_SESSIONS) -> pd.DataFrame:
    """Sessions × symbols, True where a close is missing and forward-filling it would be a stale price:
    no later close in ``closes`` (the series stopped), or a hole of more than ``max_gap`` sessions. Before
    a symbol's first close, and for symbols without any, nothing is stale (they are marked at entry price).

    ``closes``: wide closes (sessions × symbols, NaN where missing), ascending; the last row is the end
    of the range being judged.
    """
    present = closes.notna().to_numpy()
    T = present.shape[0]
    idx = np.arange(T)[:, None]
    last = np.maximum.accumulate(np.where(present, idx, -1), axis=0)  # last close at or before t
    nxt = np.minimum.accumulate(np.where(present, idx, T)[::-1], axis=0)[::-1]  # next close at or after t
    hole = nxt - last - 1
    stale = ~present & (last >= 0) & ((nxt >= T) | (hole > max_gap))
    return pd.DataFrame(stale, index=closes.index, columns=closes.columns)


def stale_marks(positions: pd.DataFrame, closes: pd.DataFrame, dates: Sequence[date],
                max_gap: int = MAX_GAP_SESSIONS) -> np.ndarray:
    """(T, N) bool: position ``n`` is held at the close of ``dates[t]`` and its mark there would be a stale
    price (:func:`stale_closes` of its symbol on that date)."""
    n = len(positions)
    d64 = np.array(pd.to_datetime(list(dates)), dtype="datetime64[D]")
    if n == 0 or len(d64) == 0:
        return np.zeros((len(d64), n), dtype=bool)
    flags = stale_closes(closes, max_gap)
    cells = flags.reindex(index=pd.DatetimeIndex(d64), columns=pd.Index(positions["symbol"].tolist()))
    stale = cells.fillna(False).to_numpy(dtype=bool)
    entry = pd.to_datetime(positions["entry_date"]).to_numpy(dtype="datetime64[D]")
    exit_ = pd.to_datetime(positions["exit_date"]).to_numpy(dtype="datetime64[D]")
    return _held(entry, exit_, d64) & stale


def roll_forward(
    positions: pd.DataFrame,
    closes: pd.DataFrame,
    dates: Sequence[date],
    start_state: pd.DataFrame,
    flows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Snapshots for every portfolio and date.

    Parameters
    ----------
    positions : N positions with ``portfolio_id`` and the columns of :func:`position_pnl`.
    closes, dates : as in :func:`position_pnl`.
    start_state : one row per portfolio: ``portfolio_id, equity, cumulative_pnl,
        cumulative_realized_pnl, cumulative_capital_flow, inception`` — the state at the close of the
        session before ``dates[0]`` (the previous snapshot, or the initial equity and zeros), and the
        first date a snapshot may exist (first entry date).
    flows : ``portfolio_id, change_date, amount`` (USD, + contribution / − withdrawal).

    Returns
    -------
    DataFrame with :data:`SNAPSHOT_COLUMNS`, one row per (portfolio, date >= its inception).
    """
    dates = list(dates)
    state = start_state.set_index("portfolio_id")
    pids = state.index.to_numpy()
    P, T = len(pids), len(dates)
    if P == 0 or T == 0:
        return pd.DataFrame(columns=list(SNAPSHOT_COLUMNS))
    pos = positions[positions["portfolio_id"].isin(pids)].reset_index(drop=True)
    res = position_pnl(pos, closes, dates)
    code = pd.Index(pids).get_indexer(pos["portfolio_id"])
    agg = sparse.csr_matrix((np.ones(len(pos)), (np.arange(len(pos)), code)), shape=(len(pos), P))

    def by_pf(a: np.ndarray) -> np.ndarray:  # (T, N) -> (T, P)
        return np.asarray((agg.T @ a.T).T) if len(pos) else np.zeros((T, P))

    pnl, realized = by_pf(res["pnl"]), by_pf(res["realized"])
    value = res["value"]
    long_v = by_pf(np.where(value > 0, value, 0.0))
    short_v = by_pf(np.where(value < 0, value, 0.0))
    qty = pos["quantity"].to_numpy(dtype="float64")[None, :]
    held = res["held"]
    n_pos, n_long = by_pf(held.astype(float)), by_pf((held & (qty > 0)).astype(float))
    unpriced = by_pf((held & ~res["priced"]).astype(float))

    flow = np.zeros((T, P))
    if flows is not None and not flows.empty:
        f = flows[flows["portfolio_id"].isin(pids)]
        fd = pd.to_datetime(f["change_date"]).to_numpy(dtype="datetime64[D]")
        d64 = np.array(pd.to_datetime(dates), dtype="datetime64[D]")
        slot = np.searchsorted(d64, fd, side="left")  # flow dated in (p, t] lands on t
        ok = (slot < T) & (fd >= _prev_session(closes, dates[0]))
        np.add.at(flow, (slot[ok], pd.Index(pids).get_indexer(f["portfolio_id"])[ok]), f["amount"].to_numpy()[ok])
    inception = pd.to_datetime(state["inception"]).to_numpy(dtype="datetime64[D]")
    d64 = np.array(pd.to_datetime(dates), dtype="datetime64[D]")
    live = d64[:, None] >= inception[None, :]
    flow = np.where(live, flow, 0.0)
    pnl = np.where(live, pnl, 0.0)
    realized = np.where(live, realized, 0.0)

    eq0 = state["equity"].to_numpy(dtype="float64")
    equity = _carry(eq0, pnl + flow)
    eq_prev = np.vstack([eq0[None, :], equity[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(eq_prev > 0, pnl / eq_prev, np.nan)
    net = long_v + short_v
    out = {
        "portfolio_id": np.tile(pids, T),
        "snapshot_date": np.repeat(np.array(dates, dtype=object), P),
        "net_asset_value": equity, "equity_balance": equity, "cash_value": equity - net,
        "long_value": long_v, "short_value": short_v, "gross_exposure": long_v - short_v, "net_exposure": net,
        "daily_pnl": pnl, "daily_realized_pnl": realized, "daily_unrealized_pnl": pnl - realized,
        "daily_return": ret, "daily_capital_flow": flow,
        "cumulative_pnl": _carry(state["cumulative_pnl"].to_numpy(dtype="float64"), pnl),
        "cumulative_realized_pnl": _carry(state["cumulative_realized_pnl"].to_numpy(dtype="float64"), realized),
        "cumulative_capital_flow": _carry(state["cumulative_capital_flow"].to_numpy(dtype="float64"), flow),
        "num_positions": n_pos, "num_long_positions": n_long, "num_short_positions": n_pos - n_long,
        "positions_without_price": unpriced,
    }
    frame = pd.DataFrame({k: (v.ravel() if isinstance(v, np.ndarray) and v.ndim == 2 else v) for k, v in out.items()})
    frame = frame[live.ravel()].reset_index(drop=True)
    for c in ("num_positions", "num_long_positions", "num_short_positions", "positions_without_price"):
        frame[c] = np.rint(frame[c].to_numpy(dtype="float64")).astype("int64")
    return frame[list(SNAPSHOT_COLUMNS)]


def _carry(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(T, P) running totals ``start + steps[0] + … + steps[t]`` added one session at a time, left to right.

    The same additions, in the same order, as a run of one session at a time that starts from the stored
    total of the day before: a range and its sessions run one by one give bit-identical totals
    (``start + cumsum(steps)`` would add the sessions' sum to ``start`` in another order).
    """
    return np.cumsum(np.vstack([start[None, :], steps]), axis=0)[1:]


def _prev_session(closes: pd.DataFrame, first: date) -> np.datetime64:
    idx = pd.DatetimeIndex(closes.index)
    row = idx.get_indexer([pd.Timestamp(first)])[0]
    return np.datetime64(idx[row - 1].date(), "D") + np.timedelta64(1, "D")
