"""Derived ratios of financial statements, and the phase-2 fetch rule (pure)."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

#: Days after the next earnings date from which fundamentals are fetched again.
EARNINGS_LAG_DAYS = 3

KEY = ["symbol", "period_date", "frequency"]


def derived_ratios(statements: pd.DataFrame) -> pd.DataFrame:
    """Margins and balance-sheet ratios per (symbol, period, frequency), as ``statement='derived'`` items.

    gross/operating/net margin = item / revenue; working_capital = current assets − current liabilities;
    net_debt = total debt − cash; current_ratio = CA / CL; debt_to_equity = total debt / total equity;
    free_cash_flow = operating cash flow − |capital expenditure|; fcf_margin = FCF / revenue (revenue of the
    matching income statement). Ratios with a zero or missing denominator are omitted.
    """
    if statements.empty:
        return statements.iloc[0:0]
    wide = statements.pivot_table(index=KEY, columns="item", values="value", aggfunc="last")
    meta = statements.drop_duplicates(KEY).set_index(KEY)[["fiscal_year", "fiscal_quarter"]]

    def col(name: str) -> pd.Series:
        return wide[name] if name in wide else pd.Series(np.nan, index=wide.index)

    def ratio(a: pd.Series, b: pd.Series) -> pd.Series:
        return a / b.where(b.abs() > 0)

    rev = col("revenue")
    fcf = col("operating_cash_flow") - col("capital_expenditure").abs()
    derived = pd.DataFrame({
        "gross_margin": ratio(col("gross_profit"), rev),
        "operating_margin": ratio(col("operating_income"), rev),
        "net_margin": ratio(col("net_income"), rev),
        "working_capital": col("current_assets") - col("current_liabilities"),
        "net_debt": col("total_debt") - col("cash"),
        "current_ratio": ratio(col("current_assets"), col("current_liabilities")),
        "debt_to_equity": ratio(col("total_debt"), col("total_equity")),
        "free_cash_flow": fcf,
        "fcf_margin": ratio(fcf, rev),
    })
    long = derived.stack().rename("value").reset_index().rename(columns={"level_3": "item"})
    long = long[np.isfinite(long["value"].to_numpy(dtype="float64"))]
    long = long.join(meta, on=KEY)
    long["statement"] = "derived"
    return long[["symbol", "statement", "period_date", "frequency", "fiscal_year", "fiscal_quarter", "item", "value"]]


def fetch_reasons(symbols: list[str], profiles: pd.DataFrame, run_date: date) -> pd.Series:
    """Why each symbol's fundamentals are fetched (or ``"fresh"`` when they are skipped).

    Fetch when there is no profile, fundamentals were never fetched, the next earnings date is unknown, or
    ``run_date >= next_earnings_date + 3 days``.
    """
    prof = profiles.set_index("symbol") if not profiles.empty else pd.DataFrame(
        columns=["fundamentals_last_fetched", "next_earnings_date"])
    out = {}
    for s in symbols:
        if s not in prof.index:
            out[s] = "no_profile"
        elif pd.isna(prof.at[s, "fundamentals_last_fetched"]):
            out[s] = "never_fetched"
        elif pd.isna(prof.at[s, "next_earnings_date"]):
            out[s] = "no_earnings_date"
        else:
            ned = prof.at[s, "next_earnings_date"]
            ned = ned.date() if isinstance(ned, datetime | pd.Timestamp) else ned
            out[s] = "after_earnings" if (run_date - ned).days >= EARNINGS_LAG_DAYS else "fresh"
    return pd.Series(out, dtype="object")
