"""Phase 1.5 — symbol factor betas for every session of the run, all symbols at once (long ranges in chunks of
sessions: ``SIGMABATCH_CHUNK_SYMBOL_DATES`` symbol × session pairs each).

Reads closes from the price-cache snapshot only (never the database). For each session and symbol:
ridge loadings on the six style ETFs (90 sessions, ≥ 30 observations, α = 1 on z-scored regressors),
four spread betas (180 sessions, ≥ 60), OLS market beta vs SPY and rate beta vs TLT (90 sessions, ≥ 30)
and the provider's beta from the profile (:func:`shared.analytics.symbol_betas.compute_symbol_betas`).
Scoped runs (``--portfolio``) compute the portfolio's symbols and the factor ETFs only. A symbol shard
(``--shard K/N``) computes and writes only its shard's symbols (:meth:`PhaseContext.symbol_scope`); every
shard reads the factor ETFs as regressors, but an ETF's own rows are written by the shard of its symbol only.
"""

from __future__ import annotations

from collections import Counter

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import require_etfs, scoped_prices
from shared.analytics.symbol_betas import (
    OLS_WINDOW,
    REQUIRED_ETFS,
    RIDGE_WINDOW,
    SPREAD_WINDOW,
    compute_symbol_betas,
)
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

#: The longest regression window (180 spread returns) ending at the calculation date.
HISTORY = History(sessions=max(RIDGE_WINDOW, SPREAD_WINDOW, OLS_WINDOW))


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    prices = scoped_prices(ctx)
    require_etfs(prices, REQUIRED_ETFS, "symbol factor betas")
    # the symbols this process writes (its shard's), and the closes it regresses them on (plus the ETFs)
    own = ctx.symbol_scope(prices.columns)
    if len(own) < prices.shape[1]:
        keep = set(own) | set(REQUIRED_ETFS)
        prices = prices[[c for c in prices.columns if c in keep]]
    with ctx.transaction() as s:
        ids = repo.seed_factor_definitions(s)
        profiles = repo.load_profiles(s, own)
    provider = profiles.set_index("symbol")["beta"] if not profiles.empty else None
    # Memory grows with symbols x sessions: a long backfill goes in chunks of sessions, each committed on its
    # own (a session's betas depend on the session alone, so the rows are the same whatever the chunking).
    chunks = rng.chunks(max(ctx.settings.chunk_symbol_dates // max(prices.shape[1], 1), 1))
    n, per_method, with_market = 0, Counter(), set()
    for i, chunk in enumerate(chunks, start=1):
        betas = compute_symbol_betas(prices, list(chunk.sessions), provider_betas=provider)
        betas["factor_id"] = betas["factor"].map(ids)
        if len(own) < prices.shape[1]:  # an ETF outside the shard was only a regressor here
            betas = betas[betas["symbol"].isin(own)].reset_index(drop=True)
        with ctx.transaction() as s:
            # the run's (shard's) symbols × sessions are recomputed whole: a beta that no longer qualifies
            # loses its old row; another shard's symbols are left alone
            n += repo.replace(s, m.SymbolFactorExposure, betas, {"symbol": own,
                                                                  "calculation_date": list(chunk.sessions)})
        if len(betas):
            per_method.update(betas.groupby("calculation_method").size().to_dict())
            with_market |= set(betas.loc[betas["factor"] == "Market Beta (90D)", "symbol"])
        if len(chunks) > 1:
            ctx.log.info("chunk %d/%d done: %s", i, len(chunks), chunk)
        del betas
    return PhaseResult(rows={"symbol_factor_exposures": n},
                       details={"symbols": len(own), "sessions": len(rng.sessions), "chunks": len(chunks),
                                "rows_by_method": {k: int(v) for k, v in per_method.items()},
                                "symbols_with_market_beta": len(with_market)})


main = entrypoint("symbol-factors", "Phase 1.5: symbol factor betas (ridge, spreads, market and rate OLS) "
                  "for every session of the run.", run)

if __name__ == "__main__":
    raise SystemExit(main())
