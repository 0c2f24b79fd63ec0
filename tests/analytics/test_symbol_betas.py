"""compute_symbol_betas: schema, factor coverage, every date, clipping, agreement with the kernels."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from shared.analytics.factors import FACTOR_DEFINITIONS, STYLE_FACTORS
from shared.analytics.symbol_betas import OUTPUT_COLUMNS, compute_symbol_betas
from shared.calendar import session_index

ETFS = ["SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]
STOCKS = ["AAA", "BBB", "LEVER", "NEWCO", "GAPPY"]


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    idx = session_index(date(2024, 6, 3), date(2025, 12, 31))
    t_len = len(idx)
    rng = np.random.default_rng(99)
    mkt = rng.standard_normal(t_len) * 0.01
    etf = {e: 0.5 * mkt + rng.standard_normal(t_len) * 0.008 for e in ETFS}
    etf["SPY"] = mkt
    etf["TLT"] = -0.2 * mkt + rng.standard_normal(t_len) * 0.008
    rets = dict(etf)
    rets["AAA"] = 1.1 * mkt + rng.standard_normal(t_len) * 0.01
    rets["BBB"] = 1.0 * etf["VTV"] - 0.8 * etf["IWM"] + rng.standard_normal(t_len) * 0.005
    rets["LEVER"] = 8.0 * mkt + rng.standard_normal(t_len) * 0.002  # beta far beyond the cap
    rets["NEWCO"] = 1.0 * mkt + rng.standard_normal(t_len) * 0.01
    rets["GAPPY"] = 0.9 * mkt + rng.standard_normal(t_len) * 0.01
    r = pd.DataFrame(rets, index=idx)
    px = 100.0 * np.exp(np.log1p(r).cumsum())
    px.loc[: idx[t_len - 100], "NEWCO"] = np.nan  # listed 100 sessions before the end
    gap_rows = rng.choice(t_len, 40, replace=False)
    px.iloc[gap_rows, px.columns.get_loc("GAPPY")] = np.nan
    return px[ETFS + STOCKS]


@pytest.fixture(scope="module")
def calc_dates(prices) -> list[date]:
    return [d.date() for d in prices.index[-60:]]


@pytest.fixture(scope="module")
def betas(prices, calc_dates) -> pd.DataFrame:
    provider = pd.Series({"AAA": 1.05, "BBB": 0.0, "LEVER": None, "GAPPY": 0.9, "NOT_A_COLUMN": 2.0})
    return compute_symbol_betas(prices, calc_dates, provider_betas=provider)


def test_schema(betas):
    assert list(betas.columns) == list(OUTPUT_COLUMNS)
    assert all(type(d) is date for d in betas["calculation_date"].head(50))
    assert betas["observations"].dtype == np.int64
    assert betas["regression_window_days"].dtype == np.int64
    assert np.isfinite(betas["beta_value"]).all()
    assert set(betas["quality_flag"]) <= {"full_history", "limited_history"}
    assert not betas.duplicated(["calculation_date", "symbol", "factor"]).any()


def test_all_13_factors_for_every_date(betas, calc_dates):
    names = {f.name for f in FACTOR_DEFINITIONS}
    assert len(names) == 13
    assert set(betas["factor"]) == names
    aaa = betas[betas["symbol"] == "AAA"]
    per_date = aaa.groupby("calculation_date")["factor"].nunique()
    assert list(per_date.index) == calc_dates
    assert (per_date == 13).all()
    methods = dict(zip(betas["factor"], betas["calculation_method"], strict=False))
    for f in FACTOR_DEFINITIONS:
        assert methods[f.name] == f.calculation_method
    # ETF columns get betas too (SPY on itself: beta 1).
    spy = betas[(betas["symbol"] == "SPY") & (betas["factor"] == "Market Beta (90D)")]
    assert len(spy) == 60 and np.allclose(spy["beta_value"], 1.0)


def test_windows_alpha_and_flags(betas):
    by = betas.groupby("calculation_method")
    assert set(by["regression_window_days"].unique().map(tuple)) <= {(90,), (180,), (252,)}
    ridge = betas[betas["calculation_method"] == "ridge_regression"]
    assert (ridge["regularization_alpha"] == 1.0).all() and (ridge["regression_window_days"] == 90).all()
    assert ridge["std_error"].isna().all() and ridge["p_value"].isna().all()
    one = ridge[(ridge["symbol"] == "BBB")].groupby("calculation_date")["r_squared"].nunique()
    assert (one == 1).all()  # the 6 style rows share R²
    spread = betas[betas["calculation_method"] == "spread_regression"]
    assert (spread["regression_window_days"] == 180).all() and spread["regularization_alpha"].isna().all()
    assert spread["p_value"].notna().all()
    full = betas[betas["symbol"] == "AAA"]
    assert (full["quality_flag"] == "full_history").all()
    gappy = betas[(betas["symbol"] == "GAPPY") & (betas["calculation_method"] != "provider")]
    assert (gappy["quality_flag"] == "limited_history").any()
    assert (gappy["observations"] < gappy["regression_window_days"]).eq(gappy["quality_flag"] == "limited_history").all()


def test_late_listing_has_only_allowed_factors(betas):
    newco = betas[betas["symbol"] == "NEWCO"]
    # ~99 return rows: 90-session regressions exist, the 180-session spreads need >= 60 rows: also exist
    assert set(newco["calculation_method"]) == {"ridge_regression", "spread_regression", "ols_market", "ols_ir"}
    assert (newco[newco["calculation_method"] == "spread_regression"]["observations"] < 180).all()


def test_clipping_at_cap(betas, prices, calc_dates):
    lever = betas[(betas["symbol"] == "LEVER") & (betas["factor"] == "Market Beta (90D)")]
    assert len(lever) == 60 and (lever["beta_value"] == 5.0).all()
    assert betas["beta_value"].abs().max() <= 5.0
    # statistics describe the unclipped fit
    rets = prices.pct_change(fill_method=None)
    d = calc_dates[-1]
    window = rets.loc[: pd.Timestamp(d)].iloc[-90:]
    fit = sm.OLS(window["LEVER"], sm.add_constant(window["SPY"])).fit()
    row = lever[lever["calculation_date"] == d].iloc[0]
    assert fit.params["SPY"] > 7.5
    np.testing.assert_allclose(
        [row["alpha"], row["r_squared"], row["std_error"], row["p_value"]],
        [fit.params["const"], fit.rsquared, fit.bse["SPY"], fit.pvalues["SPY"]],
        atol=1e-10,
    )


def test_spread_matches_statsmodels(betas, prices, calc_dates):
    rets = prices.pct_change(fill_method=None)
    d = calc_dates[10]
    w = rets.loc[: pd.Timestamp(d)].iloc[-180:]
    spread = w["MTUM"] - w["SPY"]
    df = pd.concat([w["GAPPY"], spread.rename("s")], axis=1).dropna()
    fit = sm.OLS(df["GAPPY"], sm.add_constant(df["s"])).fit()
    row = betas[(betas["symbol"] == "GAPPY") & (betas["factor"] == "Momentum Spread") & (betas["calculation_date"] == d)]
    row = row.iloc[0]
    assert row["observations"] == len(df)
    np.testing.assert_allclose(
        [row["beta_value"], row["alpha"], row["r_squared"], row["std_error"], row["p_value"]],
        [fit.params["s"], fit.params["const"], fit.rsquared, fit.bse["s"], fit.pvalues["s"]],
        atol=1e-9,
    )


def test_style_order_and_planted_loadings(betas):
    bbb = betas[(betas["symbol"] == "BBB") & (betas["calculation_method"] == "ridge_regression")]
    mean_beta = bbb.groupby("factor")["beta_value"].mean()
    assert set(mean_beta.index) == set(STYLE_FACTORS)
    # planted +1.0 on VTV (Value) and -0.8 on IWM (Size); the other loadings are ~0
    assert abs(mean_beta["Value"] - 1.0) < 0.15 and abs(mean_beta["Size"] + 0.8) < 0.15
    assert mean_beta.drop(["Value", "Size"]).abs().max() < 0.15


def test_provider_rows(betas, calc_dates):
    prov = betas[betas["factor"] == "Provider Beta (1Y)"]
    assert set(prov["symbol"]) == {"AAA", "GAPPY"}  # 0, null and non-columns are skipped
    assert len(prov) == 2 * len(calc_dates)
    assert (prov["observations"] == 252).all() and (prov["regression_window_days"] == 252).all()
    assert (prov["calculation_method"] == "provider").all()
    assert prov["r_squared"].isna().all()


def test_bad_inputs(prices, calc_dates):
    with pytest.raises(ValueError, match="ETF"):
        compute_symbol_betas(prices.drop(columns=["USMV"]), calc_dates)
    with pytest.raises(ValueError, match="sessions"):
        compute_symbol_betas(prices, [date(2025, 12, 25)])


def test_chunks_of_sessions_give_the_same_rows(prices, calc_dates, betas):
    # symbol-factors runs a long range in chunks of sessions (bounded memory): the rows must not change
    # (batched least squares over a different set of dates differ in the last bits: seen up to 1.3e-12
    # relative on a standard error, hence 1e-10)
    provider = pd.Series({"AAA": 1.05, "BBB": 0.0, "LEVER": None, "GAPPY": 0.9, "NOT_A_COLUMN": 2.0})
    parts = [compute_symbol_betas(prices, calc_dates[i:i + 7], provider_betas=provider)
             for i in range(0, len(calc_dates), 7)]
    key = ["symbol", "calculation_date", "factor"]
    chunked = pd.concat(parts).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(chunked, betas.sort_values(key).reset_index(drop=True), check_exact=False,
                                  rtol=1e-10, atol=1e-14)
