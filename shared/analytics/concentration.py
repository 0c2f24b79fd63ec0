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
    uniq = pd.unique(sector.dropna())
    mapping = {s: normalize_sector(s) for s in uniq}            # a handful of distinct labels
    gics = sector.map(mapping)
    cls = investment_class.astype("string").str.upper()
    etf = is_etf.fillna(False).astype(bool).to_numpy()
    out = np.where(cls.isin(_UNCLASSIFIED_CLASSES).fillna(False).to_numpy(), UNCLASSIFIED,
                   np.where(etf, ETF_BUCKET, gics.fillna(UNCLASSIFIED).to_numpy(dtype=object)))
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
    frame = pd.DataFrame({
        "calculation_date": positions["calculation_date"].to_numpy(),
        "portfolio_id": positions["portfolio_id"].to_numpy(),
        "sector": sector_bucket(positions["sector"], positions["is_etf"],
                                positions["investment_class"]).to_numpy(),
        "abs_mv": positions["market_value"].abs().to_numpy(dtype=np.float64),
    })
    g = frame.groupby([*_KEYS, "sector"], sort=True, observed=True)["abs_mv"].sum().reset_index()
    eq = equity.copy()
    eq.index = eq.index.set_names(_KEYS)
    e = eq.reindex(pd.MultiIndex.from_frame(g[_KEYS])).to_numpy(dtype=np.float64)
    e = np.where(e > 0, e, np.nan)
    g["weight"] = g["abs_mv"].to_numpy() / e
    return g[[*_KEYS, "sector", "weight"]]


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
    frame = positions[[*_KEYS, "symbol"]].copy()
    frame["abs_mv"] = positions["market_value"].abs().astype(np.float64)
    per_sym = frame.groupby([*_KEYS, "symbol"], sort=False, observed=True)["abs_mv"].sum().reset_index()
    tot = per_sym.groupby(_KEYS, sort=False, observed=True)["abs_mv"].transform("sum").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sym["w"] = np.where(tot > 0, per_sym["abs_mv"].to_numpy() / tot, np.nan)
    per_sym = per_sym.sort_values([*_KEYS, "w"], ascending=[True, True, False], ignore_index=True)
    rank = per_sym.groupby(_KEYS, sort=False, observed=True).cumcount().to_numpy()
    w = per_sym["w"].to_numpy()
    per_sym["w2"] = w * w
    per_sym["w_top3"] = np.where(rank < 3, w, 0.0)
    per_sym["w_top10"] = np.where(rank < 10, w, 0.0)
    agg = per_sym.groupby(_KEYS, sort=True, observed=True)[["w2", "w_top3", "w_top10"]].sum(min_count=1)
    out = agg.reset_index()
    out["hhi"] = out["w2"] * 10_000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out["effective_num_positions"] = 10_000.0 / out["hhi"]
    out = out.rename(columns={"w_top3": "top_3_concentration", "w_top10": "top_10_concentration"})
    empty = out["hhi"].isna()
    out.loc[empty, ["top_3_concentration", "top_10_concentration"]] = np.nan
    return out[cols]
