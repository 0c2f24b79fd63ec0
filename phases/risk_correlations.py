"""Phase 6c — correlations between each portfolio's positions, for every session of the run.

Per session d: 90-session log returns ending at d; positions filtered as in the domain spec (|MV| ≥
$10,000 and ≥ 1 % of gross exposure, ≥ 20 returns; options and private positions excluded, lots merged
per symbol). Each portfolio's pairwise-complete correlation block is computed from its own columns
(O(Σ k²) time and memory; a matrix over the union of 10,000 symbols would need 800 MB per session and
mostly pairs no portfolio holds); the block is repaired to PSD,
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
        # both sorted by (portfolio_id, symbol): each portfolio is one contiguous slice
        f_pid = filt["portfolio_id"].to_numpy(dtype=object)
        pids, f_start = np.unique(f_pid, return_index=True)
        f_stop = np.r_[f_start[1:], len(f_pid)]
        i_pid = inc["portfolio_id"].to_numpy(dtype=object)
        i_sym = inc["symbol"].to_numpy(dtype=object)
        i_mv = inc["market_value"].to_numpy(dtype="float64")
        i_start, i_stop = np.searchsorted(i_pid, pids, side="left"), np.searchsorted(i_pid, pids, side="right")
        R = window.to_numpy(dtype="float64")
        col = window.columns.get_indexer(i_sym)
        last = d == rng.end
        for pid, fa, fb, a, b in zip(pids, f_start, f_stop, i_start, i_stop, strict=True):
            k = int(b - a)
            row = {"portfolio_id": pid, "duration_days": WINDOW, "calculation_date": d,
                   "min_position_value": MIN_VALUE, "min_portfolio_weight": MIN_WEIGHT, "filter_mode": "both",
                   "correlation_threshold": THRESHOLD, "positions_included": k,
                   "positions_excluded": int(fb - fa - k)}
            if k < 2:
                calcs.append({**row, "data_quality": "insufficient"})
                continue
            syms, w = i_sym[a:b], i_mv[a:b]
            Rp = R[:, col[a:b]]
            C = pairwise_correlation(Rp, min_periods=MIN_PERIODS)
            iu = np.triu_indices(k, 1)
            upper = np.abs(C[iu])
            upper = upper[np.isfinite(upper) & (upper != 0)]
            Cf = np.where(np.isfinite(C), C, 0.0)
            np.fill_diagonal(Cf, 1.0)
            Cp = repair_psd(Cf)
            cl = correlation_clusters(Cp, syms, threshold=THRESHOLD)
            gross_w = np.abs(w).sum()
            in_cl = np.abs(w[np.isin(syms, cl["symbol"].to_numpy(dtype=object))]).sum() if len(cl) else 0.0
            calcs.append({**row, "overall_correlation": float(upper.mean()) if len(upper) else None,
                          "effective_positions": float(effective_positions(Cp, w)),
                          "correlation_concentration_score": float(in_cl / gross_w),
                          "data_quality": "sufficient"})
            if len(cl):
                numbers = cl["cluster_number"].to_numpy()
                members = cl["symbol"].to_numpy(dtype=object)
                avg = {int(g): _mean_abs_offdiag(C, np.flatnonzero(np.isin(syms, members[numbers == g])))
                       for g in np.unique(numbers)}
                wmap = dict(zip(syms, np.abs(w) / gross_w, strict=True))
                clusters.append(pd.DataFrame({
                    "cluster_number": numbers, "symbol": members, "portfolio_id": pid, "duration_days": WINDOW,
                    "calculation_date": d, "avg_correlation": [avg[int(g)] for g in numbers],
                    "weight": [wmap[x] for x in members]}))
            if last:
                M = (~np.isnan(Rp)).astype(np.float64)
                r, n = C[iu], (M.T @ M)[iu]
                ok = np.isfinite(r)
                pairs.append((pid, syms[iu[0]][ok], syms[iu[1]][ok], r[ok], n[ok]))
    calc = pd.DataFrame(calcs)
    clus = pd.concat(clusters, ignore_index=True) if clusters else pd.DataFrame()
    pair = _pairs_frame(pairs, rng.end)
    pids = sorted(set(book.equity.index.get_level_values(1)))
    scope = {"portfolio_id": pids, "calculation_date": list(rng.sessions)}
    with ctx.transaction() as s:
        n_calc = repo.replace(s, m.CorrelationCalculation, calc, scope)
        n_clus = repo.replace(s, m.CorrelationCluster, clus, scope)
        n_pair = repo.replace(s, m.PairwiseCorrelation, pair, {"portfolio_id": pids, "calculation_date": [rng.end]})
    return PhaseResult(rows={"correlation_calculations": n_calc, "correlation_clusters": n_clus,
                             "pairwise_correlations": n_pair},
                       details={"window_sessions": WINDOW, "portfolio_dates": len(calc)})


def _pairs_frame(pairs: list, day) -> pd.DataFrame:
    """The last session's pairwise rows of every portfolio, built once (not a frame per portfolio)."""
    if not pairs:
        return pd.DataFrame()
    counts = [len(p[3]) for p in pairs]
    r = np.concatenate([p[3] for p in pairs])
    n = np.concatenate([p[4] for p in pairs])
    return pd.DataFrame({"portfolio_id": np.repeat(np.array([p[0] for p in pairs], dtype=object), counts),
                         "duration_days": WINDOW, "calculation_date": day,
                         "symbol_1": np.concatenate([p[1] for p in pairs]),
                         "symbol_2": np.concatenate([p[2] for p in pairs]), "correlation_value": r,
                         "data_points": n, "statistical_significance": statistical_significance(r, n)})


def _mean_abs_offdiag(C: np.ndarray, members: np.ndarray) -> float:
    block = np.abs(C[np.ix_(members, members)])
    return float(np.nanmean(block[~np.eye(len(members), dtype=bool)]))


main = entrypoint("risk-correlations", "Phase 6c: position correlations, effective positions and clusters.", run)

if __name__ == "__main__":
    raise SystemExit(main())
