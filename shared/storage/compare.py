"""Two databases' tables compared row by row (issue 18: a sharded run writes what the unsharded run writes).

:func:`table_rows` reads every table and view but the run records, without run metadata, in a canonical
order; :func:`differences` lists what differs between two such reads (numbers within a relative tolerance,
everything else exactly); :func:`max_relative_difference` is the largest relative difference of the
numbers, the figure a tolerance is judged against. Used by the shard tests and ``python -m bench
--shard-equality``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from sqlalchemy import text

from shared.storage import models as m

#: Run records (which run, which phase, how long) differ by design between two runs.
RUN_RECORDS = frozenset({"batch_run_history", "batch_phase_runs", "batch_locks"})
#: Run metadata: which run wrote a row and when.
METADATA = frozenset({"run_id", "created_at", "updated_at"})
#: Tables whose ``id`` is a key the book gives (others' ``id`` is a surrogate: the order rows were inserted in).
NATURAL_IDS = frozenset({"positions", "portfolios"})


def table_rows(url: str, skip: frozenset[str] = RUN_RECORDS) -> dict[str, pd.DataFrame]:
    """Every table's and view's rows but ``skip``'s, without run metadata and surrogate ids, JSON as sorted
    text, missing values as ``None``, rows in a canonical order (sorted on every column as text)."""
    from shared.storage.db import get_engine

    eng = get_engine(url)
    out = {}
    with eng.connect() as c:
        for table in (*m.Base.metadata.sorted_tables, *m.ViewBase.metadata.sorted_tables):
            if table.name in skip:
                continue
            frame = pd.read_sql(text(f"select * from {table.name}"), c)
            frame = frame.drop(columns=[x for x in frame.columns if x in METADATA])
            if table.name not in NATURAL_IDS and "id" in frame.columns:
                frame = frame.drop(columns=["id"])
            for x in frame.columns:  # JSON columns: decoded by psycopg, text on SQLite
                if frame[x].map(lambda v: isinstance(v, dict | list)).any():
                    frame[x] = frame[x].map(lambda v: None if v is None else json.dumps(v, sort_keys=True))
            frame = frame.astype(object).where(frame.notna(), None)  # NaT / NaN / None: missing alike
            keys = list(frame.columns)
            order = frame[keys].astype(str).sort_values(keys).index if len(frame) else frame.index
            out[table.name] = frame.loc[order].reset_index(drop=True)
    eng.dispose()
    return out


def _num(x) -> bool:
    return isinstance(x, float | int | np.floating | np.integer) and not isinstance(x, bool)


def relative_difference(a, b, scale: float = 0.0) -> float:
    """0 when ``a`` and ``b`` are equal; for two numbers |a − b| / max(|a|, |b|, ``scale``); ``inf`` when they
    cannot agree (one missing, different texts, keys or lengths). JSON texts are compared parsed, each dict's
    numbers against the dict's largest |value|, a list's items against ``scale``."""
    if isinstance(a, str) and isinstance(b, str) and a[:1] in "{[":
        try:
            a, b = json.loads(a), json.loads(b)
        except ValueError:
            return 0.0 if a == b else math.inf
    if isinstance(a, dict):
        if not (isinstance(b, dict) and a.keys() == b.keys()):
            return math.inf
        inner = max((abs(v) for v in a.values() if _num(v) and math.isfinite(v)), default=0.0)
        return max((relative_difference(a[k], b[k], inner) for k in a), default=0.0)
    if isinstance(a, list):
        if not (isinstance(b, list) and len(a) == len(b)):
            return math.inf
        return max((relative_difference(x, y, scale) for x, y in zip(a, b, strict=True)), default=0.0)
    missing_a = a is None or (_num(a) and math.isnan(a))
    missing_b = b is None or (_num(b) and math.isnan(b))
    if missing_a or missing_b:
        return 0.0 if missing_a and missing_b else math.inf
    if a == b:
        return 0.0
    if _num(a) and _num(b) and math.isfinite(a) and math.isfinite(b):
        return abs(a - b) / max(abs(a), abs(b), scale)
    return math.inf


def _column_scale(values: list) -> float:
    """A column's typical magnitude: the median |value| of its finite non-zero numbers (0 when none)."""
    mags = [abs(v) for v in values if _num(v) and math.isfinite(v) and v != 0]
    return float(np.median(mags)) if mags else 0.0


def _columns(ref: dict[str, pd.DataFrame], got: dict[str, pd.DataFrame]):
    """(table, column, per-row relative differences) of every column of tables with as many rows in both."""
    for table, a in ref.items():
        b = got[table]
        if len(a) != len(b):
            continue
        for col in a.columns:
            va, vb = a[col].tolist(), b[col].tolist()
            scale = _column_scale(va)
            yield table, col, va, vb, [relative_difference(x, y, scale) for x, y in zip(va, vb, strict=True)]


def differences(ref: dict[str, pd.DataFrame], got: dict[str, pd.DataFrame], rel: float = 1e-12) -> list[str]:
    """Human-readable differences between two :func:`table_rows`-like reads (empty = the same).

    ``rel = 0``: bit for bit. Otherwise numbers agree within ``rel`` relative to the larger of the two
    values and the column's typical magnitude (median |value|): a beta of 3e-4 computed with another BLAS
    blocking differs by ~1e-15 absolutely, which is 1e-12 of the betas' scale but not of its own value.
    """
    out = [f"{t}: {len(a)} rows vs {len(got[t])}" for t, a in ref.items() if len(a) != len(got[t])]
    for table, col, va, vb, diffs in _columns(ref, got):
        bad = [i for i, d in enumerate(diffs) if d > rel]
        if bad:
            i, a = bad[0], ref[table]
            ids = {k: a[k].iloc[i] for k in a.columns if k.endswith("id") or k.startswith("symbol")}
            out.append(f"{table}.{col}: {len(bad)} of {len(va)} rows differ, e.g. {va[i]!r} vs {vb[i]!r} ({ids})")
    return out


def max_relative_difference(ref: dict[str, pd.DataFrame], got: dict[str, pd.DataFrame]) -> tuple[float, str]:
    """The largest relative difference between two reads (as :func:`differences` measures it) and where
    (``table.column``; ``""`` when every value is equal)."""
    worst, where = 0.0, ""
    for table, col, _va, _vb, diffs in _columns(ref, got):
        top = max(diffs, default=0.0)
        if top > worst:
            worst, where = top, f"{table}.{col}"
    return worst, where
