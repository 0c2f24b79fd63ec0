"""Python's ``round`` over arrays, bit for bit (the stored JSON documents round as Python does)."""

from __future__ import annotations

import numpy as np


def round_like_python(x: np.ndarray, digits: int) -> np.ndarray:
    """``round(v, digits)`` of every element, bit for bit as Python's ``round`` gives it, vectorised.

    Python rounds the exact binary value to ``digits`` decimals (half to even) and returns the double
    nearest that decimal. Here ``k = rint(x · 10^digits)`` is that decimal's integer unless the product
    rounded onto a tie (its fraction exactly 0.5, where the rounding of the product may have decided the
    side) or is too large for a half to be representable: those few elements take Python's ``round``.
    ``k / 10^digits`` is then the double nearest ``k · 10^-digits`` (an exact integer over an exact
    power of ten, divided once), as Python's result. NaN stays NaN, ±inf and -0.0 as ``round`` keeps them.

    Parameters
    ----------
    x : ndarray of float64, any shape
    digits : int, ≥ 0

    Returns
    -------
    ndarray of float64, the shape of ``x``
    """
    x = np.asarray(x, dtype=np.float64)
    scale = 10.0 ** digits
    with np.errstate(invalid="ignore", over="ignore"):
        p = x * scale
        out = np.rint(p) / scale
        odd = np.isfinite(p) & ~((np.abs(p) < 2.0 ** 51) & (np.abs(p - np.trunc(p)) != 0.5))
    odd |= np.isfinite(x) & ~np.isfinite(p)
    if odd.any():
        flat, src = out.reshape(-1), x.reshape(-1)
        for i in np.flatnonzero(odd.reshape(-1)).tolist():
            flat[i] = round(float(src[i]), digits)
    return out
