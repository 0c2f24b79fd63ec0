"""Rolling OLS / ridge kernels against statsmodels and sklearn, fitted per symbol (the loop is in the test)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from shared.analytics.regression import rolling_ols, rolling_ridge

T, N, K = 260, 24, 6
WINDOW, MIN_OBS = 90, 30
OUT_ROWS = np.array([259, 100, 150, 151, 200, 230, 95, 120])
TOL = 1e-8


@pytest.fixture(scope="module")
def market():
    """Factor returns X (T, K) and symbol returns Y (T, N) with awkward missing-data patterns."""
    rng = np.random.default_rng(20240611)
    vols = np.array([0.010, 0.008, 0.009, 0.007, 0.012, 0.006])
    corr = 0.6 * np.ones((K, K)) + 0.4 * np.eye(K)  # correlated, like style ETFs
    X = rng.multivariate_normal(np.full(K, 3e-4), corr * np.outer(vols, vols), size=T)
    B = rng.normal(0.0, 0.8, (N, K))
    Y = 2e-4 + X @ B.T + rng.standard_normal((T, N)) * rng.uniform(0.005, 0.03, N)
    Y[rng.random((T, N)) < 0.06] = np.nan  # scattered gaps
    Y[:170, 3] = np.nan  # listed late: partial windows for most dates
    Y[:236, 4] = np.nan  # listed very late: too few observations on most dates
    Y[:, 5] = np.nan  # never traded
    Y[140:200, 6] = np.nan  # long halt
    X[17, 2] = np.nan  # a factor missing on one session (unusable row for ridge)
    X[128, :] = np.nan
    return X, Y


def _window(t: int) -> slice:
    return slice(max(t - WINDOW + 1, 0), t + 1)


def test_rolling_ols_matches_statsmodels(market):
    X, Y = market
    x = X[:, 0]
    res = rolling_ols(Y, x, WINDOW, MIN_OBS, None, OUT_ROWS)
    n_fit = 0
    for j, t in enumerate(OUT_ROWS):
        for n in range(N):
            yw, xw = Y[_window(t), n], x[_window(t)]
            m = np.isfinite(yw) & np.isfinite(xw)
            assert res["nobs"][j, n] == m.sum()
            if m.sum() < MIN_OBS:
                for k in ("beta", "alpha", "r_squared", "std_error", "p_value"):
                    assert np.isnan(res[k][j, n])
                continue
            fit = sm.OLS(yw[m], sm.add_constant(xw[m])).fit()
            expected = [fit.params[1], fit.params[0], fit.rsquared, fit.bse[1], fit.pvalues[1]]
            got = [res[k][j, n] for k in ("beta", "alpha", "r_squared", "std_error", "p_value")]
            np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
            n_fit += 1
    assert n_fit > 100
    assert np.isnan(res["beta"][:, 5]).all()
    assert np.isnan(res["beta"][:, 4]).all()  # at most 24 return rows since listing
    assert np.isfinite(res["beta"][OUT_ROWS >= 200, 3]).all()  # late listing, enough rows by then


def test_rolling_ols_cap_keeps_unclipped_stats(market):
    X, _ = market
    x = X[:, 0]
    rng = np.random.default_rng(1)
    y = (8.0 * x + rng.standard_normal(T) * 0.002)[:, None]
    capped = rolling_ols(y, x, WINDOW, MIN_OBS, 5.0, OUT_ROWS)
    free = rolling_ols(y, x, WINDOW, MIN_OBS, None, OUT_ROWS)
    assert (capped["beta"] == 5.0).all()
    assert (free["beta"] > 7.5).all()
    for k in ("alpha", "r_squared", "std_error", "p_value"):
        np.testing.assert_array_equal(capped[k], free[k])


def _sklearn_ridge(Xw: np.ndarray, yw: np.ndarray, alpha: float):
    scaler = StandardScaler().fit(Xw)
    Z = scaler.transform(Xw)
    model = Ridge(alpha=alpha, fit_intercept=True).fit(Z, yw)
    beta = model.coef_ / scaler.scale_
    intercept = model.intercept_ - float(scaler.mean_ @ beta)
    pred = model.predict(Z)
    r2 = 1.0 - ((yw - pred) ** 2).sum() / ((yw - yw.mean()) ** 2).sum()
    return beta, intercept, r2


@pytest.mark.parametrize("alpha", [1.0, 0.05])
def test_rolling_ridge_matches_sklearn(market, alpha):
    X, Y = market
    res = rolling_ridge(Y, X, WINDOW, MIN_OBS, alpha=alpha, cap=None, out_rows=OUT_ROWS)
    n_fit = 0
    for j, t in enumerate(OUT_ROWS):
        for n in range(N):
            yw, Xw = Y[_window(t), n], X[_window(t)]
            m = np.isfinite(yw) & np.isfinite(Xw).all(1)
            assert res["nobs"][j, n] == m.sum()
            if m.sum() < MIN_OBS or m.sum() <= K:
                assert np.isnan(res["beta"][j, n]).all()
                assert np.isnan(res["intercept"][j, n]) and np.isnan(res["r_squared"][j, n])
                continue
            beta, intercept, r2 = _sklearn_ridge(Xw[m], yw[m], alpha)
            np.testing.assert_allclose(res["beta"][j, n], beta, rtol=0, atol=TOL)
            np.testing.assert_allclose([res["intercept"][j, n], res["r_squared"][j, n]], [intercept, r2], atol=TOL)
            n_fit += 1
    assert n_fit > 100


def test_rolling_ridge_clips_after_fit(market):
    X, _ = market
    rng = np.random.default_rng(2)
    y = (X @ np.array([9.0, -7.0, 0.5, 0.0, 0.2, 0.1]) + rng.standard_normal(T) * 0.001)[:, None]
    capped = rolling_ridge(y, X, WINDOW, MIN_OBS, alpha=1.0, cap=5.0, out_rows=OUT_ROWS)
    free = rolling_ridge(y, X, WINDOW, MIN_OBS, alpha=1.0, cap=None, out_rows=OUT_ROWS)
    np.testing.assert_array_equal(capped["beta"], np.clip(free["beta"], -5.0, 5.0))
    assert (capped["beta"][:, 0, 0] == 5.0).all() and (capped["beta"][:, 0, 1] == -5.0).all()
    np.testing.assert_array_equal(capped["r_squared"], free["r_squared"])


def test_planted_betas_are_recovered():
    """Long window, small noise: OLS and (lightly penalised) ridge recover the true loadings."""
    rng = np.random.default_rng(7)
    t_len, n_sym = 1500, 40
    X = rng.standard_normal((t_len, K)) * 0.01
    B = rng.uniform(-1.5, 1.5, (n_sym, K))
    noise = 0.002
    Y = X @ B.T + rng.standard_normal((t_len, n_sym)) * noise
    Y[rng.random(Y.shape) < 0.03] = np.nan
    rows = np.array([t_len - 1])
    ridge = rolling_ridge(Y, X, t_len, 100, alpha=1.0, cap=None, out_rows=rows)
    se = noise / (0.01 * np.sqrt(t_len))  # sampling s.e. of each loading, ~0.005
    assert np.abs(ridge["beta"][0] - B).max() < 6 * se + 0.01  # + the ridge shrinkage (alpha / n)
    x_mkt = X[:, 0]
    y1 = 0.0001 + 1.3 * x_mkt[:, None] + rng.standard_normal((t_len, 3)) * noise
    ols = rolling_ols(y1, x_mkt, t_len, 100, None, rows)
    assert np.abs(ols["beta"][0] - 1.3).max() < 6 * se
    assert np.abs(ols["alpha"][0] - 0.0001).max() < 6 * noise / np.sqrt(t_len)


def test_out_rows_validation(market):
    X, Y = market
    with pytest.raises(ValueError):
        rolling_ols(Y, X[:, 0], WINDOW, MIN_OBS, None, np.array([T]))
    with pytest.raises(ValueError):
        rolling_ridge(Y, X, WINDOW, MIN_OBS, out_rows=np.array([0.5]))
    empty = rolling_ols(Y, X[:, 0], WINDOW, MIN_OBS, None, np.array([], dtype=int))
    assert empty["beta"].shape == (0, N)


@pytest.mark.parametrize("dof", [1, 2, 3, 28, 88, 178, 1000])
def test_tabled_t_pvalues_match_stdtr(dof):
    """The piecewise-quintic p-value tables agree with scipy's stdtr far inside the 1e-8 tolerance."""
    from scipy import special

    from shared.analytics.regression import _t_pvalue

    t = np.concatenate([np.linspace(-70, 70, 40001), [np.inf, -np.inf, np.nan, 0.0]])
    got = _t_pvalue(t, np.full(t.shape, dof))
    want = 2.0 * special.stdtr(dof, -np.abs(t))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert np.isnan(got[-2]) and got[-3] == 0.0
