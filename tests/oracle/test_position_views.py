"""Issue 19: a position's beta and volatility read through the views (migration 0007) are what the tables
held before: on the oracle's backfilled database, every session of the run.

The old phases wrote, for every position in the day's holdings (held at the close of d: entry <= d, no
exit or exit > d, not deleted, in a portfolio with a snapshot on d — :func:`phases._holdings.load_book`),
the row of its symbol: risk-exposures the PUBLIC positions' ``Market Beta (90D)`` / ``IR Beta`` statistics
from ``symbol_factor_exposures`` (``_position_betas``: window 90, OLS_SIMPLE, SPY), risk-volatility the
metrics of the position's series (an option's underlying, else its symbol). The expected rows are built
here from those rules in pandas, from the stored positions, snapshots and symbol rows, and must equal the
views row for row and value for value (bit for bit: nothing is recomputed).
"""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from shared.storage.db import get_engine

VOL = ["realized_vol_21d", "realized_vol_63d", "vol_daily", "vol_weekly", "vol_monthly", "expected_vol_21d",
       "vol_trend", "vol_trend_strength", "vol_percentile", "observations", "model_r_squared"]


@pytest.fixture(scope="module")
def stored(oracle_run) -> dict[str, pd.DataFrame]:
    eng = get_engine(oracle_run.url)
    out = {}
    with eng.connect() as c:
        for name in ("positions", "portfolio_snapshots", "symbol_factor_exposures", "factor_definitions",
                     "symbol_volatility", "position_market_betas", "position_interest_rate_betas",
                     "position_volatility"):
            out[name] = pd.read_sql(text(f"select * from {name}"), c)
    eng.dispose()
    for frame in out.values():
        for col in ("entry_date", "exit_date", "snapshot_date", "calculation_date", "calc_date"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col]).dt.date
    return out


def _held(stored) -> pd.DataFrame:
    """(position, date) of every position held at the close of a date its portfolio has a snapshot on."""
    pos = stored["positions"]
    pos = pos[pos["deleted_at"].isna()]
    snaps = stored["portfolio_snapshots"][["portfolio_id", "snapshot_date"]]
    h = pos.merge(snaps, on="portfolio_id")
    held = (h["entry_date"] <= h["snapshot_date"]) & (h["exit_date"].isna() | (h["exit_date"] > h["snapshot_date"]))
    h = h[held].rename(columns={"id": "position_id", "snapshot_date": "date"})
    h["investment_class"] = h["investment_class"].fillna("PUBLIC").str.upper()
    return h


def _compare(view: pd.DataFrame, expected: pd.DataFrame, keys: list[str], name: str) -> None:
    assert len(expected) > 0, name
    cols = list(view.columns)
    a = view.sort_values(keys).reset_index(drop=True)
    b = expected[cols].sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b), f"{name}: {len(a)} rows in the view, {len(b)} expected"
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=True, obj=name)


def test_position_betas_are_the_symbols_rows(stored, oracle_run):
    h = _held(stored)
    public = h[h["investment_class"] == "PUBLIC"]
    names = stored["factor_definitions"].set_index("id")["name"]
    sfe = stored["symbol_factor_exposures"].assign(factor=lambda f: f["factor_id"].map(names))
    mkt = sfe[sfe["factor"] == "Market Beta (90D)"]
    pmb = public.merge(mkt, left_on=["symbol", "date"], right_on=["symbol", "calculation_date"])
    pmb = pmb.assign(calc_date=pmb["date"], beta=pmb["beta_value"], window_days=90, method="OLS_SIMPLE",
                     market_index="SPY")
    _compare(stored["position_market_betas"], pmb, ["position_id", "calc_date"], "position_market_betas")
    ir = sfe[sfe["factor"] == "IR Beta"]
    pirb = public.merge(ir, left_on=["symbol", "date"], right_on=["symbol", "calculation_date"])
    pirb = pirb.assign(ir_beta=pirb["beta_value"])
    _compare(stored["position_interest_rate_betas"], pirb, ["position_id", "calculation_date"],
             "position_interest_rate_betas")
    # every session of the backfill, every public position of the book
    assert set(stored["position_market_betas"]["calc_date"]) == set(oracle_run.sessions)


def test_position_volatility_is_its_series_row(stored, oracle_run):
    h = _held(stored)
    h["series"] = h["underlying_symbol"].where(h["investment_class"] == "OPTIONS").fillna(h["symbol"])
    assert (h["series"] != h["symbol"]).any()  # the book holds options: the underlying's row is used
    pv = h.merge(stored["symbol_volatility"], left_on=["series", "date"], right_on=["symbol", "calculation_date"])
    _compare(stored["position_volatility"], pv, ["position_id", "calculation_date"], "position_volatility")
    assert set(stored["position_volatility"]["calculation_date"]) == set(oracle_run.sessions)
    # one row per held series and session, not one per position
    sv = stored["symbol_volatility"]
    assert not sv.duplicated(["symbol", "calculation_date"]).any()
    assert len(sv) < len(stored["position_volatility"])
    assert set(zip(sv["symbol"], sv["calculation_date"], strict=True)) == \
        set(zip(pv["series"], pv["date"], strict=True))
