"""Phase 6d — stress tests for every portfolio and session of the run.

The active scenarios (``shared/data/stress_scenarios.yaml``, or ``--scenarios PATH`` for an extended
copy) are applied to each portfolio's dollar factor exposures from phase 6a. The factor correlation
matrix is EWMA-weighted (λ = 0.94) over the 252 sessions ending at *each calculation date* (not
today), clipped to ±0.95; rate shocks become a TLT return through a stated duration (17 years by
default, ``--tlt-duration``); losses are capped at 99 % of equity. Results and per-portfolio summaries
replace earlier ones for the same portfolios and dates.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.factors import STYLE_FACTORS
from shared.analytics.stress import DEFAULT_TLT_DURATION, ewma_factor_correlation, stress_summary, stress_test
from shared.history import History
from shared.scenarios import DEFAULT_SCENARIO_FILE, load_scenarios
from shared.storage import models as m
from shared.storage import repository as repo

#: Scenario factor -> ETF whose returns drive the factor correlation matrix.
FACTOR_PROXIES = {"Market": "SPY", **STYLE_FACTORS, "Interest_Rate": "TLT"}
LOOKBACK = 252
#: The EWMA window: LOOKBACK factor returns ending at the calculation date.
HISTORY = History(sessions=LOOKBACK)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenarios", default=str(DEFAULT_SCENARIO_FILE), metavar="PATH",
                   help="scenario YAML file (default: the 22 packaged scenarios, 19 active)")
    p.add_argument("--tlt-duration", type=float, default=DEFAULT_TLT_DURATION,
                   help="modified duration (years) turning a yield change into a TLT return (default 17)")


def run(ctx: PhaseContext) -> PhaseResult:
    rng = ctx.range
    all_scenarios = load_scenarios(ctx.args.scenarios)
    active = [s for s in all_scenarios if s.active]
    pids = [ctx.portfolio_id] if ctx.portfolio_id else None
    with ctx.transaction() as s:
        repo.upsert(s, m.StressTestScenario, pd.DataFrame([
            {"scenario_id": x.id, "name": x.name, "category": x.category, "severity": x.severity,
             "shock_config": dict(x.shocks), "active": x.active, "description": x.source} for x in all_scenarios]))
        ids = repo.factor_ids(s)
        snaps = repo.load_snapshots(s, pids, rng.start, rng.end, columns=("portfolio_id", "snapshot_date",
                                                                           "equity_balance"))
        fe = repo.read_frame(s, m.FactorExposure.__table__.select().where(
            m.FactorExposure.calculation_date.in_(list(rng.sessions))))
    if pids is not None:
        fe = fe[fe["portfolio_id"].isin(pids)]
    names = {v: k for k, v in ids.items()}
    fe["factor"] = fe["factor_id"].map(names)
    closes = ctx.price_cache.wide(list(FACTOR_PROXIES.values()))
    fret = (closes / closes.shift(1) - 1.0).rename(columns={v: k for k, v in FACTOR_PROXIES.items()})
    snaps["snapshot_date"] = pd.to_datetime(snaps["snapshot_date"]).dt.date
    results, summaries = [], []
    for d, grp in fe.groupby("calculation_date", sort=True):
        end = fret.index.get_indexer([pd.Timestamp(d)])[0]
        window = fret.iloc[max(1, end - LOOKBACK + 1): end + 1]
        corr = ewma_factor_correlation(window)
        exposures = grp.pivot_table(index="portfolio_id", columns="factor", values="exposure_dollar")
        equity = snaps[snaps["snapshot_date"] == d].set_index("portfolio_id")["equity_balance"]
        res = stress_test(exposures, active, corr, equity.reindex(exposures.index), duration=ctx.args.tlt_duration)
        res["calculation_date"] = d
        meta: dict[tuple, dict] = {}  # one dict per (scenario, category, capped): rows share it (encoded once)
        res["calculation_metadata"] = [
            meta.get(key) or meta.setdefault(key, {
                "scenario_name": key[0], "category": key[1], "correlation_matrix_date": d.isoformat(),
                "data_days": len(window), "tlt_duration": ctx.args.tlt_duration, "loss_capped": key[2]})
            for key in zip(res["scenario_name"].tolist(), res["category"].tolist(),
                           [bool(x) for x in res["loss_capped"].tolist()], strict=True)]
        results.append(res)
        summ = stress_summary(res).reset_index()
        summ["calculation_date"] = d
        summaries.append(summ)
    out = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    summ = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    if not summ.empty:
        summ = summ.rename(columns={"n_negative": "negative_scenarios", "n_positive": "positive_scenarios"})
    scope = {"portfolio_id": sorted(set(snaps["portfolio_id"])), "calculation_date": list(rng.sessions)}
    with ctx.transaction() as s:
        n_res = repo.replace(s, m.StressTestResult, out, scope)
        n_sum = repo.replace(s, m.StressTestSummary, summ, scope)
    worst = float(np.nanmin(out["correlated_pnl"])) if len(out) else None
    return PhaseResult(rows={"stress_test_results": n_res, "stress_test_summaries": n_sum},
                       details={"scenarios_active": len(active), "scenarios_total": len(all_scenarios),
                                "portfolio_dates": len(summ), "worst_correlated_pnl": worst,
                                "tlt_duration": ctx.args.tlt_duration})


main = entrypoint("stress-tests", "Phase 6d: stress scenarios, direct and correlated P&L.", run, add_arguments=_args,
                  chunked=True)

if __name__ == "__main__":
    raise SystemExit(main())
