"""Factor stress tests (domain spec §9.6, decision 6).

Scenario data lives in ``shared/data/stress_scenarios.yaml`` (22 scenarios, 19 active); the math
is vectorised over portfolios with a ``(P × K)`` dollar-exposure matrix and an ``(S × K)`` shock
matrix. Fixes relative to the original system:

* the scenario factor ``"Market"`` is mapped to the exposure ``"Market Beta (90D)"`` in *both* the
  direct and the correlated path (the original never matched it in the correlated path);
* the EWMA factor correlation matrix is computed from returns the caller anchors at the calculation
  date (the original used ``date.today()``);
* ``Interest_Rate`` shocks are yield changes, converted to a TLT return with a stated duration;
* a non-positive equity disables the loss cap instead of producing a −$0.99 cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.analytics.factors import FACTOR_DEFINITIONS

__all__ = [
    "DEFAULT_TLT_DURATION",
    "IR_EXPOSURE",
    "IR_SCENARIO_FACTOR",
    "SCENARIO_TO_EXPOSURE",
    "Scenario",
    "ewma_factor_correlation",
    "stress_summary",
    "stress_test",
]


#: Scenario factor name -> portfolio exposure (factor definition) name, for the market and style
#: factors; these are also the names used by the factor correlation matrix.
SCENARIO_TO_EXPOSURE: dict[str, str] = {
    "Market": "Market Beta (90D)",
    "Value": "Value",
    "Growth": "Growth",
    "Momentum": "Momentum",
    "Quality": "Quality",
    "Size": "Size",
    "Low Volatility": "Low Volatility",
}
IR_SCENARIO_FACTOR = "Interest_Rate"
IR_EXPOSURE = "IR Beta"
#: Modified duration (years) used to turn a 10-year yield change into a TLT return.
DEFAULT_TLT_DURATION = 17.0

_DEFINITION_NAMES = frozenset(d.name for d in FACTOR_DEFINITIONS)
KNOWN_SCENARIO_FACTORS = (frozenset(SCENARIO_TO_EXPOSURE) | {IR_SCENARIO_FACTOR}
                           | (_DEFINITION_NAMES - {IR_EXPOSURE}))


@dataclass(frozen=True)
class Scenario:
    """One stress scenario. ``shocks`` maps a scenario factor name to a decimal return (or, for
    ``Interest_Rate``, a decimal yield change: 0.01 = +100bp)."""

    id: str
    name: str
    category: str
    severity: str
    active: bool
    shocks: Mapping[str, float] = field(default_factory=dict)
    source: str = ""


def ewma_factor_correlation(factor_returns: pd.DataFrame, decay: float = 0.94, min_obs: int = 30,
                            clip: float = 0.95) -> pd.DataFrame:
    r"""Exponentially weighted factor correlation matrix.

    Parameters
    ----------
    factor_returns : DataFrame, shape (T, F)
        Daily factor (ETF) returns, rows = sessions oldest first, columns = scenario factor names
        (``Market``, ``Value``, ..., ``Interest_Rate``). **The last row must be the calculation
        date** (the caller anchors the window there, e.g. 252 sessions ending at the calc date; the
        original used today's date, which made backfills wrong).
    decay : float
        λ; the weight of the row of age a (0 = last row) is :math:`\lambda^a`, normalised.
    min_obs : int
        Pairs with fewer common (pairwise-complete) rows get correlation 0.
    clip : float
        Off-diagonal values are clipped to [−clip, clip].

    Returns
    -------
    DataFrame, shape (F, F)
        Weighted Pearson correlation on each pair's common rows,

        .. math::

            \rho_{ij} = \frac{\sum_t w_t (x_t-\bar x_w)(y_t-\bar y_w)}
                             {\sqrt{\sum_t w_t (x_t-\bar x_w)^2 \sum_t w_t (y_t-\bar y_w)^2}},
            \quad w_t = \lambda^{T-1-t},

        with zero-variance pairs set to 0, diagonal 1.
    """
    R = factor_returns.to_numpy(np.float64)
    T, F = R.shape
    valid = ~np.isnan(R)
    w = decay ** np.arange(T - 1, -1, -1, dtype=np.float64)
    w /= w.sum()
    M = valid.astype(np.float64)
    cnt = np.maximum(M.sum(0), 1.0)
    Y = np.where(valid, R - np.where(valid, R, 0.0).sum(0) / cnt, 0.0)
    Mw, Yw = M * w[:, None], Y * w[:, None]
    sw = Mw.T @ M                      # Σw over common rows
    sx = Yw.T @ M                      # Σw x_i over rows where j present
    sxx = (Yw * Y).T @ M
    sxy = Yw.T @ Y
    n = M.T @ M
    vx = sw * sxx - sx * sx
    num = sw * sxy - sx * sx.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = num / np.sqrt(vx * vx.T)
    rho[~np.isfinite(rho) | (vx <= 0) | (vx.T <= 0) | (n < min_obs)] = 0.0
    np.clip(rho, -clip, clip, out=rho)
    np.fill_diagonal(rho, 1.0)
    return pd.DataFrame(rho, index=factor_returns.columns, columns=factor_returns.columns)


def stress_test(exposures: pd.DataFrame, scenarios: Sequence[Scenario], corr: pd.DataFrame | None,
                equity: pd.Series, *, duration: float = DEFAULT_TLT_DURATION, loss_cap: float = 0.99,
                factor_impacts: bool = True) -> pd.DataFrame:
    r"""Direct and correlated scenario P&L for every portfolio and scenario.

    Parameters
    ----------
    exposures : DataFrame, shape (P, ·)
        Dollar factor exposures (``exposure_value × equity``), index = ``portfolio_id``, columns =
        factor-definition names (``"Market Beta (90D)"``, ``"Value"``, ..., ``"IR Beta"``, spreads).
        Missing columns or NaN count as 0. ``"IR Beta"`` is the dollar exposure to TLT returns.
    scenarios : sequence of Scenario
        Scenarios to run (all of them; filter ``active`` beforehand, e.g. ``shared.scenarios.load_scenarios(...,
        active_only=True)``).
    corr : DataFrame or None
        Factor correlation matrix keyed by scenario factor names (:func:`ewma_factor_correlation`).
        None → identity (the correlated P&L equals the direct one).
    equity : Series
        Portfolio equity in dollars indexed by ``portfolio_id``.
    duration : float
        Modified duration of TLT in years (default 17): a yield change Δy becomes the TLT return
        :math:`-D\,\Delta y` (rates +100bp → TLT −17 %).
    loss_cap : float
        Losses are floored at :math:`-\text{loss\_cap} \times \text{equity}` (default 99 %). When the
        equity is ≤ 0 or missing no cap is applied (the original set the equity to $1 and capped at
        −$0.99, which is meaningless) and ``loss_capped`` stays False.
    factor_impacts : bool
        Build the per-row ``factor_impacts`` dicts (a Python-level step; turn off for speed).

    Returns
    -------
    DataFrame
        One row per (portfolio, scenario), portfolio-major: ``portfolio_id, scenario_id,
        scenario_name, category, severity, direct_pnl, correlated_pnl, correlation_effect, ir_pnl,
        loss_capped`` and, if requested, ``factor_impacts`` =
        ``{scenario factor: {"exposure_factor", "exposure", "shock_pct", "direct_pnl"}}`` (for
        ``Interest_Rate`` also ``"tlt_return"``).

    Notes
    -----
    Let :math:`E_{p,k}` be the dollar exposure of portfolio p to scenario factor k (``Market`` →
    ``"Market Beta (90D)"``, style names as-is, other factor-definition names as-is), :math:`s_{k}`
    the scenario's shock, :math:`\rho` the factor correlation matrix and :math:`\Delta y` the
    scenario's yield change. Then

    .. math::

        \text{IR}_p &= E_{p,\text{IR Beta}} \cdot (-D\,\Delta y) \\
        \text{direct}_p &= \sum_{k\ \text{shocked}} E_{p,k}\, s_k + \text{IR}_p \\
        \text{correlated}_p &= \sum_{S\ \text{shocked}} \sum_{F} E_{p,F}\, s_S\, \rho(S,F)
                                + \text{IR}_p

    where F runs over the market/style factors present in the correlation matrix (ρ(S,S)=1, so the
    direct term is included; a shocked factor missing from the matrix contributes only its direct
    term). Spread and Provider Beta exposures only enter when a scenario shocks them directly.
    Both totals are then floored at :math:`-\text{loss\_cap}\cdot\text{equity}` and
    ``correlation_effect = correlated − direct``.
    """
    pids = exposures.index
    P = len(pids)
    non_ir = [k for k in dict.fromkeys(k for sc in scenarios for k in sc.shocks) if k != IR_SCENARIO_FACTOR]
    keys = list(dict.fromkeys([*SCENARIO_TO_EXPOSURE, *non_ir]))
    exp_names = [SCENARIO_TO_EXPOSURE.get(k, k) for k in keys]
    E = exposures.reindex(columns=exp_names).to_numpy(np.float64)
    E = np.nan_to_num(E, nan=0.0)                                            # (P, K)
    e_ir = (exposures[IR_EXPOSURE].to_numpy(np.float64) if IR_EXPOSURE in exposures
            else np.zeros(P))
    e_ir = np.nan_to_num(e_ir, nan=0.0)

    S = len(scenarios)
    K = len(keys)
    kpos = {k: i for i, k in enumerate(keys)}
    Sh = np.zeros((S, K))
    dy = np.zeros(S)
    for s, sc in enumerate(scenarios):                                       # a handful of scenarios
        for k, v in sc.shocks.items():
            if k == IR_SCENARIO_FACTOR:
                dy[s] = v
            else:
                Sh[s, kpos[k]] = v

    rho = np.eye(K)
    if corr is not None:
        present = [k for k in keys if k in corr.index and k in corr.columns]
        if present:
            idx = [kpos[k] for k in present]
            sub = corr.loc[present, present].to_numpy(np.float64)
            sub = np.where(np.isnan(sub), 0.0, sub)
            rho[np.ix_(idx, idx)] = sub
            np.fill_diagonal(rho, 1.0)

    tlt = -duration * dy                                                     # (S,)
    ir = e_ir[:, None] * tlt[None, :]                                        # (P, S)
    direct = E @ Sh.T + ir
    correlated = E @ (Sh @ rho).T + ir

    eq = equity.reindex(pids).to_numpy(np.float64)
    floor = np.where(eq > 0, -loss_cap * eq, -np.inf)[:, None]
    capped = (direct < floor) | (correlated < floor)
    direct = np.maximum(direct, floor)
    correlated = np.maximum(correlated, floor)

    out = pd.DataFrame({
        "portfolio_id": np.repeat(pids.to_numpy(), S),
        "scenario_id": np.tile(np.array([sc.id for sc in scenarios], dtype=object), P),
        "scenario_name": np.tile(np.array([sc.name for sc in scenarios], dtype=object), P),
        "category": np.tile(np.array([sc.category for sc in scenarios], dtype=object), P),
        "severity": np.tile(np.array([sc.severity for sc in scenarios], dtype=object), P),
        "direct_pnl": direct.ravel(),
        "correlated_pnl": correlated.ravel(),
        "correlation_effect": (correlated - direct).ravel(),
        "ir_pnl": ir.ravel(),
        "loss_capped": capped.ravel(),
    })
    if factor_impacts:
        per_scen: list[list[tuple[str, str, int, float]]] = [
            [(k, SCENARIO_TO_EXPOSURE.get(k, k) if k != IR_SCENARIO_FACTOR else IR_EXPOSURE,
              -1 if k == IR_SCENARIO_FACTOR else kpos[k], float(v)) for k, v in sc.shocks.items()]
            for sc in scenarios]
        El, el_ir = E.tolist(), e_ir.tolist()

        def impacts(p: int, s: int) -> dict[str, dict[str, float | str]]:
            d: dict[str, dict[str, float | str]] = {}
            for k, name, j, v in per_scen[s]:
                if j < 0:
                    x = el_ir[p]
                    d[k] = {"exposure_factor": name, "exposure": x, "shock_pct": v * 100.0,
                            "tlt_return": -duration * v, "direct_pnl": x * (-duration * v)}
                else:
                    x = El[p][j]
                    d[k] = {"exposure_factor": name, "exposure": x, "shock_pct": v * 100.0,
                            "direct_pnl": x * v}
            return d

        out["factor_impacts"] = [impacts(p, s) for p in range(P) for s in range(S)]
    return out


def stress_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per-portfolio summary of :func:`stress_test` output.

    Returns
    -------
    DataFrame indexed by ``portfolio_id`` with ``worst_pnl`` (min correlated P&L), ``best_pnl``,
    ``mean_pnl``, ``median_pnl``, ``std_pnl`` (population std, ddof=0), ``mean_correlation_effect``,
    ``n_negative`` and ``n_positive`` (scenarios with correlated P&L < 0 / > 0), ``n_scenarios``.
    """
    g = results.groupby("portfolio_id", sort=False)
    c = g["correlated_pnl"]
    out = pd.DataFrame({
        "worst_pnl": c.min(),
        "best_pnl": c.max(),
        "mean_pnl": c.mean(),
        "median_pnl": c.median(),
        "std_pnl": c.std(ddof=0),
        "mean_correlation_effect": g["correlation_effect"].mean(),
        "n_negative": (results["correlated_pnl"] < 0).groupby(results["portfolio_id"], sort=False).sum(),
        "n_positive": (results["correlated_pnl"] > 0).groupby(results["portfolio_id"], sort=False).sum(),
        "n_scenarios": c.size(),
    })
    return out
