"""``python -m bench S --shard-equality``: a sharded run writes the tables the unsharded run writes (issue 18).

The bench's universe of the given size (S: 500 symbols, 100 portfolios, 2,000 positions) in its nightly
starting state — a year of closes, fresh profiles and one snapshot per portfolio — but as of ``sessions``
sessions before the bench's last session, so the run covers a range of ``sessions`` sessions on top of that
history (the last one is the bench's nightly session). Loaded into two fresh databases; the pipeline runs
once unsharded and once with ``shards`` portfolio/symbol shards (``SIGMABATCH_SHARDS``), every step as its
own process as :mod:`bench.pipeline` runs them (the report, which writes no table, left out). Every table
and view but the run records is then compared row by row (:mod:`shared.storage.compare`: numbers to 1e-12
relative, everything else exactly). Finally one shard's fanned-out steps are re-run under the same run id (with ``--force``,
except the provider fetches of :data:`REFRESH_STEPS`, for which ``--force`` means "fetch again now"), and the
sharded database's tables must be unchanged to the bit.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from bench.pipeline import Database, run_pipeline, run_step
from bench.universe import Plan, load
from shared import calendar
from shared.storage.compare import differences, max_relative_difference, table_rows
from workflows import dag

#: Steps whose --force means "fetch from the provider again now" (a refresh, new fetch times), not "recompute".
REFRESH_STEPS = frozenset({"company-profiles", "fundamentals", "market-data"})
#: The tolerance of the comparison (as tests/workflows/test_sharded_run.py).
REL = 1e-12


def _clock(day) -> str:
    return f"{day.isoformat()}T18:00:00-05:00"


def _cpu() -> float:
    """CPU seconds (user + system) of the waited-for child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def shard_equality(size: str = "S", db_kind: str = "sqlite", sessions: int = 5, shards: int = 4,
                   rerun_shard: int = 2, shard_parallel: int = 1, workdir: Path | None = None,
                   progress=print) -> dict:
    """Run the check; returns every figure and ``ok`` (tables equal and unchanged by the re-run)."""
    import tempfile

    plan = Plan.of(size)
    start = calendar.shift_sessions(plan.end, -(sessions - 1))
    base = Plan.of(size, now=_clock(start))  # the nightly state of the session ``start``: history up to the one before
    assert base.end == start, (base.end, start)
    steps = tuple(s.name for s in (*dag.STEPS, dag.EXIT_STEP) if s.name != dag.REPORT_STEP.name)
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"sigmabatch-shard-equality-{size}-"))
    out = {"size": size, "db": db_kind, "symbols": plan.symbols, "portfolios": plan.portfolios,
           "positions": plan.positions, "start": start.isoformat(), "end": plan.end.isoformat(),
           "sessions": len(calendar.sessions(start, plan.end)), "shards": shards, "rerun_shard": f"{rerun_shard}/{shards}",
           "loadavg_start": [round(x, 2) for x in os.getloadavg()], "runs": {}}
    rows = {}
    for n in (1, shards):
        db = Database.create(db_kind, f"bench_sheq_{size.lower()}_{n}_{os.getpid()}", workdir)
        try:
            db.migrate()
            t0 = time.perf_counter()
            loaded = load(base, "nightly", db.url, db.conninfo, now=_clock(start))
            load_s = time.perf_counter() - t0
            progress(f"  [{n} shard(s)] loaded in {load_s:.1f} s: {loaded['rows']}")
            cpu0, t0 = _cpu(), time.perf_counter()
            done, run = run_pipeline(db, plan, start.isoformat(), plan.end.isoformat(), workdir, floor=False,
                                     only=steps, shards=n if n > 1 else 0, shard_parallel=shard_parallel)
            wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
            chosen = run.shards()
            if len(chosen) != n:
                raise RuntimeError(f"plan chose {len(chosen)} shard(s), not {n}")
            pnl = next(s for s in done if s["step"] == "pnl-snapshots")
            per_shard = [p["rows_by_table"].get("portfolio_snapshots", 0) for p in pnl.get("shards", [pnl])]
            progress(f"  [{n} shard(s)] run: {wall:.1f} s wall, {cpu:.1f} s CPU, {len(done)} steps, "
                     f"{sum(s.get('n_shards', 1) for s in done)} processes; snapshots per shard {per_shard}")
            t0 = time.perf_counter()
            rows[n] = table_rows(db.url)
            read_s = time.perf_counter() - t0
            rec = {"load_s": round(load_s, 1), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                   "processes": sum(s.get("n_shards", 1) for s in done), "snapshots_per_shard": per_shard,
                   "read_s": round(read_s, 1)}
            if n > 1:  # re-run one shard's fanned-out steps, forced, under the run's id
                shard = f"{rerun_shard}/{n}"
                fanned = [s for s in dag.topological_order() if s.fan_out and s.name in steps]
                cpu0, t0 = _cpu(), time.perf_counter()
                for step in fanned:
                    # a forced fetch step is a refresh by design (fetches again, stamps the fetch time): it is
                    # re-run as the Argo UI's retry runs it, unforced; every computing step is forced
                    run_step(step, run.args(step, shard, force=step.name not in REFRESH_STEPS), run.env,
                             run.run_dir / f"{step.name}.rerun.log")
                rec |= {"rerun_wall_s": round(time.perf_counter() - t0, 1), "rerun_cpu_s": round(_cpu() - cpu0, 1),
                        "rerun_steps": [s.name for s in fanned]}
                progress(f"  [{n} shard(s)] shard {shard} re-run with --force: {rec['rerun_wall_s']:.1f} s wall, "
                         f"{rec['rerun_cpu_s']:.1f} s CPU")
                rows["rerun"] = table_rows(db.url)
            out["runs"][str(n)] = rec
        finally:
            if os.environ.get("SIGMABATCH_BENCH_KEEP") != "1":
                db.drop()
    t0 = time.perf_counter()
    diff = differences(rows[1], rows[shards], rel=REL)
    worst, where = max_relative_difference(rows[1], rows[shards])
    rerun_diff = differences(rows[shards], rows["rerun"], rel=0.0)
    rerun_worst, rerun_where = max_relative_difference(rows[shards], rows["rerun"])
    out |= {"compare_s": round(time.perf_counter() - t0, 1),
            "tables": {t: len(f) for t, f in rows[1].items()},
            "tables_compared": len(rows[1]), "tables_with_rows": sum(1 for f in rows[1].values() if len(f)),
            "rows_compared": sum(len(f) for f in rows[1].values()),
            "cells_compared": sum(f.size for f in rows[1].values()),
            "max_rel_diff": worst, "max_rel_diff_at": where, "differences": diff,
            "rerun_max_rel_diff": rerun_worst, "rerun_max_rel_diff_at": rerun_where, "rerun_differences": rerun_diff,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "ok": not diff and not rerun_diff}
    return out


def table(res: dict) -> str:
    """The result as text: the figures, then every difference (none when the check passed)."""
    one, many = res["runs"]["1"], res["runs"][str(res["shards"])]
    lines = [
        f"{res['size']} universe ({res['symbols']:,} symbols / {res['portfolios']:,} portfolios / "
        f"{res['positions']:,} positions), {res['db']}, range {res['start']} .. {res['end']} "
        f"({res['sessions']} sessions) on a year of history; load average {res['loadavg_start']} -> "
        f"{res['loadavg_end']}",
        "",
        "| run | processes | wall | CPU | load (per database) |",
        "|---|---|---|---|---|",
        f"| unsharded | {one['processes']} | {one['wall_s']:.1f} s | {one['cpu_s']:.1f} s | {one['load_s']:.1f} s |",
        f"| {res['shards']} shards (snapshots per shard {many['snapshots_per_shard']}) | {many['processes']} "
        f"| {many['wall_s']:.1f} s | {many['cpu_s']:.1f} s | {many['load_s']:.1f} s |",
        f"| shard {res['rerun_shard']} re-run, --force ({', '.join(many['rerun_steps'])}) | "
        f"{len(many['rerun_steps'])} | {many['rerun_wall_s']:.1f} s | {many['rerun_cpu_s']:.1f} s | – |",
        "",
        f"tables compared: {res['tables_compared']} ({res['tables_with_rows']} with rows), "
        f"{res['rows_compared']:,} rows, {res['cells_compared']:,} values; comparison {res['compare_s']:.1f} s",
        "rows per table: " + ", ".join(f"{t} {n:,}" for t, n in sorted(res["tables"].items(), key=lambda kv: -kv[1])
                                       if n),
        f"1 vs {res['shards']} shards: max relative difference {res['max_rel_diff']:.2e}"
        + (f" ({res['max_rel_diff_at']})" if res["max_rel_diff_at"] else "") + f", tolerance {REL:.0e}: "
        + ("identical" if not res["differences"] else f"{len(res['differences'])} column(s) differ"),
        f"re-run of shard {res['rerun_shard']}: max relative difference {res['rerun_max_rel_diff']:.2e}"
        + (f" ({res['rerun_max_rel_diff_at']})" if res["rerun_max_rel_diff_at"] else "") + ", tolerance 0: "
        + ("unchanged" if not res["rerun_differences"] else f"{len(res['rerun_differences'])} column(s) changed"),
    ]
    lines += [f"  differs: {d}" for d in res["differences"]]
    lines += [f"  changed by the re-run: {d}" for d in res["rerun_differences"]]
    lines.append("OK" if res["ok"] else "MISMATCH")
    return "\n".join(lines)
