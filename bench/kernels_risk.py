"""Timings of the phase-6 risk kernels (plain python; prints medians).

Run from the repository root:  OPENBLAS_NUM_THREADS=1 python bench/kernels_risk.py

With the default 2 OpenBLAS threads on the 2-vCPU VM, the small correlation matmuls stalled
(~170 ms instead of ~6 ms for 500 positions, cf. docs/perf-anchors.md note 10): pin BLAS to 1 thread.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.analytics.aggregation import portfolio_factor_exposures
from shared.analytics.correlation import pairwise_correlation
from shared.analytics.stress import FACTORS, ewma_covariance, stress_test
from shared.analytics.volatility import har_fit, har_forecast, volatility_metrics
from shared.scenarios import load_scenarios


def timeit(fn, repeat=5):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(min(ts))


def show(label, med_min):
    med, mn = med_min
    print(f"{label:<62} median {med * 1e3:9.1f} ms   min {mn * 1e3:9.1f} ms", flush=True)


def main() -> None:
    rng = np.random.default_rng(0)
    d = pd.Timestamp("2025-06-30")

    # 1. aggregation: 10,000 portfolios x 200,000 positions x 13 factors, one date
    P, N, S, F = 10_000, 200_000, 5_000, 13
    syms = np.array([f"S{i:05d}" for i in range(S)], dtype=object)
    w = pd.DataFrame({"calculation_date": d, "portfolio_id": rng.integers(0, P, N),
                      "symbol": syms[rng.integers(0, S, N)], "weight": rng.normal(0, 0.05, N)})
    w = w.groupby(["calculation_date", "portfolio_id", "symbol"], as_index=False)["weight"].sum()
    b = pd.DataFrame({"calculation_date": d, "symbol": np.repeat(syms[:4_800], F),
                      "factor": np.tile([f"F{k}" for k in range(F)], 4_800),
                      "beta_value": rng.normal(1, 0.3, 4_800 * F)})
    show(f"aggregation {P} pf x {len(w)} positions x {F} factors", timeit(lambda: portfolio_factor_exposures(w, b)))

    # 2. HAR: 5000 series x 252 returns
    T, S2 = 252, 5_000
    r = rng.standard_t(6, (T, S2)) * 0.01 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, S2)), axis=0))
    r[rng.random((T, S2)) < 0.03] = np.nan
    y = r * r

    def har():
        fit = har_fit(y)
        har_forecast(y, fit.params, 21)

    show(f"HAR fit + 21-step forecast, {S2} series x {T}", timeit(har))
    df = pd.DataFrame(r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        show(f"volatility_metrics (all metrics), {S2} series x {T}", timeit(lambda: volatility_metrics(df)))

    # 3. correlation: 500 positions, 90 sessions
    R = rng.normal(0, 0.01, (90, 500))
    R[rng.random(R.shape) < 0.05] = np.nan
    Rdf = pd.DataFrame(R)
    show("pairwise_correlation 500 positions x 90 (ours)", timeit(lambda: pairwise_correlation(R, 30)))
    show("pandas DataFrame.corr(min_periods=30), same data", timeit(lambda: Rdf.corr(min_periods=30), 3))

    # 4. stress: 10,000 portfolios x 19 scenarios
    cov = ewma_covariance(pd.DataFrame(rng.normal(0, 0.01, (252, 8)), columns=list(FACTORS)))
    expo = pd.DataFrame(rng.normal(0, 1e5, (10_000, 9)),
                        columns=["Market Beta (90D)", "Value", "Growth", "Momentum", "Quality", "Size",
                                 "Low Volatility", "IR Beta", "Momentum Spread"])
    eq = pd.Series(rng.uniform(1e5, 1e6, 10_000))
    scen = load_scenarios(active_only=True)
    show("stress_test 10,000 pf x 19 scenarios (no factor_impacts)",
         timeit(lambda: stress_test(expo, scen, cov, eq, factor_impacts=False)))
    show("stress_test 10,000 pf x 19 scenarios (with factor_impacts)",
         timeit(lambda: stress_test(expo, scen, cov, eq), 3))


if __name__ == "__main__":
    main()
