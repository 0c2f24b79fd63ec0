
import numpy as np
import pandas as pd
import pytest

from shared.analytics.aggregation import exposure_dollars, portfolio_factor_exposures

D1, D2 = pd.Timestamp("2025-01-02"), pd.Timestamp("2025-01-03")


def test_hand_example_with_missing_beta_and_two_dates():
    weights = pd.DataFrame({
        "calculation_date": [D1, D1, D1, D1, D2],
        "portfolio_id": [1, 1, 1, 2, 1],
        "symbol": ["A", "B", "C", "A", "A"],
        "weight": [0.5, -0.3, 0.2, 1.0, 0.4],
    })
    betas = pd.DataFrame({
        "calculation_date": [D1, D1, D1, D1, D2, D2],
        "symbol": ["A", "A", "B", "C", "A", "A"],
        "factor": ["Market Beta (90D)", "Value", "Market Beta (90D)", "Value", "Market Beta (90D)", "Value"],
        "beta_value": [1.2, 0.4, 0.8, np.nan, 2.0, 0.1],
    })
    out = portfolio_factor_exposures(weights, betas).set_index(["calculation_date", "portfolio_id", "factor"])
    # D1, p1: Market = 0.5*1.2 + (-0.3)*0.8 = 0.36 ; C has no market beta -> contributes 0
    assert out.loc[(D1, 1, "Market Beta (90D)"), "exposure_value"] == pytest.approx(0.36)
    assert out.loc[(D1, 1, "Market Beta (90D)"), "coverage"] == pytest.approx(0.8 / 1.0)
    # Value: only A has a value beta (C's is NaN) -> 0.5*0.4
    assert out.loc[(D1, 1, "Value"), "exposure_value"] == pytest.approx(0.2)
    assert out.loc[(D1, 1, "Value"), "coverage"] == pytest.approx(0.5)
    assert out.loc[(D1, 2, "Market Beta (90D)"), "exposure_value"] == pytest.approx(1.2)
    # D2 uses D2's betas only
    assert out.loc[(D2, 1, "Market Beta (90D)"), "exposure_value"] == pytest.approx(0.8)
    assert out.loc[(D2, 1, "Value"), "exposure_value"] == pytest.approx(0.04)
    assert len(out) == 3 * 2

    eq = pd.Series([1000.0, 50.0, 2000.0],
                   index=pd.MultiIndex.from_tuples([(D1, 1), (D1, 2), (D2, 1)]))
    dol = exposure_dollars(out.reset_index(), eq).set_index(["calculation_date", "portfolio_id", "factor"])
    assert dol.loc[(D1, 1, "Market Beta (90D)"), "exposure_dollar"] == pytest.approx(360.0)
    assert dol.loc[(D2, 1, "Value"), "exposure_dollar"] == pytest.approx(80.0)


def test_matches_groupby_reference(rng):
    P, N, S, F = 300, 3000, 400, 5
    syms = np.array([f"S{i}" for i in range(S)], dtype=object)
    w = pd.DataFrame({"calculation_date": rng.choice([D1, D2], N), "portfolio_id": rng.integers(0, P, N),
                      "symbol": syms[rng.integers(0, S, N)], "weight": rng.normal(0, 0.1, N)})
    w = w.groupby(["calculation_date", "portfolio_id", "symbol"], as_index=False)["weight"].sum()
    b = pd.DataFrame([(d, s, f"F{k}", rng.normal()) for d in (D1, D2) for s in syms[:350] for k in range(F)],
                     columns=["calculation_date", "symbol", "factor", "beta_value"])
    b.loc[rng.random(len(b)) < 0.1, "beta_value"] = np.nan
    got = portfolio_factor_exposures(w, b)
    m = w.merge(b, on=["calculation_date", "symbol"], how="left")
    m["contrib"] = (m["weight"] * m["beta_value"]).fillna(0.0)
    ref = m.dropna(subset=["factor"]).groupby(["calculation_date", "portfolio_id", "factor"])["contrib"].sum()
    g = got.set_index(["calculation_date", "portfolio_id", "factor"])["exposure_value"]
    np.testing.assert_allclose(g.reindex(ref.index).to_numpy(), ref.to_numpy(), atol=1e-12)


def test_ten_thousand_portfolios_shape(rng):
    """Scale check of shapes only; the timing lives in `make bench` (bench/kernels_risk.py)."""
    P, N, S, F = 10_000, 200_000, 5_000, 13
    syms = np.array([f"S{i:05d}" for i in range(S)], dtype=object)
    w = pd.DataFrame({"calculation_date": D1, "portfolio_id": rng.integers(0, P, N),
                      "symbol": syms[rng.integers(0, S, N)], "weight": rng.normal(0, 0.05, N)})
    b = pd.DataFrame({"calculation_date": D1, "symbol": np.repeat(syms, F),
                      "factor": np.tile([f"F{k}" for k in range(F)], S), "beta_value": rng.normal(1, 0.3, S * F)})
    out = portfolio_factor_exposures(w, b)
    assert len(out) == out[["portfolio_id"]].drop_duplicates().shape[0] * F
