"""Phase 6a — exposures: portfolio betas and factor exposures, position betas, sectors, concentration.

For every portfolio and session of the run, from the day's holdings (as of that date) and the symbol
betas phase 1.5 stored for that date:

* factor exposures (13 factors: market, provider and rate betas, six ridge styles, four spreads),
  ``exposure_value = Σ w_i β_i`` with ``w_i`` = signed market value / equity (options and private
  positions excluded), ``exposure_dollar = exposure_value × equity``; the snapshot's beta fields;
* (a position's market and interest-rate beta is its symbol's, read through the views
  ``position_market_betas`` / ``position_interest_rate_betas``: nothing stored per position);
* sector weights (|MV| / equity, GICS names) against the benchmark's, and concentration (HHI,
  effective number of positions, top-3/top-10 over |MV| merged per symbol).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._holdings import load_book, nothing_held
from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.aggregation import exposure_dollars, portfolio_factor_exposures
from shared.analytics.concentration import concentration, sector_weights, versus_benchmark
from shared.analytics.rounding import round_like_python
from shared.history import History
from shared.storage import models as m
from shared.storage import repository as repo

BENCHMARK = "SP500"
#: Holdings are marked at the last close on or before each session (the P&L kernel reads the session before).
HISTORY = History(sessions=1)
MARKET, PROVIDER, IR = "Market Beta (90D)", "Provider Beta (1Y)", "IR Beta"


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    book = load_book(ctx)
    if book is None:
        return nothing_held(ctx)
    h = book.holdings
    public = h[h["investment_class"] == "PUBLIC"]
    with ctx.transaction() as s:
        factor_ids = repo.seed_factor_definitions(s)
        betas = repo.load_symbol_betas(s, list(rng.sessions), sorted(public["symbol"].unique()))
        profiles = repo.load_profiles(s, sorted(h["symbol"].unique()))
        bench = repo.load_benchmark_weights(s, BENCHMARK, list(rng.sessions))  # each session its own

    # --- factor exposures -----------------------------------------------------------------------
    w = public.groupby(["calculation_date", "portfolio_id", "symbol"], as_index=False)["market_value"].sum()
    eq = book.equity.reindex(pd.MultiIndex.from_frame(w[["calculation_date", "portfolio_id"]])).to_numpy()
    w["weight"] = np.where(eq > 0, w["market_value"].to_numpy() / eq, np.nan)
    w = w.dropna(subset=["weight"])
    exp = exposure_dollars(portfolio_factor_exposures(w[["calculation_date", "portfolio_id", "symbol", "weight"]],
                                                      betas[["calculation_date", "symbol", "factor", "beta_value"]]),
                           book.equity)
    exp = exp.dropna(subset=["exposure_value", "exposure_dollar"])
    exp["factor_id"] = exp["factor"].map(factor_ids)

    # --- snapshot beta fields -------------------------------------------------------------------
    piv = exp.pivot_table(index=["calculation_date", "portfolio_id"], columns="factor", values="exposure_value")
    mkt = betas[betas["factor"] == MARKET][["calculation_date", "symbol", "r_squared", "observations"]]
    mw = w.merge(mkt, on=["calculation_date", "symbol"], how="inner")
    mw["absmv"] = mw["market_value"].abs()
    mw["r2w"] = mw["absmv"] * mw["r_squared"]
    g = mw.groupby(["calculation_date", "portfolio_id"])
    r2 = g["r2w"].sum() / g["absmv"].sum().where(lambda x: x > 0)
    snap = pd.DataFrame(index=book.equity.index)
    snap["beta_calculated_90d"] = piv.get(MARKET)
    snap["beta_calculated_90d_r_squared"] = r2
    snap["beta_calculated_90d_observations"] = g["observations"].min()
    snap["beta_provider_1y"] = piv.get(PROVIDER)
    snap["ir_beta"] = piv.get(IR)

    # --- sectors and concentration --------------------------------------------------------------
    prof = profiles.set_index("symbol") if not profiles.empty else pd.DataFrame(columns=["sector", "is_etf"])
    at = prof.index.get_indexer(h["symbol"])     # Series.map's lookup; -1 (no profile): the None appended
    pos = h.assign(sector=np.append(prof["sector"].to_numpy(dtype=object), None)[at],
                   is_etf=pd.Series(np.append(prof["is_etf"].to_numpy(dtype=object), None)[at],
                                    index=h.index).fillna(False).astype(bool))
    sw = sector_weights(pos[["calculation_date", "portfolio_id", "symbol", "market_value", "sector", "is_etf",
                             "investment_class"]], book.equity)
    vs = versus_benchmark(sw, bench)
    snap["sector_exposure"] = _sector_json(vs, snap.index)
    conc = concentration(h[["calculation_date", "portfolio_id", "symbol", "market_value"]])
    conc = conc.set_index(["calculation_date", "portfolio_id"])
    for c in ("hhi", "effective_num_positions", "top_3_concentration", "top_10_concentration"):
        snap[c] = conc[c]
    snap = snap.reset_index().rename(columns={"calculation_date": "snapshot_date"})

    with ctx.transaction() as s:
        n_exp = repo.replace(s, m.FactorExposure, exp, {"portfolio_id": snap["portfolio_id"].unique(),
                                                        "calculation_date": list(rng.sessions)})
        n_snap = repo.bulk_update(s, m.PortfolioSnapshot, snap)
    coverage = exp.loc[exp["factor"] == MARKET, "coverage"]
    return PhaseResult(
        rows={"factor_exposures": n_exp},
        updated={"portfolio_snapshots": n_snap},
        details={"portfolio_dates": len(snap), "holdings": len(h), "benchmark_sectors": len(bench),
                 "min_market_beta_coverage": float(coverage.min()) if len(coverage) else None},
    )


def _sector_json(vs: pd.DataFrame, index: pd.MultiIndex) -> pd.Series:
    """Per (date, portfolio): {sector: {portfolio_weight, benchmark_weight, difference}} (rounded to 6
    places as Python's ``round`` does, NaN -> None), in the rows' order. The numbers are rounded in one
    vectorised pass (:func:`round_like_python`), the rows grouped by a stable sort of their keys: one
    small dict per row and one per group, no Python work per number."""
    if vs.empty:
        return pd.Series([None] * len(index), index=index, dtype=object)
    values = []
    for c in ("portfolio_weight", "benchmark_weight", "difference"):
        x = vs[c].to_numpy(dtype="float64")
        v = round_like_python(x, 6).astype(object)
        v[np.isnan(x)] = None
        values.append(v.tolist())
    docs = [{"portfolio_weight": a, "benchmark_weight": b, "difference": c}
            for a, b, c in zip(*values, strict=True)]
    d_code, d_uniq = pd.factorize(vs["calculation_date"].to_numpy(dtype=object))
    p_code, p_uniq = pd.factorize(vs["portfolio_id"].to_numpy(dtype=object))
    order = np.argsort(d_code.astype(np.int64) * max(len(p_uniq), 1) + p_code, kind="stable")  # rows' order kept
    key = d_code[order].astype(np.int64) * max(len(p_uniq), 1) + p_code[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    sectors = vs["sector"].to_numpy(dtype=object)[order].tolist()
    docs = [docs[i] for i in order.tolist()]
    groups = [dict(zip(sectors[a:b], docs[a:b], strict=True)) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    first = order[starts]
    keys = pd.MultiIndex.from_arrays([d_uniq[d_code[first]], p_uniq[p_code[first]]])
    at = keys.get_indexer(index)
    return pd.Series([groups[i] if i >= 0 else None for i in at.tolist()], index=index, dtype=object)


main = entrypoint("risk-exposures", "Phase 6a: portfolio betas, factor exposures, sectors and concentration.", run,
                  chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
