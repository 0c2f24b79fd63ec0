"""``python -m bench --retention``: does a night's pairwise insert slow down as history grows? (issue 19)

Thirty consecutive nights of ``pairwise_correlations`` on PostgreSQL with the retention of
``SIGMABATCH_PAIRWISE_SESSIONS`` (10 here), written exactly as risk-correlations writes them: in one
transaction, ``repository.replace`` of the night's rows (scoped delete of the night, then ``COPY``) and the
retention delete of its portfolios' rows before the 10th latest session (``repository.delete_before``);
then what record-run does: the same rule for every portfolio (``retention.prune_history``) and a vacuum. The rows are
a night's matrices of a benchmark size (each portfolio's upper triangle over its ``positions / portfolios``
symbols; M: 2,000 portfolios × 190 pairs = 380,000 rows a night, L: 1.9 M), so only the storage path is
timed, not the correlations. The two keys run night by night in alternating order, so both see the same
load of the (shared) machine; the 1-minute load average is recorded with every night. After each night the table is vacuumed as record-run does (``--no-vacuum``:
not, to see the space deleted rows keep where autovacuum is off, as on the benchmark server). Run twice: with the key of migration 0008 (date first) and, for comparison,
on a schema migrated to 0007 only (the old key: portfolio first).

Per night: insert time (replace), retention-delete time, commit, rows in the table; the result compares
night 30 with night 1 (target: within 20 %) and the medians of the first and last three nights.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date

import numpy as np
import pandas as pd

from bench.universe import SIZES
from shared import calendar

LAST_NIGHT = date(2026, 11, 27)
TARGET_RATIO = 1.2


def night_frame(portfolios: int, per: int, symbols: int, day: date, seed: int = 19) -> pd.DataFrame:
    """One night's pairwise rows: every portfolio's upper triangle over ``per`` distinct symbols, in the
    phase's order (portfolio, then triangle), id columns as categoricals like ``_pairs_frame``."""
    rng = np.random.default_rng([seed, portfolios, per])
    names = pd.Index([f"S{i:05d}" for i in range(symbols)])
    held = np.sort(np.argsort(rng.random((portfolios, symbols)), axis=1)[:, :per], axis=1)  # (P, per)
    iu = np.triu_indices(per, 1)
    s1, s2 = held[:, iu[0]].ravel(), held[:, iu[1]].ravel()
    key = np.repeat(np.arange(portfolios), len(iu[0]))
    r = np.random.default_rng([seed, day.toordinal()]).uniform(-0.9, 0.9, len(key))
    pids = pd.Index([f"P{i:05d}" for i in range(portfolios)])
    return pd.DataFrame({"portfolio_id": pd.Categorical.from_codes(key, categories=pids), "duration_days": 90,
                         "calculation_date": day, "symbol_1": pd.Categorical.from_codes(s1, categories=names),
                         "symbol_2": pd.Categorical.from_codes(s2, categories=names), "correlation_value": r,
                         "data_points": 89, "statistical_significance": 0.99})


def _nights(n: int) -> list[date]:
    return [calendar.shift_sessions(LAST_NIGHT, -k) for k in range(n - 1, -1, -1)]


def one_night(eng, day: date, frame: pd.DataFrame, keep: int, vacuum_after: bool = True) -> dict:
    """Write one night as risk-correlations does (replace, retention delete, one transaction), then vacuum
    as record-run does; the times and the table's rows and size afterwards."""
    from sqlalchemy import text

    from shared.retention import first_kept_session, prune_history
    from shared.storage import models as m
    from shared.storage import repository as repo
    from shared.storage.db import transaction, vacuum

    pids = frame["portfolio_id"].cat.categories.tolist()
    t0 = time.perf_counter()
    with transaction(eng) as s:
        n = repo.replace(s, m.PairwiseCorrelation, frame, {"portfolio_id": pids, "calculation_date": [day]})
        t1 = time.perf_counter()
        pruned = repo.delete_before(s, m.PairwiseCorrelation, "calculation_date", first_kept_session(day, keep),
                                    {"portfolio_id": pids})
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    with transaction(eng) as s:  # record-run: the same rule for every portfolio (nothing left here), then vacuum
        pruned += prune_history(s, day, 0, keep)["pairwise_correlations"]
    vac = vacuum(eng, ["pairwise_correlations"]) if vacuum_after else 0.0
    with eng.connect() as c:
        total = c.execute(text("SELECT count(*) FROM pairwise_correlations")).scalar_one()
        size = c.execute(text("SELECT pg_total_relation_size('pairwise_correlations')")).scalar_one()
    return {"date": day.isoformat(), "rows": n, "insert_s": round(t1 - t0, 3), "prune_s": round(t2 - t1, 3),
            "pruned": pruned, "commit_s": round(t3 - t2, 3), "vacuum_s": round(vac, 3), "table_rows": total,
            "table_mb": round(size / 2**20, 1), "load_avg_1m": round(os.getloadavg()[0], 2)}


def summarize(nights: list[dict], span: int = 5) -> dict:
    """Night 1 against the last night, and (robuster on a shared machine) the median of the first ``span``
    nights against the median of the last ``span``."""
    ins = [x["insert_s"] for x in nights]
    first, last = statistics.median(ins[:span]), statistics.median(ins[-span:])
    return {"night_1_insert_s": ins[0], "night_last_insert_s": ins[-1],
            "ratio_last_over_first": round(ins[-1] / ins[0], 3) if ins[0] else None, "span": span,
            "median_first_s": first, "median_last_s": last,
            "ratio_median_last_over_first": round(last / first, 3) if first else None,
            "max_prune_s": max(x["prune_s"] for x in nights),
            "median_vacuum_s": statistics.median(x["vacuum_s"] for x in nights), "table_rows_end": nights[-1]["table_rows"],
            "table_mb_end": nights[-1]["table_mb"], "table_mb_max": max(x["table_mb"] for x in nights),
            "load_avg_range": [min(x["load_avg_1m"] for x in nights), max(x["load_avg_1m"] for x in nights)]}


def bench_retention(size: str = "M", nights: int = 30, keep: int = 10, old_key: bool = True,
                    vacuum_after: bool = True, progress=print) -> dict:
    """The measurement: the 0008 key and (``old_key``) the 0007 key, night by night in alternating order
    (both keys see the same load on the shared machine)."""
    from alembic import command

    from bench.pipeline import Database
    from shared.storage.db import alembic_config, get_engine

    n_sym, n_pf, n_pos = SIZES[size]
    days = _nights(nights)
    t0 = time.perf_counter()
    frames = {d: night_frame(n_pf, n_pos // n_pf, n_sym, d) for d in days}
    progress(f"retention bench {size}: {nights} nights of {len(frames[days[0]]):,} pairwise rows, keep {keep} "
             f"(frames built in {time.perf_counter() - t0:.1f} s)")
    result = {"size": size, "nights": nights, "keep": keep, "rows_per_night": len(frames[days[0]]),
              "vacuum": vacuum_after, "variants": {}}
    variants = [("date-first key (0008)", "head")] + ([("portfolio-first key (0007)", "0007")] if old_key else [])
    dbs, engines, per_night = {}, {}, {label: [] for label, _ in variants}
    try:
        for label, revision in variants:
            dbs[label] = db = Database.create("postgres", f"bench_retention_{revision}", None)
            engines[label] = eng = get_engine(db.url)
            cfg = alembic_config(db.url)
            with eng.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        for k, day in enumerate(days, start=1):
            order = variants if k % 2 else variants[::-1]
            for label, _revision in order:
                x = {"night": k, **one_night(engines[label], day, frames[day], keep, vacuum_after)}
                per_night[label].append(x)
                progress(f"  [{label}] night {k:2d} {day}: insert {x['insert_s']:.2f} s, retention delete "
                         f"{x['prune_s']:.2f} s ({x['pruned']:,} rows), vacuum {x['vacuum_s']:.2f} s; table "
                         f"{x['table_rows']:,} rows, {x['table_mb']:.0f} MB (load {x['load_avg_1m']})")
    finally:
        for label, db in dbs.items():
            engines[label].dispose()
            db.drop()
    for label, revision in variants:
        result["variants"][label] = {"revision": revision, "summary": summarize(per_night[label]),
                                     "nights": per_night[label]}
    return result


def table(result: dict) -> str:
    n, variants = result["nights"], result["variants"]
    span = next(iter(variants.values()))["summary"]["span"]
    lines = [f"pairwise insert, {result['size']}: {result['rows_per_night']:,} rows a night, {n} nights, "
             f"retention {result['keep']} sessions (PostgreSQL; "
             f"{'VACUUM after each night, as record-run does' if result['vacuum'] else 'no VACUUM'})", "",
             f"| key | night 1 insert | night {n} insert | ratio | median nights 1-{span} "
             f"| median nights {n - span + 1}-{n} | ratio | max retention delete | median VACUUM "
             f"| table at night {n} | load average |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, v in variants.items():
        s = v["summary"]
        lo, hi = s["load_avg_range"]
        lines.append(f"| {label} | {s['night_1_insert_s']:.2f} s | {s['night_last_insert_s']:.2f} s "
                     f"| {s['ratio_last_over_first']:.2f} | {s['median_first_s']:.2f} s | {s['median_last_s']:.2f} s "
                     f"| {s['ratio_median_last_over_first']:.2f} | {s['max_prune_s']:.2f} s | {s['median_vacuum_s']:.2f} s "
                     f"| {s['table_rows_end']:,} rows, {s['table_mb_end']:.0f} MB | {lo}-{hi} |")
    labels = list(variants)
    if len(labels) == 2 and n > result["keep"]:
        a, b = ([x["insert_s"] for x in variants[k]["nights"]] for k in labels)
        same = statistics.median(y / x for x, y in zip(a[result["keep"]:], b[result["keep"]:], strict=True))
        lines += ["", f"{labels[1]} over {labels[0]}, same night (median over nights {result['keep'] + 1}-{n}, "
                      f"the table full): {same:.2f}x"]
    s = next(iter(variants.values()))["summary"]
    met = s["ratio_last_over_first"] is not None and s["ratio_last_over_first"] <= TARGET_RATIO
    met_med = s["ratio_median_last_over_first"] is not None and s["ratio_median_last_over_first"] <= TARGET_RATIO
    lines += ["", f"target: [{'met' if met else 'NOT met'}] night {n} insert within "
                  f"{(TARGET_RATIO - 1) * 100:.0f} % of night 1 with the date-first key "
                  f"(ratio {s['ratio_last_over_first']}; medians of {span} nights: "
                  f"[{'met' if met_med else 'NOT met'}] {s['ratio_median_last_over_first']})"]
    return "\n".join(lines)
