"""Synthetic statements and stock profile fields, computed on a calendar-quarter grid (pure numpy).

Fiscal years are calendar years. Quarter ``q`` is counted from 2014Q1; stock ``i`` reports quarter ``q``
on ``quarter_end(q) + earnings_lag_i`` days, so "the last 8 quarters" and ``next_earnings_date`` both move
with the ``as_of`` date on a quarterly cadence.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

_Q0_YEAR = 2014
_ANCHOR_Q = (2025 - _Q0_YEAR) * 4 + 3  # 2025Q4: revenue is calibrated to the anchor market cap here
_MONTH_END = {1: 31, 2: 30, 3: 30, 4: 31}  # Mar 31, Jun 30, Sep 30, Dec 31

STATEMENT_ITEMS: dict[str, tuple[str, ...]] = {
    "income": ("revenue", "gross_profit", "operating_income", "net_income"),
    "balance": ("total_assets", "total_liabilities", "total_equity", "current_assets",
                "current_liabilities", "cash", "total_debt"),
    "cashflow": ("operating_cash_flow", "capital_expenditure", "free_cash_flow"),
}


def quarter_end(q: int) -> date:
    year, quarter = _Q0_YEAR + q // 4, q % 4 + 1
    return date(year, 3 * quarter, _MONTH_END[quarter])


def _quarter_of(d: date) -> int:
    return (d.year - _Q0_YEAR) * 4 + (d.month - 1) // 3


class _Grid:
    """Item values (n x Q) for quarters ``q0 .. q0+Q-1`` and each stock's last reported quarter."""

    def __init__(self, p: dict[str, np.ndarray], idx: np.ndarray, as_of: date) -> None:
        q_now = _quarter_of(as_of)
        self.q0 = q_now - 22
        qs = np.arange(self.q0, q_now + 2)
        self.qs = qs
        ends = np.array([np.datetime64(quarter_end(int(q)), "D") for q in qs])
        lag = p["earnings_lag"][idx].astype("timedelta64[D]")
        self.earn = ends[None, :] + lag[:, None]
        reported = self.earn <= np.datetime64(as_of, "D")
        self.last = reported.shape[1] - 1 - np.argmax(reported[:, ::-1], axis=1)  # column of last report
        growth = np.clip(p["growth"][idx], -0.15, 0.35)
        rev0 = p["anchor_market_cap"][idx] / p["ps_ratio"][idx] / 4
        trend = rev0[:, None] * (1 + growth[:, None]) ** ((qs[None, :] - _ANCHOR_Q) / 4)
        season = 1 + 0.03 * np.sin(np.pi * qs[None, :] / 2 + idx[:, None])
        noise = p["quarter_noise"][idx][:, qs % p["quarter_noise"].shape[1]]
        rev = trend * season * (1 + noise)
        gross = rev * p["gross_margin"][idx, None]
        op = gross * p["op_margin_frac"][idx, None]
        margin_noise = 1 + 2 * p["quarter_noise"][idx][:, (qs + 80) % p["quarter_noise"].shape[1]]
        net = (op * p["net_margin_frac"][idx, None] * margin_noise
               - np.where(p["loss_maker"][idx], 0.2, 0.0)[:, None] * rev)
        assets = 4 * trend * p["asset_ratio"][idx, None]
        equity = assets * p["equity_ratio"][idx, None]
        liabilities = assets - equity
        current_assets = 0.35 * assets
        ocf = net + 0.07 * rev
        capex = -p["capex_ratio"][idx, None] * rev
        self.values = {
            "revenue": rev, "gross_profit": gross, "operating_income": op, "net_income": net,
            "total_assets": assets, "total_liabilities": liabilities, "total_equity": equity,
            "current_assets": current_assets, "current_liabilities": 0.45 * liabilities,
            "cash": 0.3 * current_assets, "total_debt": 0.5 * liabilities,
            "operating_cash_flow": ocf, "capital_expenditure": capex, "free_cash_flow": ocf + capex,
        }

    def pick(self, item: str, cols: np.ndarray) -> np.ndarray:
        """``values[item][i, cols[i, j]]`` (n x J)."""
        return np.take_along_axis(self.values[item], cols, axis=1)


def stock_profiles(p: dict[str, np.ndarray], idx: np.ndarray, as_of: date, price: np.ndarray,
                   shares: np.ndarray) -> pd.DataFrame:
    """Profile fields of stocks ``idx`` (all PROFILE_COLUMNS except symbol, beta, 52w, is_etf/is_fund)."""
    g = _Grid(p, idx, as_of)
    ttm = g.last[:, None] - np.arange(3, -1, -1)[None, :]
    prev = ttm - 4
    rev, rev_prev = g.pick("revenue", ttm).sum(1), g.pick("revenue", prev).sum(1)
    net, net_prev = g.pick("net_income", ttm).sum(1), g.pick("net_income", prev).sum(1)
    eps = net / shares
    growth = np.clip(p["growth"][idx], -0.15, 0.35)
    forward_eps = eps * (1 + growth)
    with np.errstate(all="ignore"):
        pe = np.where(eps > 0, price / eps, np.nan)
        forward_pe = np.where(forward_eps > 0, price / forward_eps, np.nan)
        earnings_growth = np.where((net > 0) & (net_prev > 0), net / net_prev - 1, np.nan)
    next_col = np.minimum(g.last + 1, g.earn.shape[1] - 1)
    next_earn = g.earn[np.arange(len(idx)), next_col]
    return pd.DataFrame({
        "company_name": p["company_name"][idx],
        "sector": p["sector_label"][idx],
        "industry": p["industry"][idx],
        "exchange": p["exchange"][idx],
        "country": p["country"][idx],
        "market_cap": np.round(shares * price, 0),
        "pe_ratio": np.round(pe, 2),
        "forward_pe": np.round(forward_pe, 2),
        "dividend_yield": np.round(p["dividend_yield"][idx], 6),
        "target_mean_price": np.round(price * (1 + p["target_drift"][idx]), 2),
        "forward_eps": np.round(forward_eps, 4),
        "revenue_growth": np.round(rev / rev_prev - 1, 4),
        "earnings_growth": np.round(earnings_growth, 4),
        "profit_margin": np.round(net / rev, 4),
        "next_earnings_date": [pd.Timestamp(d).date() for d in next_earn],
    })


def statements_frame(p: dict[str, np.ndarray], idx: np.ndarray, syms: list[str], as_of: date) -> pd.DataFrame:
    """Last 8 quarterly and 4 annual statements per stock, STATEMENT_COLUMNS long layout."""
    g = _Grid(p, idx, as_of)
    n = len(idx)
    sym = np.array(syms, dtype=object)
    quarters = g.last[:, None] - np.arange(7, -1, -1)[None, :]  # n x 8, oldest first
    q_last_year_end = g.qs[g.last] - (g.qs[g.last] % 4 + 1) % 4  # last reported Q4 (quarter index)
    year_end_q = q_last_year_end[:, None] - 4 * np.arange(3, -1, -1)[None, :]  # n x 4
    frames = []
    for freq, cols, n_per in (("q", quarters, 8), ("a", year_end_q - g.q0, 4)):
        q_index = g.qs[cols] if freq == "q" else year_end_q
        period = np.array([quarter_end(int(q)) for q in q_index.ravel()], dtype=object)
        fiscal_year = (_Q0_YEAR + q_index // 4).ravel()
        fiscal_quarter = (q_index % 4 + 1).ravel() if freq == "q" else np.full(n * n_per, np.nan)
        for statement, items in STATEMENT_ITEMS.items():
            for item in items:
                if freq == "a" and statement != "balance":  # flows: sum of the fiscal year's 4 quarters
                    vals = sum(g.pick(item, cols - k) for k in range(4))
                else:
                    vals = g.pick(item, cols)
                frames.append(pd.DataFrame({
                    "symbol": np.repeat(sym, n_per), "statement": statement, "period_date": period,
                    "frequency": freq, "fiscal_year": fiscal_year, "fiscal_quarter": fiscal_quarter,
                    "item": item, "value": np.round(vals.ravel(), 0),
                }))
    out = pd.concat(frames, ignore_index=True)
    out["fiscal_quarter"] = out["fiscal_quarter"].astype("Int64")
    return out.sort_values(["symbol", "statement", "frequency", "period_date", "item"], ignore_index=True)

