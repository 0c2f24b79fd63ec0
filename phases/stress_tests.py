"""Phase 6d — stress tests for every portfolio and session of the run.

The active scenarios (``shared/data/stress_scenarios.yaml``, or ``--scenarios PATH`` for an extended
copy) are applied to each portfolio's dollar factor exposures from phase 6a with the model of
:mod:`shared.analytics.stress`: on each calculation date, the EWMA covariance (λ = 0.94) of the factor
ETFs' returns over the 252 sessions ending at that date gives every factor's move implied by the
scenario's shocks, m = Σ·S Σ_SS⁻¹ s; correlated P&L applies m to market beta and to style and rate
exposures net of the market, direct P&L applies the shocks alone. Rate shocks become a TLT return
through a stated duration (17 years by default, ``--tlt-duration``); losses are capped at 99 % of
equity. A book holding nothing (cash only) gets 0 in every scenario. Results and per-portfolio
summaries replace earlier ones for the same portfolios and dates.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from phases._universe import require_etfs
from shared.analytics.factors import STYLE_FACTORS
from shared.analytics.returns import simple_returns
from shared.analytics.stress import (
    COVARIANCE_SESSIONS,
    DEFAULT_TLT_DURATION,
    FACTOR_EXPOSURES,
    FACTORS,
    ewma_covariances,
    implied_factor_moves_stack,
    scenario_shocks,
    stress_exposures_dates,
    stress_summary_blocks,
    stress_test_dates,
)
from shared.errors import BadInputError
from shared.history import History
from shared.scenarios import DEFAULT_SCENARIO_FILE, load_scenarios
from shared.storage import models as m
from shared.storage import repository as repo

#: Stress-model factor -> the ETF whose returns drive the covariance (FACTORS order).
FACTOR_PROXIES = dict(zip(FACTORS, ("SPY", *STYLE_FACTORS.values(), "TLT"), strict=True))
#: stress_exposures' columns, FACTORS order
EXPOSURE_COLUMNS = tuple(f.lower().replace(" ", "_") for f in FACTORS)
#: Closes read before the run's first session: the covariance's 252 returns ending at a session need the
#: 252 closes before it.
HISTORY = History(sessions=COVARIANCE_SESSIONS)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenarios", default=str(DEFAULT_SCENARIO_FILE), metavar="PATH",
                   help="scenario YAML file (default: the 22 packaged scenarios, 19 active)")
    p.add_argument("--tlt-duration", type=float, default=DEFAULT_TLT_DURATION,
                   help="modified duration (years) turning a yield change into a TLT return (default 17)")


def factor_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Daily returns of the factor ETFs (sessions × FACTORS); bad input when an ETF has no close at all."""
    require_etfs(closes, tuple(FACTOR_PROXIES.values()), "stress tests")
    fret = simple_returns(closes[list(FACTOR_PROXIES.values())])
    fret.columns = pd.Index(FACTORS, name="factor")
    return fret


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    duration = ctx.args.tlt_duration
    all_scenarios = load_scenarios(ctx.args.scenarios)
    active = [s for s in all_scenarios if s.active]
    pids = ctx.portfolio_scope
    sessions = list(rng.sessions)
    with ctx.transaction() as s:
        snaps = repo.load_snapshots(s, pids, rng.start, rng.end,
                                    columns=("portfolio_id", "snapshot_date", "equity_balance", "gross_exposure"))
        if snaps.empty:
            if repo.load_positions(s, pids, start=rng.start, end=rng.end, columns=("id",)).empty:
                msg = f"no portfolio held a position between {rng.start} and {rng.end}: nothing to stress"
                ctx.log.info(msg)
                return PhaseResult(status="skipped", message=msg)
            raise BadInputError(f"no portfolio snapshot between {rng.start} and {rng.end}: run pnl-snapshots first")
        fe = repo.load_exposure_dollars(s, sessions, list(FACTOR_EXPOSURES.values()), pids)
        etf_betas = repo.load_symbol_beta_values(s, sessions, ["SPY", "TLT"], list(FACTOR_EXPOSURES.values()))
    fret = factor_returns(ctx.price_cache.wide(list(FACTOR_PROXIES.values())))
    snaps["snapshot_date"] = pd.to_datetime(snaps["snapshot_date"]).dt.date
    fe["calculation_date"] = pd.to_datetime(fe["calculation_date"]).dt.date
    etf_betas["calculation_date"] = pd.to_datetime(etf_betas["calculation_date"]).dt.date
    # SPY's own betas and TLT's market beta: what "net of the market" subtracts (shared.analytics.stress)
    spy = etf_betas[etf_betas["symbol"] == "SPY"].pivot_table(index="calculation_date", columns="factor",
                                                              values="beta_value")
    tlt = etf_betas[(etf_betas["symbol"] == "TLT") & (etf_betas["factor"] == "Market Beta (90D)")]
    tlt = dict(zip(tlt["calculation_date"], tlt["beta_value"].astype(float), strict=True))
    # every (session, portfolio) of the chunk at once: one row per portfolio with exposures on a session of
    # the snapshots, plus the cash-only books (no exposure: 0 in every scenario), sorted by (date, portfolio)
    fe = fe[fe["calculation_date"].isin(set(snaps["snapshot_date"]))]
    expo = fe.pivot_table(index=["calculation_date", "portfolio_id"], columns="factor", values="exposure_dollar")
    cash = snaps.loc[snaps["gross_exposure"].fillna(0.0) == 0.0]
    expo = expo.reindex(expo.index.union(pd.MultiIndex.from_arrays(
        [cash["snapshot_date"].to_numpy(dtype=object), cash["portfolio_id"].to_numpy(dtype=object)],
        names=["calculation_date", "portfolio_id"])))
    row_dates = expo.index.get_level_values(0)
    days, date_code = np.unique(row_dates.to_numpy(dtype=object), return_inverse=True)
    ends = fret.index.get_indexer(pd.DatetimeIndex(pd.to_datetime(list(days))))
    if (ends < 0).any():
        raise BadInputError(f"the price-cache snapshot does not cover session {days[np.flatnonzero(ends < 0)[0]]}")
    covs, used = ewma_covariances(fret, ends)
    has_cov = np.isfinite(covs).all(axis=(1, 2))
    no_cov = int((~has_cov).sum())
    eq = snaps.set_index(["snapshot_date", "portfolio_id"])["equity_balance"]
    equity = eq.reindex(expo.index).to_numpy(dtype=np.float64)
    spy_d = spy.reindex(index=pd.Index(days, dtype=object)) if len(spy.columns) else None
    tlt_d = np.array([tlt.get(d, np.nan) for d in days], dtype=np.float64)
    # what is the same for every portfolio is stored once a (date, scenario), the exposures once a
    # (date, portfolio); the stress_test_results view rebuilds each row's JSON from them (migration 0010)
    X = stress_exposures_dates(expo, date_code, len(days), spy_betas=spy_d, tlt_market_beta=tlt_d)
    out = stress_test_dates(expo, date_code, active, covs, equity, duration=duration, spy_betas=spy_d,
                            tlt_market_beta=tlt_d, factor_impacts=False)
    n = len(active)
    row = out.pop("row").to_numpy()
    out.insert(0, "portfolio_id", expo.index.get_level_values(1).to_numpy(dtype=object)[row])
    out["calculation_date"] = days[date_code][row]
    exposures = pd.DataFrame(X, columns=list(EXPOSURE_COLUMNS))
    exposures.insert(0, "portfolio_id", expo.index.get_level_values(1).to_numpy(dtype=object))
    exposures.insert(1, "calculation_date", days[date_code])
    moves = implied_factor_moves_stack(covs, scenario_shocks(active, duration)).round(6)       # (D, n, F)
    scenario_days = pd.DataFrame([
        {"calculation_date": d, "scenario_id": sc.id, "scenario_name": sc.name, "category": sc.category,
         "model": "conditional_ewma_covariance", "data_days": int(used[di]), "covariance": bool(has_cov[di]),
         "tlt_duration": duration, "shocks": dict(sc.shocks),
         "implied_moves": dict(zip(FACTORS, moves[di, si].tolist(), strict=True))}
        for di, d in enumerate(days.tolist()) for si, sc in enumerate(active)])
    summ = stress_summary_blocks(out["correlated_pnl"].to_numpy().reshape(-1, n) if n else np.empty((len(expo), 0)),
                                 out["correlation_effect"].to_numpy().reshape(-1, n) if n else np.empty((len(expo), 0)))
    summ.insert(0, "portfolio_id", expo.index.get_level_values(1).to_numpy(dtype=object))
    summ["calculation_date"] = days[date_code]
    if not summ.empty:
        summ = summ.rename(columns={"n_negative": "negative_scenarios", "n_positive": "positive_scenarios"})
    scope = {"portfolio_id": sorted(set(snaps["portfolio_id"])), "calculation_date": sessions}
    # the scenarios and their sessions first, in a short transaction of their own: every shard writes the
    # same rows, and an upsert holds its rows' locks until commit (the shards' long writes do not wait)
    with ctx.transaction() as s:
        repo.upsert(s, m.StressTestScenario, pd.DataFrame([
            {"scenario_id": x.id, "name": x.name, "category": x.category, "severity": x.severity,
             "shock_config": dict(x.shocks), "active": x.active, "description": x.source} for x in all_scenarios]))
        n_days = repo.upsert(s, m.StressScenarioSession, scenario_days)
    with ctx.transaction() as s:
        n_res = repo.replace(s, m.StressTestPnl, out, scope)
        n_exp = repo.replace(s, m.StressExposure, exposures, scope)
        n_sum = repo.replace(s, m.StressTestSummary, summ, scope)
    if no_cov:
        ctx.log.warning("%d session(s) without a factor covariance (fewer complete factor returns than needed): "
                        "correlated P&L = direct P&L there", no_cov)
    worst = float(np.nanmin(out["correlated_pnl"])) if len(out) else None
    return PhaseResult(rows={"stress_test_pnl": n_res, "stress_exposures": n_exp,
                             "stress_scenario_sessions": n_days, "stress_test_summaries": n_sum},
                       details={"scenarios_active": len(active), "scenarios_total": len(all_scenarios),
                                "portfolio_dates": len(summ), "worst_correlated_pnl": worst,
                                "tlt_duration": duration, "sessions_without_covariance": no_cov,
                                "model": "conditional moves m = Σ·S Σ_SS⁻¹ s, EWMA λ 0.94 over 252 sessions"})


main = entrypoint("stress-tests", "Phase 6d: stress scenarios, direct and correlated P&L.", run, add_arguments=_args,
                  chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
