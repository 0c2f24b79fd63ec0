"""Daily returns on the NYSE session grid (domain spec §5.4, our decisions 2 and 3).

Pure functions: a wide price frame in, a wide return frame out. The index is the consecutive session grid,
so "one row" is "one session"; a return is only formed between two *adjacent* sessions that both have a
usable price. A gap in a symbol therefore yields NaN returns, never one multi-day return.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["log_returns", "simple_returns"]


def _usable(prices: pd.DataFrame) -> np.ndarray:
    """Float array of the prices with NaN where the price is missing or not strictly positive."""
    p = prices.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    p[~(p > 0.0)] = np.nan  # also catches NaN and -inf; +inf is not a price either
    p[np.isinf(p)] = np.nan
    return p


def simple_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close simple returns ``r_t = P_t / P_{t-1} - 1`` on the session grid.

    Parameters
    ----------
    prices : pandas.DataFrame, shape (T, N)
        Closes, in currency units. Index: consecutive NYSE sessions (ascending ``DatetimeIndex``);
        columns: symbols. NaN means "no price that session".

    Returns
    -------
    pandas.DataFrame, shape (T, N)
        Decimal returns (0.01 = +1 %), same index and columns. Row ``t`` is NaN when ``P_t`` or ``P_{t-1}``
        is missing or non-positive; the first row is always NaN. No return spans a gap.
    """
    p = _usable(prices)
    r = np.full_like(p, np.nan)
    if len(p) > 1:
        r[1:] = p[1:] / p[:-1] - 1.0
    return pd.DataFrame(r, index=prices.index, columns=prices.columns)


def log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Close-to-close log returns ``log(P_t / P_{t-1})``, same conventions as :func:`simple_returns`.

    Parameters
    ----------
    prices : pandas.DataFrame, shape (T, N)
        Closes; index = consecutive sessions, columns = symbols, NaN = no price.

    Returns
    -------
    pandas.DataFrame, shape (T, N)
        Log returns; NaN when either price is missing or non-positive, first row NaN.
    """
    p = _usable(prices)
    r = np.full_like(p, np.nan)
    if len(p) > 1:
        r[1:] = np.log(p[1:] / p[:-1])
    return pd.DataFrame(r, index=prices.index, columns=prices.columns)
