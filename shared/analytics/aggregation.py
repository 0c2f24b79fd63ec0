"""Portfolio factor exposures aggregated from symbol-level betas (domain spec §5.12, decision 8).

Pure math: tidy DataFrames in, tidy DataFrames out. All dates and portfolios are handled in one
sparse matrix product; there is no loop per date, portfolio or symbol.

Weighting convention (decision 8): ``weight = signed market value / portfolio equity``, lots of one
symbol already summed by the caller. Shorts carry negative weight; exposures are *not* normalised by
gross exposure, so they scale with leverage, exactly as the original system did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["exposure_dollars", "portfolio_factor_exposures"]

_KEYS = ["calculation_date", "portfolio_id"]


def portfolio_factor_exposures(weights: pd.DataFrame, symbol_betas: pd.DataFrame) -> pd.DataFrame:
    r"""Portfolio factor exposures :math:`\beta_{p,F} = \sum_i w_{p,i}\,\beta_{i,F}` for every date.

    Parameters
    ----------
    weights : DataFrame
        Tidy, columns ``[calculation_date, portfolio_id, symbol, weight]``; one row per
        (date, portfolio, symbol) — lots must already be summed (duplicates are summed here too).
        ``weight`` is signed market value / portfolio equity (dimensionless).
    symbol_betas : DataFrame
        Tidy, columns ``[calculation_date, symbol, factor, beta_value]``: the symbol-level betas of
        phase 1.5 for the *same* calculation dates (no look-back: a beta from another date is not
        used). NaN betas are treated as missing.

    Returns
    -------
    DataFrame
        Tidy, columns ``[calculation_date, portfolio_id, factor, exposure_value, coverage]``, one row per
        (date, portfolio present in ``weights``, factor present in ``symbol_betas``).

        * ``exposure_value`` = :math:`\sum_i w_i \beta_{i,F}`; a symbol without a beta for F contributes 0.
        * ``coverage`` = :math:`\sum_{i: \beta_{i,F}\,\text{known}} |w_i| / \sum_i |w_i|` in [0, 1]
          (NaN when the portfolio has no non-zero weight).

    Notes
    -----
    Implementation: the (date, portfolio) rows and the (date, symbol) columns are factorised over all
    dates at once, the weights form one ``scipy.sparse`` CSR matrix of shape
    ``(n_date_portfolios, n_date_symbols)`` which is multiplied by the dense
    ``(n_date_symbols, n_factors)`` beta matrix (NaN → 0) and by the matching "beta known"
    indicator matrix for the coverage numerator. Because a date-symbol column only holds betas of its
    own date, the product never mixes dates.
    """
    out_cols = [*_KEYS, "factor", "exposure_value", "coverage"]
    if weights.empty or symbol_betas.empty:
        return pd.DataFrame(columns=out_cols)

    betas = symbol_betas[["calculation_date", "symbol", "factor", "beta_value"]]
    betas = betas[betas["beta_value"].notna()]
    # (date, symbol) x factor dense matrix of betas; NaN where a factor beta is missing.
    wide = betas.pivot_table(index=["calculation_date", "symbol"], columns="factor", values="beta_value",
                             aggfunc="last", sort=False, observed=True)
    factors = list(wide.columns)
    B = wide.to_numpy(dtype=np.float64)
    known = ~np.isnan(B)
    B = np.where(known, B, 0.0)

    # Row index: (date, portfolio); column index: row of `wide` (-1 = symbol has no beta at all).
    w = weights["weight"].to_numpy(dtype=np.float64)
    w = np.where(np.isfinite(w), w, 0.0)
    # integer codes instead of tuples: (date, portfolio) rows in order of first appearance, (date, symbol)
    # columns looked up through one code space of dates and one of symbols shared with `wide`
    n_w = len(weights)
    d_code, d_uniq = pd.factorize(np.concatenate([weights["calculation_date"].to_numpy(dtype=object),
                                                  wide.index.get_level_values(0).to_numpy(dtype=object)]))
    s_code, _ = pd.factorize(np.concatenate([weights["symbol"].to_numpy(dtype=object),
                                             wide.index.get_level_values(1).to_numpy(dtype=object)]))
    p_code, p_uniq = pd.factorize(weights["portfolio_id"].to_numpy(dtype=object))
    row_codes, first = pd.factorize(d_code[:n_w].astype(np.int64) * max(len(p_uniq), 1) + p_code)
    first_row = np.zeros(len(first), dtype=np.int64)
    first_row[row_codes[::-1]] = np.arange(n_w - 1, -1, -1)      # each (date, portfolio)'s first row
    n_s = max(int(s_code.max(initial=-1)) + 1, 1)
    ds = d_code.astype(np.int64) * n_s + s_code
    col_codes = pd.Index(ds[n_w:]).get_indexer(ds[:n_w])
    n_rows, n_cols = len(first), len(wide)

    gross = np.bincount(row_codes, weights=np.abs(w), minlength=n_rows)
    has = col_codes >= 0
    W = sp.csr_matrix((w[has], (row_codes[has], col_codes[has])), shape=(n_rows, n_cols))
    A = sp.csr_matrix((np.abs(w[has]), (row_codes[has], col_codes[has])), shape=(n_rows, n_cols))
    expo = np.asarray(W @ B)                                   # (rows, F)
    covered = np.asarray(A @ known.astype(np.float64))         # (rows, F)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(gross[:, None] > 0, covered / gross[:, None], np.nan)

    n_f = len(factors)
    out = pd.DataFrame({
        "calculation_date": np.repeat(d_uniq[d_code[first_row]], n_f),
        "portfolio_id": np.repeat(p_uniq[p_code[first_row]], n_f),
        "factor": np.tile(np.asarray(factors, dtype=object), n_rows),
        "exposure_value": expo.ravel(),
        "coverage": coverage.ravel(),
    })
    return out[out_cols]


def exposure_dollars(exposures: pd.DataFrame, equity: pd.Series) -> pd.DataFrame:
    """Add ``exposure_dollar = exposure_value × equity`` to a tidy exposure frame.

    Parameters
    ----------
    exposures : DataFrame
        Output of :func:`portfolio_factor_exposures` (needs ``calculation_date``, ``portfolio_id``,
        ``exposure_value``).
    equity : Series
        Portfolio equity in dollars indexed by ``(calculation_date, portfolio_id)``.

    Returns
    -------
    DataFrame
        A copy of ``exposures`` with an ``exposure_dollar`` column (dollars per unit factor return).
        Portfolios without an equity value get NaN.
    """
    eq = equity.rename("equity")
    eq.index = eq.index.set_names(_KEYS)
    idx = pd.MultiIndex.from_frame(exposures[_KEYS])
    e = eq.reindex(idx).to_numpy(dtype=np.float64)
    out = exposures.copy()
    out["exposure_dollar"] = out["exposure_value"].to_numpy(dtype=np.float64) * e
    return out
