"""The latent-factor model behind :class:`~shared.providers.synthetic.SyntheticMarket` (pure numpy).

Daily **log** returns of the 17 factor ETFs are a linear map of independent Gaussian shocks::

    r_etf[t] = mu + z[t] @ A            z[t, j] ~ N(0, sd[j]^2), independent

with shocks for the market, the six styles (STYLE_FACTORS order), the 10-year yield, the 2y-10y curve,
credit, commodities, gold, real estate, and one small specific shock per ETF. The 10-year yield change
(percentage points) is ``z @ a10`` and loads positively on the market shock, so bond ETFs
(``-duration * dy / 100``) are negatively correlated with SPY. Because everything is linear in ``z``,
the ETF covariance is exactly ``A.T @ diag(sd^2) @ A`` (see :func:`etf_covariance`).
"""

from __future__ import annotations

import numpy as np

from shared.analytics.factors import FACTOR_ETFS

TRADING_DAYS = 252

#: Common shocks (annualised vol, except the yield shocks which are in percentage points per day).
SHOCKS: tuple[str, ...] = ("market", "value", "growth", "momentum", "quality", "size", "low_vol",
                           "rates", "curve", "credit", "commodity", "gold", "reit")
_ANNUAL_VOL = {"market": 0.16, "value": 0.05, "growth": 0.06, "momentum": 0.08, "quality": 0.04,
               "size": 0.07, "low_vol": 0.05, "credit": 0.04, "commodity": 0.16, "gold": 0.13, "reit": 0.12}
_DAILY_PP = {"rates": 0.055, "curve": 0.03}  # yield shocks, percentage points per session

#: 10y yield change (pp) per unit market log return: +1% SPY day -> about +1.5 bp.
RATES_ON_MARKET = 1.5

#: Per ETF: annual drift, loadings on common shocks, durations on the 10y/2y changes, specific vol.
_ETF_SPEC: dict[str, dict] = {
    "SPY": {"mu": 0.075, "market": 1.0, "spec": 0.005},
    "QQQ": {"mu": 0.09, "market": 1.12, "growth": 0.6, "spec": 0.03},
    "IWM": {"mu": 0.06, "market": 1.1, "size": 1.0, "spec": 0.02},
    "VTI": {"mu": 0.075, "market": 1.02, "size": 0.1, "spec": 0.008},
    "TLT": {"mu": 0.035, "d10": 17.0, "spec": 0.02},
    "IEF": {"mu": 0.03, "d10": 4.5, "d2": 3.0, "spec": 0.01},
    "SHY": {"mu": 0.025, "d2": 1.9, "spec": 0.004},
    "HYG": {"mu": 0.05, "market": 0.35, "d10": 4.0, "credit": 1.0, "spec": 0.01},
    "LQD": {"mu": 0.04, "market": 0.08, "d10": 8.5, "credit": 0.3, "spec": 0.01},
    "VTV": {"mu": 0.07, "market": 0.92, "value": 1.0, "spec": 0.015},
    "VUG": {"mu": 0.085, "market": 1.08, "growth": 1.0, "spec": 0.015},
    "MTUM": {"mu": 0.08, "market": 1.0, "momentum": 1.0, "spec": 0.02},
    "QUAL": {"mu": 0.08, "market": 0.98, "quality": 1.0, "spec": 0.015},
    "USMV": {"mu": 0.065, "market": 0.72, "low_vol": 1.0, "spec": 0.015},
    "DJP": {"mu": 0.02, "market": 0.3, "commodity": 1.0, "spec": 0.02},
    "VNQ": {"mu": 0.06, "market": 0.95, "d10": 5.0, "reit": 1.0, "spec": 0.02},
    "GLD": {"mu": 0.05, "market": 0.05, "d10": 3.0, "gold": 1.0, "spec": 0.01},
}

#: ETF closes on the calibration anchor (see ``synthetic.ANCHOR``); the history is back-solved from it.
ETF_ANCHOR_PRICE = {"SPY": 590.0, "QQQ": 515.0, "IWM": 225.0, "VTI": 290.0, "TLT": 88.0, "IEF": 94.0,
                    "SHY": 82.0, "HYG": 79.0, "LQD": 108.0, "VTV": 172.0, "VUG": 410.0, "MTUM": 215.0,
                    "QUAL": 178.0, "USMV": 91.0, "DJP": 33.0, "VNQ": 89.0, "GLD": 245.0}

#: Yield model (percent): level at the origin, long-run mean, daily mean reversion.
YIELD_START = {"DGS10": 2.12, "DGS2": 0.66, "DGS3MO": 0.03}
YIELD_MEAN = {"DGS10": 3.4, "DGS2": 2.9, "DGS3MO": 2.6}
YIELD_KAPPA = 0.0015


def shock_sd() -> np.ndarray:
    """Daily standard deviation of every shock: the common ones then one specific shock per ETF."""
    sd = [_ANNUAL_VOL[s] / np.sqrt(TRADING_DAYS) if s in _ANNUAL_VOL else _DAILY_PP[s] for s in SHOCKS]
    sd += [_ETF_SPEC[e]["spec"] / np.sqrt(TRADING_DAYS) for e in FACTOR_ETFS]
    return np.asarray(sd)


def yield_loadings() -> tuple[np.ndarray, np.ndarray]:
    """Loadings of the 10y and 2y yield changes (pp per session) on the shocks."""
    n = len(SHOCKS) + len(FACTOR_ETFS)
    a10 = np.zeros(n)
    a10[SHOCKS.index("market")] = RATES_ON_MARKET
    a10[SHOCKS.index("rates")] = 1.0
    a2 = 1.1 * a10
    a2[SHOCKS.index("curve")] = 1.0
    return a10, a2


def etf_loadings() -> tuple[np.ndarray, np.ndarray]:
    """``(mu, A)``: daily drift per ETF (17,) and the shock loading matrix (n_shocks, 17)."""
    a10, a2 = yield_loadings()
    n_common = len(SHOCKS)
    loadings = np.zeros((n_common + len(FACTOR_ETFS), len(FACTOR_ETFS)))
    mu = np.zeros(len(FACTOR_ETFS))
    for k, etf in enumerate(FACTOR_ETFS):
        spec = _ETF_SPEC[etf]
        mu[k] = spec["mu"] / TRADING_DAYS
        for j, shock in enumerate(SHOCKS):
            loadings[j, k] += spec.get(shock, 0.0)
        loadings[:, k] -= spec.get("d10", 0.0) / 100.0 * a10 + spec.get("d2", 0.0) / 100.0 * a2
        loadings[n_common + k, k] = 1.0
    # Second-order (convexity) drift correction so mu is the drift of the *simple* return.
    var = (loadings**2 * shock_sd()[:, None] ** 2).sum(axis=0)
    return mu - var / 2.0, loadings


def etf_covariance() -> np.ndarray:
    """Exact daily covariance (17 x 17, FACTOR_ETFS order) of the ETF log returns."""
    _, loadings = etf_loadings()
    return loadings.T @ (shock_sd()[:, None] ** 2 * loadings)


def simulate_factors(seed: int, n_sessions: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ETF log returns (n_sessions, 17) and yield levels (percent) for the whole horizon."""
    rng = np.random.default_rng([seed, 0])
    sd = shock_sd()
    z = rng.standard_normal((n_sessions, sd.size)) * sd
    mu, loadings = etf_loadings()
    returns = mu + z @ loadings
    a10, a2 = yield_loadings()
    d10, d2 = z @ a10, z @ a2
    d3m = 0.8 * d2 + rng.standard_normal(n_sessions) * 0.01
    yields = {}
    for name, shocks in (("DGS10", d10), ("DGS2", d2), ("DGS3MO", d3m)):
        level = np.empty(n_sessions)
        y = YIELD_START[name]
        mean = YIELD_MEAN[name]
        for t in range(n_sessions):  # 8k steps, once per process
            y = y + YIELD_KAPPA * (mean - y) + shocks[t]
            y = max(y, 0.01)
            level[t] = y
        yields[name] = level
    return returns, yields
