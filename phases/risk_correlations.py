"""Phase 6c — correlations between each portfolio's positions, for every session of the run.

Per session d (all sessions of a chunk at once, no loop per date): 90-session log returns ending at d; positions filtered as in the domain spec (|MV| ≥
$10,000 and ≥ 1 % of gross exposure, ≥ 20 returns; options and private positions excluded, lots merged
per symbol). Each portfolio's pairwise-complete correlation block is computed from its own columns
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
    _BLOCK,
    cluster_groups,
    pair_counts,
    pairwise_correlation,
    pairwise_correlation_stack,
    position_filters_at,
    repair_psd_stack,
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
    inc = filt[filt["included"]].merge(merged, on=["calculation_date", "portfolio_id", "symbol"])
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
    calc, clus, pr = _sessions(p_date, pairs_idx.get_level_values(1).to_numpy(dtype=object), n_filtered, i_start,
                               i_stop, inc["symbol"].to_numpy(dtype=object), inc["market_value"].to_numpy(dtype="float64"),
                               logret.to_numpy(dtype="float64"), ends, logret.columns.get_indexer(inc["symbol"]), is_kept)
    pair = _pairs_frame(pr, logret.columns)
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


#: (date, portfolio) blocks of one size computed at once: bounds the (G, WINDOW, k) stack and its temporaries
GROUP_BLOCK = 2048


def _sessions(p_date: np.ndarray, p_pid: np.ndarray, n_filtered: np.ndarray, i_start: np.ndarray,
              i_stop: np.ndarray, i_sym: np.ndarray, i_mv: np.ndarray, L: np.ndarray, ends: np.ndarray,
              col: np.ndarray, kept: np.ndarray):
    """Every (session, portfolio) pair of the chunk at once: blocks are batched by their number of positions k
    across sessions.

    Pair j is (``p_date[j]``, ``p_pid[j]``); its included positions are rows ``i_start[j]:i_stop[j]`` of
    the included frame (symbols ``i_sym``, merged MV ``i_mv``, column numbers ``col`` in ``L``, the (T, N)
    log returns of the whole cached window); its window is the WINDOW rows of ``L`` ending at ``ends[j]``
    (row 0, the first difference's NaN, and rows before it are missing, which pairwise-complete statistics
    drop). Each size group is a stack of (k, k) blocks — of different sessions, in chunks of GROUP_BLOCK:
    correlations by batched masked Gram products, one stacked ``eigh`` for the PSD check/repair, mean
    |ρ| and effective positions by reductions over the stack. Only pairs with some pair of positions at
    |ρ| ≥ threshold after repair go through the clustering (no pair within the cut means no cluster).
    ``kept[j]``: store the pair's upper triangle. Same values as the per-portfolio functions of
    :mod:`shared.analytics.correlation` on each session's window, up to floating-point summation order.
    """
    P = len(p_pid)
    k_all = (i_stop - i_start).astype(np.int64)
    overall, eff, conc = np.full(P, np.nan), np.full(P, np.nan), np.full(P, np.nan)
    cl_rows: list[tuple] = []  # (pair index, cluster number, symbols, avg |rho|, weights)
    pair_parts = []
    single = k_all == 1                                 # one position: no pair, but one effective position
    eff[single], conc[single] = 1.0, 0.0
    offsets = np.arange(-WINDOW + 1, 1)
    for k in np.unique(k_all[k_all >= 2]).tolist():
        for b0 in range(0, int((k_all == k).sum()), GROUP_BLOCK):
            idx = np.flatnonzero(k_all == k)[b0:b0 + GROUP_BLOCK]
            pos = i_start[idx][:, None] + np.arange(k)[None, :]             # (G, k) rows of the included frame
            rows = ends[idx][:, None] + offsets[None, :]                    # (G, T) rows of L
            Rp = np.where((rows >= 1)[:, :, None], L[np.maximum(rows, 0)[:, :, None], col[pos][:, None, :]],
                          np.nan)                                           # (G, T, k)
            _size_group(k, idx, pos, Rp, i_sym, i_mv, col, kept, overall, eff, conc, cl_rows, pair_parts)
    calc = pd.DataFrame({"portfolio_id": p_pid, "duration_days": WINDOW, "calculation_date": p_date,
                         "min_position_value": MIN_VALUE, "min_portfolio_weight": MIN_WEIGHT, "filter_mode": "both",
                         "correlation_threshold": THRESHOLD, "positions_included": k_all,
                         "positions_excluded": (n_filtered - k_all).astype(np.int64),
                         "data_quality": np.where(k_all >= 2, "sufficient", "insufficient").astype(object),
                         "overall_correlation": overall, "effective_positions": eff,
                         "correlation_concentration_score": conc})
    pairs = None
    if pair_parts:
        key = np.concatenate([p[0] for p in pair_parts])
        order = np.argsort(key, kind="stable")                          # pair order, triangle order within
        pairs = (p_date, p_pid, key[order], *(np.concatenate([p[i] for p in pair_parts])[order] for i in range(1, 5)))
    clusters = pd.DataFrame()
    if cl_rows:
        cl_rows.sort(key=lambda x: x[0])                                # pair order (stable: numbers)
        sizes = [len(x[2]) for x in cl_rows]
        js = [x[0] for x in cl_rows]
        clusters = pd.DataFrame({
            "cluster_number": np.repeat([x[1] for x in cl_rows], sizes).astype(np.int64),
            "symbol": np.concatenate([x[2] for x in cl_rows]),
            "portfolio_id": np.repeat(p_pid[js], sizes), "duration_days": WINDOW,
            "calculation_date": np.repeat(p_date[js], sizes), "avg_correlation": np.repeat([x[3] for x in cl_rows], sizes),
            "weight": np.concatenate([x[4] for x in cl_rows])})
    return calc, clusters, pairs


def _size_group(k, idx, pos, Rp, i_sym, i_mv, col, kept, overall, eff, conc, cl_rows, pair_parts) -> None:
    """The (date, portfolio) pairs ``idx`` with k included positions each (returns ``Rp``, (G, T, k)):
    fills ``overall``, ``eff``, ``conc`` at ``idx`` and appends their clusters and kept pairwise rows."""
    if k <= _BLOCK:
        C, N = pairwise_correlation_stack(Rp, MIN_PERIODS)
    else:
        C = np.stack([pairwise_correlation(x, min_periods=MIN_PERIODS) for x in Rp])
        N = np.stack([pair_counts(x) for x in Rp])
    iu = np.triu_indices(k, 1)
    U = C[:, iu[0], iu[1]]                                              # (G, m)
    A = np.abs(U)
    ok = np.isfinite(A) & (A != 0)
    cnt = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall[idx] = np.where(cnt > 0, np.where(ok, A, 0.0).sum(1) / cnt, np.nan)
    diag = np.arange(k)
    Cf = np.where(np.isfinite(C), C, 0.0)
    Cf[:, diag, diag] = 1.0
    Cp = repair_psd_stack(Cf)
    W = i_mv[pos]
    gross_w = np.abs(W).sum(1)
    quad = np.einsum("pi,pij,pj->p", W, Cp, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff[idx] = np.where((quad > 0) & (gross_w > 0), gross_w * gross_w / quad, np.nan)
        conc[idx] = 0.0 / gross_w
    D = 1.0 - np.abs(Cp)
    D = np.clip((D + D.transpose(0, 2, 1)) / 2.0, 0.0, 1.0)
    cand = (D[:, iu[0], iu[1]] <= 1.0 - THRESHOLD).any(1)
    for g in np.flatnonzero(cand).tolist():
        j = int(idx[g])
        groups = cluster_groups(Cp[g], THRESHOLD)
        if not groups:
            continue
        syms, w = i_sym[pos[g]], W[g]
        aw = np.abs(w)
        conc[j] = float(aw[np.sort(np.concatenate(groups))].sum() / gross_w[g])
        for number, members in enumerate(groups, start=1):
            cl_rows.append((j, number, syms[members], _mean_abs_offdiag(C[g], members), aw[members] / gross_w[g]))
    keep = kept[idx]
    if keep.any():
        fin = np.isfinite(U) & keep[:, None]
        S = col[pos]                                                    # symbols as column numbers of L
        key = np.broadcast_to(idx[:, None], U.shape)[fin]
        pair_parts.append((key, S[:, iu[0]][fin], S[:, iu[1]][fin], U[fin], N[:, iu[0], iu[1]][fin]))


def _pairs_frame(pairs: tuple | None, symbols: pd.Index) -> pd.DataFrame:
    """The kept sessions' pairwise rows of every portfolio, built once (not a frame per portfolio).

    ``pairs`` is ``(pair dates, pair portfolio ids, pair numbers, symbol_1 and symbol_2 as positions in
    symbols, r, n)``; the id columns are categoricals (~1.6 M rows at L: no Python string per row, and
    the CSV encoder writes the same bytes)."""
    if pairs is None:
        return pd.DataFrame()
    p_date, p_pid, key, s1, s2, r, n = pairs
    pids, p_code = np.unique(p_pid, return_inverse=True)
    names = pd.Index(symbols)
    return pd.DataFrame({"portfolio_id": pd.Categorical.from_codes(p_code[key], categories=pd.Index(pids)),
                         "duration_days": WINDOW, "calculation_date": p_date[key],
                         "symbol_1": pd.Categorical.from_codes(s1, categories=names),
                         "symbol_2": pd.Categorical.from_codes(s2, categories=names), "correlation_value": r,
                         "data_points": n, "statistical_significance": statistical_significance(r, n)})


def _mean_abs_offdiag(C: np.ndarray, members: np.ndarray) -> float:
    block = np.abs(C[np.ix_(members, members)])
    return float(np.nanmean(block[~np.eye(len(members), dtype=bool)]))


main = entrypoint("risk-correlations", "Phase 6c: position correlations, effective positions and clusters.", run,
                  chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
