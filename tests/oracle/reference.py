"""The oracle's own implementation of the stored numbers, written from the definitions in the README and
the phases' docstrings with pandas / numpy / statsmodels only. It imports nothing from ``shared.analytics``
or ``phases``: a bug there cannot hide in the reference.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import statsmodels.api as sm

STYLE = ["VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]  # Value, Growth, Momentum, Quality, Size, Low Volatility
STYLE_NAMES = ["Value", "Growth", "Momentum", "Quality", "Size", "Low Volatility"]
SPREADS = {"Growth-Value Spread": ("VUG", "VTV"), "Momentum Spread": ("MTUM", "SPY"),
           "Size Spread": ("IWM", "SPY"), "Quality Spread": ("QUAL", "SPY")}
OPTION_TYPES = {"LC", "LP", "SC", "SP"}


def returns(wide: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close simple returns between adjacent sessions (NaN when either close is missing)."""
    return wide / wide.shift(1) - 1.0


def row_of(wide: pd.DataFrame, d: date) -> int:
    return int(wide.index.get_loc(pd.Timestamp(d)))


# --- phase 1.5: symbol betas -------------------------------------------------------------------------

def ols(y: np.ndarray, x: np.ndarray, min_obs: int, cap: float = 5.0) -> dict | None:
    ok = np.isfinite(y) & np.isfinite(x)
    n = int(ok.sum())
    if n < min_obs:
        return None
    fit = sm.OLS(y[ok], sm.add_constant(x[ok])).fit()
    return {"beta_value": float(np.clip(fit.params[1], -cap, cap)), "alpha": float(fit.params[0]),
            "r_squared": float(fit.rsquared), "std_error": float(fit.bse[1]) if n > 2 else np.nan,
            "p_value": float(fit.pvalues[1]) if n > 2 else np.nan, "observations": n}


def ridge(y: np.ndarray, x: np.ndarray, min_obs: int, alpha: float = 1.0, cap: float = 5.0) -> list[dict] | None:
    """sklearn's StandardScaler (population sd) + Ridge(alpha, fit_intercept=True), written out."""
    ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
    n = int(ok.sum())
    if n < min_obs:
        return None
    yy, xx = y[ok], x[ok]
    xm, ym = xx.mean(axis=0), yy.mean()
    sd = xx.std(axis=0)
    z = (xx - xm) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(x.shape[1]), z.T @ (yy - ym))
    beta = w / sd
    intercept = ym - xm @ beta
    resid = yy - intercept - xx @ beta
    r2 = 1.0 - (resid @ resid) / ((yy - ym) @ (yy - ym))
    return [{"beta_value": float(np.clip(b, -cap, cap)), "alpha": float(intercept), "r_squared": float(r2),
             "std_error": np.nan, "p_value": np.nan, "observations": n} for b in beta]


def symbol_betas(wide: pd.DataFrame, d: date, provider_beta: dict[str, float]) -> pd.DataFrame:
    """The 13 factor rows of every symbol on ``d``: windows are the last 90 (180) return rows ending at d."""
    r = returns(wide)
    t = row_of(wide, d)
    rows = []

    def win(n: int) -> pd.DataFrame:
        return r.iloc[max(t - n + 1, 0): t + 1]

    w90, w180 = win(90), win(180)
    for s in wide.columns:
        y90, y180 = w90[s].to_numpy(), w180[s].to_numpy()
        fits = {"Market Beta (90D)": (ols(y90, w90["SPY"].to_numpy(), 30), 90, "ols_market"),
                "IR Beta": (ols(y90, w90["TLT"].to_numpy(), 30), 90, "ols_ir")}
        for name, (lo, sh) in SPREADS.items():
            fits[name] = (ols(y180, (w180[lo] - w180[sh]).to_numpy(), 60), 180, "spread_regression")
        rd = ridge(y90, w90[STYLE].to_numpy(), 30)
        for k, name in enumerate(STYLE_NAMES):
            fits[name] = (rd[k] if rd else None, 90, "ridge_regression")
        pb = provider_beta.get(s)
        if pb is not None and np.isfinite(pb) and pb != 0:
            fits["Provider Beta (1Y)"] = ({"beta_value": pb, "alpha": np.nan, "r_squared": np.nan, "std_error": np.nan,
                                           "p_value": np.nan, "observations": 252}, 252, "provider")
        for name, (fit, window, method) in fits.items():
            if fit is None:
                continue
            rows.append({"calculation_date": d, "symbol": s, "factor": name, **fit,
                         "quality_flag": "full_history" if fit["observations"] >= window else "limited_history",
                         "calculation_method": method,
                         "regularization_alpha": 1.0 if method == "ridge_regression" else np.nan,
                         "regression_window_days": window})
    return pd.DataFrame(rows)


# --- phase 1.75: symbol metrics ----------------------------------------------------------------------

def symbol_metrics(wide: pd.DataFrame, d: date, max_stale: int = 10) -> pd.DataFrame:
    """current price and returns: every look-up is the last real close on or before the reference date's
    session, usable on its own session and the next 9."""
    idx = wide.index

    def price(s: str, when: pd.Timestamp) -> float:
        t = idx.searchsorted(when, side="right") - 1
        if t < 0:
            return np.nan
        col = wide[s].iloc[: t + 1]
        real = np.flatnonzero(col.notna().to_numpy())
        if not len(real) or t - real[-1] >= max_stale:
            return np.nan
        return float(col.iloc[real[-1]])

    ts = pd.Timestamp(d)
    t = row_of(wide, d)
    refs = {"return_1d": idx[t - 1], "return_mtd": ts.replace(day=1) - pd.Timedelta(days=1),
            "return_ytd": pd.Timestamp(ts.year - 1, 12, 31), "return_1m": ts - pd.DateOffset(months=1),
            "return_3m": ts - pd.DateOffset(months=3), "return_1y": ts - pd.DateOffset(years=1)}
    out = []
    for s in wide.columns:
        cur = price(s, ts)
        row = {"metrics_date": d, "symbol": s, "current_price": cur}
        for name, ref in refs.items():
            row[name] = cur / price(s, ref) - 1.0
        if np.isnan(wide[s].iloc[t]):
            row["return_1d"] = np.nan
        out.append(row)
    return pd.DataFrame(out)


# --- phase 3: P&L and snapshots ----------------------------------------------------------------------

def mark(wide: pd.DataFrame, sym: str, d: date) -> float:
    """Last close on or before d (NaN when the symbol has none)."""
    if sym not in wide.columns:
        return np.nan
    col = wide[sym].loc[: pd.Timestamp(d)].dropna()
    return float(col.iloc[-1]) if len(col) else np.nan


def held(pos: pd.Series, d: date) -> bool:
    ex = pos["exit_date"]
    return pos["entry_date"] <= d and (ex is None or pd.isna(ex) or ex > d)


def multiplier(ptype: str) -> float:
    return 100.0 if ptype in OPTION_TYPES else 1.0


def snapshots(wide: pd.DataFrame, portfolios: pd.DataFrame, positions: pd.DataFrame, flows: pd.DataFrame,
              sessions: list[date]) -> pd.DataFrame:
    """One row per portfolio and session, rolled forward session by session from the inception equity."""
    out = []
    for _, pf in portfolios.iterrows():
        lots = positions[positions["portfolio_id"] == pf["id"]]
        inception = lots["entry_date"].min()
        equity, cum_pnl, cum_real, cum_flow = pf["equity_balance"], 0.0, 0.0, 0.0
        for d in sessions:
            if d < inception:
                continue
            p = wide.index[row_of(wide, d) - 1].date()
            pnl = real = longv = shortv = 0.0
            n = nlong = unpriced = 0
            for _, lot in lots.iterrows():
                qm = lot["quantity"] * multiplier(lot["position_type"])
                m_t, m_p = mark(wide, lot["symbol"], d), mark(wide, lot["symbol"], p)
                priced = not np.isnan(m_t)
                m_t = m_t if priced else lot["entry_price"]
                m_p = m_p if not np.isnan(m_p) else lot["entry_price"]
                h_t, h_p = held(lot, d), held(lot, p)
                opened = p < lot["entry_date"] <= d
                ex = lot["exit_date"]
                closed = ex is not None and not pd.isna(ex) and p < ex <= d
                if h_t or h_p or (opened and closed):
                    base = m_p if h_p else lot["entry_price"]
                    end = m_t if h_t else (lot["exit_price"] if not pd.isna(lot["exit_price"]) else m_t)
                    x = qm * (end - base)
                    pnl += x
                    if not h_t:
                        real += x
                if h_t:
                    v = qm * m_t
                    longv += max(v, 0.0)
                    shortv += min(v, 0.0)
                    n += 1
                    nlong += lot["quantity"] > 0
                    unpriced += not priced
            f = flows[(flows["portfolio_id"] == pf["id"]) & (flows["change_date"] > p) & (flows["change_date"] <= d)]
            flow = float(f["amount"].sum())
            ret = pnl / equity if equity > 0 else np.nan
            equity = equity + pnl + flow
            cum_pnl, cum_real, cum_flow = cum_pnl + pnl, cum_real + real, cum_flow + flow
            out.append({"portfolio_id": pf["id"], "snapshot_date": d, "net_asset_value": equity,
                        "equity_balance": equity, "cash_value": equity - (longv + shortv), "long_value": longv,
                        "short_value": shortv, "gross_exposure": longv - shortv, "net_exposure": longv + shortv,
                        "daily_pnl": pnl, "daily_realized_pnl": real, "daily_unrealized_pnl": pnl - real,
                        "daily_return": ret, "daily_capital_flow": flow, "cumulative_pnl": cum_pnl,
                        "cumulative_realized_pnl": cum_real, "cumulative_capital_flow": cum_flow,
                        "num_positions": n, "num_long_positions": nlong, "num_short_positions": n - nlong,
                        "positions_without_price": unpriced})
    return pd.DataFrame(out)


def holdings(wide: pd.DataFrame, positions: pd.DataFrame, d: date) -> pd.DataFrame:
    """Positions held at the close of d with their signed market value (marked as in P&L)."""
    rows = []
    for _, lot in positions.iterrows():
        if held(lot, d):
            m = mark(wide, lot["symbol"], d)
            m = m if not np.isnan(m) else lot["entry_price"]
            rows.append({**lot.to_dict(), "market_value": lot["quantity"] * multiplier(lot["position_type"]) * m})
    return pd.DataFrame(rows)


# --- phase 6b: volatility ----------------------------------------------------------------------------

def vol_metrics(series: pd.Series) -> dict:
    """Realized, HAR-RV expected, trend and percentile of one return series (its last 252 rows), NaNs
    dropped first. HAR: arch's HARX(lags=[1, 5, 22]) on squared returns, 21-step mean forecast."""
    from arch.univariate import HARX

    r = series.dropna().to_numpy()
    n = len(r)
    sq = np.sqrt(252.0)

    def last_std(w: int) -> float:
        return float(np.std(r[-w:], ddof=1) * sq) if n >= w else np.nan

    out = {"n_obs": n, "realized_vol_21d": last_std(21), "realized_vol_63d": last_std(63),
           "vol_daily": float(abs(r[-1]) * sq) if n else np.nan, "vol_weekly": last_std(5),
           "vol_monthly": last_std(21), "expected_vol_21d": np.nan, "har_r_squared": np.nan}
    if n >= 63:
        res = HARX(r * r, lags=[1, 5, 22], rescale=False).fit(disp="off")
        mean_var = float(res.forecast(horizon=21, reindex=False).mean.iloc[-1].mean())
        out["expected_vol_21d"] = np.sqrt(252.0 * mean_var) if mean_var >= 0 else np.nan
        out["har_r_squared"] = float(res.rsquared)
    roll = pd.Series(r).rolling(21).std(ddof=1).to_numpy() * sq
    roll = roll[~np.isnan(roll)]
    out["vol_trend"], out["trend_strength"], out["vol_percentile"] = None, np.nan, np.nan
    if len(roll) >= 21:
        fit = sm.OLS(roll[-21:], sm.add_constant(np.arange(21.0))).fit()
        slope, r2 = float(fit.params[1]), float(fit.rsquared)
        out["trend_strength"] = r2
        out["vol_trend"] = ("increasing" if slope > 0.001 and r2 > 0.3 else
                            "decreasing" if slope < -0.001 and r2 > 0.3 else "stable")
    if len(roll) >= 100:
        out["vol_percentile"] = float((roll < roll[-1]).sum() / len(roll))
    return out


def window_returns(wide: pd.DataFrame, d: date, n: int = 252) -> pd.DataFrame:
    """The ``n`` return rows ending at d (d included)."""
    t = row_of(wide, d)
    return returns(wide).iloc[max(1, t - n + 1): t + 1]


# --- phase 6d: stress tests --------------------------------------------------------------------------

FACTOR_ETF = {"Market": "SPY", "Value": "VTV", "Growth": "VUG", "Momentum": "MTUM", "Quality": "QUAL",
              "Size": "IWM", "Low Volatility": "USMV", "Rates": "TLT"}
EXPOSURE_OF = {"Market": "Market Beta (90D)", **{k: k for k in STYLE_NAMES}, "Rates": "IR Beta"}


def ewma_cov(wide: pd.DataFrame, d: date, lam: float = 0.94) -> tuple[np.ndarray, int]:
    """EWMA covariance of the 8 factor ETFs over the 252 sessions ending at d: weight λ^age on complete
    rows, normalised; weighted mean removed. Returns (Σ, complete rows)."""
    f = returns(wide[list(FACTOR_ETF.values())])
    t = row_of(wide, d)
    win = f.iloc[max(0, t - 251): t + 1].to_numpy()
    age = np.arange(len(win) - 1, -1, -1)
    ok = np.isfinite(win).all(axis=1)
    w = lam ** age[ok]
    w = w / w.sum()
    x = win[ok] - w @ win[ok]
    return (x * w[:, None]).T @ x, int(ok.sum())


def stress(x_named: dict[str, float], equity: float, cov: np.ndarray, shocks: dict[str, float],
           spy: dict[str, float], tlt_beta: float, duration: float = 17.0) -> dict:
    """One book, one scenario: the README's model written out."""
    names = list(FACTOR_ETF)
    x = np.array([x_named.get(EXPOSURE_OF[k], 0.0) for k in names])
    bm = x[0]
    for i, k in enumerate(names[1:-1], start=1):
        x[i] -= bm * spy.get(k, 0.0)
    g = spy.get("IR Beta", 0.0)
    x[-1] = (x[-1] - bm * g) / (1.0 - g * tlt_beta)
    s = np.full(8, np.nan)
    for k, v in shocks.items():
        s[names.index("Rates" if k == "Interest_Rate" else k)] = -duration * v if k == "Interest_Rate" else v
    S = np.flatnonzero(np.isfinite(s))
    m = cov[:, S] @ np.linalg.solve(cov[np.ix_(S, S)], s[S])
    m[S] = s[S]
    beta = cov[:, 0] / cov[0, 0]
    m_net = m - beta * m[0]
    m_net[0] = m[0]
    direct = float(x[S] @ s[S])
    correlated = float(x @ m_net)
    floor = -0.99 * equity if equity > 0 else -np.inf
    return {"direct_pnl": max(direct, floor), "correlated_pnl": max(correlated, floor),
            "correlation_effect": max(correlated, floor) - max(direct, floor),
            "loss_capped": bool(direct < floor or correlated < floor), "moves": m, "x": x,
            "impacts": {k: x[names.index("Rates" if k == "Interest_Rate" else k)] for k in shocks}}
