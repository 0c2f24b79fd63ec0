"""The PostgreSQL COPY path writes exactly what the executemany path writes (SQLite as the reference)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from shared.storage import bulk
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction


def _frames():
    rng = np.random.default_rng(3)
    pf = pd.DataFrame({"id": ["a", "b"], "name": ["A", 'B, "quoted"'], "equity_balance": [1e5, 2.5e5]})
    snaps = pd.DataFrame({
        "portfolio_id": ["a", "b"], "snapshot_date": pd.to_datetime(["2026-03-02", "2026-03-02"]),
        "net_asset_value": rng.normal(size=2), "cash_value": 0.1 + 0.2, "long_value": [1e-300, 123456.789],
        "short_value": 0.0, "gross_exposure": 1.0, "net_exposure": 1.0, "daily_pnl": 0.0,
        "daily_unrealized_pnl": 0.0, "daily_realized_pnl": 0.0, "daily_return": [np.nan, 0.5],
        "daily_capital_flow": 0.0, "cumulative_pnl": 0.0, "cumulative_realized_pnl": 0.0,
        "cumulative_capital_flow": 0.0, "equity_balance": [1e5, 2e5], "num_positions": [3.0, 4.0],
        "num_long_positions": 1, "num_short_positions": 0, "positions_without_price": 0,
        "beta_calculated_90d_observations": [np.nan, 89.6], "volatility_trend": [None, ""],
        "sector_exposure": [{"Energy": {"portfolio_weight": 0.25}}, None], "run_id": "r1"})
    return pf, snaps


def _read(engine):
    with transaction(engine) as s:
        pf = repo.read_frame(s, select(m.Portfolio.id, m.Portfolio.name, m.Portfolio.currency,
                                       m.Portfolio.is_active).order_by(m.Portfolio.id))
        sn = repo.read_frame(s, select(m.PortfolioSnapshot.__table__).order_by(m.PortfolioSnapshot.portfolio_id))
    return pf, sn.drop(columns=["created_at"])


@pytest.mark.postgres
def test_copy_path_matches_executemany(pg_url, sqlite_url):
    out = []
    for url in (sqlite_url, pg_url):
        eng = get_engine(url)
        migrate(eng)
        pf, snaps = _frames()
        with transaction(eng) as s:
            repo.upsert(s, m.Portfolio, pf)
            repo.upsert(s, m.PortfolioSnapshot, snaps)
            # the same key twice in one frame: the last row wins
            repo.upsert(s, m.PortfolioSnapshot, pd.concat([snaps, snaps.assign(cash_value=7.0)]))
            repo.bulk_update(s, m.PortfolioSnapshot, snaps[["portfolio_id", "snapshot_date"]].assign(
                hhi=[0.5, np.nan], volatility_trend=["up", None]))
        out.append(_read(eng))
        eng.dispose()
    (pf_a, sn_a), (pf_b, sn_b) = out
    pd.testing.assert_frame_equal(pf_a, pf_b)
    assert pf_b["currency"].tolist() == ["USD", "USD"] and pf_b["is_active"].tolist() == [True, True]
    assert sn_b["cash_value"].tolist() == [7.0, 7.0]
    assert sn_b["volatility_trend"].iloc[0] == "up" and pd.isna(sn_b["volatility_trend"].iloc[1])
    assert sn_b["beta_calculated_90d_observations"].tolist()[1] == 90
    for c in sn_a.columns:
        a, b = sn_a[c].tolist(), sn_b[c].tolist()
        assert [None if not isinstance(v, dict) and pd.isna(v) else v for v in a] == \
            [None if not isinstance(v, dict) and pd.isna(v) else v for v in b], c


@pytest.mark.postgres
def test_copy_floor_and_stats(pg_url):
    eng = get_engine(pg_url)
    migrate(eng)
    prices = pd.DataFrame({"symbol": ["AAA"] * 3, "date": [date(2026, 3, d) for d in (2, 3, 4)],
                           "close": [1.0, 2.0, 3.0], "data_source": "x",
                           "updated_at": datetime(2026, 3, 4, 18, tzinfo=UTC)})
    bulk.STATS.clear()
    with transaction(eng) as s:
        assert repo.upsert(s, m.MarketDataCache, prices) == 3
        names, data = bulk.encode_csv(m.MarketDataCache, prices)
        assert bulk.copy_floor(s, m.MarketDataCache, names, data) >= 0.0
        assert repo.load_prices(s, ["AAA"], date(2026, 3, 1), date(2026, 3, 31))["close"].tolist() == [1.0, 2.0, 3.0]
    assert bulk.stats_summary()["total"]["rows"] == 3
    eng.dispose()


def test_json_columns_are_valid_json_on_both_paths(pg_url, sqlite_url):
    """NaN inside a JSON value becomes null (PostgreSQL's json type refuses NaN), numpy scalars stay
    numbers, dates ISO strings: the same text from the COPY encoder and from the SQLite engine."""
    from shared.storage import jsontext

    value = {"a": np.float64("nan"), "n": np.int64(5), "d": date(2026, 3, 2), 7: [1.5, float("inf")]}
    assert jsontext.dumps(value) == '{"a":null,"n":5,"d":"2026-03-02","7":[1.5,null]}'
    row = pd.DataFrame({"scenario_id": ["s1"], "name": ["S"], "category": ["c"], "severity": ["base"],
                        "shock_config": [value], "active": [True]})
    got = []
    for url in (pg_url, sqlite_url):
        eng = get_engine(url)
        migrate(eng)
        with transaction(eng) as s:
            repo.upsert(s, m.StressTestScenario, row)
        with transaction(eng) as s:
            got.append(s.execute(select(m.StressTestScenario.shock_config)).scalar_one())
    assert got[0] == got[1] == {"a": None, "n": 5, "d": "2026-03-02", "7": [1.5, None]}


@pytest.mark.postgres
def test_upsert_of_new_keys_is_a_plain_copy_and_a_stored_key_missed_by_the_probe_still_merges(pg_url):
    """New keys go straight in (``direct``); a frame whose sampled keys are new but which holds a stored key
    (or repeats one) is merged all the same: the stored row updated, the last of a repeated key kept."""
    eng = get_engine(pg_url)
    migrate(eng)
    days = pd.bdate_range("2026-01-01", periods=1300)
    prices = pd.DataFrame({"symbol": "AAA", "date": days.date, "close": np.arange(1300.0), "data_source": "x",
                           "updated_at": datetime(2026, 3, 4, 18, tzinfo=UTC)})
    bulk.STATS.clear()
    with transaction(eng) as s:
        assert repo.upsert(s, m.MarketDataCache, prices.iloc[:200]) == 200
    assert bulk.STATS["market_data_cache"]["direct"] == 1
    # the stored row 199 second, then new rows: the probe (rows spread evenly) does not look at row 1
    late = pd.concat([prices.iloc[200:201], prices.iloc[199:200], prices.iloc[201:]]).assign(close=-1.0)
    late = pd.concat([late, late.iloc[[10]].assign(close=-2.0)])  # and a key repeated: the last wins
    assert 1 not in {int(i) for i in np.linspace(0, len(late) - 1, bulk.PROBE_ROWS)}
    with transaction(eng) as s:
        assert repo.upsert(s, m.MarketDataCache, late) == 1102
    stats = bulk.STATS["market_data_cache"]
    assert (stats["direct"], stats["retried"], stats["calls"]) == (1, 1, 2)
    with transaction(eng) as s:
        got = dict(s.execute(select(m.MarketDataCache.date, m.MarketDataCache.close)).all())
    assert len(got) == 1300
    assert [got[d] for d in days.date[:199]] == list(np.arange(199.0))
    assert got[days.date[199]] == -1.0 and got[late.iloc[10]["date"]] == -2.0
    assert sum(v == -1.0 for v in got.values()) == 1100
    # a frame whose probed keys are stored is merged without trying the COPY first
    with transaction(eng) as s:
        repo.upsert(s, m.MarketDataCache, prices.iloc[:5].assign(close=9.0), update=False)
    assert (stats["direct"], stats["retried"], stats["calls"]) == (1, 1, 3)
    with transaction(eng) as s:
        assert s.execute(select(m.MarketDataCache.close).where(m.MarketDataCache.date == days.date[0])).scalar() == 0.0
    eng.dispose()
