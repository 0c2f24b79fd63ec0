r"""Factor stress tests: conditional factor moves from an EWMA covariance (domain spec §9.6, decision 6).

The model in one formula (``docs/risk-model.md`` has the longer story)
---------------------------------------------------------------------
Factors F = Market (SPY), the six styles (VTV, VUG, MTUM, QUAL, IWM, USMV) and Rates (TLT). Σ is the
EWMA covariance of their daily returns (λ = 0.94, the 252 sessions ending at the calculation date,
that date included). A scenario shocks a set S of factors by s (a rate shock Δy becomes the TLT return
:math:`-D\,\Delta y`, D = 17 years by default). Every factor then moves by its conditional expectation
given *all* shocks jointly,

.. math::  m = \Sigma_{\cdot S}\,\Sigma_{SS}^{-1}\, s, \qquad m_S = s \ \text{exactly},

and a portfolio with dollar exposures x gains ``correlated = x · m'`` and ``direct = x_S · s``, where
m' are the moves in the coordinates x is measured in (below).

The exposure vector x (one per portfolio; no market move is counted twice)
-------------------------------------------------------------------------
Phase 1.5 measures, per symbol, a univariate OLS beta on SPY (``Market Beta (90D)``), a univariate
OLS beta on TLT (``IR Beta``) and six ridge loadings on the style ETFs, which together span the market
(SPY's own loadings sum to ≈ 1). Adding all of them up against raw factor moves counts a market move
once through the beta, again through the styles and a third time through TLT's correlation with SPY
(the defect of issue 15). So each of them is taken *net of the market*, on both sides:

* **Market**: the market beta β_M × equity, against the market move :math:`m_M`;
* **style k**: the loading in excess of what the market beta implies, :math:`b_k - \beta_M b_{SPY,k}`
  (:math:`b_{SPY}` = SPY's own ridge loadings, same kernel and date), against the style's move in
  excess of what the market move implies, :math:`m_k - \beta_k m_M`, :math:`\beta_k = \Sigma_{kM}/\Sigma_{MM}`;
* **Rates**: the book's coefficient on TLT in a joint regression on SPY and TLT,
  :math:`\delta = (\gamma - \beta_M\gamma_{SPY}) / (1 - \gamma_{SPY}\beta_{TLT})` (Frisch–Waugh–Lovell
  on the univariate betas of the same 90 sessions: γ the book's IR beta, :math:`\gamma_{SPY}` SPY's,
  :math:`\beta_{TLT}` TLT's market beta), against :math:`m_T - \beta_T m_M`.

Why this set: the market beta is the best-measured, most-watched number of a book, and a pure market
shock then moves every book by exactly beta × equity × shock (the net-of-market moves are exactly 0,
because m and the β_k come from the same Σ); an index book is (equity, 0, …, 0), so every scenario
reaches it through the market move Σ implies and nothing else; a book long a stock and short SPY by
its beta has no market exposure left. A style or rate shock moves the market through Σ (the book earns
beta × that move) plus the excess moves on the book's excess loadings. Spread and provider betas are
other views of the same moves and are not used. The means of the factor returns are not applied: a
scenario is a move, not a forecast.

Everything here is pure: arrays / frames in, frames out, vectorised over portfolios (P × F exposures
against F × scenarios moves); the only loop is over the scenarios' small linear systems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.analytics.factors import STYLE_FACTORS

__all__ = [
    "COVARIANCE_SESSIONS",
    "DEFAULT_TLT_DURATION",
    "EWMA_DECAY",
    "FACTORS",
    "FACTOR_EXPOSURES",
    "IR_SCENARIO_FACTOR",
    "KNOWN_SCENARIO_FACTORS",
    "MIN_COVARIANCE_SESSIONS",
    "Scenario",
    "ewma_covariance",
    "implied_factor_moves",
    "scenario_shocks",
    "stress_exposures",
    "stress_summary",
    "stress_test",
]

MARKET = "Market"
RATES = "Rates"
#: The factors of the covariance, in this order: market, the six styles, rates (TLT returns).
FACTORS: tuple[str, ...] = (MARKET, *STYLE_FACTORS, RATES)
#: Factor -> the portfolio exposure (factor-definition name) it is measured by.
FACTOR_EXPOSURES: dict[str, str] = {MARKET: "Market Beta (90D)", **{k: k for k in STYLE_FACTORS}, RATES: "IR Beta"}
#: Scenario key for a change in the 10-year yield (decimal: 0.01 = +100bp); it shocks ``Rates``.
IR_SCENARIO_FACTOR = "Interest_Rate"
KNOWN_SCENARIO_FACTORS = frozenset((MARKET, *STYLE_FACTORS, IR_SCENARIO_FACTOR))
#: Modified duration (years) turning a 10-year yield change into a TLT return.
DEFAULT_TLT_DURATION = 17.0
EWMA_DECAY = 0.94
#: The covariance window: this many sessions ending at the calculation date (included).
COVARIANCE_SESSIONS = 252
#: Fewer complete factor-return sessions than this in the window: no covariance (correlated = direct).
MIN_COVARIANCE_SESSIONS = 60


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


def ewma_covariance(factor_returns: pd.DataFrame, decay: float = EWMA_DECAY,
                    min_obs: int = MIN_COVARIANCE_SESSIONS) -> pd.DataFrame:
    r"""Exponentially weighted covariance of factor returns.

    Parameters
    ----------
    factor_returns : DataFrame, shape (T, F)
        Daily factor returns (decimal), rows = sessions oldest first, **the last row being the
        calculation date** (the caller passes the 252 sessions ending there).
    decay : float
        λ: the row of age a (0 = last row) weighs :math:`\lambda^a`.
    min_obs : int
        Minimum number of complete rows (every factor finite); below it the result is all NaN.

    Returns
    -------
    DataFrame, shape (F, F)
        .. math::

            \Sigma = \sum_t w_t (f_t - \bar f_w)(f_t - \bar f_w)^\top,\quad
            w_t = \lambda^{T-1-t} / \textstyle\sum_u \lambda^{T-1-u},\quad \bar f_w = \sum_t w_t f_t

        over the complete rows (a row with a missing factor is dropped; the others keep their age), so
        Σ is positive semi-definite and the conditional moves of :func:`implied_factor_moves` equal a
        weighted least-squares regression on the same rows and weights.
    """
    R = factor_returns.to_numpy(np.float64)
    T = R.shape[0]
    ok = np.isfinite(R).all(axis=1)
    cols = factor_returns.columns
    if ok.sum() < max(min_obs, 2):
        return pd.DataFrame(np.nan, index=cols, columns=cols)
    w = decay ** np.arange(T - 1, -1, -1, dtype=np.float64)[ok]
    w /= w.sum()
    X = R[ok]
    X = X - w @ X
    return pd.DataFrame((X * w[:, None]).T @ X, index=cols, columns=cols)


def scenario_shocks(scenarios: Sequence[Scenario], duration: float = DEFAULT_TLT_DURATION) -> pd.DataFrame:
    """Shocks per scenario and factor of :data:`FACTORS` (NaN = not shocked), shape (n_scenarios, 8).

    ``Interest_Rate`` (a yield change Δy) becomes the ``Rates`` (TLT) return :math:`-D\\,Δy`.
    Unknown scenario factors raise ``ValueError`` (:func:`shared.scenarios.parse_scenarios` rejects
    them when the file is read).
    """
    S = np.full((len(scenarios), len(FACTORS)), np.nan)
    pos = {k: i for i, k in enumerate(FACTORS)}
    for i, sc in enumerate(scenarios):                                       # a handful of scenarios
        for k, v in sc.shocks.items():
            if k == IR_SCENARIO_FACTOR:
                S[i, pos[RATES]] = -duration * float(v)
            elif k in pos and k != RATES:
                S[i, pos[k]] = float(v)
            else:
                raise ValueError(f"scenario {sc.id!r}: unknown factor {k!r}")
    return pd.DataFrame(S, index=pd.Index([sc.id for sc in scenarios], name="scenario_id"),
                        columns=pd.Index(FACTORS, name="factor"))


def implied_factor_moves(cov: pd.DataFrame | None, shocks: pd.DataFrame) -> pd.DataFrame:
    r"""Conditional factor moves given each scenario's shocks: :math:`m = \Sigma_{\cdot S}\Sigma_{SS}^{-1}s`.

    Parameters
    ----------
    cov : DataFrame (F, F) or None
        Factor covariance (:func:`ewma_covariance`); None or any NaN → no covariance: every unshocked
        factor moves 0.
    shocks : DataFrame, shape (n, F)
        Shocks per scenario (rows) and factor (columns in ``cov``'s order), NaN = not shocked
        (:func:`scenario_shocks`).

    Returns
    -------
    DataFrame, shape (n, F)
        Implied moves; shocked factors take exactly their shock. All shocks are conditioned on jointly.
        A singular :math:`\Sigma_{SS}` (two shocked factors perfectly collinear) uses the
        minimum-norm least-squares solution.
    """
    s = shocks.to_numpy(np.float64)
    shocked = np.isfinite(s)
    out = np.where(shocked, s, 0.0)
    C = None if cov is None else cov.reindex(index=shocks.columns, columns=shocks.columns).to_numpy(np.float64)
    if C is not None and np.isfinite(C).all():
        for i in range(len(s)):                                              # one small system per scenario
            S = np.flatnonzero(shocked[i])
            if len(S) == 0:
                continue
            A = C[np.ix_(S, S)]
            try:
                z = np.linalg.solve(A, s[i, S])
            except np.linalg.LinAlgError:
                z = np.linalg.lstsq(A, s[i, S], rcond=None)[0]
            out[i] = C[:, S] @ z
            out[i, S] = s[i, S]
    return pd.DataFrame(out, index=shocks.index, columns=shocks.columns)


def stress_exposures(exposures: pd.DataFrame, spy_betas: Mapping[str, float] | pd.Series | None = None,
                     tlt_market_beta: float | None = None) -> pd.DataFrame:
    r"""The exposure vector x of each portfolio, in dollars, in market-first coordinates.

    Parameters
    ----------
    exposures : DataFrame, shape (P, ·)
        Dollar factor exposures (``exposure_value × equity``) by factor-definition name
        (``"Market Beta (90D)"``, the six style names, ``"IR Beta"``; other columns are ignored;
        missing columns and NaN count as 0).
    spy_betas : mapping or Series, optional
        SPY's own betas on the same date, by factor-definition name: its six ridge style loadings
        :math:`b_{SPY}` and its ``"IR Beta"`` :math:`\gamma_{SPY}` (the same kernels and windows as the
        books' betas).
    tlt_market_beta : float, optional
        TLT's ``"Market Beta (90D)"`` :math:`eta_{TLT}` on the same date.
    cov : DataFrame (F, F), optional
        Factor covariance, for what ``spy_betas`` / ``tlt_market_beta`` lack (NaN or missing):
        :math:`b_{SPY} = \Sigma_{SS}^{-1}\Sigma_{SM}`, :math:`\gamma_{SPY} = \Sigma_{MT}/\Sigma_{TT}`,
        :math:`eta_{TLT} = \Sigma_{MT}/\Sigma_{MM}`. With neither, that part is not netted.

    Returns
    -------
    DataFrame, shape (P, F)
        Columns :data:`FACTORS`:

        * ``Market`` = :math:`eta_M` (market-beta dollars);
        * each style = :math:`b_k - eta_M\, b_{SPY,k}`: the ridge loading in excess of what the book's
          market beta already implies (an index book has none);
        * ``Rates`` = :math:`\delta = (\gamma - eta_M\gamma_{SPY}) / (1 - \gamma_{SPY}eta_{TLT})`,
          the book's coefficient on TLT in a joint OLS on SPY and TLT (Frisch–Waugh–Lovell on the
          univariate betas).

        An SPY-only book is therefore (equity, 0, …, 0) exactly, a TLT-only book has δ = its value.
    """
    names = [FACTOR_EXPOSURES[k] for k in FACTORS]
    X = np.nan_to_num(exposures.reindex(columns=names).to_numpy(np.float64), nan=0.0)
    spy = pd.Series(spy_betas if spy_betas is not None else {}, dtype=np.float64).reindex(names[1:])
    b_spy = np.nan_to_num(spy.to_numpy(), nan=0.0)            # 6 styles, then IR Beta
    b_tlt = 0.0 if tlt_market_beta is None or not np.isfinite(tlt_market_beta) else float(tlt_market_beta)
    X[:, 1:-1] -= X[:, :1] * b_spy[None, :-1]
    g_spy = b_spy[-1]
    denom = 1.0 - g_spy * b_tlt
    X[:, -1] = (X[:, -1] - X[:, 0] * g_spy) / (denom if denom > 1e-9 else 1.0)
    return pd.DataFrame(X, index=exposures.index, columns=pd.Index(FACTORS, name="factor"))


def _net_of_market(moves: np.ndarray, cov: pd.DataFrame | None) -> np.ndarray:
    """Moves (n, F) in market-first coordinates: every non-market factor minus β_k × the market move."""
    out = moves.copy()
    if cov is None:
        return out
    C = cov.reindex(index=list(FACTORS), columns=list(FACTORS)).to_numpy(np.float64)
    if not np.isfinite(C).all() or C[0, 0] <= 0:
        return out
    beta = C[:, 0] / C[0, 0]
    out[:, 1:] -= moves[:, :1] * beta[None, 1:]
    return out


def stress_test(exposures: pd.DataFrame, scenarios: Sequence[Scenario], cov: pd.DataFrame | None,
                equity: pd.Series, *, duration: float = DEFAULT_TLT_DURATION, loss_cap: float = 0.99,
                spy_betas: Mapping[str, float] | pd.Series | None = None, tlt_market_beta: float | None = None,
                factor_impacts: bool = True) -> pd.DataFrame:
    r"""Direct and correlated scenario P&L for every portfolio and scenario (the module's model).

    Parameters
    ----------
    exposures : DataFrame, shape (P, ·)
        Dollar factor exposures by factor-definition name, index = ``portfolio_id`` (see
        :func:`stress_exposures`; a row of zeros — a cash-only book — gets 0 everywhere).
    scenarios : sequence of Scenario
        The scenarios to run (filter ``active`` beforehand).
    cov : DataFrame (F, F) or None
        :func:`ewma_covariance` of the :data:`FACTORS` returns on the calculation date. None / NaN
        (too little history): nothing propagates and correlated = direct.
    equity : Series
        Portfolio equity (dollars) by ``portfolio_id``.
    duration : float
        TLT's modified duration in years: a yield change Δy is the TLT return :math:`-D\,\Delta y`.
    loss_cap : float
        Losses are floored at :math:`-\text{loss\_cap}\times\text{equity}` (equity ≤ 0 or missing: no
        cap), ``loss_capped`` says where.
    spy_betas, tlt_market_beta : optional
        SPY's own style and IR betas and TLT's market beta on the same date (:func:`stress_exposures`).
    factor_impacts : bool
        Build the per-row ``factor_impacts`` dicts (a Python-level step; turn off for speed).

    Returns
    -------
    DataFrame
        One row per (portfolio, scenario), portfolio-major: ``portfolio_id, scenario_id,
        scenario_name, category, severity, direct_pnl, correlated_pnl, correlation_effect,
        market_pnl, loss_capped`` and, if requested, ``factor_impacts`` = ``{scenario factor:
        {"exposure_factor", "exposure", "shock_pct", "direct_pnl"}}`` (``Interest_Rate`` also has
        ``"tlt_return"``; its exposure is the rate dollars net of the market).

    Notes
    -----
    With x from :func:`stress_exposures`, m from :func:`implied_factor_moves` and
    :math:`m'_M = m_M,\ m'_k = m_k - \beta_k m_M` (k ≠ M, :math:`\beta_k = \Sigma_{kM}/\Sigma_{MM}`):

    .. math::

        \text{direct}_p = \sum_{k \in S} x_{p,k}\, s_k, \qquad
        \text{correlated}_p = \sum_{k \in F} x_{p,k}\, m'_k, \qquad
        \text{market\_pnl}_p = x_{p,M}\, m_M

    then both floored at the loss cap; ``correlation_effect = correlated − direct``. A pure market
    shock gives correlated = direct = market beta × equity × shock.
    """
    pids = exposures.index
    P, n = len(pids), len(scenarios)
    shocks = scenario_shocks(scenarios, duration)
    x = stress_exposures(exposures, spy_betas, tlt_market_beta).to_numpy()        # (P, F)
    s = shocks.to_numpy()                                                         # (n, F)
    moves = implied_factor_moves(cov, shocks).to_numpy()
    direct = x @ np.nan_to_num(s, nan=0.0).T                                      # (P, n)
    correlated = x @ _net_of_market(moves, cov).T
    market = x[:, :1] * moves[None, :, 0]

    eq = equity.reindex(pids).to_numpy(np.float64)
    floor = np.where(eq > 0, -loss_cap * eq, -np.inf)[:, None]
    capped = (direct < floor) | (correlated < floor)
    direct = np.maximum(direct, floor)
    correlated = np.maximum(correlated, floor)

    def tile(values: list) -> np.ndarray:
        return np.tile(np.array(values, dtype=object), P)

    out = pd.DataFrame({
        "portfolio_id": np.repeat(pids.to_numpy(), n),
        "scenario_id": tile([sc.id for sc in scenarios]),
        "scenario_name": tile([sc.name for sc in scenarios]),
        "category": tile([sc.category for sc in scenarios]),
        "severity": tile([sc.severity for sc in scenarios]),
        "direct_pnl": direct.ravel(),
        "correlated_pnl": correlated.ravel(),
        "correlation_effect": (correlated - direct).ravel(),
        "market_pnl": market.ravel(),
        "loss_capped": capped.ravel(),
    })
    if factor_impacts:
        fpos = {k: i for i, k in enumerate(FACTORS)}
        per_scen = [[(k, FACTOR_EXPOSURES[RATES if k == IR_SCENARIO_FACTOR else k],
                      fpos[RATES if k == IR_SCENARIO_FACTOR else k], float(v)) for k, v in sc.shocks.items()]
                    for sc in scenarios]
        xl = x.tolist()

        def impacts(p: int, i: int) -> dict[str, dict[str, float | str]]:
            d: dict[str, dict[str, float | str]] = {}
            for k, name, j, v in per_scen[i]:
                e = xl[p][j]
                if k == IR_SCENARIO_FACTOR:
                    d[k] = {"exposure_factor": f"{name} (net of market)", "exposure": e, "shock_pct": v * 100.0,
                            "tlt_return": -duration * v, "direct_pnl": e * (-duration * v)}
                else:
                    d[k] = {"exposure_factor": name, "exposure": e, "shock_pct": v * 100.0, "direct_pnl": e * v}
            return d

        out["factor_impacts"] = [impacts(p, i) for p in range(P) for i in range(n)]
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
