"""The oracle's market and book: real S&P 500 / NASDAQ closes from the ``arch`` package plus planted
synthetic stocks and factor ETFs, written as the file provider's CSVs; a few portfolios over them.

Everything here is data (numpy/pandas only): the pipeline reads it through ``--provider file:``, the oracle
(:mod:`tests.oracle.test_oracle`) reads the same CSVs and positions and recomputes the stored numbers.

* SPY = arch's S&P 500 close, QQQ = arch's NASDAQ close (2017-06-01 .. 2018-12-31, the NYSE sessions);
* the other 15 factor ETFs: returns planted on SPY's (loading + seeded noise);
* S01..S12: planted stocks (alpha, market beta, rate beta, noise);
* LATE: listed 2018-10-15 (no close before); GAPPY: no close on the 10 sessions 2018-11-29 .. 2018-12-13
  (a close carried 9 sessions is still usable in symbol metrics, 10 is stale; the book buys it after the
  gap, since phase 3 books no snapshot on a carried close older than 3 sessions); HOLEY: no close on the
  3 sessions 2018-12-17 .. 2018-12-19 (a hole: marked at its last close).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

START, END = date(2018, 11, 26), date(2018, 12, 31)
NOW = "2018-12-31T18:00:00-05:00"
HISTORY_FROM = "2017-06-01"
ETF_LOADINGS = {  # ETF -> (loading on SPY, noise sd)
    "IWM": (1.15, 0.004), "VTI": (1.0, 0.001), "TLT": (-0.25, 0.006), "IEF": (-0.1, 0.003), "SHY": (-0.01, 0.0005),
    "HYG": (0.3, 0.002), "LQD": (0.05, 0.003), "VTV": (0.9, 0.003), "VUG": (1.1, 0.003), "MTUM": (1.05, 0.005),
    "QUAL": (0.95, 0.002), "USMV": (0.7, 0.003), "DJP": (0.2, 0.008), "VNQ": (0.8, 0.007), "GLD": (-0.05, 0.007),
}
STOCKS = [f"S{i:02d}" for i in range(1, 13)]
SECTORS = ["Technology", "Healthcare", "Financial Services", "Energy", "Industrials", "Consumer Cyclical"]
GAP = (date(2018, 11, 29), date(2018, 12, 13))
HOLE = (date(2018, 12, 17), date(2018, 12, 19))
LISTED = date(2018, 10, 15)
OPTION = "S05190118C00100000"


def market() -> pd.DataFrame:
    """Wide closes (sessions x symbols), rounded to cents."""
    import arch.data.nasdaq
    import arch.data.sp500

    spx = arch.data.sp500.load()["Close"].loc[HISTORY_FROM:]
    ndx = arch.data.nasdaq.load()["Close"].loc[HISTORY_FROM:]
    idx = spx.index
    rng = np.random.default_rng(20)
    r_spy = spx.pct_change().fillna(0.0).to_numpy()
    cols = {"SPY": spx.to_numpy(), "QQQ": ndx.reindex(idx).to_numpy()}
    rets = {}
    for etf, (load, sd) in ETF_LOADINGS.items():
        rets[etf] = load * r_spy + rng.normal(0.0, sd, len(idx))
    r_tlt = rets["TLT"]
    for k, s in enumerate(STOCKS):
        beta, gamma = 0.5 + 0.1 * k, (-0.3 + 0.06 * k)
        rets[s] = 0.0002 * (k - 5) + beta * r_spy + gamma * r_tlt + rng.normal(0.0, 0.006 + 0.001 * k, len(idx))
    rets["LATE"] = 1.3 * r_spy + rng.normal(0.0, 0.01, len(idx))
    rets["GAPPY"] = 0.8 * r_spy + rng.normal(0.0, 0.008, len(idx))
    rets["HOLEY"] = 0.9 * r_spy + rng.normal(0.0, 0.009, len(idx))
    for s, r in rets.items():
        r = r.copy()
        r[0] = 0.0
        cols[s] = (30.0 + 10.0 * len(s)) * np.cumprod(1.0 + r)
    wide = pd.DataFrame(cols, index=idx).round(2)
    wide.loc[wide.index < pd.Timestamp(LISTED), "LATE"] = np.nan
    wide.loc[(wide.index >= pd.Timestamp(GAP[0])) & (wide.index <= pd.Timestamp(GAP[1])), "GAPPY"] = np.nan
    wide.loc[(wide.index >= pd.Timestamp(HOLE[0])) & (wide.index <= pd.Timestamp(HOLE[1])), "HOLEY"] = np.nan
    wide.index.name = "date"
    return wide


def write_provider(folder, wide: pd.DataFrame) -> None:
    """prices.csv, profiles.csv and sector_weights.csv for ``--provider file:folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    long = wide.stack().rename("close").reset_index().rename(columns={"level_1": "symbol"})
    long = long.dropna(subset=["close"])
    long["date"] = pd.to_datetime(long["date"]).dt.strftime("%Y-%m-%d")
    long[["date", "symbol", "close"]].to_csv(folder / "prices.csv", index=False)
    rows = []
    for k, s in enumerate(STOCKS + ["LATE", "GAPPY", "HOLEY"]):
        rows.append({"symbol": s, "company_name": f"Company {s}", "sector": SECTORS[k % len(SECTORS)],
                     "industry": f"Industry {k % 4}", "beta": round(0.6 + 0.07 * k, 2), "is_etf": "false"})
    for etf in ["SPY", "QQQ", *ETF_LOADINGS]:
        rows.append({"symbol": etf, "company_name": f"ETF {etf}", "sector": "", "industry": "",
                     "beta": 1.0 if etf == "SPY" else "", "is_etf": "true"})
    pd.DataFrame(rows).to_csv(folder / "profiles.csv", index=False)
    pd.DataFrame({"benchmark_code": "SP500",
                  "sector": ["Information Technology", "Health Care", "Financials", "Energy", "Industrials",
                             "Consumer Discretionary", "Utilities"],
                  "weight": [0.25, 0.15, 0.15, 0.1, 0.1, 0.15, 0.1]}).to_csv(folder / "sector_weights.csv", index=False)


def book(wide: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(portfolios, positions, equity changes)."""
    portfolios = pd.DataFrame([
        {"id": "or-long", "name": "Long, 14 names, a contribution", "equity_balance": 1_000_000.0},
        {"id": "or-ls", "name": "Long/short, a lot closed in the window", "equity_balance": 500_000.0},
        {"id": "or-opt", "name": "Options, a late listing, gaps", "equity_balance": 300_000.0},
    ]).assign(currency="USD", is_active=True)
    first = START

    def px(sym: str, d: date) -> float:
        s = wide[sym].loc[: pd.Timestamp(d)].dropna()
        return float(s.iloc[-1])

    lots = []

    def add(pid, sym, value, entry=first, ptype=None, exit_date=None, exit_price=None, iclass="PUBLIC",
            underlying=None, entry_price=None):
        price = entry_price if entry_price is not None else round(px(sym, entry) * 0.995, 2)
        qty = float(round(value / price))
        if ptype is None:
            ptype = "LONG" if qty > 0 else "SHORT"
        lots.append({"portfolio_id": pid, "symbol": sym, "quantity": qty, "entry_price": price, "entry_date": entry,
                     "position_type": ptype, "investment_class": iclass, "underlying_symbol": underlying,
                     "exit_date": exit_date, "exit_price": exit_price})

    for k, s in enumerate(STOCKS):
        add("or-long", s, 55_000 + 4_000 * k)
    add("or-long", "LATE", 40_000, entry=date(2018, 12, 3))
    add("or-long", "QQQ", 60_000, entry=date(2018, 12, 10))
    add("or-ls", "S01", 200_000)
    add("or-ls", "S02", 150_000)
    add("or-ls", "S03", -120_000)
    add("or-ls", "QQQ", -100_000)
    add("or-ls", "S04", 90_000, exit_date=date(2018, 12, 14), exit_price=round(px("S04", date(2018, 12, 14)) + 0.37, 2))
    add("or-opt", "SPY", 150_000)
    add("or-opt", "GAPPY", 50_000, entry=date(2018, 12, 14))
    add("or-opt", "HOLEY", 45_000)
    add("or-opt", "LATE", 30_000, entry=date(2018, 11, 28))
    add("or-opt", OPTION, 1_500, ptype="LC", iclass="OPTIONS", underlying="S05", entry_price=3.2)
    lots[-1]["quantity"] = 5.0
    positions = pd.DataFrame(lots)
    flows = pd.DataFrame([
        {"portfolio_id": "or-long", "change_date": date(2018, 12, 17), "amount": 100_000.0},
        {"portfolio_id": "or-ls", "change_date": date(2018, 12, 25), "amount": -50_000.0},  # a holiday: lands on 12-26
    ])
    return portfolios, positions, flows
