import numpy as np
import pandas as pd
import pytest
from scipy import stats

from shared.analytics.correlation import (
    correlation_blocks,
    correlation_clusters,
    effective_positions,
    pair_counts,
    pairwise_correlation,
    position_filters,
    position_filters_at,
    repair_psd,
    statistical_significance,
)


@pytest.fixture
def log_returns(rng):
    T, N = 90, 60
    F = rng.normal(0, 0.01, (T, 3))
    L = rng.normal(0, 1, (N, 3))
    R = F @ L.T + rng.normal(0, 0.01, (T, N))
    R[rng.random((T, N)) < 0.05] = np.nan
    R[:65, 3] = np.nan            # 25 obs -> all pairs below min_periods 30
    R[:55, 4] = np.nan            # 35 obs -> some pairs below 30 after the scattered gaps
    R[:, 5] = 0.003               # zero variance -> NaN row/column like pandas
    return pd.DataFrame(R, columns=[f"S{i}" for i in range(N)])


@pytest.mark.parametrize("min_periods", [1, 30, 60])
def test_pairwise_correlation_equals_pandas(log_returns, min_periods):
    exp = log_returns.corr(min_periods=min_periods).to_numpy()
    got = pairwise_correlation(log_returns, min_periods=min_periods)
    assert list(got.columns) == list(log_returns.columns)
    got = got.to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_allclose(got, exp, rtol=0, atol=1e-10, equal_nan=True)


def test_pair_counts(log_returns):
    n = pair_counts(log_returns)
    assert n[0, 1] == (log_returns["S0"].notna() & log_returns["S1"].notna()).sum()


def test_significance_matches_pearsonr(rng):
    rs, ns, exp = [], [], []
    for n in (5, 30, 90):
        x = rng.normal(size=n)
        y = 0.3 * x + rng.normal(size=n)
        res = stats.pearsonr(x, y)
        rs.append(res.statistic)
        ns.append(n)
        exp.append(1 - res.pvalue)
    np.testing.assert_allclose(statistical_significance(np.array(rs), np.array(ns)), exp, rtol=1e-10)
    assert statistical_significance(1.0, 30) == 1.0
    assert np.isnan(statistical_significance(0.5, 2))


def test_repair_psd():
    C = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])   # not PSD
    assert np.linalg.eigvalsh(C).min() < -1e-10
    R = repair_psd(C)
    assert np.linalg.eigvalsh(R).min() > -1e-12
    np.testing.assert_allclose(np.diag(R), 1.0)
    np.testing.assert_allclose(R, R.T)
    ok = np.array([[1.0, 0.3], [0.3, 1.0]])
    np.testing.assert_array_equal(repair_psd(ok), ok)


def test_effective_positions():
    N = 4
    C = np.full((N, N), 0.5)
    np.fill_diagonal(C, 1.0)
    w_eq = np.full(N, 1.0 / N)
    assert effective_positions(C, w_eq) == pytest.approx(1.0 / (w_eq @ C @ w_eq))
    assert effective_positions(np.eye(N), np.array([0.4, 0.3, 0.2, 0.1])) == pytest.approx(1 / 0.3)
    W = np.array([w_eq, [0.7, 0.1, 0.1, 0.1]])
    out = effective_positions(C, W)
    assert out.shape == (2,)
    assert out[1] == pytest.approx(1.0 / (W[1] @ C @ W[1]))


def test_correlation_clusters():
    syms = ["A", "B", "C", "D", "E"]
    C = np.eye(5)
    C[0, 1] = C[1, 0] = 0.9
    C[2, 3] = C[3, 2] = -0.85     # strong negative counts (|rho|)
    C[0, 4] = C[4, 0] = 0.3
    out = correlation_clusters(C, syms, threshold=0.7)
    groups = out.groupby("cluster_number")["symbol"].apply(set).tolist()
    assert sorted(map(sorted, groups)) == [["A", "B"], ["C", "D"]]
    assert "E" not in set(out["symbol"])


def test_position_filters():
    pos = pd.DataFrame({"portfolio_id": [1, 1, 1, 1, 1], "symbol": ["A", "A", "B", "C", "D"],
                        "market_value": [6_000.0, 6_000.0, 9_000.0, 500_000.0, 50_000.0]})
    pv = pd.Series({1: 2_000_000.0})
    rets = pd.DataFrame({"A": np.zeros(25), "B": np.zeros(25), "C": np.zeros(25),
                         "D": np.r_[np.zeros(19), np.full(6, np.nan)]})
    out = position_filters(pos, pv, rets).set_index("symbol")
    assert not out.loc["A", "included"]                    # 12k passes value, 0.6 % fails weight
    assert out.loc["A", "passes_value"] and not out.loc["A", "passes_weight"]
    assert not out.loc["B", "passes_value"]
    assert out.loc["C", "included"]
    assert not out.loc["D", "passes_history"] and out.loc["D", "n_returns"] == 19


def test_stacked_kernels_equal_the_single_matrix_ones():
    """Phase 6c batches portfolios of equal size: each slice must equal pandas / repair_psd / the clusters."""
    from shared.analytics.correlation import (
        cluster_groups,
        correlation_clusters,
        pairwise_correlation_stack,
        repair_psd,
        repair_psd_stack,
    )

    rng = np.random.default_rng(3)
    G, T, k = 6, 90, 7
    base = rng.normal(size=(G, T, 1))
    R = 0.8 * base + rng.normal(size=(G, T, k))
    R[rng.random(R.shape) < 0.08] = np.nan
    C, n = pairwise_correlation_stack(R, 30)
    for g in range(G):
        ref = pd.DataFrame(R[g]).corr(min_periods=30).to_numpy()
        np.testing.assert_allclose(C[g], ref, rtol=0, atol=1e-12)
        assert (np.isnan(C[g]) == np.isnan(ref)).all()
        np.testing.assert_array_equal(n[g], (~np.isnan(R[g])).T.astype(float) @ (~np.isnan(R[g])).astype(float))
    Cf = np.nan_to_num(C)
    Cf[:, np.arange(k), np.arange(k)] = 1.0
    Cf[0, 0, 1] = Cf[0, 1, 0] = 0.99
    Cf[0, 0, 2] = Cf[0, 2, 0] = -0.99  # not PSD: needs the repair
    P = repair_psd_stack(Cf)
    for g in range(G):
        np.testing.assert_array_equal(P[g], repair_psd(Cf[g]))          # one eigh a matrix: the same bits
    assert not np.allclose(P[0], Cf[0]) and np.array_equal(P[1:], (Cf[1:] + Cf[1:].transpose(0, 2, 1)) / 2)
    # every matrix positive definite (one Cholesky of the stack), and singular ones (eigenvalues ±1e-16, in
    # the margin: decided by eigh like the rest): none repaired
    X = rng.normal(size=(G, T, k))
    X[1:, :, 0] = X[1:, :, 1] + X[1:, :, 2]
    S = np.stack([np.corrcoef(x.T) for x in X])
    for Q in (S[:1], S):
        np.testing.assert_array_equal(repair_psd_stack(Q), (Q + Q.transpose(0, 2, 1)) / 2)
        for g in range(len(Q)):
            np.testing.assert_array_equal(repair_psd_stack(Q)[g], repair_psd(Q[g]))
    # smallest eigenvalue -5e-9 (repaired) or -5e-11 (kept, tol -1e-10), alone in a stack
    V, _ = np.linalg.qr(rng.normal(size=(k, k)))
    for low, repaired in ((-5e-9, True), (-5e-11, False)):
        Q = ((V * np.r_[low, np.linspace(0.5, 2.0, k - 1)]) @ V.T)[None]
        Q = (Q + Q.transpose(0, 2, 1)) / 2
        np.testing.assert_array_equal(repair_psd_stack(Q)[0], repair_psd(Q[0]))
        assert np.array_equal(repair_psd_stack(Q), Q) != repaired
    groups = cluster_groups(P[0], 0.7)
    ref = correlation_clusters(P[0], [str(i) for i in range(k)], threshold=0.7)
    assert sorted(sorted(map(int, g["symbol"])) for _, g in ref.groupby("cluster_number")) == \
        sorted(sorted(int(i) for i in grp) for grp in groups)


def test_position_filters_at_equals_the_per_date_function():
    """Many dates at once == position_filters on each date's window (rows max(1, end - 89) .. end): the
    history count at the edge of 20 returns, a short window at the start, gaps, no portfolio value."""
    rng = np.random.default_rng(11)
    T = 200
    idx = pd.bdate_range("2024-01-01", periods=T)
    L = pd.DataFrame(rng.normal(0, 0.01, (T, 5)), index=idx, columns=list("ABCDE"))
    L.iloc[0] = np.nan                                                   # the first difference
    L.iloc[:150, 3] = np.nan                                             # D starts trading late
    L.iloc[100:130, 4] = np.nan
    dates = [idx[k].date() for k in (10, 25, 95, 169, 170, 171, 199)]
    rows = [(d, p, sym, float(rng.choice([-1, 1]) * rng.uniform(5e3, 2e5)))
            for d in dates for p in ("a", "b") for sym in "ABCDE" for _ in range(2)]
    pos = pd.DataFrame(rows, columns=["calculation_date", "portfolio_id", "symbol", "market_value"])
    pos = pos.groupby(["calculation_date", "portfolio_id", "symbol"], as_index=False)["market_value"].sum()
    pv = pd.Series({(d, p): 2e6 for d in dates for p in "ab"})
    pv = pv.drop((dates[2], "b"))                                         # no snapshot: no weight
    got = position_filters_at(pos, pv, L, window=90, first_row=1)
    assert got["passes_history"].any() and not got["passes_history"].all()
    for d in dates:
        end = L.index.get_loc(pd.Timestamp(d))
        ref = position_filters(pos[pos["calculation_date"] == d].drop(columns="calculation_date"),
                               pv.xs(d) if d in pv.index.get_level_values(0) else pd.Series(dtype=float),
                               L.iloc[max(1, end - 89): end + 1])
        mine = got[got["calculation_date"] == d].drop(columns="calculation_date").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, ref.reset_index(drop=True), check_dtype=False)


def test_correlation_blocks_equal_the_per_portfolio_functions():
    """(date, portfolio) pairs of several dates and sizes at once == pairwise_correlation on each date's
    window (rows max(1, end - 89) .. end), repair_psd, effective_positions and correlation_clusters pair
    by pair: a short window at the start, a planted correlated group (a cluster), gaps, one position, a
    block of 2; the kept pairs' triangles; a window shifted by one date (the misalignment bug) differs."""
    rng = np.random.default_rng(3)
    T, N = 160, 8
    base = rng.normal(0, 0.01, T)
    L = rng.normal(0, 0.01, (T, N))
    L[:, :3] += 3 * base[:, None]                                          # columns 0-2 move together
    L[0] = np.nan
    L[20:50, 5] = np.nan
    ends = np.array([40, 95, 120, 159, 159])
    members = [[0, 1, 2, 4], [0, 3], [1, 2, 5, 6, 7], [6], [0, 1, 2, 3, 4, 5, 6, 7]]
    col = np.concatenate(members)
    i_stop = np.cumsum([len(x) for x in members])
    i_start = i_stop - [len(x) for x in members]
    mv = rng.choice([-1, 1], len(col)) * rng.uniform(1e4, 1e5, len(col))
    kept = np.array([False, True, False, False, True])
    res = correlation_blocks(L, ends, col, i_start, i_stop, mv, kept, window=90, first_row=1, group_block=1)
    n_clusters = 0
    for j, e in enumerate(ends):
        cols = members[j]
        if len(cols) == 1:
            assert res.effective[j] == 1.0 and res.concentration[j] == 0.0 and np.isnan(res.overall[j])
            continue
        C = pairwise_correlation(L[max(1, e - 89): e + 1][:, cols], min_periods=30)
        iu = np.triu_indices(len(cols), 1)
        u = np.abs(C[iu])
        u = u[np.isfinite(u) & (u != 0)]
        assert res.overall[j] == pytest.approx(u.mean(), rel=1e-12)
        Cf = np.where(np.isfinite(C), C, 0.0)
        np.fill_diagonal(Cf, 1.0)
        Cp = repair_psd(Cf)
        w = mv[i_start[j]:i_stop[j]]
        assert res.effective[j] == pytest.approx(effective_positions(Cp, w), rel=1e-10)
        ref = correlation_clusters(Cp, np.array(cols), 0.7)
        of_j = res.clusters[0] == j
        mine = list(zip(res.clusters[1][of_j], col[res.clusters[2][of_j]], strict=True))
        assert [(int(a), int(b)) for a, b in mine] == list(zip(ref["cluster_number"], ref["symbol"], strict=True))
        n_clusters += ref["cluster_number"].nunique()
        aw = np.abs(w)
        for number, names in ref.groupby("cluster_number")["symbol"]:
            m = [cols.index(x) for x in names]
            at = of_j & (res.clusters[1] == number)
            block = np.abs(C[np.ix_(m, m)])
            # the blocks themselves differ from pairwise_correlation's in the last bits (summation order)
            np.testing.assert_allclose(res.clusters[3][at], np.nanmean(block[~np.eye(len(m), dtype=bool)]),
                                       rtol=1e-12)
            assert (res.clusters[4][at] == aw[m] / aw.sum()).all()
        in_cluster = sorted(cols.index(x) for x in ref["symbol"])
        assert res.concentration[j] == (aw[in_cluster].sum() / aw.sum() if in_cluster else 0.0)
        if kept[j]:
            sel = res.pairs[0] == j
            fin = np.isfinite(C[iu])
            np.testing.assert_allclose(res.pairs[3][sel], C[iu][fin], rtol=1e-12)
            assert (res.pairs[1][sel] == np.array(cols)[iu[0]][fin]).all()
    assert n_clusters >= 2 and set(res.pairs[0]) == {1, 4}
    shifted = correlation_blocks(L, ends - 1, col, i_start, i_stop, mv, kept, window=90, first_row=1)
    assert not np.allclose(shifted.overall[:3], res.overall[:3], rtol=1e-9)
    # rows before first_row are missing (row 0 is NaN anyway: first_row 3 leaves out rows 1 and 2 too)
    blanked = L.copy()
    blanked[:3] = np.nan
    late = correlation_blocks(L, ends, col, i_start, i_stop, mv, kept, window=90, first_row=3)
    ref = correlation_blocks(blanked, ends, col, i_start, i_stop, mv, kept, window=90, first_row=0)
    np.testing.assert_array_equal(late.overall, ref.overall)
    assert not np.array_equal(late.overall, res.overall, equal_nan=True)


def test_average_linkage_labels_equal_scipy():
    """The stacked replay of scipy's nearest-neighbour chain == linkage(method="average") + fcluster at the
    cut, matrix by matrix: random distances, distances on a coarse grid (ties everywhere, some exactly at
    the cut) and correlated blocks."""
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    from shared.analytics.correlation import average_linkage_labels

    rng = np.random.default_rng(5)
    cut = 1.0 - 0.7
    for trial in range(24):
        k = int(rng.integers(2, 26))
        if trial % 3 == 0:
            C = rng.uniform(-1, 1, (30, k, k))
        elif trial % 3 == 1:
            C = rng.choice([0.0, 0.3, 0.5, 0.7, 0.75, -0.8, 0.9], size=(30, k, k))
        else:
            X = rng.normal(size=(30, 60, 2)) @ rng.normal(size=(30, 2, k)) + rng.normal(size=(30, 60, k))
            C = np.stack([np.corrcoef(x.T) for x in X])
        D = np.clip(1.0 - np.abs((C + C.transpose(0, 2, 1)) / 2.0), 0.0, 1.0)
        D[:, np.arange(k), np.arange(k)] = 0.0
        lab = average_linkage_labels(D, cut)
        for g in range(len(D)):
            ref = hierarchy.fcluster(hierarchy.linkage(squareform(D[g], checks=False), method="average"), t=cut,
                                     criterion="distance")
            np.testing.assert_array_equal(lab[g][:, None] == lab[g][None, :], ref[:, None] == ref[None, :])


def test_correlation_blocks_clusters_equal_the_per_pair_functions():
    """Many pairs with several clusters each == correlation_clusters on each repaired block: the numbering
    (decreasing size, then first position: a larger cluster after a smaller one in position order comes
    first), the members, their weights, the concentration, and the average |ρ| with NaN pairs left out
    (two members of a large cluster without 30 common rows)."""
    rng = np.random.default_rng(17)
    T, N = 100, 24
    group = np.array([0, 1, 0, 2, 0, 3] * 4)                               # 0, 1, 2 correlated; 3 noise
    F = rng.normal(0, 0.01, (T, 3))
    L = rng.normal(0, 0.01, (T, N)) * np.where(group == 3, 1.0, 0.25)
    for f in range(3):
        L[:, group == f] += F[:, [f]] * (1.0 + 0.2 * rng.random(int((group == f).sum())))
    L[0] = np.nan
    L[60:, 0] = np.nan                                                     # columns 0 and 4 (group 0, 12
    L[:45, 4] = np.nan                                                     # members) share 15 rows at the end
    members = [np.sort(rng.choice(N, int(rng.integers(6, 17)), replace=False)) for _ in range(40)]
    members += [np.arange(N), np.r_[1, 3, 7, 9, 13, 15, 19, 21, 0, 2, 4, 6, 8, 10]]
    ends = rng.integers(40, T, len(members))
    ends[-2:] = T - 1
    col = np.concatenate(members)
    i_stop = np.cumsum([len(x) for x in members])
    i_start = i_stop - [len(x) for x in members]
    mv = rng.choice([-1, 1], len(col)) * rng.uniform(1e4, 1e5, len(col))
    res = correlation_blocks(L, ends, col, i_start, i_stop, mv, np.zeros(len(ends), bool), window=90, first_row=1)
    seen = {"numbers": 0, "nan": 0, "larger_later": 0}
    for j, e in enumerate(ends):
        cols = list(members[j])
        C = pairwise_correlation(L[max(1, e - 89): e + 1][:, cols], min_periods=30)
        Cf = np.where(np.isfinite(C), C, 0.0)
        np.fill_diagonal(Cf, 1.0)
        ref = correlation_clusters(repair_psd(Cf), np.array(cols), 0.7)
        of_j = res.clusters[0] == j
        assert list(zip(res.clusters[1][of_j], col[res.clusters[2][of_j]], strict=True)) == \
            list(zip(ref["cluster_number"], ref["symbol"], strict=True))
        aw = np.abs(mv[i_start[j]:i_stop[j]])
        firsts = []
        for number, names in ref.groupby("cluster_number")["symbol"]:
            m = [cols.index(x) for x in names]
            at = of_j & (res.clusters[1] == number)
            block = np.abs(C[np.ix_(m, m)])[~np.eye(len(m), dtype=bool)]
            np.testing.assert_allclose(res.clusters[3][at], np.nanmean(block), rtol=1e-12)
            assert (res.clusters[4][at] == aw[m] / aw.sum()).all()
            seen["nan"] += int(np.isnan(block).any())
            firsts.append(m[0])
        seen["numbers"] += len(firsts) >= 2
        seen["larger_later"] += any(a > b for a, b in zip(firsts[:-1], firsts[1:], strict=True))
        in_cluster = sorted(cols.index(x) for x in ref["symbol"])
        assert res.concentration[j] == (aw[in_cluster].sum() / aw.sum() if in_cluster else 0.0)
    assert seen["numbers"] >= 10 and seen["nan"] >= 1 and seen["larger_later"] >= 1, seen
