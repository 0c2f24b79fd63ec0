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
against F × scenarios moves); the only loop is over the scenarios' small linear systems. The ``*_dates``
/ ``*_stack`` / ``*s`` variants do the same for many calculation dates at once (dates × portfolios ×
factors, one stacked solve per scenario over all dates), equal to a loop over the single-date functions.
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
    "ewma_covariances",
    "implied_factor_moves",
    "implied_factor_moves_stack",
    "scenario_shocks",
    "stress_exposures",
    "stress_summary",
    "stress_summary_blocks",
    "stress_test",
    "stress_exposures_dates",
    "stress_test_dates",
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
    shocks = scenario_shocks(scenarios, duration)
    x = stress_exposures(exposures, spy_betas, tlt_market_beta).to_numpy()        # (P, F)
    s = shocks.to_numpy()                                                         # (n, F)
    moves = implied_factor_moves(cov, shocks).to_numpy()
    direct = x @ np.nan_to_num(s, nan=0.0).T                                      # (P, n)
    correlated = x @ _net_of_market(moves, cov).T
    market = x[:, :1] * moves[None, :, 0]

    eq = equity.reindex(pids).to_numpy(np.float64)
    out = _scenario_frame("portfolio_id", pids.to_numpy(), scenarios, direct, correlated, market, eq, loss_cap)
    if factor_impacts:
        out["factor_impacts"] = _factor_impacts(x, scenarios, duration)
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


# --- many calculation dates at once -------------------------------------------------------------------

def ewma_covariances(factor_returns: pd.DataFrame, ends: Sequence[int] | np.ndarray, *,
                     window: int = COVARIANCE_SESSIONS, decay: float = EWMA_DECAY,
                     min_obs: int = MIN_COVARIANCE_SESSIONS) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`ewma_covariance` of the ``window`` rows ending at each of several rows, in one stacked pass.

    Parameters
    ----------
    factor_returns : DataFrame, shape (T, F)
        Daily factor returns (decimal), rows = sessions oldest first.
    ends : sequence of int, length D
        Row numbers (0-based, each in ``0 .. T-1``) of the calculation dates; date d's window is rows
        ``max(0, end_d - window + 1) .. end_d``, exactly the frame the single-date function is given.
    decay, min_obs : float, int
        As in :func:`ewma_covariance`.

    Returns
    -------
    cov : ndarray, shape (D, F, F)
        Σ of each date (all NaN where fewer than ``max(min_obs, 2)`` complete rows), equal to
        :func:`ewma_covariance` of that date's window up to floating-point summation order.
    used : ndarray of int, shape (D,)
        Complete rows (every factor finite) in each window.

    Notes
    -----
    The windows are gathered into a (D, window, F) stack; rows before the first session are padded with
    NaN, i.e. incomplete, which the rule drops. A row of age a (0 = the date's own row) weighs
    :math:`\lambda^a` in every window, so a short window has the same weights as the single-date call.
    """
    R = factor_returns.to_numpy(np.float64)
    ends = np.asarray(ends, dtype=np.int64)
    D, F = len(ends), R.shape[1]
    if D == 0:
        return np.empty((0, F, F)), np.zeros(0, dtype=np.int64)
    rows = ends[:, None] + np.arange(-window + 1, 1)[None, :]                # (D, window)
    X = np.where((rows >= 0)[:, :, None], R[np.maximum(rows, 0)], np.nan)      # (D, window, F)
    ok = np.isfinite(X).all(axis=2)                                            # (D, window)
    used = ok.sum(1)
    w = np.where(ok, decay ** np.arange(window - 1, -1, -1, dtype=np.float64)[None, :], 0.0)
    w /= np.where(used > 0, w.sum(1), 1.0)[:, None]
    X = np.where(ok[:, :, None], X, 0.0)
    X -= np.einsum("dt,dtf->df", w, X)[:, None, :]
    X *= ok[:, :, None]
    cov = np.einsum("dtf,dtg->dfg", X * w[:, :, None], X)
    cov[used < max(min_obs, 2)] = np.nan
    return cov, used


def implied_factor_moves_stack(covs: np.ndarray, shocks: pd.DataFrame) -> np.ndarray:
    r""":func:`implied_factor_moves` for a stack of covariances: :math:`m_d = \Sigma_{d,\cdot S}\Sigma_{d,SS}^{-1}s`.

    Parameters
    ----------
    covs : ndarray, shape (D, F, F)
        Factor covariances in ``shocks``' column order (:func:`ewma_covariances`); a date whose Σ has a
        NaN has no covariance: its unshocked factors move 0.
    shocks : DataFrame, shape (n, F)
        :func:`scenario_shocks`.

    Returns
    -------
    ndarray, shape (D, n, F)
        The moves of every date and scenario; shocked factors take exactly their shock. One stacked solve
        per scenario over all dates with a covariance (a singular :math:`\Sigma_{SS}` on some date: the
        minimum-norm least-squares solution there).
    """
    s = shocks.to_numpy(np.float64)
    shocked = np.isfinite(s)
    D, n = covs.shape[0], len(s)
    out = np.broadcast_to(np.where(shocked, s, 0.0), (D, n, s.shape[1])).copy()
    good = np.flatnonzero(np.isfinite(covs).all(axis=(1, 2)))
    if len(good) == 0:
        return out
    C = covs[good]
    for i in range(n):                                                       # one stacked system per scenario
        S = np.flatnonzero(shocked[i])
        if len(S) == 0:
            continue
        A = C[:, S][:, :, S]                                                 # (G, k, k)
        b = np.broadcast_to(s[i, S], (len(good), len(S)))[..., None]
        try:
            z = np.linalg.solve(A, b)[..., 0]
        except np.linalg.LinAlgError:                                        # some date singular: one by one
            z = np.stack([_solve_or_lstsq(a, s[i, S]) for a in A])
        m = np.einsum("gfk,gk->gf", C[:, :, S], z)
        m[:, S] = s[i, S]
        out[good, i] = m
    return out


def _solve_or_lstsq(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def stress_exposures_dates(exposures: pd.DataFrame, date_code: np.ndarray, n_dates: int, *,
                           spy_betas: pd.DataFrame | None = None,
                           tlt_market_beta: np.ndarray | None = None) -> np.ndarray:
    """The exposures the stress model applies, for many (date, portfolio) rows: :data:`FACTORS` order,
    style and rates net of the market (as :func:`stress_exposures` does for one date).

    Parameters
    ----------
    exposures : DataFrame, shape (R, ·)
        Dollar factor exposures by factor-definition name; NaN and missing columns count as 0.
    date_code : ndarray of int, shape (R,)
        Each row's date as a position in ``spy_betas`` / ``tlt_market_beta`` (0 .. n_dates-1).
    n_dates : int
    spy_betas, tlt_market_beta
        As in :func:`stress_test_dates`.

    Returns
    -------
    ndarray, shape (R, 8)
        Dollars: market beta exposure, the six styles and rates, each net of the market.
    """
    date_code = np.asarray(date_code, dtype=np.int64)
    names = [FACTOR_EXPOSURES[k] for k in FACTORS]
    X = np.nan_to_num(exposures.reindex(columns=names).to_numpy(np.float64), nan=0.0)     # (R, F)
    spy = (spy_betas.reindex(columns=names[1:]).to_numpy(np.float64) if spy_betas is not None
           else np.zeros((n_dates, len(names) - 1)))
    b_spy = np.nan_to_num(spy, nan=0.0)[date_code]                                     # (R, 7)
    b_tlt = (np.zeros(n_dates) if tlt_market_beta is None
             else np.nan_to_num(np.asarray(tlt_market_beta, dtype=np.float64), nan=0.0))[date_code]
    X[:, 1:-1] -= X[:, :1] * b_spy[:, :-1]
    g_spy = b_spy[:, -1]
    denom = 1.0 - g_spy * b_tlt
    X[:, -1] = (X[:, -1] - X[:, 0] * g_spy) / np.where(denom > 1e-9, denom, 1.0)
    return X


def stress_test_dates(exposures: pd.DataFrame, date_code: np.ndarray, scenarios: Sequence[Scenario],
                      covs: np.ndarray, equity: np.ndarray, *, duration: float = DEFAULT_TLT_DURATION,
                      loss_cap: float = 0.99, spy_betas: pd.DataFrame | None = None,
                      tlt_market_beta: np.ndarray | None = None, factor_impacts: bool = True) -> pd.DataFrame:
    r""":func:`stress_test` for the portfolios of many calculation dates at once (rows × scenarios).

    Parameters
    ----------
    exposures : DataFrame, shape (R, ·)
        Dollar factor exposures by factor-definition name, one row per (date, portfolio) (any index,
        kept in the output's ``row`` column as the row number); NaN and missing columns count as 0.
    date_code : ndarray of int, shape (R,)
        Each row's date as a position in ``covs`` (and in ``spy_betas`` / ``tlt_market_beta``).
    scenarios : sequence of Scenario
    covs : ndarray, shape (D, F, F)
        :func:`ewma_covariances` of each date (:data:`FACTORS` order); NaN = no covariance on that date.
    equity : ndarray, shape (R,)
        Each row's portfolio equity (dollars).
    spy_betas : DataFrame, shape (D, ·), optional
        SPY's own betas per date (rows in ``covs`` order) by factor-definition name (the six styles and
        ``"IR Beta"``); missing or NaN = 0, as in :func:`stress_exposures`.
    tlt_market_beta : ndarray, shape (D,), optional
        TLT's market beta per date; NaN = 0.
    duration, loss_cap, factor_impacts
        As in :func:`stress_test`.

    Returns
    -------
    DataFrame
        R × n rows, row-major (row r's n scenarios together, scenario order inside): ``row`` (0..R-1)
        and the columns of :func:`stress_test` except ``portfolio_id``. Row r's values equal
        :func:`stress_test` of its date's portfolios up to floating-point summation order.
    """
    R = len(exposures)
    D = covs.shape[0]
    date_code = np.asarray(date_code, dtype=np.int64)
    X = stress_exposures_dates(exposures, date_code, D, spy_betas=spy_betas, tlt_market_beta=tlt_market_beta)

    shocks = scenario_shocks(scenarios, duration)
    s = shocks.to_numpy()
    moves = implied_factor_moves_stack(covs, shocks)                                   # (D, n, F)
    net = moves.copy()
    good = np.isfinite(covs).all(axis=(1, 2))
    good[good] &= covs[good, 0, 0] > 0
    beta = np.zeros((D, len(FACTORS)))
    beta[good] = covs[good, :, 0] / covs[good, 0, 0][:, None]
    net[:, :, 1:] -= moves[:, :, :1] * beta[:, None, 1:]
    direct = X @ np.nan_to_num(s, nan=0.0).T                                           # (R, n)
    correlated = np.einsum("rf,rnf->rn", X, net[date_code])
    market = X[:, :1] * moves[date_code, :, 0]

    eq = np.asarray(equity, dtype=np.float64)
    out = _scenario_frame("row", np.arange(R), scenarios, direct, correlated, market, eq, loss_cap)
    if factor_impacts:
        out["factor_impacts"] = _factor_impacts(X, scenarios, duration)
    return out


def _scenario_frame(key: str, keys: np.ndarray, scenarios: Sequence[Scenario], direct: np.ndarray,
                    correlated: np.ndarray, market: np.ndarray, equity: np.ndarray, loss_cap: float) -> pd.DataFrame:
    """One row per (key, scenario), key-major: the P&L arrays (rows, scenarios) capped at ``-loss_cap``
    × equity (where equity > 0; ``loss_capped`` says where), with the scenarios' labels."""
    rows, n = direct.shape
    floor = np.where(equity > 0, -loss_cap * equity, -np.inf)[:, None]
    capped = (direct < floor) | (correlated < floor)
    direct = np.maximum(direct, floor)
    correlated = np.maximum(correlated, floor)

    def tile(values: list) -> np.ndarray:
        return np.tile(np.array(values, dtype=object), rows)

    return pd.DataFrame({
        key: np.repeat(keys, n),
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


def _factor_impacts(X: np.ndarray, scenarios: Sequence[Scenario], duration: float) -> list[dict]:
    """The ``factor_impacts`` dict of every (row, scenario), row-major (see :func:`stress_test`)."""
    fpos = {k: i for i, k in enumerate(FACTORS)}
    per_scen = [[(k, FACTOR_EXPOSURES[RATES if k == IR_SCENARIO_FACTOR else k],
                  fpos[RATES if k == IR_SCENARIO_FACTOR else k], float(v)) for k, v in sc.shocks.items()]
                for sc in scenarios]
    out: list[dict] = []
    for xr in X.tolist():
        for entries in per_scen:
            d: dict[str, dict[str, float | str]] = {}
            for k, name, j, v in entries:
                e = xr[j]
                if k == IR_SCENARIO_FACTOR:
                    d[k] = {"exposure_factor": f"{name} (net of market)", "exposure": e, "shock_pct": v * 100.0,
                            "tlt_return": -duration * v, "direct_pnl": e * (-duration * v)}
                else:
                    d[k] = {"exposure_factor": name, "exposure": e, "shock_pct": v * 100.0, "direct_pnl": e * v}
            out.append(d)
    return out


def stress_summary_blocks(correlated: np.ndarray, effect: np.ndarray) -> pd.DataFrame:
    """:func:`stress_summary` of many portfolios whose scenarios form the rows of a matrix.

    Parameters
    ----------
    correlated, effect : ndarray, shape (R, n)
        Correlated P&L and correlation effect of R (date, portfolio) rows × n scenarios (dollars), e.g.
        :func:`stress_test_dates`' columns reshaped to (R, n).

    Returns
    -------
    DataFrame, R rows in the input's order, the columns of :func:`stress_summary` (reductions along
    the scenario axis; population std, ddof=0), default RangeIndex.
    """
    c = np.asarray(correlated, dtype=np.float64)
    n = c.shape[1]
    return pd.DataFrame({
        "worst_pnl": c.min(1) if n else np.full(len(c), np.nan),
        "best_pnl": c.max(1) if n else np.full(len(c), np.nan),
        "mean_pnl": c.mean(1),
        "median_pnl": np.median(c, axis=1),
        "std_pnl": c.std(1, ddof=0),
        "mean_correlation_effect": np.asarray(effect, dtype=np.float64).mean(1),
        "n_negative": (c < 0).sum(1),
        "n_positive": (c > 0).sum(1),
        "n_scenarios": np.full(len(c), n, dtype=np.int64),
    })
