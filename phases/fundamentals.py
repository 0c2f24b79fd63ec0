"""Phase 2 — fundamentals: income statement, balance sheet and cash flow (quarterly and annual).

Fetched only for symbols that were never fetched, lack a profile or an earnings date, or whose next
earnings date is at least 3 days before the run's last session; the counts per rule are reported.
Derived ratios (margins, current ratio, debt/equity, free cash flow …) are stored with the statements.
A symbol shard (``--shard K/N``) decides, fetches and writes only its shard's symbols
(:meth:`PhaseContext.symbol_scope`): their statements and their ``fundamentals_last_fetched``. The book is
read as its distinct held symbols, never one row a position.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import update

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import held_symbols, position_symbols
from shared.analytics.factors import FACTOR_ETFS
from shared.analytics.fundamentals import derived_ratios, fetch_reasons
from shared.storage import models as m
from shared.storage import repository as repo


def run(ctx: PhaseContext) -> PhaseResult:
    end = ctx.range.end
    held = held_symbols(ctx)
    public = held[held["investment_class"].fillna("PUBLIC").str.upper() == "PUBLIC"]
    symbols = ctx.symbol_scope([s for s in position_symbols(public) if s not in FACTOR_ETFS])  # the shard's
    with ctx.transaction() as s:
        profiles = repo.load_profiles(s, symbols)
    etfs = set(profiles.loc[profiles["is_etf"].fillna(False).astype(bool), "symbol"]) if not profiles.empty else set()
    symbols = [x for x in symbols if x not in etfs]
    reasons = fetch_reasons(symbols, profiles, end)
    if ctx.force:
        reasons[:] = "forced"
    todo = sorted(reasons[reasons != "fresh"].index)
    statements = ctx.market_data.fundamentals.fetch_statements(todo) if todo else pd.DataFrame()
    rows = pd.concat([statements, derived_ratios(statements)], ignore_index=True) if not statements.empty else statements
    got = sorted(set(statements.get("symbol", [])))
    now = ctx.settings.current_time()
    with ctx.transaction() as s:
        n = repo.upsert(s, m.FinancialStatementItem, rows)
        if got:
            s.execute(update(m.CompanyProfile).where(m.CompanyProfile.symbol.in_(got))
                      .values(fundamentals_last_fetched=now))
    counts = reasons.value_counts().to_dict()
    ctx.log.info("fundamentals rule", extra={"fetch": len(todo), "skip": counts.get("fresh", 0)})
    return PhaseResult(rows={"financial_statements": n},
                       details={"rule": "fetch when never fetched, no profile/earnings date, or run date >= "
                                        "next earnings + 3 days", "reasons": counts, "fetched_symbols": len(got),
                                "requested": len(todo), "etfs_skipped": len(etfs)})


main = entrypoint("fundamentals", "Phase 2: fundamentals after earnings (income, balance sheet, cash flow).", run)

if __name__ == "__main__":
    raise SystemExit(main())
