"""Phase 6c — correlations between each portfolio's positions, for every session of the run.

Per session d: 90-session log returns ending at d; positions filtered as in the domain spec (|MV| ≥
$10,000 and ≥ 1 % of gross exposure, ≥ 20 returns; options and private positions excluded, lots merged
per symbol). All sessions of a chunk are computed at once, without a loop per date
(:func:`~shared.analytics.correlation.position_filters_at`,
:func:`~shared.analytics.correlation.correlation_blocks`: blocks of the same size stacked across sessions). Each portfolio's pairwise-complete correlation block is computed from its own columns
(O(Σ k²) time and memory; a matrix over the union of 10,000 symbols would need 800 MB per session and
mostly pairs no portfolio holds); the block is repaired to PSD,
summarised (mean |ρ|, correlation-adjusted effective number of positions with the portfolio's own
weights; 1 for a book with one included position) and clustered (average linkage, |ρ| ≥ 0.7). Every session gets a ``correlation_calculations``
row and its clusters; the pairwise matrix (upper triangle, with data points and 1 − p) is stored for the
sessions of the run among the latest ``SIGMABATCH_PAIRWISE_SESSIONS`` (default 1) before the last completed
session (:mod:`shared.retention`: a rule on the date, not on the run's range), and older matrices of the
run's portfolios are deleted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._holdings import load_book, nothing_held
from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.correlation import (
    CorrelationBlocks,
    correlation_blocks,
    position_filters_at,
    statistical_significance,
)
from shared.history import History
from shared.retention import first_kept_session, kept_sessions
from shared.storage import models as m
from shared.storage import repository as repo

WINDOW = 90
#: WINDOW log returns ending at the calculation date.
HISTORY = History(sessions=WINDOW)
MIN_PERIODS = 30
THRESHOLD = 0.7
MIN_VALUE, MIN_WEIGHT = 10_000.0, 0.01


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    latest = ctx.latest or ctx.run_range.end
    kept = set(kept_sessions(rng.sessions, latest, ctx.settings.pairwise_sessions))
    book = load_book(ctx)
    if book is None:
        return nothing_held(ctx)
    h = book.holdings[book.holdings["investment_class"] == "PUBLIC"]
    logret = np.log(book.closes / book.closes.shift(1))
    gross = book.snapshots.set_index(["snapshot_date", "portfolio_id"])["gross_exposure"]
    # every (session, portfolio) of the chunk at once: lots merged per symbol and session, the filters of
    # each session's 90-row window, then the blocks of all sessions batched by size
    merged = h.groupby(["calculation_date", "portfolio_id", "symbol"], as_index=False, sort=True)["market_value"].sum()
    merged = merged[merged["symbol"].isin(logret.columns)]
    filt = position_filters_at(merged, gross, logret, window=WINDOW, first_row=1,
                               min_position_value=MIN_VALUE, min_weight=MIN_WEIGHT)
    # filt has merged's rows in merged's order (both one row per key, sorted by the keys): no join needed
    key_cols = ["calculation_date", "portfolio_id", "symbol"]
    if not filt[key_cols].reset_index(drop=True).equals(merged[key_cols].reset_index(drop=True)):
        raise RuntimeError("position_filters_at changed the rows of the merged positions")
    included = filt["included"].to_numpy()
    inc = filt[included].assign(market_value=merged["market_value"].to_numpy()[included])
    # both sorted by (date, portfolio_id, symbol): each (date, portfolio) is one contiguous slice
    f_keys = pd.MultiIndex.from_frame(filt[["calculation_date", "portfolio_id"]])
    pairs_idx = f_keys.unique()
    f_code = pairs_idx.get_indexer(f_keys)
    n_filtered = np.bincount(f_code, minlength=len(pairs_idx)).astype(np.int64)
    i_code = pairs_idx.get_indexer(pd.MultiIndex.from_frame(inc[["calculation_date", "portfolio_id"]]))
    keys = np.arange(len(pairs_idx))
    i_start, i_stop = np.searchsorted(i_code, keys, side="left"), np.searchsorted(i_code, keys, side="right")
    p_date = pairs_idx.get_level_values(0).to_numpy(dtype=object)
    ends = logret.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(p_date)))
    is_kept = np.array([d in kept for d in p_date.tolist()], dtype=bool)
    res = correlation_blocks(logret.to_numpy(dtype="float64"), ends, logret.columns.get_indexer(inc["symbol"]),
                             i_start, i_stop, inc["market_value"].to_numpy(dtype="float64"), is_kept, window=WINDOW,
                             first_row=1, min_periods=MIN_PERIODS, threshold=THRESHOLD)
    p_pid = pairs_idx.get_level_values(1).to_numpy(dtype=object)
    calc, clus = _frames(p_date, p_pid, n_filtered, i_stop - i_start, inc["symbol"].to_numpy(dtype=object), res)
    pair = _pairs_frame(res.pairs, p_date, p_pid, logret.columns)
    pids = sorted(set(book.equity.index.get_level_values(1)))
    scope = {"portfolio_id": pids, "calculation_date": list(rng.sessions)}
    with ctx.transaction() as s:
        n_calc = repo.replace(s, m.CorrelationCalculation, calc, scope)
        n_clus = repo.replace(s, m.CorrelationCluster, clus, scope)
        n_pair = repo.replace(s, m.PairwiseCorrelation, pair, scope)
        pruned = repo.delete_before(s, m.PairwiseCorrelation, "calculation_date",
                                    first_kept_session(latest, ctx.settings.pairwise_sessions), {"portfolio_id": pids})
    return PhaseResult(rows={"correlation_calculations": n_calc, "correlation_clusters": n_clus,
                             "pairwise_correlations": n_pair},
                       details={"window_sessions": WINDOW, "portfolio_dates": len(calc),
                                "pairwise_sessions": [d.isoformat() for d in sorted(kept)],
                                "pairwise_rows_pruned": pruned})


def _frames(p_date: np.ndarray, p_pid: np.ndarray, n_filtered: np.ndarray, k_all: np.ndarray, i_sym: np.ndarray,
            res: CorrelationBlocks):
    """The correlation_calculations and correlation_clusters rows of every (date, portfolio) pair."""
    calc = pd.DataFrame({"portfolio_id": p_pid, "duration_days": WINDOW, "calculation_date": p_date,
                         "min_position_value": MIN_VALUE, "min_portfolio_weight": MIN_WEIGHT, "filter_mode": "both",
                         "correlation_threshold": THRESHOLD, "positions_included": k_all,
                         "positions_excluded": (n_filtered - k_all).astype(np.int64),
                         "data_quality": np.where(k_all >= 2, "sufficient", "insufficient").astype(object),
                         "overall_correlation": res.overall, "effective_positions": res.effective,
                         "correlation_concentration_score": res.concentration})
    clusters = pd.DataFrame()
    if res.clusters is not None and len(res.clusters[0]):
        j, number, row, avg, weight = res.clusters
        clusters = pd.DataFrame({"cluster_number": number, "symbol": i_sym[row], "portfolio_id": p_pid[j],
                                 "duration_days": WINDOW, "calculation_date": p_date[j], "avg_correlation": avg,
                                 "weight": weight})
    return calc, clusters


def _pairs_frame(pairs: tuple | None, p_date: np.ndarray, p_pid: np.ndarray, symbols: pd.Index) -> pd.DataFrame:
    """The kept sessions' pairwise rows of every portfolio, built once (not a frame per portfolio).

    ``pairs`` is ``(pair numbers, symbol_1 and symbol_2 as positions in symbols, r, n)``
    (:class:`~shared.analytics.correlation.CorrelationBlocks`); the id columns are categoricals (~1.6 M rows at L: no Python string per row, and
    the CSV encoder writes the same bytes)."""
    if pairs is None:
        return pd.DataFrame()
    key, s1, s2, r, n = pairs
    pids, p_code = np.unique(p_pid, return_inverse=True)
    names = pd.Index(symbols)
    return pd.DataFrame({"portfolio_id": pd.Categorical.from_codes(p_code[key], categories=pd.Index(pids)),
                         "duration_days": WINDOW, "calculation_date": p_date[key],
                         "symbol_1": pd.Categorical.from_codes(s1, categories=names),
                         "symbol_2": pd.Categorical.from_codes(s2, categories=names), "correlation_value": r,
                         "data_points": n, "statistical_significance": statistical_significance(r, n)})


main = entrypoint("risk-correlations", "Phase 6c: position correlations, effective positions and clusters.", run,
                  chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
