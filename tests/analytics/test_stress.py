"""The stress model (issue 15): conditional factor moves m = Σ·S Σ_SS⁻¹ s from an EWMA covariance, one
exposure vector per book in which no market move is counted twice.

The books are built the way the batch builds them: prices of a planted factor market -> the phase-1.5
kernel's symbol betas (ridge styles, OLS on SPY and TLT) -> dollar exposures Σ MV_i β_i -> stress_test.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from shared.analytics.factors import STYLE_FACTORS
from shared.analytics.returns import simple_returns
from shared.analytics.stress import (
    FACTOR_EXPOSURES,
    FACTORS,
    Scenario,
    ewma_covariance,
    ewma_covariances,
    implied_factor_moves,
    implied_factor_moves_stack,
    scenario_shocks,
    stress_exposures,
    stress_summary,
    stress_summary_blocks,
    stress_test,
    stress_test_dates,
)
from shared.analytics.symbol_betas import compute_symbol_betas
from shared.calendar import session_index
from shared.scenarios import DEFAULT_SCENARIO_FILE, load_scenarios, parse_scenarios

ETFS = dict(zip(FACTORS, ("SPY", *STYLE_FACTORS.values(), "TLT"), strict=True))
ACTIVE = load_scenarios(active_only=True)
PURE_MARKET = [s for s in ACTIVE if set(s.shocks) == {"Market"}]
MV = 1_000_000.0


def sc(sid, **shocks):
    return Scenario(id=sid, name=sid, category="test", severity="base", active=True,
                    shocks={k.replace("_", " ") if k != "Interest_Rate" else k: v for k, v in shocks.items()})


@pytest.fixture(scope="module")
def market():
    """A planted factor market: styles = b_k·SPY + own noise (ρ with SPY 0.8-0.95), TLT ρ ≈ -0.35 with SPY,
    ten stocks with market betas 0.6-1.6, style tilts and a rate loading. Returns (prices, betas on the
    last session by symbol × factor, covariance of the 252 factor returns ending there, last session)."""
    rng = np.random.default_rng(15)
    idx = session_index(date(2025, 1, 2), date(2026, 11, 27))
    T = len(idx)
    mkt = rng.normal(0.0003, 0.010, T)
    b = np.array([0.90, 1.10, 1.05, 0.95, 1.20, 0.70])
    styles = mkt[:, None] * b + rng.normal(0, 1, (T, 6)) * np.array([0.003, 0.004, 0.005, 0.002, 0.006, 0.003])
    tlt = -0.35 * mkt + rng.normal(0, 0.009, T)
    beta = np.linspace(0.6, 1.6, 10)
    tilt = rng.normal(0, 0.4, (10, 6))
    stocks = (mkt[:, None] * beta + (styles - mkt[:, None] * b) @ tilt.T + 0.2 * tlt[:, None]
              + rng.normal(0, 0.012, (T, 10)))
    rets = np.column_stack([mkt, styles, tlt, stocks])
    names = [*ETFS.values(), *[f"S{i}" for i in range(10)]]
    prices = pd.DataFrame(100.0 * np.cumprod(1.0 + rets, axis=0), index=idx, columns=names)
    last = idx[-1].date()
    betas = compute_symbol_betas(prices, [last]).pivot_table(index="symbol", columns="factor", values="beta_value")
    fret = simple_returns(prices[list(ETFS.values())]).iloc[-252:]
    fret.columns = list(FACTORS)
    return prices, betas, ewma_covariance(fret), last


def book(betas: pd.DataFrame, holdings: dict[str, float]) -> pd.Series:
    """Dollar exposures Σ MV_i β_i of a book (symbol -> signed market value), by factor-definition name."""
    mv = pd.Series(holdings, dtype=float)
    return (betas.loc[mv.index].fillna(0.0).mul(mv, axis=0)).sum()


def proxies(betas: pd.DataFrame) -> dict:
    """SPY's own betas and TLT's market beta, as the phase passes them."""
    return {"spy_betas": betas.loc["SPY"], "tlt_market_beta": float(betas.loc["TLT", "Market Beta (90D)"])}


def run(market, books: dict[str, dict[str, float]], equity: dict[str, float] | None = None, scen=ACTIVE):
    _, betas, cov, _ = market
    exposures = pd.DataFrame({k: book(betas, v) if v else pd.Series(dtype=float) for k, v in books.items()}).T
    eq = pd.Series(equity or {k: MV for k in books})
    out = stress_test(exposures.fillna(0.0), scen, cov, eq, **proxies(betas))
    return out.set_index(["portfolio_id", "scenario_id"])


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
    with pytest.raises(ValueError, match="unknown factor 'Momentum Spread'"):  # not a factor of the covariance
        parse_scenarios("scenarios: [{id: x, shocks: {Momentum Spread: 0.1}}]")


# --- the covariance and the conditional moves ---------------------------------------------------------

def test_ewma_covariance_against_numpy_with_missing_rows(rng):
    T, F = 252, 8
    R = rng.normal(0, 0.01, (T, F)) @ rng.normal(0, 1, (F, F))
    R[[3, 100, 250], [1, 7, 0]] = np.nan                       # incomplete rows are dropped, the others keep their age
    cov = ewma_covariance(pd.DataFrame(R, columns=list(FACTORS)))
    ok = np.isfinite(R).all(1)
    w = 0.94 ** np.arange(T - 1, -1, -1)
    ref = np.cov(R[ok].T, aweights=w[ok], bias=True)           # Σ w (x - x̄_w)(x - x̄_w)ᵀ / Σ w
    np.testing.assert_allclose(cov.to_numpy(), ref, rtol=1e-12, atol=1e-18)
    assert list(cov.index) == list(FACTORS)
    short = ewma_covariance(pd.DataFrame(R[:59], columns=list(FACTORS)))   # < 60 complete rows: no covariance
    assert short.isna().all().all()


@pytest.mark.parametrize("scenario", ["liquidity_crisis", "value_rotation_20", "rates_up_100bp", "market_down_10"])
def test_implied_moves_closed_form_and_weighted_least_squares(rng, scenario):
    """Planted covariance: m = Σ·S Σ_SS⁻¹ s (1e-10), the same as a weighted least-squares regression
    (numpy lstsq, EWMA weights, with intercept) of the unshocked on the shocked factors, m_S = s exactly."""
    L = np.tril(rng.normal(0, 1, (8, 8))) + 3 * np.eye(8)
    planted = L @ L.T * 1e-5
    T = 252
    R = rng.multivariate_normal(np.zeros(8), planted, T)
    cov = ewma_covariance(pd.DataFrame(R, columns=list(FACTORS)))
    scen = [s for s in ACTIVE if s.id == scenario]
    shocks = scenario_shocks(scen)
    m = implied_factor_moves(cov, shocks).to_numpy()[0]
    s = shocks.to_numpy()[0]
    S = np.flatnonzero(np.isfinite(s))
    U = np.flatnonzero(~np.isfinite(s))
    C = cov.to_numpy()
    np.testing.assert_allclose(m, C[:, S] @ np.linalg.inv(C[np.ix_(S, S)]) @ s[S], rtol=0, atol=1e-10)
    assert (m[S] == s[S]).all()
    sw = np.sqrt(0.94 ** np.arange(T - 1, -1, -1))
    X = np.column_stack([np.ones(T), R[:, S]]) * sw[:, None]
    coef = np.linalg.lstsq(X, R[:, U] * sw[:, None], rcond=None)[0]       # (1 + |S|, |U|)
    np.testing.assert_allclose(m[U], s[S] @ coef[1:], rtol=0, atol=1e-10)
    # and with a long, slowly decaying window the estimate approaches the planted covariance's moves
    R2 = rng.multivariate_normal(np.zeros(8), planted, 20_000)
    m2 = implied_factor_moves(ewma_covariance(pd.DataFrame(R2, columns=list(FACTORS)), decay=0.9999), shocks)
    exact = planted[:, S] @ np.linalg.solve(planted[np.ix_(S, S)], s[S])
    np.testing.assert_allclose(m2.to_numpy()[0], exact, atol=0.1 * np.abs(s[S]).max())


def test_hand_computed_market_and_value():
    """Only Market and Value covary: Σ_MM = 1e-4, Σ_VV = 2e-4, Σ_MV = 1.2e-4 (β_V = 1.2)."""
    cov = pd.DataFrame(np.diag([1e-4, 2e-4, 1, 1, 1, 1, 1, 1]) * 1.0, index=list(FACTORS), columns=list(FACTORS))
    cov.loc["Market", "Value"] = cov.loc["Value", "Market"] = 1.2e-4
    exposures = pd.DataFrame({"Market Beta (90D)": [100_000.0], "Value": [50_000.0]}, index=["p"])
    out = stress_test(exposures, [sc("A", Market=-0.10), sc("B", Value=0.20)], cov,
                      pd.Series({"p": 1e6})).set_index("scenario_id")
    # A: a pure market shock moves the book by its market beta only (Value's net-of-market move is 0)
    assert out.loc["A", "direct_pnl"] == pytest.approx(-10_000.0, rel=1e-14)
    assert out.loc["A", "correlated_pnl"] == pytest.approx(-10_000.0, rel=1e-12)
    # B: m_M = 1.2e-4 / 2e-4 * 0.20 = 0.12; Value net of market = 0.20 - 1.2 * 0.12 = 0.056
    assert out.loc["B", "direct_pnl"] == pytest.approx(10_000.0)
    assert out.loc["B", "correlated_pnl"] == pytest.approx(100_000 * 0.12 + 50_000 * 0.056, rel=1e-12)
    assert out.loc["B", "market_pnl"] == pytest.approx(12_000.0)
    assert out.loc["B", "correlation_effect"] == pytest.approx(12_000 + 2_800 - 10_000, rel=1e-12)
    fi = out.loc["B", "factor_impacts"]
    assert fi == {"Value": {"exposure_factor": "Value", "exposure": 50_000.0, "shock_pct": pytest.approx(20.0),
                            "direct_pnl": pytest.approx(10_000.0)}}


def test_vectorized_matches_loop_reference(rng):
    """stress_test == the formula written out per portfolio and scenario with an explicit inverse."""
    R = rng.normal(0, 0.01, (252, 8)) @ rng.normal(0, 1, (8, 8))
    cov = ewma_covariance(pd.DataFrame(R, columns=list(FACTORS)))
    C = cov.to_numpy()
    cols = [*FACTOR_EXPOSURES.values(), "Momentum Spread", "Provider Beta (1Y)"]   # the last two are not used
    exposures = pd.DataFrame(rng.normal(0, 1e5, (12, len(cols))), columns=cols)
    equity = pd.Series(rng.uniform(1e5, 1e6, 12))
    g_spy, b_tlt = -0.3, -0.25
    b_spy = dict(zip(STYLE_FACTORS, rng.uniform(0, 0.4, 6), strict=True))
    out = stress_test(exposures, ACTIVE, cov, equity, spy_betas={**b_spy, "IR Beta": g_spy}, tlt_market_beta=b_tlt)
    beta = C[:, 0] / C[0, 0]
    for row in out.itertuples():
        p, scen = row.portfolio_id, next(s for s in ACTIVE if s.id == row.scenario_id)
        e = exposures.loc[p]
        x = np.array([e[FACTOR_EXPOSURES[k]] for k in FACTORS])
        x[1:-1] -= e["Market Beta (90D)"] * np.array(list(b_spy.values()))
        x[-1] = (e["IR Beta"] - e["Market Beta (90D)"] * g_spy) / (1 - g_spy * b_tlt)
        shock = {("Rates" if k == "Interest_Rate" else k): (-17.0 * v if k == "Interest_Rate" else v)
                 for k, v in scen.shocks.items()}
        S = [FACTORS.index(k) for k in shock]
        s = np.array(list(shock.values()))
        m = C[:, S] @ np.linalg.inv(C[np.ix_(S, S)]) @ s
        m_net = m - beta * m[0]
        m_net[0] = m[0]
        cap = -0.99 * equity[p]
        assert row.direct_pnl == pytest.approx(max(x[S] @ s, cap), rel=1e-10, abs=1e-6)
        assert row.correlated_pnl == pytest.approx(max(x @ m_net, cap), rel=1e-10, abs=1e-6)
    summ = stress_summary(out)
    g = out.groupby("portfolio_id")["correlated_pnl"]
    np.testing.assert_allclose(summ["worst_pnl"], g.min())
    np.testing.assert_allclose(summ["std_pnl"], g.apply(lambda v: np.std(v.to_numpy())))
    assert (summ["n_scenarios"] == 19).all()


# --- the must-show books ---------------------------------------------------------------------------

def test_spy_only_book(market):
    out = run(market, {"spy": {"SPY": MV}})
    dec = out.loc[("spy", "market_down_10")]
    assert dec["direct_pnl"] == pytest.approx(-0.10 * MV, rel=1e-12)          # exactly -10 % of the SPY value
    assert -0.11 * MV <= dec["correlated_pnl"] <= -0.09 * MV
    for s in PURE_MARKET:                                                      # no market move counted twice
        assert out.loc[("spy", s.id), "correlated_pnl"] == pytest.approx(s.shocks["Market"] * MV, rel=1e-9)
    # net of the market, an index book has no style and no rate exposure: (MV, 0, ..., 0)
    x = stress_exposures(pd.DataFrame([book(market[1], {"SPY": MV})]), **proxies(market[1]))
    np.testing.assert_allclose(x.iloc[0], [MV, 0, 0, 0, 0, 0, 0, 0], rtol=0, atol=1e-8 * MV)
    # so any shock reaches it through the market move Σ implies, and only through it
    for s in ACTIVE:
        row = out.loc[("spy", s.id)]
        assert row["correlated_pnl"] == pytest.approx(row["market_pnl"], rel=1e-9, abs=1e-6), s.id
    up = out.loc[("spy", "rates_up_100bp")]
    assert up["direct_pnl"] == pytest.approx(0.0, abs=1e-6 * MV)
    assert 0 < up["correlated_pnl"] < 0.17 * MV            # rates up: TLT falls, SPY rises (ρ < 0)


def test_half_spy_half_cash_book_is_half(market):
    out = run(market, {"half": {"SPY": MV / 2}, "spy": {"SPY": MV}})
    np.testing.assert_allclose(out.loc["half", "correlated_pnl"], out.loc["spy", "correlated_pnl"] / 2, rtol=1e-12)


def test_beta_hedged_book(market):
    """Long a stock, short SPY by its market beta: a pure market shock moves it by < 1 % of gross."""
    betas = market[1]
    for stock in ("S0", "S5", "S9"):
        b = float(betas.loc[stock, "Market Beta (90D)"])
        out = run(market, {"hedged": {stock: MV, "SPY": -b * MV}}, {"hedged": MV})
        gross = MV * (1 + abs(b))
        for s in PURE_MARKET:
            assert abs(out.loc[("hedged", s.id), "correlated_pnl"]) < 0.01 * gross
            assert abs(out.loc[("hedged", s.id), "correlated_pnl"]) < 1e-6 * gross   # in fact 0


def test_cash_only_book_is_zero_everywhere(market):
    out = run(market, {"cash": {}, "spy": {"SPY": MV}})
    cash = out.loc["cash"]
    assert len(cash) == 19
    assert (cash[["direct_pnl", "correlated_pnl", "correlation_effect"]] == 0.0).all().all()


def test_tlt_only_book_rates_by_duration(market):
    out = run(market, {"tlt": {"TLT": MV}})
    assert out.loc[("tlt", "rates_up_100bp"), "direct_pnl"] == pytest.approx(-0.17 * MV, rel=1e-9)
    assert out.loc[("tlt", "rates_down_50bp"), "direct_pnl"] == pytest.approx(0.085 * MV, rel=1e-9)
    x = stress_exposures(pd.DataFrame([book(market[1], {"TLT": MV})]), **proxies(market[1]))
    assert x["Rates"].iloc[0] == pytest.approx(MV, rel=1e-9)     # joint (SPY, TLT) coefficient of TLT itself: 1
    # correlated: -17 % plus beta x the implied market move plus TLT's (noisy) style loadings' excess moves
    assert -0.20 * MV < out.loc[("tlt", "rates_up_100bp"), "correlated_pnl"] < -0.14 * MV
    fi = out.loc[("tlt", "rates_up_100bp"), "factor_impacts"]["Interest_Rate"]
    assert fi["tlt_return"] == pytest.approx(-0.17) and fi["exposure_factor"] == "IR Beta (net of market)"
    _, betas, cov, _ = market
    x = pd.DataFrame([book(betas, {"TLT": MV})])
    out8 = stress_test(x, [sc("up", Interest_Rate=0.01)], cov, pd.Series([MV]), duration=8.0,
                       **proxies(betas))
    assert out8["direct_pnl"].iloc[0] == pytest.approx(-0.08 * MV, rel=1e-9)


def test_long_only_unlevered_books_never_hit_the_loss_cap(market):
    betas = market[1]
    stocks = [f"S{i}" for i in range(10)]
    books = {"spy": {"SPY": MV}, "stocks": {s: MV / 10 for s in stocks},
             "high_beta": {s: MV / 3 for s in stocks[-3:]}, "etfs": {e: MV / 8 for e in ETFS.values()},
             **{s: {s: MV} for s in [*stocks, *ETFS.values()]}}
    out = run(market, books)
    assert not out["loss_capped"].any()
    assert (out["correlated_pnl"] > -0.99 * MV).all()
    assert out.loc[("stocks", "market_crash_35"), "correlated_pnl"] == pytest.approx(
        -0.35 * float(betas.loc[stocks, "Market Beta (90D)"].mean()) * MV, rel=1e-9)


def test_no_covariance_means_no_propagation(market):
    _, betas, _, _ = market
    nan_cov = pd.DataFrame(np.nan, index=list(FACTORS), columns=list(FACTORS))
    x = pd.DataFrame([book(betas, {"S3": MV})])
    for cov in (None, nan_cov):
        out = stress_test(x, ACTIVE, cov, pd.Series([MV]), **proxies(betas))
        np.testing.assert_allclose(out["correlated_pnl"], out["direct_pnl"], rtol=1e-12)


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


def test_loss_cap_flags_a_correlated_loss_and_never_caps_at_zero_equity():
    """A book with market exposure only, in a rates-only scenario: no direct P&L, a correlated loss through
    the market move Σ implies. The loss beyond −99 % of equity is capped and flagged although the direct
    P&L is not; a book with zero equity is never capped (a cap at −0.99 × 0 would turn every loss into $0)."""
    vol = np.full(len(FACTORS), 0.01)
    corr = np.full((len(FACTORS), len(FACTORS)), 0.5)
    np.fill_diagonal(corr, 1.0)
    corr[0, -1] = corr[-1, 0] = -0.9  # market and TLT
    cov = pd.DataFrame(corr * np.outer(vol, vol), index=list(FACTORS), columns=list(FACTORS))
    exposures = pd.DataFrame({"Market Beta (90D)": [5_000_000.0, 5_000_000.0, 5_000_000.0]}, index=["small", "zero",
                                                                                                   "big"])
    equity = pd.Series({"small": 100_000.0, "zero": 0.0, "big": 1e9})
    out = stress_test(exposures, [sc("rally", Interest_Rate=-0.03)], cov, equity).set_index("portfolio_id")
    uncapped = out.loc["big", "correlated_pnl"]
    assert out.loc["big", "direct_pnl"] == 0.0 and uncapped < -99_000.0 and not out.loc["big", "loss_capped"]
    assert out.loc["small", "direct_pnl"] == 0.0
    assert out.loc["small", "correlated_pnl"] == pytest.approx(-99_000.0)
    assert out.loc["small", "loss_capped"]
    assert out.loc["zero", "correlated_pnl"] == pytest.approx(uncapped) and not out.loc["zero", "loss_capped"]
    summary = stress_summary(out.reset_index().assign(correlation_effect=0.0))
    assert summary.loc["big", "worst_pnl"] == summary.loc["big", "best_pnl"] == pytest.approx(uncapped)


# --- many dates at once (the phase's batched path) ------------------------------------------------------

def test_ewma_covariances_equal_the_single_date_function(rng):
    """Short windows at the start (padding), missing rows, a window below min_obs (NaN): date by date."""
    T = 400
    R = rng.normal(0, 0.01, (T, 8)) @ rng.normal(0, 1, (8, 8))
    R[[5, 70, 300], [2, 0, 7]] = np.nan
    fret = pd.DataFrame(R, columns=list(FACTORS))
    ends = np.array([0, 40, 59, 60, 61, 100, 251, 252, 300, 399])
    covs, used = ewma_covariances(fret, ends)
    assert covs.shape == (len(ends), 8, 8)
    for k, e in enumerate(ends):
        window = fret.iloc[max(0, e - 251): e + 1]
        ref = ewma_covariance(window).to_numpy()
        np.testing.assert_allclose(covs[k], ref, rtol=1e-12, atol=1e-20)
        assert used[k] == np.isfinite(window.to_numpy()).all(1).sum()
    assert np.isnan(covs[:2]).all() and np.isfinite(covs[5:]).all()


def test_stress_test_dates_equals_a_loop_over_dates(rng):
    """Several dates (one without covariance, different SPY/TLT betas, cash books, capped losses) in one
    call == stress_test and stress_summary date by date; a shifted date code (the bug of aligning rows
    with the neighbouring date's covariance) does not."""
    T = 300
    R = rng.normal(0, 0.01, (T, 8)) @ rng.normal(0, 1, (8, 8))
    fret = pd.DataFrame(R, columns=list(FACTORS))
    ends = np.array([30, 120, 200, 299])                   # the first has too little history: no covariance
    covs, _ = ewma_covariances(fret, ends)
    cols = [*FACTOR_EXPOSURES.values(), "Momentum Spread"]
    P = 7
    rows, codes, eqs = [], [], []
    for k in range(len(ends)):
        e = pd.DataFrame(rng.normal(0, 3e5, (P, len(cols))), columns=cols, index=[f"p{i}" for i in range(P)])
        e.iloc[0] = np.nan                                  # a cash-only book
        rows.append(e)
        codes.append(np.full(P, k))
        eqs.append(rng.uniform(1e4, 1e6, P))
    eqs[2][1] = -5.0                                        # no cap at non-positive equity
    expo = pd.concat(rows, ignore_index=True)
    code = np.concatenate(codes)
    equity = np.concatenate(eqs)
    spy = pd.DataFrame(rng.uniform(0, 0.4, (len(ends), 7)), columns=[*STYLE_FACTORS, "IR Beta"])
    spy.iloc[3, 2] = np.nan
    tlt = np.array([-0.2, np.nan, -0.3, -0.25])
    out = stress_test_dates(expo, code, ACTIVE, covs, equity, spy_betas=spy, tlt_market_beta=tlt)
    n = len(ACTIVE)
    assert len(out) == len(expo) * n and out["loss_capped"].any()
    summ = stress_summary_blocks(out["correlated_pnl"].to_numpy().reshape(-1, n),
                                 out["correlation_effect"].to_numpy().reshape(-1, n))
    num = ["direct_pnl", "correlated_pnl", "correlation_effect", "market_pnl"]
    for k in range(len(ends)):
        sel = code == k
        cov = pd.DataFrame(covs[k], index=list(FACTORS), columns=list(FACTORS))
        ref = stress_test(rows[k], ACTIVE, cov, pd.Series(eqs[k], index=rows[k].index), spy_betas=spy.iloc[k],
                          tlt_market_beta=None if np.isnan(tlt[k]) else tlt[k])
        got = out[np.repeat(sel, n)]
        np.testing.assert_allclose(got[num].to_numpy(), ref[num].to_numpy(), rtol=1e-12, atol=1e-6)
        assert got["loss_capped"].tolist() == ref["loss_capped"].tolist()
        assert got["scenario_id"].tolist() == ref["scenario_id"].tolist()
        assert got["factor_impacts"].tolist() == ref["factor_impacts"].tolist()
        rs = stress_summary(ref)
        np.testing.assert_allclose(summ[sel].drop(columns="n_scenarios").to_numpy(dtype=float),
                                   rs.drop(columns="n_scenarios").to_numpy(dtype=float), rtol=1e-12, atol=1e-6)
    first = np.repeat(code == 0, n)                         # no covariance: correlated = direct
    np.testing.assert_allclose(out["correlated_pnl"][first], out["direct_pnl"][first], rtol=1e-12, atol=1e-6)
    shifted = stress_test_dates(expo, np.minimum(code + 1, len(ends) - 1), ACTIVE, covs, equity, spy_betas=spy,
                                tlt_market_beta=tlt)
    assert not np.allclose(shifted["correlated_pnl"], out["correlated_pnl"], rtol=1e-6)


def test_implied_moves_stack_singular_date_falls_back_to_lstsq():
    """A date whose Σ_SS is singular (two shocked factors perfectly collinear) gets the single-date answer."""
    C = np.eye(8) * 1e-4
    C[0, 1] = C[1, 0] = 1e-4                                 # Market and Value identical: singular 2×2 block
    good = np.eye(8) * 2e-4
    covs = np.stack([good, C, np.full((8, 8), np.nan)])
    shocks = scenario_shocks([sc("two", Market=-0.1, Value=-0.1), sc("one", Market=0.05)])
    m = implied_factor_moves_stack(covs, shocks)
    for k in range(3):
        ref = implied_factor_moves(pd.DataFrame(covs[k], index=list(FACTORS), columns=list(FACTORS)), shocks)
        np.testing.assert_allclose(m[k], ref.to_numpy(), rtol=1e-12, atol=1e-15)
