"""Sector exposure and concentration metrics (domain spec §9.3 "Sector and concentration", decision 8).

Weighting conventions (decision 8):

* sector weights: ``|MV| / equity`` (gross, so shorts add to their sector's weight);
* concentration: ``|MV| / Σ|MV|`` with lots merged per symbol.

All portfolios and dates are processed with grouped, vectorised pandas operations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.analytics.factors import normalize_sector

__all__ = ["ETF_BUCKET", "UNCLASSIFIED", "concentration", "sector_bucket", "sector_weights", "versus_benchmark"]

_KEYS = ["calculation_date", "portfolio_id"]
UNCLASSIFIED = "Unclassified"
ETF_BUCKET = "ETFs"
_UNCLASSIFIED_CLASSES = frozenset({"PRIVATE", "OPTIONS"})


def sector_bucket(sector: pd.Series, is_etf: pd.Series, investment_class: pd.Series) -> pd.Series:
    """Sector bucket per position.

    Rules, in priority order: investment class PRIVATE or OPTIONS → ``"Unclassified"``; ETF →
    ``"ETFs"``; otherwise the GICS-normalised sector (:func:`shared.analytics.factors.normalize_sector`);
    a missing/blank sector → ``"Unclassified"``.

    Unlike the original system, which *dropped* public positions with no sector, we keep them visible
    in ``"Unclassified"`` so that the sector weights of a portfolio still add up to its gross leverage.
    """
    # a handful of distinct labels and classes: each mapped once, the rows take theirs by code
    s_code, s_uniq = pd.factorize(sector)
    labels = [normalize_sector(s) for s in s_uniq]
    gics = np.array([UNCLASSIFIED if g is None else g for g in labels] + [UNCLASSIFIED], dtype=object)[s_code]
    c_code, c_uniq = pd.factorize(investment_class)
    unclassified = np.array([str(c).upper() in _UNCLASSIFIED_CLASSES for c in c_uniq] + [False])[c_code]
    etf = is_etf.fillna(False).astype(bool).to_numpy()
    out = np.where(unclassified, UNCLASSIFIED, np.where(etf, ETF_BUCKET, gics))
    return pd.Series(out, index=sector.index, name="sector", dtype=object)


def sector_weights(positions: pd.DataFrame, equity: pd.Series) -> pd.DataFrame:
    """Gross sector weights per portfolio and date.

    Parameters
    ----------
    positions : DataFrame
        Columns ``[calculation_date, portfolio_id, symbol, market_value, sector, is_etf,
        investment_class]``, positions as of each date (market value in dollars, signed).
    equity : Series
        Portfolio equity in dollars indexed by ``(calculation_date, portfolio_id)``.

    Returns
    -------
    DataFrame
        Columns ``[calculation_date, portfolio_id, sector, weight]`` with
        ``weight = Σ|MV| of the bucket / equity`` (see :func:`sector_bucket` for the buckets).
        Portfolios whose equity is missing or ≤ 0 get NaN weights (a gross weight relative to a
        non-positive equity has no meaning); they are kept so the caller can see them.
    """
    if positions.empty:
        return pd.DataFrame(columns=[*_KEYS, "sector", "weight"])
    # integer codes in the keys' own order: the groups, their order and the rows summed in each are those
    # of a groupby on the three columns (sort=True), without hashing strings and dates per row
    bucket = sector_bucket(positions["sector"], positions["is_etf"], positions["investment_class"]).to_numpy()
    d_code, d_uniq = pd.factorize(positions["calculation_date"], sort=True)
    p_code, p_uniq = pd.factorize(positions["portfolio_id"], sort=True)
    s_code, s_uniq = pd.factorize(bucket, sort=True)
    n_p, n_s = max(len(p_uniq), 1), max(len(s_uniq), 1)
    key = (d_code.astype(np.int64) * n_p + p_code) * n_s + s_code
    sums = pd.Series(positions["market_value"].abs().to_numpy(dtype=np.float64)).groupby(key, sort=True).sum()
    k = sums.index.to_numpy()
    dp, s_at = k // n_s, k % n_s
    d_at, p_at = dp // n_p, dp % n_p
    # equity of each (date, portfolio): one table lookup (equity's index is unique)
    table = np.full(len(d_uniq) * n_p, np.nan)
    e_d = pd.Index(d_uniq).get_indexer(equity.index.get_level_values(0))
    e_p = pd.Index(p_uniq).get_indexer(equity.index.get_level_values(1))
    found = (e_d >= 0) & (e_p >= 0)
    table[e_d[found] * n_p + e_p[found]] = equity.to_numpy(dtype=np.float64)[found]
    e = table[dp]
    e = np.where(e > 0, e, np.nan)
    return pd.DataFrame({"calculation_date": d_uniq.take(d_at), "portfolio_id": p_uniq.take(p_at),
                         "sector": pd.Series(s_uniq).array.take(s_at),   # str, as a frame infers it
                         "weight": sums.to_numpy() / e})


def versus_benchmark(portfolio_sector_weights: pd.DataFrame, benchmark_weights: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Over/underweight of each portfolio against a benchmark, per sector.

    Parameters
    ----------
    portfolio_sector_weights : DataFrame
        Output of :func:`sector_weights`.
    benchmark_weights : Series or DataFrame
        Benchmark (e.g. S&P 500) sector weights as fractions: a Series indexed by GICS sector name (the
        same on every date), or a DataFrame ``[calculation_date, sector, weight]`` (each date its own).

    Returns
    -------
    DataFrame
        Columns ``[calculation_date, portfolio_id, sector, portfolio_weight, benchmark_weight,
        difference]`` for every portfolio × (benchmark sectors ∪ sectors the portfolio holds); a sector
        missing on one side counts as 0. ``difference = portfolio_weight − benchmark_weight``
        (positive = overweight). A date without benchmark weights has NaN ``benchmark_weight`` and
        ``difference`` (unknown, not 0).
    """
    pw = portfolio_sector_weights
    keys = pw[_KEYS].drop_duplicates()
    if isinstance(benchmark_weights, pd.Series):
        bench = benchmark_weights.rename("benchmark_weight").rename_axis("sector").reset_index()
        bench = keys[["calculation_date"]].drop_duplicates().merge(bench, how="cross")
    else:
        bench = benchmark_weights.rename(columns={"weight": "benchmark_weight"})[
            ["calculation_date", "sector", "benchmark_weight"]]
    grid = keys.merge(bench[["calculation_date", "sector"]], on="calculation_date")
    held = pw[[*_KEYS, "sector"]]
    grid = pd.concat([grid, held], ignore_index=True).drop_duplicates([*_KEYS, "sector"])
    out = grid.merge(pw.rename(columns={"weight": "portfolio_weight"}), on=[*_KEYS, "sector"], how="left")
    out = out.merge(bench, on=["calculation_date", "sector"], how="left")
    known = out["calculation_date"].isin(set(bench["calculation_date"]))
    out["portfolio_weight"] = out["portfolio_weight"].fillna(0.0)
    out["benchmark_weight"] = out["benchmark_weight"].where(~known | out["benchmark_weight"].notna(), 0.0)
    out["difference"] = out["portfolio_weight"] - out["benchmark_weight"]
    out = out.sort_values([*_KEYS, "sector"], ignore_index=True)
    return out[[*_KEYS, "sector", "portfolio_weight", "benchmark_weight", "difference"]]


def concentration(positions: pd.DataFrame) -> pd.DataFrame:
    r"""Concentration metrics per portfolio and date.

    Parameters
    ----------
    positions : DataFrame
        Columns ``[calculation_date, portfolio_id, symbol, market_value]`` (dollars, signed; several
        lots of one symbol allowed).

    Returns
    -------
    DataFrame
        Columns ``[calculation_date, portfolio_id, hhi, effective_num_positions, top_3_concentration,
        top_10_concentration]``. With :math:`w_i = |MV_i| / \sum_j |MV_j|` where :math:`|MV_i|` is the
        sum of the lots' absolute market values of symbol *i*:

        .. math::

            HHI = 10\,000 \sum_i w_i^2, \qquad N_\text{eff} = 10\,000 / HHI,

        and top-k = sum of the k largest :math:`w_i` (all of them when fewer than k symbols). A
        portfolio whose Σ|MV| is 0 gets NaN everywhere.
    """
    cols = [*_KEYS, "hhi", "effective_num_positions", "top_3_concentration", "top_10_concentration"]
    if positions.empty:
        return pd.DataFrame(columns=cols)
    # integer codes in the keys' own order (a string groupby or sort is the slow part): the same groups,
    # the same rows in each and the same order, hence the same sums
    d_code, d_uniq = pd.factorize(positions["calculation_date"], sort=True)
    p_code, p_uniq = pd.factorize(positions["portfolio_id"], sort=True)
    s_code, s_uniq = pd.factorize(positions["symbol"])
    key = (d_code.astype(np.int64) * len(p_uniq) + p_code) * max(len(s_uniq), 1) + s_code
    abs_mv = positions["market_value"].abs().astype(np.float64).to_numpy()
    per = pd.Series(abs_mv).groupby(key, sort=False).sum()                   # lots merged, first appearance
    k = per.index.to_numpy()
    dp = k // max(len(s_uniq), 1)
    per_sym = pd.DataFrame({"dp": dp, "abs_mv": per.to_numpy()})
    tot = per_sym.groupby("dp", sort=False)["abs_mv"].transform("sum").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sym["w"] = np.where(tot > 0, per_sym["abs_mv"].to_numpy() / tot, np.nan)
    # by (date, portfolio), then w descending, NaN last, ties in row order: the order of
    # sort_values([date, portfolio, w], ascending=[True, True, False]), without its categoricals
    w = per_sym["w"].to_numpy()
    nan = np.isnan(w)
    order = np.lexsort((np.where(nan, 0.0, -w), nan, per_sym["dp"].to_numpy()))
    per_sym = per_sym.take(order).reset_index(drop=True)
    dp = per_sym["dp"].to_numpy()
    starts = np.flatnonzero(np.r_[True, dp[1:] != dp[:-1]])
    rank = np.arange(len(dp)) - np.repeat(starts, np.diff(np.r_[starts, len(dp)]))
    w = per_sym["w"].to_numpy()
    per_sym["w2"] = w * w
    per_sym["w_top3"] = np.where(rank < 3, w, 0.0)
    per_sym["w_top10"] = np.where(rank < 10, w, 0.0)
    agg = per_sym.groupby("dp", sort=True)[["w2", "w_top3", "w_top10"]].sum(min_count=1)
    out = agg.reset_index(drop=True)
    at = agg.index.to_numpy()
    out.insert(0, "portfolio_id", p_uniq.take(at % max(len(p_uniq), 1)))
    out.insert(0, "calculation_date", d_uniq.take(at // max(len(p_uniq), 1)))
    out["hhi"] = out["w2"] * 10_000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["effective_num_positions"] = 10_000.0 / out["hhi"]
    out = out.rename(columns={"w_top3": "top_3_concentration", "w_top10": "top_10_concentration"})
    empty = out["hhi"].isna()
    out.loc[empty, ["top_3_concentration", "top_10_concentration"]] = np.nan
    return out[cols]
