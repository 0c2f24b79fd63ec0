import numpy as np
import pandas as pd
import pytest

from shared.analytics.stress import Scenario, ewma_factor_correlation, stress_summary, stress_test
from shared.scenarios import DEFAULT_SCENARIO_FILE, load_scenarios, parse_scenarios


def sc(sid, **shocks):
    return Scenario(id=sid, name=sid, category="test", severity="base", active=True,
                    shocks={k.replace("_", " ") if k != "Interest_Rate" else k: v for k, v in shocks.items()})


def test_scenario_file_22_scenarios_19_active():
    allsc = load_scenarios()
    assert len(allsc) == 22
    assert sum(s.active for s in allsc) == 19
    assert len(load_scenarios(DEFAULT_SCENARIO_FILE, active_only=True)) == 19
    by_id = {s.id: s for s in allsc}
    assert by_id["liquidity_crisis"].shocks == {"Market": -0.20, "Low Volatility": -0.30, "Quality": 0.15,
                                                 "Size": -0.10}
    assert by_id["rate_spike_300bp"].shocks == {"Interest_Rate": 0.03}
    assert not by_id["dotcom_crash_2000"].active
    with pytest.raises(ValueError, match="unknown factor"):
        parse_scenarios("scenarios: [{id: x, shocks: {Markt: 0.1}}]")


def test_hand_computed_two_factors_two_scenarios():
    exposures = pd.DataFrame({"Market Beta (90D)": [100_000.0], "Value": [50_000.0]}, index=["p"])
    corr = pd.DataFrame([[1.0, 0.5], [0.5, 1.0]], index=["Market", "Value"], columns=["Market", "Value"])
    scen = [sc("A", Market=-0.10), sc("B", Value=0.20, Market=0.05)]
    out = stress_test(exposures, scen, corr, pd.Series({"p": 1_000_000.0})).set_index("scenario_id")
    # A: direct 100k*-0.1 = -10,000; correlated adds Value exposure via rho: 50k*-0.1*0.5 = -2,500
    assert out.loc["A", "direct_pnl"] == pytest.approx(-10_000.0)
    assert out.loc["A", "correlated_pnl"] == pytest.approx(-12_500.0)
    assert out.loc["A", "correlation_effect"] == pytest.approx(-2_500.0)
    # B: direct 50k*0.2 + 100k*0.05 = 15,000
    #    correlated: S=Value: 100k*0.2*0.5 + 50k*0.2 = 20,000 ; S=Market: 100k*0.05 + 50k*0.05*0.5 = 6,250
    assert out.loc["B", "direct_pnl"] == pytest.approx(15_000.0)
    assert out.loc["B", "correlated_pnl"] == pytest.approx(26_250.0)
    assert out.loc["B", "correlation_effect"] == pytest.approx(11_250.0)
    fi = out.loc["B", "factor_impacts"]
    assert fi["Value"] == {"exposure_factor": "Value", "exposure": 50_000.0, "shock_pct": pytest.approx(20.0),
                           "direct_pnl": pytest.approx(10_000.0)}
    assert fi["Market"]["exposure_factor"] == "Market Beta (90D)"
    assert fi["Market"]["direct_pnl"] == pytest.approx(5_000.0)


def test_market_shock_moves_correlated_pnl_through_market_beta(rng):
    """Regression for the original defect: 'Market Beta (90D)' was never matched in the correlated path."""
    f = pd.DataFrame(rng.normal(0, 0.01, (252, 8)),
                     columns=["Market", "Value", "Growth", "Momentum", "Quality", "Size", "Low Volatility",
                              "Interest_Rate"])
    corr = ewma_factor_correlation(f)
    exposures = pd.DataFrame({"Market Beta (90D)": [1_000_000.0]}, index=[1])
    out = stress_test(exposures, [sc("down", Market=-0.10)], corr, pd.Series({1: 2_000_000.0}))
    assert out["direct_pnl"].iloc[0] == pytest.approx(-100_000.0)
    assert out["correlated_pnl"].iloc[0] == pytest.approx(-100_000.0)   # old system: 0
    # with a style exposure, the market shock also flows through rho(Market, Value)
    exposures["Value"] = 500_000.0
    out = stress_test(exposures, [sc("down", Market=-0.10)], corr, pd.Series({1: 2_000_000.0}))
    rho = corr.loc["Market", "Value"]
    assert out["correlated_pnl"].iloc[0] == pytest.approx(-100_000.0 - 50_000.0 * rho)


def test_rate_shock_duration_conversion_sign():
    exposures = pd.DataFrame({"IR Beta": [1_000_000.0, -1_000_000.0]}, index=["long_tlt", "short_tlt"])
    scen = [sc("up100", Interest_Rate=0.01), sc("down100", Interest_Rate=-0.01)]
    out = stress_test(exposures, scen, None, pd.Series({"long_tlt": 5e6, "short_tlt": 5e6}), duration=17.0)
    out = out.set_index(["portfolio_id", "scenario_id"])
    assert out.loc[("long_tlt", "up100"), "direct_pnl"] == pytest.approx(-170_000.0)     # rates up -> TLT -17%
    assert out.loc[("long_tlt", "down100"), "direct_pnl"] == pytest.approx(170_000.0)
    assert out.loc[("short_tlt", "up100"), "correlated_pnl"] == pytest.approx(170_000.0)
    assert out.loc[("long_tlt", "up100"), "correlation_effect"] == pytest.approx(0.0)
    fi = out.loc[("long_tlt", "up100"), "factor_impacts"]["Interest_Rate"]
    assert fi["tlt_return"] == pytest.approx(-0.17) and fi["exposure_factor"] == "IR Beta"
    out8 = stress_test(exposures, scen[:1], None, pd.Series({"long_tlt": 5e6, "short_tlt": 5e6}), duration=8.0)
    assert out8["direct_pnl"].iloc[0] == pytest.approx(-80_000.0)


def test_loss_cap_and_nonpositive_equity():
    exposures = pd.DataFrame({"Market Beta (90D)": [1_000_000.0, 1_000_000.0, 1_000_000.0]}, index=[1, 2, 3])
    equity = pd.Series({1: 100_000.0, 2: -10.0, 3: 10_000_000.0})
    out = stress_test(exposures, [sc("crash", Market=-0.35)], None, equity).set_index("portfolio_id")
    assert out.loc[1, "direct_pnl"] == pytest.approx(-99_000.0)
    assert out.loc[1, "correlated_pnl"] == pytest.approx(-99_000.0)
    assert out.loc[1, "loss_capped"]
    assert out.loc[2, "direct_pnl"] == pytest.approx(-350_000.0)     # no -$0.99 cap
    assert not out.loc[2, "loss_capped"]
    assert out.loc[3, "direct_pnl"] == pytest.approx(-350_000.0)


def test_vectorized_matches_loop_on_all_scenarios(rng):
    cols = ["Market", "Value", "Growth", "Momentum", "Quality", "Size", "Low Volatility", "Interest_Rate"]
    corr = ewma_factor_correlation(pd.DataFrame(rng.normal(0, 0.01, (252, 8)) @ rng.normal(0, 1, (8, 8)),
                                                columns=cols))
    names = {"Market": "Market Beta (90D)"}
    expo_cols = ["Market Beta (90D)", "Value", "Growth", "Momentum", "Quality", "Size", "Low Volatility",
                 "IR Beta", "Momentum Spread"]
    exposures = pd.DataFrame(rng.normal(0, 1e5, (20, len(expo_cols))), columns=expo_cols)
    equity = pd.Series(rng.uniform(1e5, 1e6, 20))
    scen = load_scenarios(active_only=True)
    out = stress_test(exposures, scen, corr, equity)
    for (p, s), row in zip([(p, s) for p in range(20) for s in range(len(scen))], out.itertuples(), strict=True):
        shocks = scen[s].shocks
        ir = exposures.loc[p, "IR Beta"] * -17.0 * shocks.get("Interest_Rate", 0.0)
        direct = ir + sum(exposures.loc[p, names.get(k, k)] * v for k, v in shocks.items() if k != "Interest_Rate")
        corr_pnl = ir
        for S, v in shocks.items():
            if S == "Interest_Rate":
                continue
            for F in cols[:-1]:
                corr_pnl += exposures.loc[p, names.get(F, F)] * v * corr.loc[S, F]
        cap = -0.99 * equity[p]
        assert row.direct_pnl == pytest.approx(max(direct, cap), rel=1e-12)
        assert row.correlated_pnl == pytest.approx(max(corr_pnl, cap), rel=1e-12)
    summ = stress_summary(out)
    g = out.groupby("portfolio_id")["correlated_pnl"]
    np.testing.assert_allclose(summ["worst_pnl"], g.min())
    np.testing.assert_allclose(summ["std_pnl"], g.apply(lambda x: np.std(x.to_numpy())))
    assert (summ["n_negative"] + summ["n_positive"] <= summ["n_scenarios"]).all()
    assert (summ["n_scenarios"] == 19).all()


def test_ewma_correlation_against_loop(rng):
    T = 120
    R = rng.normal(0, 0.01, (T, 4))
    R[:, 1] += 0.8 * R[:, 0]
    R[:, 2] = -R[:, 0] + 1e-6 * rng.normal(size=T)     # ~ -1 -> clipped to -0.95
    R[rng.random((T, 4)) < 0.1] = np.nan
    R[:100, 3] = np.nan                                # < 30 common rows -> 0
    df = pd.DataFrame(R, columns=list("abcd"))
    C = ewma_factor_correlation(df, decay=0.94, min_obs=30, clip=0.95)
    w = 0.94 ** np.arange(T - 1, -1, -1)
    x, y = R[:, 0], R[:, 1]
    m = ~np.isnan(x) & ~np.isnan(y)
    ww = w[m] / w[m].sum()
    mx, my = ww @ x[m], ww @ y[m]
    ref = (ww * (x[m] - mx) * (y[m] - my)).sum() / np.sqrt(
        (ww * (x[m] - mx) ** 2).sum() * (ww * (y[m] - my) ** 2).sum())
    assert C.loc["a", "b"] == pytest.approx(ref, rel=1e-10)
    assert C.loc["a", "c"] == pytest.approx(-0.95)
    assert C.loc["a", "d"] == 0.0
    assert (np.diag(C) == 1.0).all()
    np.testing.assert_allclose(C.to_numpy(), C.to_numpy().T)
