"""Phase 6c — correlations between each portfolio's positions, for every session of the run.

Per session d: 90-session log returns ending at d; positions filtered as in the domain spec (|MV| ≥
$10,000 and ≥ 1 % of gross exposure, ≥ 20 returns; options and private positions excluded, lots merged
per symbol). The pairwise-complete correlation matrix is computed once per session for the union of the
portfolios' symbols (O(symbols)) and each portfolio takes its block; the block is repaired to PSD,
summarised (mean |ρ|, correlation-adjusted effective number of positions with the portfolio's own
weights) and clustered (average linkage, |ρ| ≥ 0.7). Every session gets a ``correlation_calculations``
row and its clusters; the pairwise matrix (upper triangle, with data points and 1 − p) is stored for the
run's last session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._holdings import load_book
from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.correlation import (
    correlation_clusters,
    effective_positions,
    pair_counts,
    pairwise_correlation,
    position_filters,
    repair_psd,
    statistical_significance,
)
from shared.storage import models as m
from shared.storage import repository as repo

WINDOW = 90
MIN_PERIODS = 30
THRESHOLD = 0.7
MIN_VALUE, MIN_WEIGHT = 10_000.0, 0.01


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    book = load_book(ctx)
    h = book.holdings[book.holdings["investment_class"] == "PUBLIC"]
    logret = np.log(book.closes / book.closes.shift(1))
    gross = book.snapshots.set_index(["snapshot_date", "portfolio_id"])["gross_exposure"]
    calcs, clusters, pairs = [], [], []
    for d, hd in h.groupby("calculation_date", sort=True):
        end = logret.index.get_indexer([pd.Timestamp(d)])[0]
        window = logret.iloc[max(1, end - WINDOW + 1): end + 1]
        merged = hd.groupby(["portfolio_id", "symbol"], as_index=False)["market_value"].sum()
        merged = merged[merged["symbol"].isin(window.columns)]
        pv = gross.xs(d, level="snapshot_date") if d in gross.index.get_level_values(0) else pd.Series(dtype=float)
        filt = position_filters(merged, pv, window[sorted(set(merged["symbol"]))],
                                min_position_value=MIN_VALUE, min_weight=MIN_WEIGHT)
        inc = filt[filt["included"]].merge(merged, on=["portfolio_id", "symbol"])
        syms = sorted(set(inc["symbol"]))
        col = {s: i for i, s in enumerate(syms)}
        C_all = pairwise_correlation(window[syms].to_numpy(), min_periods=MIN_PERIODS) if syms else np.zeros((0, 0))
        N_all = pair_counts(window[syms].to_numpy()) if syms else np.zeros((0, 0))
        for pid, grp in filt.groupby("portfolio_id"):
            mine = inc[inc["portfolio_id"] == pid]
            row = {"portfolio_id": pid, "duration_days": WINDOW, "calculation_date": d,
                   "min_position_value": MIN_VALUE, "min_portfolio_weight": MIN_WEIGHT, "filter_mode": "both",
                   "correlation_threshold": THRESHOLD, "positions_included": len(mine),
                   "positions_excluded": int(len(grp) - len(mine))}
            if len(mine) < 2:
                calcs.append({**row, "data_quality": "insufficient"})
                continue
            idx = np.array([col[s] for s in mine["symbol"]])
            C = C_all[np.ix_(idx, idx)]
            upper = np.abs(C[np.triu_indices(len(idx), 1)])
            upper = upper[np.isfinite(upper) & (upper != 0)]
            Cf = np.where(np.isfinite(C), C, 0.0)
            np.fill_diagonal(Cf, 1.0)
            Cp = repair_psd(Cf)
            w = mine["market_value"].to_numpy(dtype="float64")
            cl = correlation_clusters(Cp, mine["symbol"].to_numpy(), threshold=THRESHOLD)
            in_cl = mine.set_index("symbol").loc[cl["symbol"], "market_value"].abs().sum() if len(cl) else 0.0
            calcs.append({**row, "overall_correlation": float(upper.mean()) if len(upper) else None,
                          "effective_positions": float(effective_positions(Cp, w)),
                          "correlation_concentration_score": float(in_cl / np.abs(w).sum()),
                          "data_quality": "sufficient"})
            if len(cl):
                wmap = (mine.set_index("symbol")["market_value"].abs() / np.abs(w).sum())
                avg = {k: _mean_abs_offdiag(C, np.flatnonzero(mine["symbol"].isin(g["symbol"]).to_numpy()))
                       for k, g in cl.groupby("cluster_number")}
                clusters.append(cl.assign(portfolio_id=pid, duration_days=WINDOW, calculation_date=d,
                                          avg_correlation=cl["cluster_number"].map(avg),
                                          weight=cl["symbol"].map(wmap).to_numpy()))
            if d == rng.end:
                iu = np.triu_indices(len(idx), 1)
                r, n = C[iu], N_all[np.ix_(idx, idx)][iu]
                ok = np.isfinite(r)
                s1, s2 = mine["symbol"].to_numpy()[iu[0]], mine["symbol"].to_numpy()[iu[1]]
                pairs.append(pd.DataFrame({"portfolio_id": pid, "duration_days": WINDOW, "calculation_date": d,
                                           "symbol_1": s1[ok], "symbol_2": s2[ok], "correlation_value": r[ok],
                                           "data_points": n[ok],
                                           "statistical_significance": statistical_significance(r[ok], n[ok])}))
    calc = pd.DataFrame(calcs)
    clus = pd.concat(clusters, ignore_index=True) if clusters else pd.DataFrame()
    pair = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    pids = sorted(set(book.equity.index.get_level_values(1)))
    scope = {"portfolio_id": pids, "calculation_date": list(rng.sessions)}
    with ctx.transaction() as s:
        n_calc = repo.replace(s, m.CorrelationCalculation, calc, scope)
        n_clus = repo.replace(s, m.CorrelationCluster, clus, scope)
        n_pair = repo.replace(s, m.PairwiseCorrelation, pair, {"portfolio_id": pids, "calculation_date": [rng.end]})
    return PhaseResult(rows={"correlation_calculations": n_calc, "correlation_clusters": n_clus,
                             "pairwise_correlations": n_pair},
                       details={"window_sessions": WINDOW, "portfolio_dates": len(calc)})


def _mean_abs_offdiag(C: np.ndarray, members: np.ndarray) -> float:
    block = np.abs(C[np.ix_(members, members)])
    return float(np.nanmean(block[~np.eye(len(members), dtype=bool)]))


main = entrypoint("risk-correlations", "Phase 6c: position correlations, effective positions and clusters.", run)

if __name__ == "__main__":
    raise SystemExit(main())
