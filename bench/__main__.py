"""``python -m bench``: the pipeline at three universe sizes, and each kernel against the old loops.

Examples::

    python -m bench                               # the default plan (what `make bench` runs)
    python -m bench S --case nightly --repeat 3   # one size, one case
    python -m bench L --case nightly --repeat 1 --db postgres
    python -m bench --kernels-only                # the side-by-side kernel table only
    python -m bench --phase15-only                # only the phase-1.5 regression timings (about 1 minute)
    python -m bench M --retention                 # 30 nights of pairwise inserts, retention 10 (issue 19)
    python -m bench XL --case nightly --shard-positions 50000 --repeat 1 --no-kernels   # sharded (issue 18)
    python -m bench --compare bench/results/raw/latest-*.json    # sizes side by side (peak RSS per step)
    python -m bench S --shard-equality --db sqlite  # 1 vs 4 shards: the same tables; a shard re-run changes none

Results: ``<out>/raw/<timestamp>.json`` (every measurement; gitignored) and ``<out>/latest.json`` (the
summary the tables of docs/performance.md are made from), and the table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

# One BLAS thread, as the local runner and the phases use (set before numpy is imported).
for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

#: What `make bench` runs (about 20 minutes here). M's one-year backfill is not in it: measured alone it
#: does not fit the 30-minute budget (see docs/performance.md); run `python -m bench M --case backfill`.
DEFAULT_PLAN = [("S", "nightly", 3), ("S", "backfill", 1), ("M", "nightly", 3), ("L", "nightly", 3)]
TARGETS = {"L_nightly_wall_s": 120.0, "L_nightly_peak_rss_mb": 4096.0,
           # issue 19: a year of history in minutes (the M one-year backfill), each step <= 2 GB, writes <= 2x COPY
           "M_backfill_wall_s": 300.0, "M_backfill_step_peak_mb": 2048.0, "M_backfill_write_over_copy": 2.0,
           "kernel_speedup": 100.0, "kernel_max_abs_diff": 1e-8, "db_write_over_copy_floor": 3.0,
           # issue 4: phase 6 (its four steps, summed) for L on one date "well under a minute"
           "L_nightly_phase6_s": 30.0,
           # issue 3: the phase-1.5 regressions for 5,000 symbols x 252 sessions "well under a second"
           # (a nightly run: one calculation date on a year of closes; the 252-date backfill is reported too)
           "phase15_kernels_s": 0.5}


from bench.pipeline import PHASE6_STEPS  # noqa: E402  (after the BLAS settings above)


def machine() -> dict:
    mem_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal:")))
    except (OSError, StopIteration):
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    pg = ""
    try:
        import psycopg

        from bench.pipeline import PG_BASE

        with psycopg.connect(PG_BASE.replace("+psycopg", ""), connect_timeout=3) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except Exception:
        pg = "unreachable"
    return {"cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "postgres": pg, "platform": platform.platform()}


def summarize_case(res: dict) -> dict:
    """Medians over the repeats: per step and total wall, rows, rows/s, peak RSS, write time vs floor."""
    runs = res["runs"]
    names = [s["step"] for s in runs[0]["steps"]]
    steps = []
    for i, name in enumerate(names):
        walls = [r["steps"][i]["wall_s"] for r in runs]
        first = runs[0]["steps"][i]
        wall = statistics.median(walls)
        slowest = statistics.median(r["steps"][i].get("wall_max_s") or r["steps"][i]["wall_s"] for r in runs)
        steps.append({"step": name, "wall_s": round(wall, 3), "wall_min_s": round(min(walls), 3),
                      "wall_max_s": round(slowest, 3), "n_shards": first.get("n_shards", 1),
                      "peak_rss_min_mb": first.get("peak_rss_min_mb"),
                      "rows": first["rows"], "rows_per_s": round(first["rows"] / wall) if wall > 0 else None,
                      "peak_rss_mb": round(max(r["steps"][i]["peak_rss_mb"] or 0 for r in runs), 1),
                      "db_write_s": round(first["db_write_s"], 3), "copy_floor_s": round(first["copy_floor_s"], 3)})
    total = [r["wall_s"] for r in runs]
    p6 = [r["phase6_dag"]["wall_s"] for r in runs if r.get("phase6_dag")]
    dag_walls = [r["dag"]["wall_s"] for r in runs if r.get("dag")]
    write = sum(s["db_write_s"] for s in runs[0]["steps"])
    floor = sum(s["copy_floor_s"] for s in runs[0]["steps"])
    rows = sum(s["rows"] for s in runs[0]["steps"])
    return {k: res.get(k) for k in ("size", "case", "db", "symbols", "portfolios", "positions", "sessions", "start",
                                    "end", "shard_positions", "shard_parallel", "loadavg_start", "loadavg_end")} | {
        "repeats": len(runs), "wall_s": round(statistics.median(total), 2), "wall_runs_s": [round(x, 2) for x in total],
        "rows": rows, "rows_per_s": round(rows / statistics.median(total)),
        "peak_rss_mb": round(max(s["peak_rss_mb"] for s in steps), 1),
        "db_write_s": round(write, 3), "copy_floor_s": round(floor, 3),
        "write_over_floor": round(write / floor, 2) if floor > 0 else None,
        "load_s": res["load"][0]["seconds"] if res["load"] else None,
        "phase6_sequential_s": round(sum(s["wall_s"] for s in steps if s["step"] in PHASE6_STEPS), 2),
        "phase6_dag_s": round(statistics.median(p6), 2) if p6 else None, "phase6_dag_runs_s": p6,
        "phase6_dag_max_parallel": runs[0]["phase6_dag"]["max_parallel"] if p6 else None,
        "dag_wall_s": round(statistics.median(dag_walls), 2) if dag_walls else None, "dag_runs_s": dag_walls,
        "dag_max_parallel": runs[0]["dag"]["max_parallel"] if dag_walls else None,
        "dag_step_wall_s": runs[0]["dag"]["step_wall_s"] if dag_walls else None, "steps": steps}


def check_targets(cases: list[dict], kernels: list[dict], phase15: list[dict] | None = None) -> dict:
    out = {}
    by = {(c["size"], c["case"]): c for c in cases}
    if ("L", "nightly") in by:
        c = by[("L", "nightly")]
        out["L nightly wall <= 120 s"] = {"measured": c["wall_s"], "met": c["wall_s"] <= TARGETS["L_nightly_wall_s"]}
        p6 = c["phase6_sequential_s"]
        out[f"L nightly phase 6, its 4 steps one after another <= {TARGETS['L_nightly_phase6_s']:.0f} s"] = {
            "measured": p6, "met": p6 <= TARGETS["L_nightly_phase6_s"]}
        if c.get("phase6_dag_s") is not None:
            out[f"L nightly phase 6 as the DAG runs it ({c['phase6_dag_max_parallel']} steps at once) <= "
                f"{TARGETS['L_nightly_phase6_s']:.0f} s"] = {
                "measured": c["phase6_dag_s"], "met": c["phase6_dag_s"] <= TARGETS["L_nightly_phase6_s"]}
        out["L nightly peak memory <= 4 GB"] = {"measured_mb": c["peak_rss_mb"],
                                                "met": c["peak_rss_mb"] <= TARGETS["L_nightly_peak_rss_mb"]}
    if ("M", "backfill") in by:
        c = by[("M", "backfill")]
        out["M backfill <= 5 min, steps one after another"] = {
            "measured": c["wall_s"], "met": c["wall_s"] <= TARGETS["M_backfill_wall_s"]}
        if c.get("dag_wall_s") is not None:
            out[f"M backfill <= 5 min as the DAG runs it ({c['dag_max_parallel']} steps at once)"] = {
                "measured": c["dag_wall_s"], "met": c["dag_wall_s"] <= TARGETS["M_backfill_wall_s"]}
        out["M backfill: each step's peak RSS <= 2 GB"] = {
            "measured_mb": c["peak_rss_mb"], "met": c["peak_rss_mb"] <= TARGETS["M_backfill_step_peak_mb"]}
        if c.get("write_over_floor") is not None:
            out["M backfill: DB write <= 2x a bare COPY"] = {
                "measured": c["write_over_floor"], "met": c["write_over_floor"] <= TARGETS["M_backfill_write_over_copy"]}
    for k in kernels:
        out[f"kernel {k['kernel']}: >= 100x, max|diff| <= 1e-8"] = {
            "speedup": round(k["speedup"], 1), "max_abs_diff": k["max_abs_diff"],
            "met": k["speedup"] >= TARGETS["kernel_speedup"] and k["max_abs_diff"] <= TARGETS["kernel_max_abs_diff"]}
    for r in phase15 or []:
        if r["case"] != "nightly":  # the 252-date backfill is shown in the table, for scale; no target
            continue
        out[f"phase-1.5 kernels {r['case']} ({r['regime']}, {r['symbols']:,} symbols x {r['sessions']} sessions, "
            f"{r['dates']} date(s)) <= {TARGETS['phase15_kernels_s']} s"] = {
            "median_s": round(r["median_s"], 3), "met": r["median_s"] <= TARGETS["phase15_kernels_s"]}
    for c in cases:
        if c["write_over_floor"] is not None and c["db"] == "postgres":
            out[f"{c['size']} {c['case']}: db write <= 3x bare COPY"] = {
                "db_write_s": c["db_write_s"], "copy_floor_s": c["copy_floor_s"], "ratio": c["write_over_floor"],
                "met": c["write_over_floor"] <= TARGETS["db_write_over_copy_floor"]}
    return out


def memory_limit(step: str) -> str | None:
    """The step's memory limit in the rendered manifests (:class:`workflows.dag.Resources`)."""
    from workflows import dag

    found = {s.name: s for s in (*dag.STEPS, dag.EXIT_STEP)}.get(step)
    return found.resources.memory_limit if found else None


def _mib(quantity: str) -> float:
    """A Kubernetes memory quantity (``512Mi``, ``4Gi``) in MiB (the unit of the peak RSS figures)."""
    units = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0 ** 2}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def _fmt_s(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def _head(*cols: str) -> list[str]:
    """A blank line, then the header and separator rows of a Markdown table."""
    return ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def table(summary: dict) -> str:
    lines = []
    m = summary["machine"]
    lines.append(f"machine: {m['cores']} cores, {m['memory_gb']} GB RAM, {m['cpu']}, Python {m['python']}, "
                 f"PostgreSQL {m['postgres']}")
    if summary["cases"]:
        lines += _head("size", "case", "symbols / portfolios / positions", "sessions", "wall (median)", "runs",
                       "rows written", "rows/s", "peak RSS (phase)", "DB write", "bare COPY", "write/COPY")
        for c in summary["cases"]:
            lines.append(
                f"| {c['size']} | {c['case']} | {c['symbols']:,} / {c['portfolios']:,} / {c['positions']:,} "
                f"| {c['sessions']} | {c['wall_s']:.1f} s | {c['repeats']} | {c['rows']:,} | {c['rows_per_s']:,} "
                f"| {c['peak_rss_mb']:.0f} MB | {c['db_write_s']:.2f} s | {c['copy_floor_s']:.2f} s "
                f"| {c['write_over_floor'] if c['write_over_floor'] is not None else '–'}× |")
        for c in summary["cases"]:
            lines.append("")
            lines.append(f"{c['size']} {c['case']} per phase (median of {c['repeats']}; wall = process spawn to exit):")
            sharded = any(s.get("n_shards", 1) > 1 for s in c["steps"])
            if sharded:
                lines.append(f"(sharded: {c['shard_positions']:,} positions a shard; a fanned-out step's wall is "
                             f"summed over its shards, peak RSS is its largest shard's)")
            lines += _head("phase", *(["processes"] if sharded else []), "wall", *(["slowest shard"] if sharded else []),
                           "rows", "rows/s", "peak RSS", "memory limit (manifest)", "DB write", "bare COPY")
            for s in c["steps"]:
                limit = memory_limit(s["step"])
                over = " **over**" if limit and s["peak_rss_mb"] > _mib(limit) else ""
                extra = [f"{s.get('n_shards', 1)}"] if sharded else []
                slow = [f"{s.get('wall_max_s') or s['wall_s']:.2f} s"] if sharded else []
                lines.append(f"| {s['step']} | {''.join(x + ' | ' for x in extra)}{s['wall_s']:.2f} s | "
                             f"{''.join(x + ' | ' for x in slow)}{s['rows']:,} | "
                             f"{s['rows_per_s'] if s['rows_per_s'] is not None else '–':,} | "
                             f"{s['peak_rss_mb']:.0f} MB | {limit or '–'}{over} | {s['db_write_s']:.2f} s "
                             f"| {s['copy_floor_s']:.2f} s |")
            if c.get("phase6_dag_s") is not None:
                lines.append("")
                lines.append(f"phase 6: {c['phase6_sequential_s']:.1f} s with its steps one after another; "
                             f"{c['phase6_dag_s']:.1f} s re-run as the DAG schedules it ({c['phase6_dag_max_parallel']} "
                             f"at once; runs {', '.join(f'{x:.1f}' for x in c['phase6_dag_runs_s'])} s)")
            if c.get("dag_wall_s") is not None:
                lines.append("")
                lines.append(f"the whole run as `sigmabatch run` schedules it ({c['dag_max_parallel']} steps at once): "
                             f"{c['dag_wall_s']:.1f} s (runs {', '.join(f'{x:.1f}' for x in c['dag_runs_s'])} s) "
                             f"against {c['wall_s']:.1f} s with the steps one after another")
    if summary["kernels"]:
        lines += _head("kernel", "reference (old system)", "full size", "vectorized", "reference, subset",
                       "reference, full (extrapolated)", "speed-up", "max abs diff")
        for k in summary["kernels"]:
            lines.append(f"| {k['kernel']} | {k['reference']} | {k['full_n']:,} {k['unit']} | {_fmt_s(k['vectorized_s'])} "
                         f"| {_fmt_s(k['reference_subset_s'])} ({k['subset_n']}) | "
                         f"{_fmt_s(k['reference_full_s_extrapolated'])} | {k['speedup']:,.0f}× | "
                         f"{k['max_abs_diff']:.1e} |")
    if summary.get("phase15"):
        lines += _head("phase-1.5 regressions (compute_symbol_beta_arrays)", "missing data", "symbols", "sessions",
                       "calculation dates", "median", "min")
        for r in summary["phase15"]:
            lines.append(f"| {r['case']} | {r['regime']} | {r['symbols']:,} | {r['sessions']} | {r['dates']} "
                         f"| {_fmt_s(r['median_s'])} | {_fmt_s(r['min_s'])} |")
    if summary.get("targets"):
        lines.append("")
        lines.append("targets:")
        for name, t in summary["targets"].items():
            vals = ", ".join(f"{k}={v}" for k, v in t.items() if k != "met")
            lines.append(f"  [{'met' if t['met'] else 'NOT met'}] {name} ({vals})")
    return "\n".join(lines)


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.1f}×" if b else "–"


def compare_table(cases: list[dict]) -> str:
    """Sizes side by side (issue 18): peak RSS of every step per size, its manifest limit; then wall, DB
    write, rows and peak per size, and each figure's growth from one size to the next (ratios)."""
    cases = sorted(cases, key=lambda c: c["positions"])
    names = [s["step"] for s in cases[0]["steps"]]
    label = [f"{c['size']} ({max(s.get('n_shards', 1) for s in c['steps'])} "
             f"shard{'s' if max(s.get('n_shards', 1) for s in c['steps']) > 1 else ''})" for c in cases]
    sp = {c.get("shard_positions") for c in cases}
    lines = [f"shard size: {', '.join(f'{x:,}' for x in sp if x) or 'none'} positions; "
             + "; ".join(f"{c['size']}: {c['symbols']:,} symbols / {c['portfolios']:,} portfolios / "
                         f"{c['positions']:,} positions, load average {c.get('loadavg_start')} at the start, "
                         f"{c.get('loadavg_end')} at the end" for c in cases)]
    lines += _head("step", *(f"{x}: peak RSS" for x in label), "memory limit", *(f"{x}: wall (slowest)" for x in label))
    for name in names:
        by = [next((s for s in c["steps"] if s["step"] == name), None) for c in cases]
        limit = memory_limit(name)
        rss = [(f"{s['peak_rss_mb']:.0f} MB" + (" **over**" if limit and s["peak_rss_mb"] > _mib(limit) else ""))
               if s else "–" for s in by]
        wall = [(f"{s['wall_s']:.1f} s" + (f" ({s['wall_max_s']:.1f})" if s.get("n_shards", 1) > 1 else "")) if s
                else "–" for s in by]
        lines.append(f"| {name} | {' | '.join(rss)} | {limit or '–'} | {' | '.join(wall)} |")
    lines += _head("size", "positions", "processes", "wall (summed)", "DB write", "bare COPY", "rows written",
                   "largest peak RSS", "wall ×", "DB write ×", "rows ×", "peak ×")
    prev = None
    for c in cases:
        procs = sum(s.get("n_shards", 1) for s in c["steps"])
        lines.append(f"| {c['size']} | {c['positions']:,} | {procs} | {c['wall_s']:.0f} s | {c['db_write_s']:.1f} s "
                     f"| {c['copy_floor_s']:.1f} s | {c['rows']:,} | {c['peak_rss_mb']:.0f} MB "
                     f"| {_ratio(c['wall_s'], prev['wall_s'] if prev else None)} "
                     f"| {_ratio(c['db_write_s'], prev['db_write_s'] if prev else None)} "
                     f"| {_ratio(c['rows'], prev['rows'] if prev else None)} "
                     f"| {_ratio(c['peak_rss_mb'], prev['peak_rss_mb'] if prev else None)} |")
        prev = c
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sizes", nargs="*", choices=["S", "M", "L", "XL", []], metavar="SIZE",
                   help="S (500 symbols, 100 portfolios, 2,000 positions), M (2,000 / 2,000 / 40,000), "
                        "L (10,000 / 10,000 / 200,000), XL (20,000 / 100,000 / 2,000,000: not in the default "
                        "plan, run it sharded); none = the default plan")
    p.add_argument("--case", choices=["nightly", "backfill", "both"], default="both",
                   help="nightly: one new session on a year of history; backfill: a one-year onboarding")
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres",
                   help="PostgreSQL at 127.0.0.1:5432 (schema bench_<size>_<case>, dropped after) or a SQLite file")
    p.add_argument("--repeat", type=int, default=None, help="runs per case (default: 3, 1 for M/L backfill)")
    p.add_argument("--backfill-sessions", type=int, default=252,
                   help="sessions of the backfill case (default 252 = one year)")
    p.add_argument("--portfolios", type=int, default=None,
                   help="a reduced variant: this many portfolios (same positions per portfolio) with the size's "
                        "symbol count, e.g. `L --case backfill --portfolios 2000` for L's symbol-driven memory")
    p.add_argument("--steps", default="",
                   help="comma-separated steps to run (with plan and their upstream steps), e.g. market-data; "
                        "default every step")
    p.add_argument("--shard-positions", type=int, default=0,
                   help="run sharded: SIGMABATCH_SHARD_POSITIONS for plan (e.g. 50000: M 1 shard, L 4, XL 40); every "
                        "fanned-out step runs once per shard (--shard K/N) and reports the largest shard's peak RSS, "
                        "the summed and the slowest wall")
    p.add_argument("--shard-parallel", type=int, default=1, choices=[1, 2],
                   help="shards of a fanned-out step run at once (default 1: one after another)")
    p.add_argument("--dag", type=int, default=0, metavar="N",
                   help="also run each repeat once more as `sigmabatch run` schedules it (the local runner, N steps "
                        "at once, from the same starting state: the backfill on a freshly loaded database) and "
                        "report its wall time, the time an operator waits; the sequential run attributes time per step")
    p.add_argument("--compare", nargs="+", default=[], metavar="SUMMARY",
                   help="only print the sizes of these summary files (latest*.json) side by side: peak RSS of every "
                        "step, wall and DB write per size, and the growth ratios between consecutive sizes")
    p.add_argument("--shard-equality", action="store_true",
                   help="only the shard-equality check (bench/shard_equality.py, issue 18): the SIZE universe (default "
                        "S) over a range of --sessions sessions on a year of history, unsharded and with --shards "
                        "shards into two databases (--db), every table compared row by row (1e-12 relative), then "
                        "one shard re-run with --force (tables unchanged); exits 1 on a mismatch")
    p.add_argument("--sessions", type=int, default=5, help="shard-equality: sessions of the range (5)")
    p.add_argument("--shards", type=int, default=4, help="shard-equality: SIGMABATCH_SHARDS of the sharded run (4)")
    p.add_argument("--rerun-shard", type=int, default=2, help="shard-equality: the shard re-run with --force (2)")
    p.add_argument("--kernels-only", action="store_true", help="only the kernel side-by-side table")
    p.add_argument("--no-kernels", action="store_true", help="skip the kernel side-by-side table")
    p.add_argument("--phase15-only", action="store_true",
                   help="only time the phase-1.5 regressions (5,000 symbols x 252 sessions, nightly and backfill)")
    p.add_argument("--retention", action="store_true",
                   help="only the bounded-growth measurement (bench/retention.py): the nightly pairwise insert at "
                        "night 1 and night N on PostgreSQL with a retention, date-first key against the old key; "
                        "SIZE gives the rows a night (default M: 380,000)")
    p.add_argument("--retention-nights", type=int, default=30, help="nights of the retention measurement (30)")
    p.add_argument("--retention-keep", type=int, default=10, help="sessions the pairwise retention keeps (10)")
    p.add_argument("--no-old-key", action="store_true", help="retention measurement: skip the 0007-key comparison")
    p.add_argument("--no-vacuum", action="store_true", help="retention measurement: no VACUUM after each night")
    p.add_argument("--kernel-size", choices=["S", "M", "L"], default="L", help="universe size for the kernels")
    p.add_argument("--subset", type=int, default=200, help="symbols/portfolios the reference loops run on")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="results folder")
    p.add_argument("--workdir", default="", help="scratch folder (price caches, phase logs); default a temp dir")
    args = p.parse_args(argv)

    if args.retention:
        return _retention(args)
    if args.shard_equality:
        return _shard_equality(args)
    if args.compare:
        cases = [c for f in args.compare for c in json.loads(Path(f).read_text())["cases"]]
        print(compare_table(cases))
        return 0

    from bench.kernels import run_kernels
    from bench.kernels_symbol import phase15_timings
    from bench.pipeline import bench_case

    if args.kernels_only or args.phase15_only:
        plan = []
    elif args.sizes:
        cases = ["nightly", "backfill"] if args.case == "both" else [args.case]
        plan = [(s, c, args.repeat or (1 if (s != "S" and c == "backfill") else 3))
                for s in args.sizes for c in cases if not (s == "L" and c == "backfill" and args.case == "both")]
    else:
        plan = [(s, c, args.repeat or r) for s, c, r in DEFAULT_PLAN]
    out = Path(args.out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    raw = {"started": started.isoformat(), "argv": sys.argv[1:] if argv is None else argv, "machine": machine(),
           "cases": [], "kernels": [], "phase15": []}
    print(f"sigmabatch bench: {len(plan)} case(s){'' if args.no_kernels else ' + kernels'}", flush=True)
    for size, case, repeat in plan:
        print(f"{size} {case} x{repeat} ({args.db})", flush=True)
        workdir = Path(args.workdir) / f"{size}-{case}" if args.workdir else None
        raw["cases"].append(bench_case(size, case, args.db, repeat, workdir, progress=lambda m: print(m, flush=True),
                                       backfill_sessions=args.backfill_sessions, portfolios=args.portfolios,
                                       only=tuple(x for x in args.steps.split(",") if x),
                                       shard_positions=args.shard_positions, shard_parallel=args.shard_parallel,
                                       dag_parallel=args.dag))
    if args.phase15_only:
        raw["phase15"] = phase15_timings(progress=lambda m: print(m, flush=True))
    elif not args.no_kernels:
        print(f"kernels at size {args.kernel_size}, references on {args.subset}", flush=True)
        raw["kernels"] = run_kernels(args.kernel_size, args.subset, progress=lambda m: print(m, flush=True))
        print("phase-1.5 regressions, 5,000 symbols x 252 sessions", flush=True)
        raw["phase15"] = phase15_timings(progress=lambda m: print(m, flush=True))
    raw["seconds"] = round(time.perf_counter() - t0, 1)
    summary = {"started": raw["started"], "seconds": raw["seconds"], "machine": raw["machine"],
               "cases": [summarize_case(c) for c in raw["cases"]], "kernels": raw["kernels"],
               "phase15": raw["phase15"]}
    summary["targets"] = check_targets(summary["cases"], summary["kernels"], summary["phase15"])
    stamp = started.strftime("%Y%m%d-%H%M%S")
    (out / "raw" / f"{stamp}.json").write_text(json.dumps(raw, indent=1, default=str))
    name = "latest.json" if not (args.sizes or args.kernels_only or args.phase15_only) else f"latest-{stamp}.json"
    (out / "raw" / name if name != "latest.json" else out / name).write_text(json.dumps(summary, indent=1,
                                                                                         default=str))
    print()
    print(table(summary))
    print(f"\n{raw['seconds']:.0f} s in all; results: {out / 'raw' / (stamp + '.json')}"
          + (f", {out / 'latest.json'}" if name == "latest.json" else ""))
    return 0


def _shard_equality(args) -> int:
    from bench.shard_equality import shard_equality
    from bench.shard_equality import table as equality_table

    out = Path(args.out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    size = args.sizes[0] if args.sizes else "S"
    print(f"shard equality: {size}, {args.db}, {args.sessions} sessions, 1 vs {args.shards} shards", flush=True)
    result = shard_equality(size, args.db, args.sessions, args.shards, args.rerun_shard, args.shard_parallel,
                            Path(args.workdir) if args.workdir else None, progress=lambda m: print(m, flush=True))
    result |= {"started": started.isoformat(), "seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
    _save(out, "shard-equality", started, result, equality_table(result))
    return 0 if result["ok"] else 1


def _retention(args) -> int:
    from bench.retention import bench_retention
    from bench.retention import table as retention_table

    out = Path(args.out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    started = datetime.now().astimezone()
    t0 = time.perf_counter()
    result = bench_retention(args.sizes[0] if args.sizes else "M", args.retention_nights, args.retention_keep,
                             old_key=not args.no_old_key, vacuum_after=not args.no_vacuum,
                             progress=lambda msg: print(msg, flush=True))
    result |= {"started": started.isoformat(), "seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
    _save(out, "retention", started, result, retention_table(result))
    return 0


def _save(out: Path, kind: str, started: datetime, result: dict, table: str) -> None:
    """Write ``result`` to ``<out>/raw/<kind>-<timestamp>.json`` and print ``table`` and where it went."""
    path = out / "raw" / f"{kind}-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print()
    print(table)
    print(f"\n{result['seconds']:.0f} s in all; results: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
