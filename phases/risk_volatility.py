"""Phase 6b — volatility of held symbols and of portfolios for every session of the run.

Per session d: each held symbol's (an option's underlying's) daily returns over the last 252 sessions
ending at d give realized 21/63-session volatility, the HAR-RV expected volatility over the next 21
sessions, trend and percentile (:func:`shared.analytics.volatility.volatility_metrics`), stored once per
symbol and session in ``symbol_volatility`` (a position's row is the view ``position_volatility``), all
(session, symbol) pairs of the run in one vectorised pass
(:func:`~shared.analytics.volatility.volatility_metrics_at`). A portfolio's
return series uses d's holdings as static weights, lots merged per symbol, signed MV / equity — the
same denominator as its beta (domain spec decision 8), so it is the volatility of the NAV (cash earns
0: half SPY and half cash has half SPY's volatility) — and gets the same metrics. All (session,
portfolio) pairs of a chunk are computed at once (:func:`~shared.analytics.volatility.holding_volatility_at`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._holdings import load_book, nothing_held
from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.volatility import holding_volatility_at, volatility_metrics_at
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

WINDOW = 252
#: WINDOW daily returns ending at the calculation date (the first needs the close before it).
HISTORY = History(sessions=WINDOW)
#: symbol_volatility column -> volatility_metrics column
SYMBOL_COLUMNS = {"realized_vol_21d": "realized_vol_21d", "realized_vol_63d": "realized_vol_63d",
                  "vol_daily": "vol_daily", "vol_weekly": "vol_weekly", "vol_monthly": "vol_monthly",
                  "expected_vol_21d": "expected_vol_21d", "vol_trend": "vol_trend",
                  "vol_trend_strength": "trend_strength", "vol_percentile": "vol_percentile",
                  "observations": "n_obs", "model_r_squared": "har_r_squared"}


def run(ctx: PhaseContext) -> PhaseResult:
    book = load_book(ctx)
    if book is None:
        return nothing_held(ctx)
    h = book.holdings.copy()
    h["series"] = h["underlying_symbol"].where(h["investment_class"] == "OPTIONS").fillna(h["symbol"])
    closes = book.closes
    returns = closes / closes.shift(1) - 1.0
    # once per symbol held on a session (by any position in scope), not once per position: every
    # (session, symbol) of the run in one vectorised pass over the same 252-row windows (row 0 is NaN)
    pairs = h[["calculation_date", "series"]].drop_duplicates()
    pairs = pairs[pairs["series"].isin(returns.columns)].sort_values(["calculation_date", "series"])
    sm = volatility_metrics_at(returns, pairs["calculation_date"].tolist(), pairs["series"].tolist(),
                               window=WINDOW)
    sym = pd.DataFrame({"symbol": pairs["series"].to_numpy(), "calculation_date": pairs["calculation_date"].to_numpy(),
                        **{col: sm[src].to_numpy() for col, src in SYMBOL_COLUMNS.items()}})
    # every (session, portfolio) of the chunk at once: d's holdings as static weights over the 252 returns
    # ending at d (row 0, the NaN of the first difference, left out)
    pm = holding_volatility_at(returns, h[["calculation_date", "portfolio_id", "series", "market_value"]].rename(
        columns={"series": "symbol"}), book.equity, window=WINDOW, first_row=1)
    snap = pd.DataFrame({
        "portfolio_id": pm["portfolio_id"].to_numpy(), "snapshot_date": pm["calculation_date"].to_numpy(),
        "realized_volatility_21d": pm["realized_vol_21d"].to_numpy(),
        "realized_volatility_63d": pm["realized_vol_63d"].to_numpy(),
        "expected_volatility_21d": pm["expected_vol_21d"].to_numpy(), "volatility_trend": pm["vol_trend"].to_numpy(),
        "volatility_percentile": pm["vol_percentile"].to_numpy()})
    with ctx.transaction() as s:
        # an upsert, not a replace: a run over some portfolios must not drop the rows of symbols that other
        # portfolios hold on a date (the values depend on the symbol and date only)
        n_sym = repo.upsert(s, m.SymbolVolatility, sym)
        n_snap = repo.bulk_update(s, m.PortfolioSnapshot, snap)
    nulls = int(snap["expected_volatility_21d"].isna().sum()) if not snap.empty else 0
    return PhaseResult(rows={"symbol_volatility": n_sym}, updated={"portfolio_snapshots": n_snap},
                       details={"portfolio_dates": len(snap), "portfolio_dates_without_forecast": nulls,
                                "position_dates": len(h), "history_sessions": WINDOW,
                                "median_expected_vol_21d": float(np.nanmedian(snap["expected_volatility_21d"]))
                                if len(snap) and snap["expected_volatility_21d"].notna().any() else None})


main = entrypoint("risk-volatility", "Phase 6b: realized and HAR-forecast volatility of held symbols and portfolios.",
                  run, chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
