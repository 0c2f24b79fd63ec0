"""P&L: a hand-computed three-day example and accounting identities on random books."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from shared.analytics.pnl import position_pnl, roll_forward

D0, D1, D2, D3 = date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
OPT = "AAA260619C00100000"


@pytest.fixture
def closes() -> pd.DataFrame:
    idx = pd.DatetimeIndex([D0, D1, D2, D3])
    return pd.DataFrame({"AAA": [100.0, 102.0, 101.0, 105.0], "BBB": [50.0, 49.0, 47.0, 48.0]}, index=idx)


@pytest.fixture
def book() -> pd.DataFrame:
    return pd.DataFrame([
        # long stock held throughout
        {"portfolio_id": "p", "symbol": "AAA", "position_type": "LONG", "quantity": 10.0, "entry_price": 98.0,
         "entry_date": date(2026, 2, 20), "exit_date": None, "exit_price": np.nan},
        # short closed mid-way at 47.5
        {"portfolio_id": "p", "symbol": "BBB", "position_type": "SHORT", "quantity": -20.0, "entry_price": 52.0,
         "entry_date": date(2026, 2, 25), "exit_date": D2, "exit_price": 47.5},
        # long call with no market price (marked at entry), opened on D1, closed on D3 at 6.00
        {"portfolio_id": "p", "symbol": OPT, "position_type": "LC", "quantity": 2.0, "entry_price": 4.0,
         "entry_date": D1, "exit_date": D3, "exit_price": 6.0},
    ])


def test_three_day_hand_example(book, closes):
    state = pd.DataFrame([{"portfolio_id": "p", "equity": 10_000.0, "cumulative_pnl": 0.0,
                           "cumulative_realized_pnl": 0.0, "cumulative_capital_flow": 0.0,
                           "inception": date(2026, 2, 20)}])
    flows = pd.DataFrame({"portfolio_id": ["p", "p"], "change_date": [date(2026, 3, 1), D3],
                          "amount": [1_000.0, -500.0]})
    snaps = roll_forward(book, closes, [D1, D2, D3], state, flows).set_index("snapshot_date")

    # AAA: +20, -10, +40 · BBB short: +20, then closed at 47.5 vs 49 prev close: +30 · call: 0, 0, +400
    assert snaps["daily_pnl"].tolist() == pytest.approx([40.0, 20.0, 440.0])
    assert snaps["daily_realized_pnl"].tolist() == pytest.approx([0.0, 30.0, 400.0])
    assert snaps["daily_unrealized_pnl"].tolist() == pytest.approx([40.0, -10.0, 40.0])
    assert snaps["daily_capital_flow"].tolist() == pytest.approx([1_000.0, 0.0, -500.0])
    assert snaps["equity_balance"].tolist() == pytest.approx([11_040.0, 11_060.0, 11_000.0])
    assert snaps["daily_return"].tolist() == pytest.approx([40 / 10_000, 20 / 11_040, 440 / 11_060])
    assert snaps["cumulative_pnl"].tolist() == pytest.approx([40.0, 60.0, 500.0])
    assert snaps["cumulative_realized_pnl"].iloc[-1] == pytest.approx(430.0)
    # No double counting: the period's P&L is each position's total move from the start mark.
    assert snaps["cumulative_pnl"].iloc[-1] == pytest.approx(10 * (105 - 100) + -20 * (47.5 - 50) + 200 * (6 - 4))
    d1 = snaps.loc[D1]
    assert (d1.long_value, d1.short_value, d1.net_exposure, d1.gross_exposure) == pytest.approx(
        (1020 + 800, -980, 840, 2800))
    assert (d1.num_positions, d1.num_long_positions, d1.num_short_positions, d1.positions_without_price) == (3, 2, 1, 1)
    assert d1.cash_value == pytest.approx(11_040 - 840)
    assert snaps.loc[D2, "num_positions"] == 2 and snaps.loc[D3, "num_positions"] == 1
    assert snaps.loc[D3, "long_value"] == pytest.approx(1050.0)


def test_position_entered_and_exited_same_day(closes):
    book = pd.DataFrame([{"portfolio_id": "p", "symbol": "AAA", "position_type": "LONG", "quantity": 5.0,
                          "entry_price": 101.5, "entry_date": D2, "exit_date": D2, "exit_price": 103.0}])
    res = position_pnl(book, closes, [D1, D2, D3])
    assert res["pnl"][:, 0].tolist() == pytest.approx([0.0, 7.5, 0.0])
    assert res["realized"][:, 0].tolist() == pytest.approx([0.0, 7.5, 0.0])


def test_inception_after_first_date_has_no_earlier_snapshots(book, closes):
    state = pd.DataFrame([{"portfolio_id": "p", "equity": 1.0e4, "cumulative_pnl": 0.0,
                           "cumulative_realized_pnl": 0.0, "cumulative_capital_flow": 0.0, "inception": D2}])
    snaps = roll_forward(book, closes, [D1, D2, D3], state)
    assert snaps["snapshot_date"].tolist() == [D2, D3]


@pytest.fixture
def random_book():
    rng = np.random.default_rng(11)
    idx = pd.bdate_range("2026-01-02", periods=60)
    syms = [f"S{i}" for i in range(25)]
    prices = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.02, (60, 25)), axis=0)), index=idx, columns=syms)
    prices = prices.mask(rng.random(prices.shape) < 0.05)  # missing closes: marks carry forward
    prices.iloc[0] = 100.0
    n = 120
    entry = rng.integers(0, 50, n)
    hold = rng.integers(1, 30, n)
    exit_i = entry + hold
    book = pd.DataFrame({
        "portfolio_id": rng.choice(["a", "b", "c", "d"], n),
        "symbol": rng.choice(syms, n),
        "position_type": "LONG",
        "quantity": rng.choice([-1, 1], n) * rng.integers(1, 100, n).astype(float),
        "entry_price": rng.uniform(80, 120, n),
        "entry_date": [idx[i].date() for i in entry],
        "exit_date": [idx[i].date() if i < 60 and rng.random() < 0.6 else None for i in exit_i],
        "exit_price": rng.uniform(80, 120, n),
    })
    book.loc[book["quantity"] < 0, "position_type"] = "SHORT"
    return book, prices, [d.date() for d in idx[1:]]


def test_identities_on_random_book(random_book):
    book, prices, dates = random_book
    pids = sorted(book["portfolio_id"].unique())
    state = pd.DataFrame({"portfolio_id": pids, "equity": 1e6, "cumulative_pnl": 0.0, "cumulative_realized_pnl": 0.0,
                          "cumulative_capital_flow": 0.0, "inception": dates[0]})
    flows = pd.DataFrame({"portfolio_id": ["a", "c"], "change_date": [dates[5], dates[30]], "amount": [5e4, -2e4]})
    snaps = roll_forward(book, prices, dates, state, flows)
    per_pos = position_pnl(book, prices, dates)["pnl"]
    for pid, grp in snaps.groupby("portfolio_id"):
        grp = grp.sort_values("snapshot_date")
        # positions' P&L sums to the portfolio's, every day
        mine = per_pos[:, (book["portfolio_id"] == pid).to_numpy()].sum(axis=1)
        np.testing.assert_allclose(grp["daily_pnl"].to_numpy(), mine, rtol=0, atol=1e-7)
        # equity_t = equity_{t-1} + P&L_t + flows_t
        eq = grp["equity_balance"].to_numpy()
        prev = np.concatenate([[1e6], eq[:-1]])
        np.testing.assert_allclose(eq, prev + grp["daily_pnl"].to_numpy() + grp["daily_capital_flow"].to_numpy(),
                                   rtol=0, atol=1e-6)
        # NAV = cash + net exposure; unrealized + realized = P&L
        np.testing.assert_allclose(grp["net_asset_value"], grp["cash_value"] + grp["net_exposure"], atol=1e-6)
        np.testing.assert_allclose(grp["daily_pnl"], grp["daily_unrealized_pnl"] + grp["daily_realized_pnl"],
                                   atol=1e-9)


def test_total_pnl_telescopes_to_value_change(random_book):
    """Over the whole period: Σ P&L = Σ (end value + exit proceeds) − Σ (start value + entry cost)."""
    book, prices, dates = random_book
    res = position_pnl(book, prices, dates)
    filled = prices.ffill()
    q = book["quantity"].to_numpy()
    start_mark = filled.loc[pd.Timestamp(prices.index[0])].reindex(book["symbol"]).to_numpy()
    end_mark = filled.iloc[-1].reindex(book["symbol"]).to_numpy()
    entry = pd.to_datetime(book["entry_date"])
    exit_ = pd.to_datetime(book["exit_date"])
    before = (entry <= prices.index[0]).to_numpy()
    start_val = np.where(before, q * start_mark, q * book["entry_price"].to_numpy())
    closed = exit_.notna().to_numpy()
    end_val = np.where(closed, q * book["exit_price"].to_numpy(), q * end_mark)
    expected = end_val - start_val
    alive = ~(closed & (exit_ <= prices.index[0]).to_numpy())
    np.testing.assert_allclose(res["pnl"].sum(axis=0)[alive], expected[alive], atol=1e-7)


def test_stale_closes_tolerate_short_holes_but_not_a_stopped_series_or_a_long_hole():
    from shared.analytics.pnl import stale_closes

    nan = np.nan
    closes = pd.DataFrame({
        "HOLE1": [1, nan, 1, 1, 1, 1, 1, 1],  # one missing close inside the series: forward fill is fine
        "HOLE3": [1, nan, nan, nan, 1, 1, 1, 1],  # three: still fine
        "HOLE4": [1, nan, nan, nan, nan, 1, 1, 1],  # four: stale
        "STOPS": [1, 1, 1, 1, 1, nan, nan, nan],  # no later close: stale from the first missing one
        "LATE": [nan, nan, 1, 1, 1, 1, 1, 1],  # before its first close: not stale (marked at entry)
        "NEVER": [nan] * 8,  # never priced (an option): not stale
    }, index=pd.date_range("2026-11-02", periods=8, freq="B"))
    got = stale_closes(closes, max_gap=3)
    assert got.sum().to_dict() == {"HOLE1": 0, "HOLE3": 0, "HOLE4": 4, "STOPS": 3, "LATE": 0, "NEVER": 0}
    assert got["HOLE4"].tolist() == [False, True, True, True, True, False, False, False]
