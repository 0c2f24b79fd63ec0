import numpy as np
import pandas as pd
import pytest

from shared.analytics.concentration import concentration, sector_weights, versus_benchmark

D = pd.Timestamp("2025-01-02")


def test_concentration_hand_example():
    # two lots of AAA merged per symbol: |300| + |100| = 400; BBB short counts as |-300|
    pos = pd.DataFrame({
        "calculation_date": D, "portfolio_id": 1,
        "symbol": ["AAA", "AAA", "BBB", "CCC", "DDD"],
        "market_value": [300.0, 100.0, -300.0, 200.0, 100.0],
    })
    out = concentration(pos).iloc[0]
    w = np.array([0.4, 0.3, 0.2, 0.1])
    hhi = (w ** 2).sum() * 10_000                    # 3000
    assert hhi == pytest.approx(3000.0)
    assert out["hhi"] == pytest.approx(hhi)
    assert out["effective_num_positions"] == pytest.approx(10_000 / 3000)
    assert out["top_3_concentration"] == pytest.approx(0.9)
    assert out["top_10_concentration"] == pytest.approx(1.0)


def test_concentration_many_portfolios_and_zero_book():
    pos = pd.DataFrame({"calculation_date": D, "portfolio_id": [1, 1, 2, 3],
                        "symbol": ["A", "B", "A", "A"], "market_value": [50.0, 50.0, 10.0, 0.0]})
    out = concentration(pos).set_index("portfolio_id")
    assert out.loc[1, "hhi"] == pytest.approx(5000.0)
    assert out.loc[2, "effective_num_positions"] == pytest.approx(1.0)
    assert out.loc[3, ["hhi", "top_3_concentration"]].isna().all()


def test_sector_weights_gics_and_buckets():
    pos = pd.DataFrame({
        "calculation_date": D, "portfolio_id": 1,
        "symbol": ["JPM", "BAC", "AMZN", "SPY", "PRIV", "AAPL240621C00200000", "XYZ", "MSFT"],
        "market_value": [100.0, -50.0, 200.0, 300.0, 80.0, 20.0, 40.0, 60.0],
        "sector": ["Financial Services", "Financials", "Consumer Cyclical", None, "Technology",
                   "Technology", None, "Technology"],
        "is_etf": [False, False, False, True, False, False, False, False],
        "investment_class": ["PUBLIC", "PUBLIC", "PUBLIC", "PUBLIC", "PRIVATE", "OPTIONS", "PUBLIC", "PUBLIC"],
    })
    eq = pd.Series([1000.0], index=pd.MultiIndex.from_tuples([(D, 1)]))
    out = sector_weights(pos, eq).set_index("sector")["weight"]
    assert out["Financials"] == pytest.approx(0.15)            # |100| + |-50| over equity
    assert out["Consumer Discretionary"] == pytest.approx(0.2)
    assert out["ETFs"] == pytest.approx(0.3)
    assert out["Unclassified"] == pytest.approx((80 + 20 + 40) / 1000)
    assert out["Information Technology"] == pytest.approx(0.06)
    assert out.sum() == pytest.approx(pos["market_value"].abs().sum() / 1000)

    bench = pd.Series({"Financials": 0.13, "Information Technology": 0.30, "Energy": 0.04})
    vb = versus_benchmark(sector_weights(pos, eq), bench).set_index("sector")
    assert vb.loc["Financials", "difference"] == pytest.approx(0.02)
    assert vb.loc["Energy", "difference"] == pytest.approx(-0.04)
    assert vb.loc["ETFs", "benchmark_weight"] == 0.0


def test_sector_weights_nonpositive_equity_is_nan():
    pos = pd.DataFrame({"calculation_date": D, "portfolio_id": 1, "symbol": ["A"], "market_value": [1.0],
                        "sector": ["Energy"], "is_etf": [False], "investment_class": ["PUBLIC"]})
    eq = pd.Series([-5.0], index=pd.MultiIndex.from_tuples([(D, 1)]))
    assert sector_weights(pos, eq)["weight"].isna().all()
