"""SyntheticMarket: determinism, calendar, planted betas, special stocks, reference data shapes."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from shared.analytics.factors import FACTOR_ETFS, GICS_SECTOR_MAP, STYLE_FACTORS, normalize_sector
from shared.calendar import sessions
from shared.providers.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    RATE_COLUMNS,
    SECTOR_WEIGHT_COLUMNS,
    SPLIT_COLUMNS,
    STATEMENT_COLUMNS,
    BenchmarkProvider,
    FundamentalsProvider,
    PriceProvider,
    ProfileProvider,
    RatesProvider,
)
from shared.providers.synthetic import BETA_COLUMNS, SP500_SECTOR_WEIGHTS, SyntheticMarket

AS_OF = date(2026, 11, 20)
START = date(2024, 11, 20)
GICS = set(SP500_SECTOR_WEIGHTS)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(40, 7, as_of=AS_OF)


@pytest.fixture(scope="module")
def prices(market: SyntheticMarket) -> pd.DataFrame:
    return market.fetch_prices(market.symbols, START, AS_OF)


def test_implements_every_protocol(market):
    for proto in (PriceProvider, ProfileProvider, FundamentalsProvider, RatesProvider, BenchmarkProvider):
        assert isinstance(market, proto)
    assert market.name == "synthetic"


def test_symbols_and_special_stocks(market):
    assert market.symbols[: len(FACTOR_ETFS)] == list(FACTOR_ETFS)
    assert len(market.stock_symbols) == 40 == len(set(market.stock_symbols))
    assert not set(market.stock_symbols) & set(FACTOR_ETFS)
    assert all(s.isalpha() and s.isupper() and 2 <= len(s) <= 4 for s in market.stock_symbols)
    assert [market.late_listed, market.delisted, market.split_symbol] == market.stock_symbols[1:4]
    assert SyntheticMarket(2, 7).split_symbol is None


def test_price_frame_layout(prices):
    assert tuple(prices.columns) == PRICE_COLUMNS
    assert isinstance(prices["date"].iloc[0], date)
    assert (prices["data_source"] == "synthetic").all()
    assert not prices.duplicated(["symbol", "date"]).any()
    assert (prices["close"] > 0).all() and (prices["volume"] > 0).all()


def test_plausible_price_levels(market, prices):
    stocks = prices[prices["symbol"].isin(market.stock_symbols)]
    assert stocks["close"].min() > 3 and stocks["close"].max() < 2000
    spy = prices[prices["symbol"] == "SPY"]["close"]
    assert spy.min() > 300 and spy.max() < 1200


def test_only_nyse_sessions_and_etfs_complete(market, prices):
    days = set(sessions(START, AS_OF))
    assert set(prices["date"]) == days
    for etf in FACTOR_ETFS:
        assert set(prices.loc[prices["symbol"] == etf, "date"]) == days


def test_deterministic_across_requested_ranges(market):
    syms = [*FACTOR_ETFS[:3], *market.stock_symbols[:10]]
    a = market.fetch_prices(syms, date(2025, 1, 1), date(2025, 12, 31))
    b = market.fetch_prices(syms, date(2025, 6, 1), date(2026, 6, 30))
    fresh = SyntheticMarket(40, 7).fetch_prices(syms, date(2025, 9, 2), date(2025, 9, 2))
    overlap = a.merge(b, on=["symbol", "date"], suffixes=("_a", "_b"))
    window = a[(a["date"] >= date(2025, 6, 1))]
    assert len(overlap) == len(window) > 1000
    assert (overlap["close_a"] == overlap["close_b"]).all()
    assert (overlap["volume_a"] == overlap["volume_b"]).all()
    merged = fresh.merge(a, on=["symbol", "date"])
    assert len(merged) == len(fresh) and (merged["close_x"] == merged["close_y"]).all()


def test_stock_is_the_same_in_a_bigger_market(market):
    big = SyntheticMarket(300, 7)
    assert big.stock_symbols[:40] == market.stock_symbols
    a = market.fetch_prices(market.stock_symbols, date(2026, 1, 1), date(2026, 3, 31))
    b = big.fetch_prices(market.stock_symbols, date(2026, 1, 1), date(2026, 3, 31))
    pd.testing.assert_frame_equal(a, b)


def test_seed_changes_the_market(market):
    other = SyntheticMarket(40, 8)
    assert other.stock_symbols != market.stock_symbols
    a = market.fetch_prices(["SPY"], date(2026, 1, 1), date(2026, 2, 1))["close"].to_numpy()
    b = other.fetch_prices(["SPY"], date(2026, 1, 1), date(2026, 2, 1))["close"].to_numpy()
    assert not np.allclose(a, b)


def test_unknown_symbols_absent_and_lowercase_accepted(market):
    f = market.fetch_prices(["nope", "spy", " " + market.stock_symbols[0].lower()], date(2026, 1, 5), date(2026, 1, 9))
    assert set(f["symbol"]) <= {"SPY", market.stock_symbols[0]} and "SPY" in set(f["symbol"])
    assert market.fetch_prices(["NOPE"], START, AS_OF).empty
    assert tuple(market.fetch_prices(["SPY"], date(2026, 1, 3), date(2026, 1, 4)).columns) == PRICE_COLUMNS
    assert market.fetch_prices(["SPY"], date(2010, 1, 1), date(2014, 12, 31)).empty


def test_about_one_percent_missing(market, prices):
    n_days = len(sessions(START, AS_OF))
    special = {market.late_listed, market.delisted}
    normal = [s for s in market.stock_symbols if s not in special]
    counts = prices[prices["symbol"].isin(normal)].groupby("symbol").size()
    missing = 1 - counts.sum() / (len(normal) * n_days)
    assert 0.004 < missing < 0.02


def test_late_listing_and_delisting(market, prices):
    late = prices.loc[prices["symbol"] == market.late_listed, "date"]
    assert late.min() >= market.late_listing and (late.min() - market.late_listing).days <= 7
    gone = prices.loc[prices["symbol"] == market.delisted, "date"]
    assert gone.max() <= market.delisting and (market.delisting - gone.max()).days <= 7
    assert gone.min() == START  # listed before the window


def test_split_is_reported_and_closes_are_adjusted(market, prices):
    s = market.split_symbol
    splits = market.fetch_splits(market.symbols, date(2026, 1, 1), date(2026, 12, 31))
    assert tuple(splits.columns) == SPLIT_COLUMNS
    assert splits.to_dict("records") == [{"symbol": s, "date": market.split_date, "ratio": 2.0}]
    assert market.fetch_splits([s], date(2026, 7, 16), date(2026, 12, 31)).empty
    assert market.fetch_splits(["SPY"], date(2026, 1, 1), date(2026, 12, 31)).empty
    px = prices[prices["symbol"] == s].set_index("date")["close"]
    jumps = np.abs(np.diff(np.log(px.to_numpy())))
    assert jumps.max() < np.log(1.5)  # no artificial -50% return at the split


def _returns(market: SyntheticMarket) -> pd.DataFrame:
    wide = market.close_matrix(market.symbols, START, AS_OF)
    return wide.pct_change(fill_method=None).iloc[1:]


def test_planted_betas_recovered_by_ols(market):
    rets = _returns(market)
    x_all = rets[list(BETA_COLUMNS)].to_numpy()
    z_scores = []
    for sym in market.stock_symbols:
        y = rets[sym].to_numpy()
        ok = np.isfinite(y)
        x = np.column_stack([np.ones(ok.sum()), x_all[ok]])
        coef, *_ = np.linalg.lstsq(x, y[ok], rcond=None)
        resid = y[ok] - x @ coef
        s2 = resid @ resid / (ok.sum() - x.shape[1])
        se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * s2)
        z_scores.append((coef[1:] - market.planted_betas.loc[sym].to_numpy()) / se[1:])
    z = np.abs(np.concatenate(z_scores))
    assert z.max() < 4.5
    assert np.mean(z > 2.58) < 0.04  # ~1% expected for a correct model


def test_planted_market_beta_closed_form(market):
    rets = _returns(market)
    spy = rets["SPY"].to_numpy()
    est = []
    for sym in market.stock_symbols:
        y = rets[sym].to_numpy()
        ok = np.isfinite(y)
        est.append(np.polyfit(spy[ok], y[ok], 1)[0])
    err = np.array(est) - market.planted_market_beta.to_numpy()
    assert np.abs(err).max() < 0.35 and abs(err.mean()) < 0.08
    assert market.etf_market_beta["SPY"] == pytest.approx(1.0)
    assert market.etf_market_beta["TLT"] < -0.1
    assert list(market.planted_betas.columns) == [*STYLE_FACTORS.values(), "TLT"]


def test_etf_structure(market):
    corr = _returns(market)[list(FACTOR_ETFS)].corr()
    for style in STYLE_FACTORS.values():
        assert 0.6 < corr.loc[style, "SPY"] < 0.995
    assert corr.loc["TLT", "SPY"] < 0
    assert corr.loc["IEF", "TLT"] > 0.7
    vol = _returns(market)["SPY"].std() * np.sqrt(252)
    assert 0.10 < vol < 0.22


def test_profiles(market):
    prof = market.fetch_profiles([*market.symbols, "NOPE"])
    assert tuple(prof.columns) == PROFILE_COLUMNS
    assert len(prof) == len(market.symbols) and "NOPE" not in set(prof["symbol"])
    p = prof.set_index("symbol")
    assert p.loc[list(FACTOR_ETFS), "is_etf"].all() and p.loc[list(FACTOR_ETFS), "is_fund"].all()
    stocks = p.loc[market.stock_symbols]
    assert not stocks["is_etf"].any()
    assert {normalize_sector(s) for s in stocks["sector"]} <= GICS
    assert set(stocks["sector"]) & set(GICS_SECTOR_MAP)  # some Yahoo-style labels
    assert (np.abs(stocks["beta"] - market.planted_market_beta) < 0.35).all()
    assert (stocks["market_cap"] > 1e8).all()
    assert (stocks["week_52_low"] <= stocks["week_52_high"]).all()
    nxt = stocks["next_earnings_date"]
    assert all(AS_OF < d <= date(2027, 3, 1) for d in nxt)
    assert (prof["data_source"] == "synthetic").all()
    later = market.fetch_profiles(market.stock_symbols[:5], as_of=date(2027, 6, 1))
    assert all(d > date(2027, 6, 1) for d in later["next_earnings_date"])


def test_statements(market):
    syms = market.stock_symbols[:5]
    st = market.fetch_statements([*syms, "SPY", "NOPE"])
    assert tuple(st.columns) == STATEMENT_COLUMNS
    assert set(st["symbol"]) == set(syms)
    assert set(st["statement"]) == {"income", "balance", "cashflow"}
    per = st.groupby(["symbol", "frequency"])["period_date"].nunique()
    assert (per.xs("q", level="frequency") == 8).all() and (per.xs("a", level="frequency") == 4).all()
    assert (st["period_date"] < AS_OF).all()
    items = set(st.loc[st["statement"] == "income", "item"])
    assert items == {"revenue", "gross_profit", "operating_income", "net_income"}
    wide = st[st["statement"] == "cashflow"].pivot_table(index=["symbol", "period_date", "frequency"],
                                                         columns="item", values="value")
    np.testing.assert_allclose(wide["free_cash_flow"], wide["operating_cash_flow"] + wide["capital_expenditure"],
                               atol=2)
    q = st[(st["frequency"] == "q") & (st["item"] == "revenue") & (st["symbol"] == syms[0])]
    a = st[(st["frequency"] == "a") & (st["item"] == "revenue") & (st["symbol"] == syms[0])]
    last_year = a["fiscal_year"].max()
    q_year = q[q["fiscal_year"] == last_year]
    if len(q_year) == 4:
        assert a.loc[a["fiscal_year"] == last_year, "value"].iloc[0] == pytest.approx(q_year["value"].sum(), abs=3)
    assert market.fetch_statements(["SPY"]).empty


def test_rates(market):
    r = market.fetch_rates(["DGS10", "DGS2", "DGS3MO", "NOPE"], START, AS_OF)
    assert tuple(r.columns) == RATE_COLUMNS
    assert set(r["series"]) == {"DGS10", "DGS2", "DGS3MO"}
    assert set(r["date"]) == set(sessions(START, AS_OF))
    assert r["value"].between(0, 12).all()
    d10 = r[r["series"] == "DGS10"]["value"].diff().dropna()
    assert 0.02 < d10.std() < 0.15  # a few bp a day
    # the TLT price moves against the 10y yield
    tlt = market.fetch_prices(["TLT"], START, AS_OF)["close"].pct_change().dropna().to_numpy()
    assert np.corrcoef(tlt, d10.to_numpy())[0, 1] < -0.7


def test_benchmark_weights(market):
    w = market.fetch_sector_weights("SP500", AS_OF)
    assert tuple(w.columns) == SECTOR_WEIGHT_COLUMNS
    assert set(w["sector"]) == GICS and len(w) == 11
    assert w["weight"].sum() == pytest.approx(1.0)
    assert w.set_index("sector").loc["Information Technology", "weight"] > 0.2
    assert market.fetch_sector_weights("NASDAQ100", AS_OF).empty


def test_a_thousand_symbols():
    # ~0.2 s on the 2-vCPU dev box; timings are asserted by benchmarks, not unit tests
    m = SyntheticMarket(1000, 11)
    f = m.fetch_prices(m.symbols, START, AS_OF)
    assert len(set(m.stock_symbols)) == 1000
    assert len(f) > 1000 * 490 and not f.duplicated(["symbol", "date"]).any()


def test_profiles_at_the_edges_of_history(market):
    early = market.fetch_profiles(["SPY", market.late_listed], as_of=date(2014, 6, 2)).set_index("symbol")
    assert early["week_52_high"].isna().all() and early["market_cap"].isna().all()  # no prices before 2015
    before_listing = market.fetch_profiles([market.late_listed], as_of=date(2026, 1, 15))
    assert before_listing["market_cap"].isna().all()
    assert before_listing["next_earnings_date"].iloc[0] > date(2026, 1, 15)
