"""risk-exposures' sector_exposure documents: the vectorised build equals the per-row loop it replaced."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from phases.risk_exposures import _sector_json
from shared.analytics.rounding import round_like_python

COLS = ("portfolio_weight", "benchmark_weight", "difference")


def _reference(vs: pd.DataFrame, index: pd.MultiIndex) -> list:
    """The loop risk-exposures ran before (one dict per row, Python's round)."""
    out: dict = {}
    values = [vs[c].to_numpy(dtype="float64").tolist() for c in COLS]
    for i, (d, p, sector) in enumerate(zip(vs["calculation_date"].tolist(), vs["portfolio_id"].tolist(),
                                           vs["sector"].tolist(), strict=True)):
        out.setdefault((d, p), {})[sector] = {c: (None if v[i] != v[i] else round(v[i], 6))
                                              for c, v in zip(COLS, values, strict=True)}
    return [out.get(k) for k in index]


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b and np.signbit(a) == np.signbit(b)


def test_round_like_python_bit_for_bit():
    rng = np.random.default_rng(3)
    x = np.concatenate([
        rng.random(200_000), rng.normal(0.0, 1.0, 200_000), rng.normal(0.0, 1e-6, 100_000),
        (np.arange(-100_000, 100_000) + 0.5) / 1e6,          # decimal ties (mostly not exact in binary)
        np.arange(0, 2**16) / 2**16,                         # exact binary values, some exact ties at 6 places
        rng.random(100_000) * 10.0 ** rng.integers(-9, 12, 100_000),
        [0.0, -0.0, -4e-7, 5e-7, -5e-7, 0.0078125, 2.5e-6, 1e15, 1e300, -1e300, np.inf, -np.inf],
    ])
    for digits in (6, 2, 0):
        got = round_like_python(x, digits)
        want = np.array([round(v, digits) for v in x.tolist()])
        assert np.array_equal(got, want)
        assert np.array_equal(np.signbit(got), np.signbit(want))
    assert np.isnan(round_like_python(np.array([np.nan]), 6)[0])


def test_sector_json_equals_the_row_loop():
    rng = np.random.default_rng(5)
    dates = [dt.date(2026, 11, d) for d in (23, 24, 25)]
    pids = [f"p{i}" for i in range(7)]
    sectors = ["Energy", "ETFs", "Financials", "Unclassified", "Utilities"]
    rows = [(d, p, s) for d in dates for p in pids[:6] for s in sectors if rng.random() < 0.8]
    vs = pd.DataFrame(rows, columns=["calculation_date", "portfolio_id", "sector"])
    vs = vs.sample(frac=1.0, random_state=1).reset_index(drop=True)   # not sorted: the rows' order is kept
    n = len(vs)
    vs["portfolio_weight"] = [round(v, int(k)) for v, k in zip(rng.random(n), rng.integers(3, 9, n), strict=True)]
    vs["benchmark_weight"] = np.where(rng.random(n) < 0.2, np.nan, (np.arange(n) + 0.5) / 1e6)
    vs["difference"] = vs["portfolio_weight"] - vs["benchmark_weight"]
    vs.loc[3, "portfolio_weight"] = -0.0
    # every (date, portfolio) pair, one that has no row (p6) and the index's own order
    index = pd.MultiIndex.from_tuples([(d, p) for p in reversed(pids) for d in dates],
                                      names=["calculation_date", "portfolio_id"])
    got = _sector_json(vs, index)
    want = _reference(vs, index)
    assert list(got.index) == list(index)
    for g, w in zip(got.tolist(), want, strict=True):
        if w is None:
            assert g is None
            continue
        assert list(g) == list(w)                                        # sector order
        for s in w:
            assert list(g[s]) == list(w[s])
            assert all(_same(g[s][c], w[s][c]) for c in COLS), (g[s], w[s])
    assert _sector_json(vs.iloc[:0], index).isna().all()
