"""Time the phase-1.5 regressions (ridge + 6 OLS) for 5000 symbols x 252 calculation dates.

Plain script: ``python bench/kernels_symbol.py [--symbols 5000] [--dates 252]``. Prints medians.
Synthetic prices on the NYSE session grid; two missing-data regimes: "realistic" (a few late listings
and rare one-day gaps) and "scattered" (5 % of closes missing at random, the worst case for the kernels:
almost every (date, symbol) window then has its own Gram matrix). Run with BLAS at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.analytics.regression import rolling_ols, rolling_ols_many, rolling_ridge
from shared.analytics.symbol_betas import compute_symbol_beta_arrays, compute_symbol_betas
from shared.calendar import session_index

ETFS = ["SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]


def make_prices(n_sym: int, n_dates: int, regime: str, seed: int = 5) -> pd.DataFrame:
    idx = session_index(date(2020, 1, 2), date(2026, 12, 31))[-(n_dates + 181) :]
    t_len = len(idx)
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((t_len, len(ETFS))) * 0.008 + rng.standard_normal((t_len, 1)) * 0.008
    b = rng.normal(0.2, 0.6, (n_sym, len(ETFS)))
    r = np.hstack([f, f @ b.T + rng.standard_normal((t_len, n_sym)) * 0.015])
    px = 50.0 * np.exp(np.cumsum(np.log1p(r), axis=0))
    stocks = px[:, len(ETFS) :]
    if regime == "scattered":
        stocks[rng.random(stocks.shape) < 0.05] = np.nan
    else:
        late = rng.random(n_sym) < 0.03
        starts = rng.integers(0, t_len, n_sym)
        stocks[np.arange(t_len)[:, None] < np.where(late, starts, 0)[None, :]] = np.nan
        stocks[rng.random(stocks.shape) < 0.0005] = np.nan
    cols = ETFS + [f"S{i:05d}" for i in range(n_sym)]
    return pd.DataFrame(px, index=idx, columns=cols)


def med(fn, reps: int) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def phase15_timings(n_symbols: int = 5000, n_sessions: int = 252, repeat: int = 3, progress=print) -> list[dict]:
    """Wall time of all phase-1.5 regressions (:func:`compute_symbol_beta_arrays`) at two shapes.

    * ``nightly``: ``n_sessions`` sessions of history, one calculation date (what a nightly run does);
    * ``backfill``: ``n_sessions`` calculation dates at once (a one-year onboarding; 180 more sessions of
      history before the first, for the spread windows).

    Each in the "realistic" and the "scattered" (5 % of closes missing) regime; min and median of
    ``repeat`` runs after one warm-up.
    """
    out = []
    for regime in ("realistic", "scattered"):
        prices = make_prices(n_symbols, n_sessions, regime)
        for case, frame, n_dates in (("nightly", prices.iloc[-n_sessions:], 1), ("backfill", prices, n_sessions)):
            calc = [d.date() for d in frame.index[-n_dates:]]
            t_med, t_min = med(partial(compute_symbol_beta_arrays, frame, calc), repeat)
            out.append({"case": case, "regime": regime, "symbols": n_symbols, "sessions": len(frame),
                        "dates": n_dates, "median_s": t_med, "min_s": t_min})
            progress(f"  phase-1.5 kernels, {case} ({regime}): {n_symbols} symbols x {len(frame)} sessions, "
                     f"{n_dates} date(s): median {t_med * 1e3:.0f} ms, min {t_min * 1e3:.0f} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--dates", type=int, default=252)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    try:
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
    except ImportError:  # pragma: no cover
        ctl = None
    for regime in ("realistic", "scattered"):
        prices = make_prices(args.symbols, args.dates, regime)
        calc = [d.date() for d in prices.index[-args.dates :]]
        y = prices.pct_change(fill_method=None).to_numpy()
        rows = np.arange(len(prices) - args.dates, len(prices))
        spy, style = y[:, 0], y[:, 2:8]
        spreads = y[:, 2:6] - y[:, [0]]  # 4 long-short spreads, like the kernel's
        print(f"{regime}: {prices.shape[1]} columns x {args.dates} dates, T={len(prices)} sessions, "
              f"{np.isnan(y[1:]).mean():.2%} missing returns")
        for threads in (1, 2):
            limit = ctl.limit(limits=threads) if ctl else None
            try:
                t_r = med(partial(rolling_ridge, y, style, 90, 30, 1.0, 5.0, rows), args.reps)
                t_o = med(partial(rolling_ols, y, spy, 90, 30, 5.0, rows), args.reps)
                t_m = med(partial(rolling_ols_many, y, y[:, :2], 90, 30, 5.0, rows), args.reps)
                t_s = med(partial(rolling_ols_many, y, spreads, 180, 60, 5.0, rows), args.reps)
                t_a = med(partial(compute_symbol_beta_arrays, prices, calc), args.reps)
            finally:
                if limit is not None:
                    limit.restore_original_limits()
            print(f"  BLAS {threads} thr (median / min): ridge(6) {t_r[0]:.3f}/{t_r[1]:.3f} s | one OLS(90) "
                  f"{t_o[0]:.3f}/{t_o[1]:.3f} s | market+IR OLS(90) {t_m[0]:.3f}/{t_m[1]:.3f} s | 4 spread "
                  f"OLS(180) {t_s[0]:.3f}/{t_s[1]:.3f} s | all regressions (compute_symbol_beta_arrays) "
                  f"{t_a[0]:.3f}/{t_a[1]:.3f} s")
    small = make_prices(args.symbols, 20, "realistic")
    calc = [d.date() for d in small.index[-20:]]
    t0 = time.perf_counter()
    df = compute_symbol_betas(small, calc)
    print(f"tidy compute_symbol_betas, {args.symbols} symbols x 20 dates: {time.perf_counter() - t0:.3f} s, "
          f"{len(df):,} rows")


if __name__ == "__main__":
    main()
