"""Issue 20: an independent oracle for the stored numbers, end to end.

The book of :mod:`tests.oracle.book` (real S&P 500 / NASDAQ closes from ``arch``, planted stocks and ETFs,
long, long/short, options, a lot closed inside the window, a late listing, a gap, a capital flow, a flow
dated on a holiday) runs through the whole DAG once (:mod:`tests.oracle.conftest`). Each test recomputes a
table's columns from the provider's CSV closes and the positions with :mod:`tests.oracle.reference`
(pandas / numpy / statsmodels, nothing from ``shared.analytics`` or ``phases``) and compares: floats to
1e-9 (relative above 1), counts, dates and labels exactly. Cheap tables are checked on every session,
regressions on :data:`CHECKED` (the first session, a month-end, the session a lot closes, the session after
a holiday flow, the year-end = the last). :data:`tests.oracle.coverage.COVERAGE` lists every stored column
as checked (by which test) or why not; ``pytest -v tests/oracle`` prints it.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tests.oracle import book as bk
from tests.oracle import reference as ref

CHECKED = [date(2018, 11, 26), date(2018, 11, 30), date(2018, 12, 14), date(2018, 12, 26), date(2018, 12, 31)]
TOL = 1e-9


def assert_close(stored: pd.DataFrame, expected: pd.DataFrame, keys: list[str], columns: list[str],
                 what: str) -> None:
    """Same keys, and each column equal: floats within TOL (relative above 1), the rest exactly."""
    s = stored.set_index(keys).sort_index()
    e = expected.set_index(keys).sort_index()
    missing, extra = e.index.difference(s.index), s.index.difference(e.index)
    assert not len(missing) and not len(extra), f"{what}: rows missing {list(missing)[:5]}, extra {list(extra)[:5]}"
    s = s.loc[e.index]
    for c in columns:
        a, b = s[c].to_numpy(), e[c].to_numpy()
        if e[c].dtype.kind in "fc" or s[c].dtype.kind in "fc":
            a, b = a.astype(float), b.astype(float)
            both_nan = np.isnan(a) & np.isnan(b)
            bad = ~both_nan & ~(np.abs(a - b) <= TOL * np.maximum(1.0, np.abs(b)))
        else:
            bad = np.array([x != y and not (pd.isna(x) and pd.isna(y)) for x, y in zip(a, b, strict=True)])
        if bad.any():
            i = np.flatnonzero(bad)[:5]
            raise AssertionError(f"{what}.{c}: {int(bad.sum())} of {len(a)} differ, e.g. "
                                 + "; ".join(f"{e.index[k]}: stored {a[k]!r} expected {b[k]!r}" for k in i))


def _dates(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    frame = frame.copy()
    for c in cols:
        frame[c] = pd.to_datetime(frame[c]).dt.date
    return frame


@pytest.fixture(scope="module")
def run(oracle_run):
    return oracle_run


@pytest.fixture(scope="module")
def factor_names(run) -> dict[int, str]:
    f = run.tables["factor_definitions"]
    return dict(zip(f["id"], f["name"], strict=True))


@pytest.fixture(scope="module")
def expected_betas(run) -> pd.DataFrame:
    prof = bk_profiles()
    pb = {s: float(b) for s, b in zip(prof["symbol"], prof["beta"], strict=True) if pd.notna(b)}
    return pd.concat([ref.symbol_betas(run.wide, d, pb) for d in CHECKED], ignore_index=True)


def bk_profiles() -> pd.DataFrame:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as t:
        bk.write_provider(Path(t), bk.market().iloc[:2])
        return pd.read_csv(Path(t) / "profiles.csv")


@pytest.fixture(scope="module")
def stored_betas(run, factor_names) -> pd.DataFrame:
    s = _dates(run.tables["symbol_factor_exposures"], "calculation_date")
    s["factor"] = s["factor_id"].map(factor_names)
    return s


# --- phase 1.5 ---------------------------------------------------------------------------------------

BETA_COLUMNS = ["beta_value", "alpha", "r_squared", "std_error", "p_value", "observations", "quality_flag",
                "calculation_method", "regularization_alpha", "regression_window_days"]


def test_symbol_factor_exposures(stored_betas, expected_betas):
    stored = stored_betas[stored_betas["calculation_date"].isin(CHECKED)]
    assert_close(stored, expected_betas, ["calculation_date", "symbol", "factor"], BETA_COLUMNS,
                 "symbol_factor_exposures")


# --- phase 1.75 --------------------------------------------------------------------------------------

def test_symbol_daily_metrics(run):
    stored = _dates(run.tables["symbol_daily_metrics"], "metrics_date")
    expected = pd.concat([ref.symbol_metrics(run.wide, d) for d in run.sessions], ignore_index=True)
    prof = bk_profiles().set_index("symbol")
    for c in ("sector", "industry", "company_name"):
        expected[c] = expected["symbol"].map(prof[c].where(prof[c].notna(), None))
    r = ref.returns(run.wide)
    enough = r.notna().rolling(90, min_periods=1).sum() >= 30
    has_hist = [bool(enough.at[pd.Timestamp(d), s]) for d, s in zip(expected["metrics_date"], expected["symbol"],
                                                                     strict=True)]
    expected["data_quality_score"] = (30.0 * expected["current_price"].notna() + 30.0 * expected["return_1d"].notna()
                                      + 20.0 * expected["symbol"].isin(prof.index) + 20.0 * np.array(has_hist))
    assert_close(stored, expected, ["metrics_date", "symbol"],
                 ["current_price", "return_1d", "return_mtd", "return_ytd", "return_1m", "return_3m", "return_1y",
                  "sector", "industry", "company_name", "data_quality_score"], "symbol_daily_metrics")
    # the planted gap: 9 sessions after the last close it is carried, 10 after it is stale
    gap = stored.set_index(["metrics_date", "symbol"])["current_price"]
    assert np.isfinite(gap[(date(2018, 12, 12), "GAPPY")]) and np.isnan(gap[(date(2018, 12, 13), "GAPPY")])


# --- phase 3 -----------------------------------------------------------------------------------------

SNAPSHOT_COLUMNS = ["net_asset_value", "equity_balance", "cash_value", "long_value", "short_value",
                    "gross_exposure", "net_exposure", "daily_pnl", "daily_realized_pnl", "daily_unrealized_pnl",
                    "daily_return", "daily_capital_flow", "cumulative_pnl", "cumulative_realized_pnl",
                    "cumulative_capital_flow", "num_positions", "num_long_positions", "num_short_positions",
                    "positions_without_price"]


@pytest.fixture(scope="module")
def expected_snapshots(run) -> pd.DataFrame:
    return ref.snapshots(run.wide, run.portfolios, run.positions, run.flows, run.sessions)


def test_portfolio_snapshots_pnl(run, expected_snapshots):
    stored = _dates(run.tables["portfolio_snapshots"], "snapshot_date")
    assert_close(stored, expected_snapshots, ["portfolio_id", "snapshot_date"], SNAPSHOT_COLUMNS,
                 "portfolio_snapshots")


def test_equity_chain_and_flows(run):
    """equity(t) = equity(t-1) + P&L(t) + flow(t), from the inception equity; the holiday flow lands on the
    next session; the closed lot's P&L is realized on its exit date only."""
    s = _dates(run.tables["portfolio_snapshots"], "snapshot_date").sort_values(["portfolio_id", "snapshot_date"])
    for pid, g in s.groupby("portfolio_id"):
        prev = run.portfolios.set_index("id").at[pid, "equity_balance"]
        for _, row in g.iterrows():
            assert row["equity_balance"] == pytest.approx(prev + row["daily_pnl"] + row["daily_capital_flow"],
                                                          rel=1e-12, abs=1e-6)
            prev = row["equity_balance"]
    flows = s.set_index(["portfolio_id", "snapshot_date"])["daily_capital_flow"]
    assert flows[("or-ls", date(2018, 12, 26))] == -50_000.0 and flows[("or-long", date(2018, 12, 17))] == 100_000.0
    realized = s[s["daily_realized_pnl"] != 0][["portfolio_id", "snapshot_date"]].to_records(index=False).tolist()
    assert realized == [("or-ls", date(2018, 12, 14))]


# --- phase 6a ----------------------------------------------------------------------------------------

def _weights(run, d: date, expected_snap: pd.DataFrame) -> pd.DataFrame:
    h = ref.holdings(run.wide, run.positions, d)
    h = h[h["investment_class"] == "PUBLIC"]
    w = h.groupby(["portfolio_id", "symbol"], as_index=False)["market_value"].sum()
    eq = expected_snap.set_index(["portfolio_id", "snapshot_date"])["equity_balance"]
    w["equity"] = [eq[(p, d)] for p in w["portfolio_id"]]
    w["weight"] = w["market_value"] / w["equity"]
    return w


@pytest.fixture(scope="module")
def expected_exposures(run, expected_betas, expected_snapshots) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(factor exposures, snapshot beta fields) on CHECKED: Σ weight × beta over the public holdings."""
    rows, snaps = [], []
    for d in CHECKED:
        w = _weights(run, d, expected_snapshots)
        b = expected_betas[expected_betas["calculation_date"] == d]
        held_factors = set(b[b["symbol"].isin(w["symbol"])]["factor"])
        for pid, g in w.groupby("portfolio_id"):
            gross = g["weight"].abs().sum()
            equity = g["equity"].iloc[0]
            for f in held_factors:
                bf = b[b["factor"] == f].set_index("symbol")["beta_value"]
                beta = g["symbol"].map(bf)
                value = float((g["weight"] * beta.fillna(0.0)).sum())
                rows.append({"portfolio_id": pid, "calculation_date": d, "factor": f, "exposure_value": value,
                             "exposure_dollar": value * equity,
                             "coverage": float(g["weight"].abs()[beta.notna()].sum() / gross)})
            mkt = b[b["factor"] == "Market Beta (90D)"].set_index("symbol")
            gm = g[g["symbol"].isin(mkt.index)]
            absmv = gm["market_value"].abs()
            snaps.append({"portfolio_id": pid, "snapshot_date": d,
                          "beta_calculated_90d_r_squared": float((absmv * gm["symbol"].map(mkt["r_squared"])).sum()
                                                                 / absmv.sum()),
                          "beta_calculated_90d_observations": int(gm["symbol"].map(mkt["observations"]).min())})
    return pd.DataFrame(rows), pd.DataFrame(snaps)


def test_factor_exposures_and_snapshot_betas(run, expected_exposures, factor_names):
    expected, snap = expected_exposures
    snap = snap.copy()
    stored = _dates(run.tables["factor_exposures"], "calculation_date")
    stored["factor"] = stored["factor_id"].map(factor_names)
    stored = stored[stored["calculation_date"].isin(CHECKED)]
    assert_close(stored, expected, ["portfolio_id", "calculation_date", "factor"],
                 ["exposure_value", "exposure_dollar", "coverage"], "factor_exposures")
    by = expected.set_index(["portfolio_id", "calculation_date", "factor"])["exposure_value"]
    for col, factor in (("beta_calculated_90d", "Market Beta (90D)"), ("beta_provider_1y", "Provider Beta (1Y)"),
                        ("ir_beta", "IR Beta")):
        snap[col] = [by.get((p, d, factor), np.nan) for p, d in zip(snap["portfolio_id"], snap["snapshot_date"],
                                                                       strict=True)]
    stored_snap = _dates(run.tables["portfolio_snapshots"], "snapshot_date")
    stored_snap = stored_snap[stored_snap["snapshot_date"].isin(CHECKED)]
    assert_close(stored_snap, snap, ["portfolio_id", "snapshot_date"],
                 ["beta_calculated_90d", "beta_calculated_90d_r_squared", "beta_calculated_90d_observations",
                  "beta_provider_1y", "ir_beta"], "portfolio_snapshots (6a)")


def test_position_betas(run, expected_betas):
    pmb, pirb = [], []
    for d in CHECKED:
        h = ref.holdings(run.wide, run.positions, d)
        h = h[h["investment_class"] == "PUBLIC"]
        b = expected_betas[expected_betas["calculation_date"] == d].set_index(["symbol", "factor"])
        for _, lot in h.iterrows():
            key = (lot["symbol"], "Market Beta (90D)")
            if key in b.index:
                r = b.loc[key]
                pmb.append({"position_id": lot["id"], "calc_date": d, "portfolio_id": lot["portfolio_id"],
                            "beta": r["beta_value"], "alpha": r["alpha"], "r_squared": r["r_squared"],
                            "std_error": r["std_error"], "p_value": r["p_value"], "observations": r["observations"],
                            "window_days": 90, "method": "OLS_SIMPLE", "market_index": "SPY"})
            key = (lot["symbol"], "IR Beta")
            if key in b.index:
                r = b.loc[key]
                pirb.append({"position_id": lot["id"], "calculation_date": d, "portfolio_id": lot["portfolio_id"],
                             "ir_beta": r["beta_value"], "r_squared": r["r_squared"],
                             "observations": r["observations"]})
    stored = _dates(run.tables["position_market_betas"], "calc_date")
    assert_close(stored[stored["calc_date"].isin(CHECKED)], pd.DataFrame(pmb), ["position_id", "calc_date"],
                 ["portfolio_id", "beta", "alpha", "r_squared", "std_error", "p_value", "observations", "window_days",
                  "method", "market_index"], "position_market_betas")
    stored = _dates(run.tables["position_interest_rate_betas"], "calculation_date")
    assert_close(stored[stored["calculation_date"].isin(CHECKED)], pd.DataFrame(pirb),
                 ["position_id", "calculation_date"], ["portfolio_id", "ir_beta", "r_squared", "observations"],
                 "position_interest_rate_betas")


def test_concentration(run):
    rows = []
    for d in run.sessions:
        h = ref.holdings(run.wide, run.positions, d)
        for pid, g in h.groupby("portfolio_id"):
            w = g.assign(a=g["market_value"].abs()).groupby("symbol")["a"].sum()
            w = (w / w.sum()).sort_values(ascending=False)
            hhi = 10_000.0 * float((w**2).sum())
            rows.append({"portfolio_id": pid, "snapshot_date": d, "hhi": hhi, "effective_num_positions": 10_000.0 / hhi,
                         "top_3_concentration": float(w.iloc[:3].sum()), "top_10_concentration": float(w.iloc[:10].sum())})
    stored = _dates(run.tables["portfolio_snapshots"], "snapshot_date")
    assert_close(stored, pd.DataFrame(rows), ["portfolio_id", "snapshot_date"],
                 ["hhi", "effective_num_positions", "top_3_concentration", "top_10_concentration"],
                 "portfolio_snapshots (concentration)")


# --- phase 6b ----------------------------------------------------------------------------------------

#: stored volatility column -> reference metric
VOL_COLUMNS = {"realized_vol_21d": "realized_vol_21d", "realized_vol_63d": "realized_vol_63d",
               "vol_daily": "vol_daily", "vol_weekly": "vol_weekly", "vol_monthly": "vol_monthly",
               "expected_vol_21d": "expected_vol_21d", "vol_trend": "vol_trend", "vol_trend_strength": "trend_strength",
               "vol_percentile": "vol_percentile", "observations": "n_obs", "model_r_squared": "har_r_squared"}


def _series(lot) -> str:
    return lot["underlying_symbol"] if lot["investment_class"] == "OPTIONS" else lot["symbol"]


def test_volatility(run, expected_snapshots):
    """Positions: their symbol's (an option's underlying's) series, stored once per held series in
    symbol_volatility and read per position through the view position_volatility; portfolios: d's holdings as
    static weights (signed MV / equity, lots merged, a missing return counts 0) over the 252 return rows
    ending at d."""
    pos, sym, snap = [], [], []
    eq = expected_snapshots.set_index(["portfolio_id", "snapshot_date"])["equity_balance"]
    for d in CHECKED:
        window = ref.window_returns(run.wide, d)
        h = ref.holdings(run.wide, run.positions, d)
        h["series"] = [_series(lot) for _, lot in h.iterrows()]
        cache = {s: ref.vol_metrics(window[s]) for s in set(h["series"]) if s in window.columns}
        sym += [{"symbol": s, "calculation_date": d, **{c: v[k] for c, k in VOL_COLUMNS.items()}}
                for s, v in cache.items()]
        for _, lot in h.iterrows():
            if lot["series"] in cache:
                v = cache[lot["series"]]
                pos.append({"position_id": lot["id"], "calculation_date": d, "portfolio_id": lot["portfolio_id"],
                            "realized_vol_21d": v["realized_vol_21d"], "realized_vol_63d": v["realized_vol_63d"],
                            "vol_daily": v["vol_daily"], "vol_weekly": v["vol_weekly"], "vol_monthly": v["vol_monthly"],
                            "expected_vol_21d": v["expected_vol_21d"], "vol_trend": v["vol_trend"],
                            "vol_trend_strength": v["trend_strength"], "vol_percentile": v["vol_percentile"],
                            "observations": v["n_obs"], "model_r_squared": v["har_r_squared"]})
        for pid, g in h.groupby("portfolio_id"):
            w = g.groupby("series")["market_value"].sum() / eq[(pid, d)]
            series = sum(window[s].fillna(0.0) * x for s, x in w.items())
            v = ref.vol_metrics(series)
            snap.append({"portfolio_id": pid, "snapshot_date": d, "realized_volatility_21d": v["realized_vol_21d"],
                         "realized_volatility_63d": v["realized_vol_63d"], "expected_volatility_21d": v["expected_vol_21d"],
                         "volatility_trend": v["vol_trend"], "volatility_percentile": v["vol_percentile"]})
    stored = _dates(run.tables["position_volatility"], "calculation_date")
    assert_close(stored[stored["calculation_date"].isin(CHECKED)], pd.DataFrame(pos), ["position_id", "calculation_date"],
                 ["portfolio_id", "realized_vol_21d", "realized_vol_63d", "vol_daily", "vol_weekly", "vol_monthly",
                  "expected_vol_21d", "vol_trend", "vol_trend_strength", "vol_percentile", "observations",
                  "model_r_squared"], "position_volatility")
    stored = _dates(run.tables["symbol_volatility"], "calculation_date")
    assert_close(stored[stored["calculation_date"].isin(CHECKED)], pd.DataFrame(sym), ["symbol", "calculation_date"],
                 list(VOL_COLUMNS), "symbol_volatility")
    stored = _dates(run.tables["portfolio_snapshots"], "snapshot_date")
    assert_close(stored[stored["snapshot_date"].isin(CHECKED)], pd.DataFrame(snap), ["portfolio_id", "snapshot_date"],
                 ["realized_volatility_21d", "realized_volatility_63d", "expected_volatility_21d", "volatility_trend",
                  "volatility_percentile"], "portfolio_snapshots (6b)")


# --- phase 6c ----------------------------------------------------------------------------------------

def _repair_psd(c: np.ndarray) -> np.ndarray:
    """Eigenvalue clipping when the smallest eigenvalue is below −1e-10, rescaled to a unit diagonal."""
    c = (c + c.T) / 2.0
    vals, vecs = np.linalg.eigh(c)
    if vals.min() >= -1e-10:
        return c
    r = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
    d = np.sqrt(np.diag(r))
    r = r / d[:, None] / d[None, :]
    r = (r + r.T) / 2.0
    np.fill_diagonal(r, 1.0)
    return r


def _clusters(cp: np.ndarray, cut: float = 0.3) -> list[np.ndarray]:
    """Average-linkage clusters of distance 1 − |ρ| cut at 1 − 0.7; only groups of 2 or more, numbered by
    decreasing size, then by their first position."""
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    d = np.clip((1.0 - np.abs(cp) + (1.0 - np.abs(cp)).T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(d, 0.0)
    if not (d[np.triu_indices(len(d), 1)] <= cut).any():
        return []
    labels = hierarchy.fcluster(hierarchy.linkage(squareform(d, checks=False), method="average"), t=cut,
                                criterion="distance")
    groups = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    groups = [g for g in groups if len(g) >= 2]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def test_correlations(run, expected_snapshots):
    """90 log-return rows ending at d; positions with |MV| >= $10,000, >= 1 % of gross and >= 20 returns
    (options excluded, lots merged); pandas' pairwise-complete ``corr(min_periods=30)``; the block repaired
    to PSD (eigenvalue clipping) for effective positions and the average-linkage clusters."""
    from scipy import stats

    logret = np.log(run.wide / run.wide.shift(1))
    gross = expected_snapshots.set_index(["portfolio_id", "snapshot_date"])["gross_exposure"]
    calcs, pairs, clusters, repaired = [], [], [], 0
    for d in run.sessions:
        t = ref.row_of(run.wide, d)
        window = logret.iloc[max(1, t - 90 + 1): t + 1]
        h = ref.holdings(run.wide, run.positions, d)
        h = h[h["investment_class"] == "PUBLIC"]
        for pid, g in h.groupby("portfolio_id"):
            absv = g.assign(a=g["market_value"].abs()).groupby("symbol")["a"].sum()
            signed = g.groupby("symbol")["market_value"].sum()
            ok = (absv >= 10_000) & (absv / gross[(pid, d)] >= 0.01) & (window[absv.index].notna().sum() >= 20)
            inc = sorted(absv.index[ok])
            row = {"portfolio_id": pid, "duration_days": 90, "calculation_date": d, "positions_included": len(inc),
                   "positions_excluded": int((~ok).sum()), "min_position_value": 10_000.0, "min_portfolio_weight": 0.01,
                   "filter_mode": "both", "correlation_threshold": 0.7,
                   "data_quality": "sufficient" if len(inc) >= 2 else "insufficient",
                   "overall_correlation": np.nan, "effective_positions": 1.0 if len(inc) == 1 else np.nan,
                   "correlation_concentration_score": 0.0 if len(inc) == 1 else np.nan}
            if len(inc) >= 2:
                c = window[inc].corr(min_periods=30)
                iu = np.triu_indices(len(inc), 1)
                u = c.to_numpy()[iu]
                a = np.abs(u[np.isfinite(u) & (u != 0)])
                row["overall_correlation"] = float(a.mean()) if len(a) else np.nan
                cm = np.where(np.isfinite(c.to_numpy()), c.to_numpy(), 0.0)
                np.fill_diagonal(cm, 1.0)
                cp = _repair_psd(cm)
                repaired += not np.array_equal(cp, (cm + cm.T) / 2.0)
                w = signed[inc].to_numpy()
                row["effective_positions"] = float(np.abs(w).sum() ** 2 / (w @ cp @ w))
                groups = _clusters(cp)
                aw = np.abs(w) / np.abs(w).sum()
                row["correlation_concentration_score"] = float(sum(aw[gr].sum() for gr in groups))
                raw = np.abs(c.to_numpy())
                for number, gr in enumerate(groups, start=1):
                    block = raw[np.ix_(gr, gr)][~np.eye(len(gr), dtype=bool)]
                    for k in gr:
                        clusters.append({"portfolio_id": pid, "duration_days": 90, "calculation_date": d,
                                         "cluster_number": number, "symbol": inc[k],
                                         "avg_correlation": float(np.nanmean(block)), "weight": float(aw[k])})
                if d == run.sessions[-1]:
                    n = window[inc].notna().astype(float)
                    counts = (n.T @ n).to_numpy()
                    for i, j in zip(*iu, strict=True):
                        r = c.iat[i, j]
                        if np.isfinite(r):
                            dof = counts[i, j] - 2
                            tstat = r * np.sqrt(dof / (1 - r * r))
                            pairs.append({"portfolio_id": pid, "duration_days": 90, "calculation_date": d,
                                          "symbol_1": inc[i], "symbol_2": inc[j], "correlation_value": r,
                                          "data_points": int(counts[i, j]),
                                          "statistical_significance": 1.0 - 2 * stats.t.sf(abs(tstat), dof)})
            calcs.append(row)
    keys = ["portfolio_id", "duration_days", "calculation_date"]
    stored = _dates(run.tables["correlation_calculations"], "calculation_date")
    assert_close(stored, pd.DataFrame(calcs), keys,
                 ["positions_included", "positions_excluded", "min_position_value", "min_portfolio_weight",
                  "filter_mode", "correlation_threshold", "data_quality", "overall_correlation", "effective_positions",
                  "correlation_concentration_score"], "correlation_calculations")
    assert clusters, "the book should have correlated clusters"
    stored = _dates(run.tables["correlation_clusters"], "calculation_date")
    assert_close(stored, pd.DataFrame(clusters), [*keys, "cluster_number", "symbol"], ["avg_correlation", "weight"],
                 "correlation_clusters")
    stored = _dates(run.tables["pairwise_correlations"], "calculation_date")
    assert_close(stored, pd.DataFrame(pairs), ["portfolio_id", "calculation_date", "symbol_1", "symbol_2"],
                 ["duration_days", "correlation_value", "data_points", "statistical_significance"],
                 "pairwise_correlations")
    print(f"correlation blocks repaired to PSD: {repaired}")


# --- phase 6d ----------------------------------------------------------------------------------------

def _scenarios() -> list[dict]:
    import yaml

    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "shared" / "data" / "stress_scenarios.yaml").read_text())
    return [s for s in data["scenarios"] if s.get("active", True)]


def test_stress_tests(run, expected_betas, expected_exposures, expected_snapshots):
    exposures = expected_exposures[0]
    eq = expected_snapshots.set_index(["portfolio_id", "snapshot_date"])["equity_balance"]
    scen = _scenarios()
    res, summ = [], []
    for d in CHECKED:
        cov, used = ref.ewma_cov(run.wide, d)
        b = expected_betas[expected_betas["calculation_date"] == d].set_index(["symbol", "factor"])["beta_value"]
        spy = {f: b[("SPY", f)] for f in [*ref.STYLE_NAMES, "IR Beta"] if ("SPY", f) in b.index}
        tlt = b[("TLT", "Market Beta (90D)")]
        for pid, g in exposures[exposures["calculation_date"] == d].groupby("portfolio_id"):
            x = dict(zip(g["factor"], g["exposure_dollar"], strict=True))
            rows = []
            for sc in scen:
                r = ref.stress(x, eq[(pid, d)], cov, sc["shocks"], spy, tlt)
                moves = dict(zip(ref.FACTOR_ETF, np.round(r["moves"], 6), strict=True))
                rows.append({"portfolio_id": pid, "scenario_id": sc["id"], "calculation_date": d,
                             "direct_pnl": r["direct_pnl"], "correlated_pnl": r["correlated_pnl"],
                             "correlation_effect": r["correlation_effect"], "loss_capped": r["loss_capped"],
                             "data_days": used, "covariance_date": d.isoformat(), "implied_moves": moves,
                             "impacts": r["impacts"], "scenario": sc})
            res += rows
            c = pd.Series([r["correlated_pnl"] for r in rows])
            summ.append({"portfolio_id": pid, "calculation_date": d, "worst_pnl": c.min(), "best_pnl": c.max(),
                         "mean_pnl": c.mean(), "median_pnl": c.median(), "std_pnl": c.std(ddof=0),
                         "mean_correlation_effect": float(np.mean([r["correlation_effect"] for r in rows])),
                         "negative_scenarios": int((c < 0).sum()), "positive_scenarios": int((c > 0).sum())})
    expected = pd.DataFrame(res)
    stored = _dates(run.tables["stress_test_results"], "calculation_date")
    stored = stored[stored["calculation_date"].isin(CHECKED)].copy()
    meta = stored["calculation_metadata"]
    stored["loss_capped"] = [m["loss_capped"] for m in meta]
    stored["data_days"] = [m["data_days"] for m in meta]
    stored["covariance_date"] = [m["covariance_date"] for m in meta]
    keys = ["portfolio_id", "scenario_id", "calculation_date"]
    assert_close(stored, expected, keys, ["direct_pnl", "correlated_pnl", "correlation_effect", "loss_capped",
                                          "data_days", "covariance_date"], "stress_test_results")
    by = stored.set_index(keys)
    for _, e in expected.iterrows():
        got = by.loc[tuple(e[k] for k in keys)]
        for f, v in e["implied_moves"].items():
            assert got["calculation_metadata"]["implied_moves"][f] == pytest.approx(v, abs=1e-9), (e["scenario_id"], f)
        md, sc = got["calculation_metadata"], e["scenario"]
        assert (md["scenario_name"], md["category"], md["model"], md["tlt_duration"], md["covariance"]) == (
            sc["name"], sc["category"], "conditional_ewma_covariance", 17.0, e["data_days"] >= 60), e["scenario_id"]
        assert list(got["factor_impacts"]) == list(sc["shocks"]), e["scenario_id"]
        for f, v in e["impacts"].items():
            fi, shock = got["factor_impacts"][f], sc["shocks"][f]
            move = -17.0 * shock if f == "Interest_Rate" else shock
            assert fi["exposure"] == pytest.approx(v, rel=1e-9, abs=1e-6), (e["scenario_id"], f)
            assert fi["shock_pct"] == pytest.approx(shock * 100.0, rel=1e-12), (e["scenario_id"], f)
            assert fi["direct_pnl"] == pytest.approx(v * move, rel=1e-9, abs=1e-6), (e["scenario_id"], f)
            assert fi["exposure_factor"] == {"Market": "Market Beta (90D)", "Interest_Rate": "IR Beta (net of market)"
                                             }.get(f, f), (e["scenario_id"], f)
            if f == "Interest_Rate":
                assert fi["tlt_return"] == pytest.approx(move, rel=1e-12), e["scenario_id"]
    stored = _dates(run.tables["stress_test_summaries"], "calculation_date")
    assert_close(stored[stored["calculation_date"].isin(CHECKED)], pd.DataFrame(summ), ["portfolio_id", "calculation_date"],
                 ["worst_pnl", "best_pnl", "mean_pnl", "median_pnl", "std_pnl", "mean_correlation_effect",
                  "negative_scenarios", "positive_scenarios"], "stress_test_summaries")


# --- cross-phase identities on the stored tables ----------------------------------------------------

def test_identities_between_stored_tables(run, stored_betas, factor_names):
    """Every session: exposure = Σ (stored MV / stored equity) × stored symbol beta; a position's market and
    IR beta = its symbol's on that date; stress direct P&L = stored exposure dollars × shocks (pure-market
    scenarios: market-beta dollars × shock)."""
    snaps = _dates(run.tables["portfolio_snapshots"], "snapshot_date").set_index(["portfolio_id", "snapshot_date"])
    beta = stored_betas.set_index(["calculation_date", "symbol", "factor"])["beta_value"]
    fe = _dates(run.tables["factor_exposures"], "calculation_date")
    fe["factor"] = fe["factor_id"].map(factor_names)
    fe = fe.set_index(["portfolio_id", "calculation_date", "factor"])
    for d in run.sessions:
        h = ref.holdings(run.wide, run.positions, d)
        h = h[h["investment_class"] == "PUBLIC"]
        for pid, g in h.groupby("portfolio_id"):
            mv = g.groupby("symbol")["market_value"].sum()
            w = mv / snaps.at[(pid, d), "equity_balance"]
            for f in ("Market Beta (90D)", "IR Beta", "Value", "Momentum Spread"):
                expect = sum(w[s] * beta.get((d, s, f), 0.0) for s in w.index)
                assert fe.at[(pid, d, f), "exposure_value"] == pytest.approx(expect, rel=1e-12, abs=1e-12), (pid, d, f)
    for table, date_col, cols in (("position_market_betas", "calc_date", {"beta": "Market Beta (90D)"}),
                                  ("position_interest_rate_betas", "calculation_date", {"ir_beta": "IR Beta"})):
        t = _dates(run.tables[table], date_col).merge(run.positions[["id", "symbol"]], left_on="position_id",
                                                       right_on="id")
        for col, f in cols.items():
            expect = [beta[(d, s, f)] for d, s in zip(t[date_col], t["symbol"], strict=True)]
            np.testing.assert_array_equal(t[col].to_numpy(), np.array(expect), err_msg=table)
    st = _dates(run.tables["stress_test_results"], "calculation_date")
    shocks = {s["id"]: s["shocks"] for s in _scenarios()}
    market = st[st["scenario_id"].map(lambda i: set(shocks[i]) == {"Market"})]
    for _, r in market.iterrows():
        x = fe.at[(r["portfolio_id"], r["calculation_date"], "Market Beta (90D)"), "exposure_dollar"]
        assert r["direct_pnl"] == pytest.approx(x * shocks[r["scenario_id"]]["Market"], rel=1e-12)
        assert r["correlated_pnl"] == pytest.approx(r["direct_pnl"], rel=1e-9)  # a pure market shock


# --- phases 1, 4, 5 ----------------------------------------------------------------------------------

GICS = {"Technology": "Information Technology", "Healthcare": "Health Care", "Financial Services": "Financials",
        "Consumer Cyclical": "Consumer Discretionary"}  # the provider labels of this book -> GICS


def test_prices_marks_and_sector_tags(run):
    """Stored closes = the CSV's; each position's mark as of the last session (open: last close or the entry
    price when unpriced; closed: 0); sector tags: GICS sector, ETFs, options Unclassified."""
    cache = _dates(run.tables["market_data_cache"], "date")
    csv = run.wide.stack().rename("close").reset_index().rename(columns={"level_1": "symbol"}).dropna()
    csv["date"] = pd.to_datetime(csv["date"]).dt.date
    csv["data_source"] = "file"
    csv["volume"] = np.nan
    first = cache["date"].min()  # market-data's history window: at least a year and 262 sessions back
    assert first <= date(2017, 11, 24) and run.wide.index.get_loc(pd.Timestamp(bk.START)) - \
        run.wide.index.get_loc(pd.Timestamp(first)) >= 262
    csv = csv[csv["date"] >= first]
    assert_close(cache, csv, ["symbol", "date"], ["close", "volume", "data_source"], "market_data_cache")
    end = run.sessions[-1]
    pos = _dates(run.tables["positions"], "entry_date", "market_value_date")
    rows, tags = [], []
    prof = bk_profiles().set_index("symbol")
    for _, lot in run.positions.iterrows():
        qm = lot["quantity"] * ref.multiplier(lot["position_type"])
        mk = ref.mark(run.wide, lot["symbol"], end)
        price = lot["entry_price"] if np.isnan(mk) else mk
        is_open = ref.held(lot, end)
        rows.append({"id": lot["id"], "last_price": price, "market_value": qm * price if is_open else 0.0,
                     "unrealized_pnl": qm * (price - lot["entry_price"]) if is_open else 0.0,
                     "market_value_date": end})
        if is_open:
            if lot["investment_class"] != "PUBLIC":
                sector = "Unclassified"
            elif str(prof.at[lot["symbol"], "is_etf"]).lower() == "true":
                sector = "ETFs"
            else:
                sector = GICS.get(prof.at[lot["symbol"], "sector"], prof.at[lot["symbol"], "sector"])
            tags.append({"position_id": lot["id"], "portfolio_id": lot["portfolio_id"], "sector": sector,
                         "tagged_on": end})
    assert_close(pos, pd.DataFrame(rows), ["id"], ["last_price", "market_value", "unrealized_pnl", "market_value_date"],
                 "positions (marks)")
    assert_close(_dates(run.tables["position_sector_tags"], "tagged_on"), pd.DataFrame(tags), ["position_id"],
                 ["portfolio_id", "sector", "tagged_on"], "position_sector_tags")


def test_coverage_lists_every_column():
    """Every column of every table a DAG step writes is in the coverage table, and its tests exist."""
    from shared.storage import models as m
    from tests.oracle.coverage import COVERAGE, T
    from workflows import dag

    written = {w.split(".")[0] for s in dag.STEPS for w in s.writes} | set(m.ViewBase.metadata.tables)
    assert set(COVERAGE) == written
    relations = m.relations()
    for table in written:
        assert list(COVERAGE[table]) == [c.name for c in relations[table].columns] or \
            set(COVERAGE[table]) == {c.name for c in relations[table].columns}, table
    names = {n for n in globals() if n.startswith("test_")}
    for how in (h for t in COVERAGE.values() for h in t.values() if h.startswith(T)):
        for part in how.removeprefix(T).split(" + "):
            assert part.split(" ")[0].removeprefix(T) in names, how


def test_sector_exposure(run, expected_snapshots):
    """The snapshot's sector JSON, every session: per bucket (options Unclassified, ETFs, else the GICS sector)
    Σ|MV| / equity against the benchmark's weight (the provider's sector_weights.csv), both sides' sectors,
    a missing side 0; rounded to 6 places."""
    prof = bk_profiles().set_index("symbol")
    bench = {"Information Technology": 0.25, "Health Care": 0.15, "Financials": 0.15, "Energy": 0.1,
             "Industrials": 0.1, "Consumer Discretionary": 0.15, "Utilities": 0.1}
    eq = expected_snapshots.set_index(["portfolio_id", "snapshot_date"])["equity_balance"]
    stored = _dates(run.tables["portfolio_snapshots"], "snapshot_date").set_index(["portfolio_id", "snapshot_date"])
    checked = 0
    for d in run.sessions:
        h = ref.holdings(run.wide, run.positions, d)
        for pid, g in h.groupby("portfolio_id"):
            weights: dict[str, float] = {}
            for _, lot in g.iterrows():
                if lot["investment_class"] != "PUBLIC":
                    bucket = "Unclassified"
                elif str(prof.at[lot["symbol"], "is_etf"]).lower() == "true":
                    bucket = "ETFs"
                else:
                    bucket = GICS.get(prof.at[lot["symbol"], "sector"], prof.at[lot["symbol"], "sector"])
                weights[bucket] = weights.get(bucket, 0.0) + abs(lot["market_value"]) / eq[(pid, d)]
            got = stored.at[(pid, d), "sector_exposure"]
            assert set(got) == set(weights) | set(bench), (pid, d)
            for sector, v in got.items():
                pw, bw = weights.get(sector, 0.0), bench.get(sector, 0.0)
                for name, e in (("portfolio_weight", pw), ("benchmark_weight", bw), ("difference", pw - bw)):
                    assert abs(v[name] - e) <= 5e-7 + 1e-12, (pid, d, sector, name, v[name], e)
            checked += 1
    assert checked == len(stored)


def test_the_oracle_imports_nothing_from_the_code_under_test():
    """reference.py, book.py and this file import no module of shared.analytics or phases (nor shared.*
    outside storage models, which only name the tables)."""
    import ast
    from pathlib import Path

    here = Path(__file__).parent
    for name in ("reference.py", "book.py", "test_oracle.py", "coverage.py"):
        tree = ast.parse((here / name).read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for mod in mods:
                assert not mod.startswith(("shared.analytics", "phases")), (name, mod)
                assert not mod.startswith("shared.") or mod == "shared.storage", (name, mod)
