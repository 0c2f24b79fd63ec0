import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from arch.univariate import HARX
from scipy import stats

from shared.analytics.aggregation import portfolio_factor_exposures
from shared.analytics.volatility import (
    _metrics_block,
    har_fit,
    har_forecast,
    holding_returns,
    holding_volatility_at,
    holding_weights,
    portfolio_returns,
    realized_vol,
    right_align,
    rolling_realized_vol,
    volatility_metrics,
    volatility_metrics_at,
)

SQ = np.sqrt(252)


@pytest.fixture
def returns_with_gaps(make_returns, rng):
    r = make_returns(300, 7)
    r[40:47, 1] = np.nan                           # a block gap
    r[rng.random(300) < 0.08, 2] = np.nan          # scattered gaps
    r[:150, 3] = np.nan                            # listed late (150 valid)
    r[-30:, 4] = np.nan                            # stopped trading 30 sessions ago
    r[:240, 6] = np.nan                            # only 60 valid -> below min_obs 63
    return r


def _arch(y_valid, horizon=21):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HARX(y_valid, lags=[1, 5, 22], rescale=False).fit(disp="off")
        fc = res.forecast(horizon=horizon, reindex=False).mean.to_numpy()[-1]
    return res.params.to_numpy()[:4], fc, res.rsquared


def test_har_matches_arch_params_forecast_and_r2(returns_with_gaps):
    y = returns_with_gaps ** 2
    fit = har_fit(y)
    fc = har_forecast(y, fit.params, 21)
    for s in range(6):                              # series 6 is below min_obs
        ys = y[:, s][~np.isnan(y[:, s])]            # documented rule: drop NaNs per series
        p, f, r2 = _arch(ys)
        np.testing.assert_allclose(fit.params[s], p, rtol=1e-8, atol=0)
        np.testing.assert_allclose(fc[s], f, rtol=1e-8, atol=0)
        assert fit.r_squared[s] == pytest.approx(r2, rel=1e-8)
        assert fit.n_obs[s] == len(ys) - 22
    assert np.isnan(fit.params[6]).all() and np.isnan(fc[6]).all()


def test_har_rescale_pitfall_is_avoided(make_returns):
    """arch's default rescale multiplies decimal² data by 1e4; with rescale=False we match directly."""
    y = make_returns(252, 1)[:, 0] ** 2
    fit = har_fit(y[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = HARX(y, lags=[1, 5, 22]).fit(disp="off")            # rescale=None -> rescaled
    np.testing.assert_allclose(fit.params[0, 0], res.params.iloc[0] / res.scale, rtol=1e-8)
    np.testing.assert_allclose(fit.params[0, 1:], res.params.to_numpy()[1:4], rtol=1e-8)


def test_expected_vol_21d_is_annualized_mean_of_21_forecasts(returns_with_gaps):
    df = pd.DataFrame(returns_with_gaps, columns=list("ABCDEFG"))
    m = volatility_metrics(df)
    for col in df.columns[:6]:
        rv = df[col].dropna().to_numpy()
        _, f, r2 = _arch(rv ** 2)
        assert m.loc[col, "expected_vol_21d"] == pytest.approx(np.sqrt(252 * f.mean()), rel=1e-8)
        assert m.loc[col, "har_r_squared"] == pytest.approx(r2, rel=1e-8)
    assert np.isnan(m.loc["G", "expected_vol_21d"])


def test_rolling_realized_vol_equals_pandas(returns_with_gaps):
    df = pd.DataFrame(returns_with_gaps)
    for w in (5, 21, 63):
        expected = (df.rolling(w).std() * SQ).to_numpy()
        got = rolling_realized_vol(returns_with_gaps, w)
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14, equal_nan=True)


def test_realized_vol_last_valid_returns_equals_pandas(returns_with_gaps):
    df = pd.DataFrame(returns_with_gaps)
    for w in (21, 63):
        got = realized_vol(returns_with_gaps, w)
        for s in df.columns:
            exp = df[s].dropna().rolling(w).std().iloc[-1] * SQ
            assert got[s] == pytest.approx(exp, rel=1e-12, nan_ok=True)
    assert np.isnan(realized_vol(returns_with_gaps[:, 6:], 63)).all()


def test_right_align_keeps_order():
    x = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, np.nan], [4.0, 5.0]])
    a, n = right_align(x)
    np.testing.assert_array_equal(n, [3, 2])
    np.testing.assert_array_equal(a[1:, 0], [1.0, 3.0, 4.0])
    np.testing.assert_array_equal(a[2:, 1], [2.0, 5.0])
    assert np.isnan(a[0, 0]) and np.isnan(a[:2, 1]).all()


def test_components_trend_and_percentile(make_returns):
    T = 260
    r = make_returns(T, 3)
    sign = np.where(np.arange(T) % 2 == 0, 1.0, -1.0)
    r[:, 1] = 0.01 * sign * np.linspace(0.2, 3.0, T)   # smoothly rising vol
    r[:, 2] = 0.01 * sign * np.linspace(3.0, 0.2, T)   # smoothly falling vol
    df = pd.DataFrame(r, columns=["x", "up", "down"])
    m = volatility_metrics(df)
    roll = df.rolling(21).std() * SQ
    for c in df.columns:
        assert m.loc[c, "vol_daily"] == pytest.approx(abs(df[c].iloc[-1]) * SQ)
        assert m.loc[c, "vol_weekly"] == pytest.approx(df[c].iloc[-5:].std() * SQ)
        assert m.loc[c, "vol_monthly"] == pytest.approx(roll[c].iloc[-1])
        assert m.loc[c, "realized_vol_63d"] == pytest.approx(df[c].iloc[-63:].std() * SQ)
        last = roll[c].iloc[-21:].to_numpy()
        slope, _, rval, _, _ = stats.linregress(np.arange(21), last)
        assert m.loc[c, "trend_slope"] == pytest.approx(slope, rel=1e-9)
        assert m.loc[c, "trend_strength"] == pytest.approx(rval ** 2, rel=1e-9)
        hist = roll[c].dropna()
        assert m.loc[c, "vol_percentile"] == pytest.approx((hist < hist.iloc[-1]).mean(), rel=1e-12)
    assert m.loc["up", "vol_trend"] == "increasing"
    assert m.loc["down", "vol_trend"] == "decreasing"


def test_percentile_needs_100_rolling_values(make_returns):
    df = pd.DataFrame(make_returns(119, 1))        # 99 rolling-21 values
    assert np.isnan(volatility_metrics(df)["vol_percentile"].iloc[0])
    df = pd.DataFrame(make_returns(120, 1))        # 100 rolling-21 values
    assert not np.isnan(volatility_metrics(df)["vol_percentile"].iloc[0])


def test_portfolio_returns_nan_as_zero_and_lot_merge():
    pos = pd.DataFrame({"portfolio_id": [1, 1, 1, 2], "symbol": ["A", "A", "B", "B"],
                        "market_value": [300.0, 300.0, -400.0, 50.0]})
    equity = pd.Series({1: 1000.0, 2: 100.0})
    w = holding_weights(pos, equity)                           # signed MV / equity (NAV), lots merged
    np.testing.assert_allclose(w.loc[1, ["A", "B"]], [0.6, -0.4])
    np.testing.assert_allclose(w.loc[2, ["A", "B"]], [0.0, 0.5])
    rets = pd.DataFrame({"A": [0.01, np.nan], "B": [0.02, -0.01]})
    pr = portfolio_returns(rets, w)
    np.testing.assert_allclose(pr[1], [0.6 * 0.01 - 0.4 * 0.02, 0.4 * 0.01])
    np.testing.assert_allclose(pr[2], [0.01, -0.005])
    np.testing.assert_allclose(holding_returns(rets, pos, equity).to_numpy(), pr.to_numpy())


def test_half_spy_half_cash_has_half_the_volatility(make_returns):
    """Issue 15: a book 50 % in SPY and 50 % in cash has exactly half SPY's volatility (weights on NAV,
    cash earns 0), realized and HAR-forecast alike; on gross exposure it used to show SPY's."""
    spy = pd.DataFrame({"SPY": make_returns(252, 1)[:, 0]})
    pos = pd.DataFrame({"portfolio_id": ["half", "full"], "symbol": ["SPY", "SPY"], "market_value": [5e5, 1e6]})
    port = holding_returns(spy, pos, pd.Series({"half": 1e6, "full": 1e6}))
    vm = volatility_metrics(port)
    ref = volatility_metrics(spy).loc["SPY"]
    for col in ("realized_vol_21d", "realized_vol_63d", "expected_vol_21d"):
        assert vm.loc["half", col] == pytest.approx(ref[col] / 2, rel=1e-12), col
        assert vm.loc["full", col] == pytest.approx(ref[col], rel=1e-12), col


def test_book_volatility_is_std_of_nav_weighted_returns_by_hand(rng):
    """Realized volatility of a long/short book with cash = std(Σ_i (MV_i / equity) r_i) × √252."""
    T = 100
    syms = ["A", "B", "C", "D"]
    R = pd.DataFrame(rng.normal(0, 0.015, (T, 4)), columns=syms)
    R.iloc[10, 2] = np.nan                                       # a missing return counts as 0 (module rule)
    mv = {"A": 400_000.0, "B": 250_000.0, "C": -150_000.0, "D": 100_000.0}
    equity = 900_000.0                                           # gross 900k, net 600k, cash 300k
    pos = pd.DataFrame({"portfolio_id": "p", "symbol": [*mv, "A"], "market_value": [*mv.values(), 50_000.0]})
    vm = volatility_metrics(holding_returns(R, pos, pd.Series({"p": equity}))).loc["p"]
    by_hand = np.zeros(T)
    for s, v in {**mv, "A": 450_000.0}.items():
        by_hand += v / equity * np.nan_to_num(R[s].to_numpy())
    assert vm["realized_vol_21d"] == pytest.approx(np.std(by_hand[-21:], ddof=1) * SQ, rel=1e-12)
    assert vm["realized_vol_63d"] == pytest.approx(np.std(by_hand[-63:], ddof=1) * SQ, rel=1e-12)
    gross = holding_returns(R, pos, pd.Series({"p": 1_000_000.0}))["p"]       # the old Σ|MV| denominator
    assert vm["realized_vol_21d"] != pytest.approx(np.std(gross.to_numpy()[-21:], ddof=1) * SQ, rel=1e-3)


def test_no_equity_no_portfolio_volatility():
    pos = pd.DataFrame({"portfolio_id": ["neg", "zero", "ok"], "symbol": "A", "market_value": 1e5})
    R = pd.DataFrame({"A": [0.01, -0.02, 0.005]})
    out = holding_returns(R, pos, pd.Series({"neg": -5.0, "zero": 0.0}))
    assert out.isna().all().all()                                # ≤ 0 or missing equity: no made-up series
    assert (holding_weights(pos, pd.Series({"ok": 1e5})).loc[["neg", "zero"]] == 0).all().all()


def test_portfolio_beta_identity(rng):
    """Σ w_i β_i (aggregation of per-symbol OLS betas) == OLS beta of the static portfolio's returns."""
    T, S = 90, 12
    spy = rng.normal(0.0004, 0.011, T)
    true_b = rng.uniform(-0.5, 2.0, S)
    R = spy[:, None] * true_b + rng.normal(0, 0.015, (T, S))
    syms = [f"S{i}" for i in range(S)]
    X = sm.add_constant(spy)
    betas = np.array([sm.OLS(R[:, i], X).fit().params[1] for i in range(S)])
    w = rng.normal(0, 0.2, S)                       # signed weights, long/short
    d = pd.Timestamp("2025-03-31")
    weights = pd.DataFrame({"calculation_date": d, "portfolio_id": 7, "symbol": syms, "weight": w})
    sym_betas = pd.DataFrame({"calculation_date": d, "symbol": syms, "factor": "Market Beta (90D)",
                              "beta_value": betas})
    agg = portfolio_factor_exposures(weights, sym_betas)["exposure_value"].iloc[0]
    pr = portfolio_returns(pd.DataFrame(R, columns=syms), pd.DataFrame([w], index=[7], columns=syms))[7]
    port_beta = sm.OLS(pr.to_numpy(), X).fit().params[1]
    assert agg == pytest.approx(port_beta, abs=1e-10)


def test_metrics_at_many_dates_equal_one_window_per_date(returns_with_gaps):
    """volatility_metrics_at (all (date, symbol) pairs in one pass, in blocks) = volatility_metrics of each
    date's window (the last 252 rows ending at it, fewer near the start), column by column — short windows,
    gaps, a series below min_obs, a date before the index and duplicated pairs included."""
    idx = pd.bdate_range("2025-01-01", periods=len(returns_with_gaps))
    r = pd.DataFrame(returns_with_gaps, index=idx, columns=[f"S{i}" for i in range(7)])
    r.iloc[0] = np.nan
    picks = [5, 30, 64, 120, 252, 299]
    dates = [idx[i] for i in picks for _ in r.columns] + [idx[299], pd.Timestamp("2024-06-03")]
    symbols = [c for _ in picks for c in r.columns] + ["S0", "S1"]
    got = volatility_metrics_at(r, dates, symbols, window=252, block=5)
    assert len(got) == len(dates)
    for k, (d, sym) in enumerate(zip(dates, symbols, strict=True)):
        if d not in idx:
            assert got.loc[k, "n_obs"] == 0 and np.isnan(got.loc[k, "realized_vol_21d"])
            continue
        end = idx.get_loc(d)
        want = volatility_metrics(r.iloc[max(0, end - 251): end + 1]).loc[sym]
        for col, v in want.items():
            g = got.loc[k, col]
            if pd.isna(v) and pd.isna(g):  # a missing trend: None or NaN
                continue
            if isinstance(v, str):
                assert g == v, (d, sym, col)
            else:
                np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-15, err_msg=f"{d} {sym} {col}")


def test_holding_volatility_at_equals_the_per_date_path(make_returns):
    """All (date, portfolio) pairs at once == holding_returns on each date's window (rows before row 1
    left out, as the phase does) + volatility_metrics: short windows at the start, a symbol with gaps, a
    symbol that is not a column, lots of one symbol, a book without equity, holdings changing by date."""
    rng = np.random.default_rng(5)
    T, S = 330, 6
    idx = pd.bdate_range("2024-01-01", periods=T)
    R = pd.DataFrame(make_returns(T, S), index=idx, columns=[f"S{i}" for i in range(S)])
    R.iloc[0] = np.nan                                                    # the first difference's NaN row
    R.iloc[40:60, 2] = np.nan
    dates = [idx[k].date() for k in (5, 90, 200, 251, 252, 329)]
    rows = []
    for d in dates:
        for p in ("a", "b", "c"):
            for sym in rng.choice([*R.columns, "GONE"], size=3, replace=False):
                rows.append((d, p, sym, float(rng.normal(1e5, 5e4))))
        rows.append((d, "a", "S1", 2.5e4))                                # a second lot
    pos = pd.DataFrame(rows, columns=["calculation_date", "portfolio_id", "symbol", "market_value"])
    equity = pd.Series({(d, p): 1e6 if p != "c" or d != dates[2] else -1.0 for d in dates for p in "abc"})
    equity.index = equity.index.set_names(["calculation_date", "portfolio_id"])
    got = holding_volatility_at(R, pos, equity, window=252, first_row=1)
    assert list(got[["calculation_date", "portfolio_id"]].itertuples(index=False, name=None)) == [
        (d, p) for d in dates for p in "abc"]
    cols = [c for c in got.columns if c not in ("calculation_date", "portfolio_id", "vol_trend")]
    for d in dates:
        end = R.index.get_loc(pd.Timestamp(d))
        window = R.iloc[max(1, end - 251): end + 1]
        ref = volatility_metrics(holding_returns(window, pos[pos["calculation_date"] == d], equity.xs(d)))
        mine = got[got["calculation_date"] == d].set_index("portfolio_id")
        np.testing.assert_allclose(mine[cols].to_numpy(float), ref[cols].to_numpy(float), rtol=1e-12, atol=1e-15)
        def trend(x):
            return [None if pd.isna(v) else v for v in x]              # None / NaN: both stored as NULL
        assert trend(mine["vol_trend"]) == trend(ref["vol_trend"])
    assert got.loc[(got["calculation_date"] == dates[2]) & (got["portfolio_id"] == "c"), "n_obs"].item() == 0
    assert got.loc[got["calculation_date"] == dates[-1], "n_obs"].min() == 252


def test_fast_kernels_bit_for_bit_as_numpy(returns_with_gaps):
    """right_align (only gapped columns sorted) and rolling_realized_vol (cumulative sums one row at a time,
    in place) give exactly the bits of the plain numpy formulation, and volatility_metrics' column blocks
    give the bits of one pass over all columns."""
    a = returns_with_gaps.copy()
    a[:12] = np.nan                                       # every column NaN on top (a short window)
    order = np.argsort(~np.isnan(a), axis=0, kind="stable")
    aligned, n = right_align(a)
    assert aligned.flags.c_contiguous
    np.testing.assert_array_equal(aligned, np.take_along_axis(a, order, axis=0))
    np.testing.assert_array_equal(n, (~np.isnan(a)).sum(0))
    for x in (aligned, np.asfortranarray(aligned), a):
        valid = ~np.isnan(x)
        mu = np.where(valid, x, 0.0).sum(0) / np.maximum(valid.sum(0), 1)
        c = np.where(valid, x - mu, 0.0)
        c1, c2, cm = (np.vstack([np.zeros((1, x.shape[1])), np.cumsum(v, axis=0)]) for v in (c, c * c, valid))
        var = ((c2[21:] - c2[:-21]) - (c1[21:] - c1[:-21]) ** 2 / 21) / 20
        want = np.sqrt(np.maximum(var, 0.0) * 252)
        want[(cm[21:] - cm[:-21]) < 21] = np.nan
        got = rolling_realized_vol(x, 21)
        assert np.isnan(got[:20]).all()
        np.testing.assert_array_equal(got[20:], want)
    # volatility_metrics runs its kernel on column blocks: the same bits as one pass over every column
    wide = np.random.default_rng(11).normal(0.0, 0.01, (252, 2049))
    wide[np.random.default_rng(12).random(wide.shape) < 0.03] = np.nan
    for x in (wide, np.nan_to_num(wide)):                 # gaps (sorted, C order) and none (F order kept)
        frame = pd.DataFrame(np.asfortranarray(x))
        got = volatility_metrics(frame)
        one = pd.DataFrame(_metrics_block(*right_align(frame), min_obs=63, horizon=21, trend_points=21,
                                          trend_slope=0.001, trend_r2=0.3, min_percentile_points=100))
        pd.testing.assert_frame_equal(got, one, check_exact=True)
