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


def test_factor_exposures_and_snapshot_betas(run, expected_betas, expected_snapshots, factor_names):
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
    expected = pd.DataFrame(rows)
    stored = _dates(run.tables["factor_exposures"], "calculation_date")
    stored["factor"] = stored["factor_id"].map(factor_names)
    stored = stored[stored["calculation_date"].isin(CHECKED)]
    assert_close(stored, expected, ["portfolio_id", "calculation_date", "factor"],
                 ["exposure_value", "exposure_dollar", "coverage"], "factor_exposures")
    by = expected.set_index(["portfolio_id", "calculation_date", "factor"])["exposure_value"]
    snap = pd.DataFrame(snaps)
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
