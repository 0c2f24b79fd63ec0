"""Each vectorized kernel side by side with the straightforward loop the old system ran.

Data: the synthetic market at the benchmark's size (``--kernel-symbols`` stocks + the 17 ETFs, the year
before the nightly session), portfolios as in :mod:`bench.universe`. One calculation date (the nightly
case). The vectorized kernel runs on the full size; the reference loop on the first ``subset`` symbols
or portfolios, and its time is extrapolated linearly to the full size (the loops do the same work per
symbol/portfolio, so the cost is linear). The largest absolute difference is taken over the subset.

References (what the old system did, one symbol/series/portfolio at a time):

* ridge: ``StandardScaler`` + ``sklearn.linear_model.Ridge(alpha=1)`` per symbol, 90-session window;
* OLS betas: ``statsmodels.OLS(y, add_constant(spy)).fit()`` per symbol (beta, alpha, R², s.e., p);
* HAR: ``arch.univariate.HARX(y, lags=[1, 5, 22], rescale=False).fit()`` + ``forecast(21)`` per series;
* correlations: ``returns[portfolio symbols].corr(min_periods=30)`` per portfolio (pandas);
* aggregation: per portfolio, merge its weights with the day's betas and sum ``w·β`` per factor;
* P&L: per portfolio and position, look up the previous and current close and sum ``q·(end − base)``.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd

from bench.universe import SIZES, Plan, book
from shared.analytics.aggregation import portfolio_factor_exposures
from shared.analytics.correlation import pairwise_correlation
from shared.analytics.factors import STYLE_FACTORS
from shared.analytics.pnl import position_pnl
from shared.analytics.regression import rolling_ols, rolling_ridge
from shared.analytics.volatility import har_fit, har_forecast
from shared.providers.synthetic import SyntheticMarket

WINDOW, MIN_OBS = 90, 30


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    out = fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def _once(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _row(kernel, reference, full_n, subset_n, unit, t_vec, t_ref_subset, diff, note=""):
    t_ref_full = t_ref_subset * full_n / subset_n
    return {"kernel": kernel, "reference": reference, "unit": unit, "full_n": full_n, "subset_n": subset_n,
            "vectorized_s": t_vec, "reference_subset_s": t_ref_subset, "reference_full_s_extrapolated": t_ref_full,
            "speedup": t_ref_full / t_vec if t_vec > 0 else None, "max_abs_diff": float(diff), "note": note}


class Data:
    def __init__(self, size: str, n_symbols: int | None = None):
        self.plan = Plan.of(size)
        n = n_symbols or SIZES[size][0]
        self.market = SyntheticMarket(n, seed=7, as_of=self.plan.end)
        start = self.plan.end - timedelta(days=366)
        self.closes = self.market.close_matrix(self.market.symbols, start, self.plan.end)
        self.returns = self.closes / self.closes.shift(1) - 1.0
        self.stocks = self.market.stock_symbols
        self.t = len(self.closes) - 1


def ridge(d: Data, subset: int, repeat: int) -> dict:
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    X = d.returns[list(STYLE_FACTORS.values())].to_numpy()
    Y = d.returns[d.stocks].to_numpy()
    rows = np.array([d.t])
    t_vec, res = _time(lambda: rolling_ridge(Y, X, WINDOW, MIN_OBS, 1.0, None, rows), repeat)
    lo = d.t - WINDOW + 1

    def ref():
        out = np.full((subset, X.shape[1]), np.nan)
        for j in range(subset):
            yw, Xw = Y[lo:d.t + 1, j], X[lo:d.t + 1]
            m = np.isfinite(yw) & np.isfinite(Xw).all(1)
            if m.sum() < MIN_OBS:
                continue
            sc = StandardScaler().fit(Xw[m])
            fit = Ridge(alpha=1.0, fit_intercept=True).fit(sc.transform(Xw[m]), yw[m])
            out[j] = fit.coef_ / sc.scale_
        return out

    t_ref, out = _once(ref)
    diff = np.nanmax(np.abs(out - res["beta"][0, :subset]))
    return _row("ridge (6 style betas, 90 d)", "sklearn StandardScaler+Ridge per symbol", Y.shape[1], subset,
                "symbols", t_vec, t_ref, diff)


def ols(d: Data, subset: int, repeat: int) -> dict:
    import statsmodels.api as sm

    x = d.returns["SPY"].to_numpy()
    Y = d.returns[d.stocks].to_numpy()
    rows = np.array([d.t])
    t_vec, res = _time(lambda: rolling_ols(Y, x, WINDOW, MIN_OBS, None, rows), repeat)
    lo = d.t - WINDOW + 1
    keys = ("beta", "alpha", "r_squared", "std_error", "p_value")

    def ref():
        out = np.full((subset, 5), np.nan)
        for j in range(subset):
            yw, xw = Y[lo:d.t + 1, j], x[lo:d.t + 1]
            m = np.isfinite(yw) & np.isfinite(xw)
            if m.sum() < MIN_OBS:
                continue
            f = sm.OLS(yw[m], sm.add_constant(xw[m])).fit()
            out[j] = [f.params[1], f.params[0], f.rsquared, f.bse[1], f.pvalues[1]]
        return out

    t_ref, out = _once(ref)
    got = np.column_stack([res[k][0, :subset] for k in keys])
    diff = np.nanmax(np.abs(out - got))
    return _row("OLS market beta (+alpha, R², s.e., p)", "statsmodels OLS per symbol", Y.shape[1], subset,
                "symbols", t_vec, t_ref, diff)


def har(d: Data, subset: int, repeat: int) -> dict:
    from arch.univariate import HARX

    y = (d.returns[d.stocks].to_numpy()[1:]) ** 2

    def vec():
        fit = har_fit(y)
        return fit, har_forecast(y, fit.params, 21)

    t_vec, (fit, fc) = _time(vec, repeat)

    def ref():
        params = np.full((subset, 4), np.nan)
        fcs = np.full((subset, 21), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(subset):
                ys = y[:, j][~np.isnan(y[:, j])]
                if len(ys) < 63:
                    continue
                r = HARX(ys, lags=[1, 5, 22], rescale=False).fit(disp="off")
                params[j] = r.params.to_numpy()[:4]
                fcs[j] = r.forecast(horizon=21, reindex=False).mean.to_numpy()[-1]
        return params, fcs

    t_ref, (p_ref, f_ref) = _once(ref)
    diff = max(np.nanmax(np.abs(p_ref - fit.params[:subset])), np.nanmax(np.abs(f_ref - fc[:subset])))
    return _row("HAR-RV fit + 21-step forecast", "arch HARX fit+forecast per series", y.shape[1], subset,
                "series", t_vec, t_ref, diff, "decimal² units (r²)")


def _portfolios(d: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return book(d.plan, d.market)


def correlations(d: Data, subset: int, repeat: int, positions: pd.DataFrame) -> dict:
    logret = np.log(d.closes / d.closes.shift(1)).iloc[-WINDOW:]
    groups = [g["symbol"].tolist() for _, g in positions.groupby("portfolio_id", sort=True)]
    R = logret.to_numpy()
    cols = [logret.columns.get_indexer(g) for g in groups]

    def vec():  # as phase 6c: each portfolio's block from its own columns
        return [pairwise_correlation(R[:, c], min_periods=MIN_OBS) for c in cols]

    t_vec, blocks = _time(vec, max(1, repeat // 2))

    def ref():
        return [logret[g].corr(min_periods=MIN_OBS).to_numpy() for g in groups[:subset]]

    t_ref, out = _once(ref)
    diff = max(np.nanmax(np.abs(a - b)) for a, b in zip(out, blocks[:subset], strict=True))
    return _row("pairwise correlations per portfolio (90 d)", "pandas DataFrame.corr per portfolio", len(groups),
                subset, "portfolios", t_vec, t_ref, diff,
                "ours: masked-Gram pairwise-complete block per portfolio (numpy/BLAS)")


def aggregation(d: Data, subset: int, repeat: int, positions: pd.DataFrame, portfolios: pd.DataFrame) -> dict:
    rng = np.random.default_rng(3)
    day = d.plan.end
    factors = [f"F{k}" for k in range(13)]
    syms = np.array(d.market.symbols, dtype=object)
    betas = pd.DataFrame({"calculation_date": day, "symbol": np.repeat(syms, len(factors)),
                          "factor": np.tile(factors, len(syms)), "beta_value": rng.normal(0.8, 0.4, len(syms) * 13)})
    betas.loc[rng.random(len(betas)) < 0.02, "beta_value"] = np.nan
    eq = portfolios.set_index("id")["equity_balance"]
    w = positions.assign(calculation_date=day, weight=positions["quantity"] * positions["entry_price"]
                         / positions["portfolio_id"].map(eq).to_numpy())[["calculation_date", "portfolio_id",
                                                                          "symbol", "weight"]]
    t_vec, res = _time(lambda: portfolio_factor_exposures(w, betas), repeat)
    pids = sorted(w["portfolio_id"].unique())[:subset]

    def ref():
        out = {}
        b = betas.dropna(subset=["beta_value"])
        for pid in pids:
            mine = w[w["portfolio_id"] == pid]
            merged = mine.merge(b, on=["calculation_date", "symbol"])
            s = (merged["weight"] * merged["beta_value"]).groupby(merged["factor"]).sum()
            for f, v in s.items():
                out[(pid, f)] = v
        return out

    t_ref, out = _once(ref)
    got = res.set_index(["portfolio_id", "factor"])["exposure_value"]
    diff = max(abs(v - got[k]) for k, v in out.items())
    return _row("portfolio factor aggregation (13 factors)", "per-portfolio pandas merge + groupby",
                w["portfolio_id"].nunique(), subset, "portfolios", t_vec, t_ref, diff)


def pnl(d: Data, subset: int, repeat: int, positions: pd.DataFrame) -> dict:
    day, prev = d.plan.end, d.plan.prev
    closes = d.closes
    t_vec, res = _time(lambda: position_pnl(positions, closes, [day]), repeat)
    vec_pf = pd.Series(res["pnl"][0], index=positions.index).groupby(positions["portfolio_id"]).sum()
    pids = sorted(positions["portfolio_id"].unique())[:subset]

    def last_close(sym, when):
        s = closes[sym].loc[:pd.Timestamp(when)].dropna()
        return float(s.iloc[-1]) if len(s) else np.nan

    def ref():
        out = {}
        for pid in pids:
            total = 0.0
            for p in positions[positions["portfolio_id"] == pid].itertuples():
                if p.entry_date > day or (p.exit_date is not None and p.exit_date <= prev):
                    continue
                held_prev = p.entry_date <= prev
                held_now = p.exit_date is None or p.exit_date > day
                m_t = last_close(p.symbol, day)
                m_t = p.entry_price if np.isnan(m_t) else m_t
                m_p = last_close(p.symbol, prev) if held_prev else p.entry_price
                m_p = p.entry_price if np.isnan(m_p) else m_p
                end = m_t if held_now else (p.exit_price if p.exit_price == p.exit_price else m_t)
                total += p.quantity * (end - m_p)
            out[pid] = total
        return out

    t_ref, out = _once(ref)
    diff = max(abs(v - vec_pf[k]) for k, v in out.items())
    return _row("position P&L, one session", "per-portfolio, per-position close look-ups", positions["portfolio_id"]
                .nunique(), subset, "portfolios", t_vec, t_ref, diff)


def run_kernels(size: str = "L", subset: int = 200, repeat: int = 3, progress=print) -> list[dict]:
    d = Data(size)
    portfolios, positions = book(d.plan, d.market)
    rows = []
    for name, fn in (("ridge", lambda: ridge(d, subset, repeat)), ("ols", lambda: ols(d, subset, repeat)),
                     ("har", lambda: har(d, subset, repeat)),
                     ("correlations", lambda: correlations(d, subset, repeat, positions)),
                     ("aggregation", lambda: aggregation(d, subset, repeat, positions, portfolios)),
                     ("pnl", lambda: pnl(d, subset, repeat, positions))):
        r = fn()
        rows.append(r)
        progress(f"  kernel {name}: vectorized {r['vectorized_s'] * 1e3:.1f} ms for {r['full_n']} {r['unit']}, "
                 f"reference {r['reference_full_s_extrapolated']:.2f} s (extrapolated), {r['speedup']:.0f}x, "
                 f"max|diff| {r['max_abs_diff']:.1e}")
    return rows
