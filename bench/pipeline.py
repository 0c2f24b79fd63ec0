"""Run the pipeline on a benchmark universe: every DAG step as its own ``python -m phases.<x>`` process.

Steps run one after another in the DAG's topological order (plan first, record-run last), with exactly
the arguments the local runner and Argo pass (:func:`workflows.dag.step_args`) and BLAS pinned to one
thread. Per step: wall time (spawn to exit, interpreter start-up included), peak RSS of the step's
process (``VmHWM`` of the exec-ed phase, written by :mod:`bench._launch`), rows written (the phase's result line), and the
phase's database-write time next to a bare COPY of the same bytes (``shared.storage.bulk``).

The floor measurement runs inside the phase (a second COPY of every written buffer into an empty table
of the same shape, rolled back), only in the first repeat; its time is subtracted from that repeat's
wall time (``wall_s``), and reported separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.universe import NOW, Plan, clear_phase6_results, load, reset_nightly
from shared import calendar
from workflows import dag
from workflows.local import LocalRunner

ROOT = Path(__file__).resolve().parents[1]
PG_BASE = os.environ.get("SIGMABATCH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RESULT_PREFIX = "sigmabatch-result: "
BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Database:
    kind: str  # postgres | sqlite
    url: str
    conninfo: str | None
    schema: str | None = None
    path: Path | None = None

    @classmethod
    def create(cls, kind: str, name: str, workdir: Path) -> Database:
        if kind == "sqlite":
            path = workdir / f"{name}.db"
            path.unlink(missing_ok=True)
            return cls("sqlite", f"sqlite:///{path}", None, path=path)
        raw = PG_BASE.replace("+psycopg", "")
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {name}")
        conninfo = f"{raw}?options=-csearch_path%3D{name}"
        return cls("postgres", f"{PG_BASE}?options=-csearch_path%3D{name}", conninfo, schema=name)

    def migrate(self) -> None:
        from shared.storage.db import get_engine, migrate

        migrate(get_engine(self.url))

    def drop(self) -> None:
        from shared.storage.db import get_engine

        get_engine(self.url).dispose()
        if self.schema:
            with psycopg.connect(PG_BASE.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        if self.path:
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                p.unlink(missing_ok=True)


def _env(db: Database, plan: Plan, artifacts: Path, floor: bool, shard_positions: int = 0,
         shards: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update(BLAS)
    env.update({
        "PYTHONPATH": str(ROOT), "SIGMABATCH_DATABASE_URL": db.url, "SIGMABATCH_ARTIFACTS": str(artifacts),
        "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": str(plan.symbols),
        "SIGMABATCH_SYNTHETIC_SEED": "7", "SIGMABATCH_NOW": NOW, "SIGMABATCH_LOG_LEVEL": "WARNING",
        "SIGMABATCH_BENCH_COPY_FLOOR": "1" if floor else "0",
    })
    if shard_positions:  # plan splits the book into ceil(positions / this) portfolio shards
        env["SIGMABATCH_SHARD_POSITIONS"] = str(shard_positions)
    if shards:  # or a fixed number of shards
        env["SIGMABATCH_SHARDS"] = str(shards)
    return env


def run_step(step: dag.Step, args: list[str], env: dict[str, str], log: Path) -> dict:
    """Run one step; wall time, peak RSS (MB), its result line."""
    cmd = [sys.executable, "-m", "bench._launch", step.module, *args]
    rss_file = log.with_suffix(".rss")
    env = {**env, "SIGMABATCH_BENCH_RSS_FILE": str(rss_file)}
    with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    result = {}
    for line in log.read_text().splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    if proc.returncode != 0:
        tail = log.with_suffix(".err").read_text().strip().splitlines()[-5:]
        raise RuntimeError(f"{step.name} exited {proc.returncode}: {' | '.join(tail)}")
    io = (result.get("db_write") or {}).get("total", {})
    # rows the database wrote: inserted (``rows``) and updated in place (``updated``), as before the split
    rows = int(sum(int(v) for part in ("rows", "updated") for v in (result.get(part) or {}).values()))
    floor = float(io.get("floor_seconds", 0.0))
    return {"step": step.name, "status": result.get("status"), "wall_raw_s": wall, "wall_s": wall - floor,
            "cpu_s": usage.ru_utime + usage.ru_stime,  # the process's user + system CPU (the machine is shared)
            "phase_s": result.get("seconds"), "peak_rss_mb": int(rss_file.read_text()) / 1024.0 if rss_file.exists() else None, "rows": rows,
            "rows_by_table": result.get("rows") or {}, "db_write_s": float(io.get("seconds", 0.0)),
            "db_serialize_s": float(io.get("serialize_seconds", 0.0)), "copy_floor_s": floor,
            "db_rows": int(io.get("rows", 0))}


#: Phase 6's sub-DAG (exposures, volatility and correlations in parallel, stress tests after exposures).
PHASE6_STEPS = ("risk-exposures", "risk-volatility", "risk-correlations", "stress-tests")


@dataclass
class PipelineRun:
    run_id: str
    run_dir: Path
    start: str
    end: str
    env: dict[str, str]

    def args(self, step: dag.Step, shard: str | None = None, force: bool = False) -> list[str]:
        cache = str(self.run_dir / dag.PRICE_CACHE_FILE)
        return dag.step_args(step, start_date=self.start, end_date=self.end, price_cache_in=cache,
                             price_cache_out=cache, outputs_dir=str(self.run_dir / "outputs"), trigger="manual",
                             portfolio="", run_id=self.run_id, force="true" if force else "false", shard=shard)

    def shards(self) -> list[str]:
        """The shards plan decided (its ``shards`` output), ``["1/1"]`` when it wrote none."""
        path = self.run_dir / "outputs" / "shards"
        return json.loads(path.read_text()) if path.exists() else ["1/1"]


def run_sharded(step: dag.Step, run: PipelineRun, shards: list[str], parallel: int, progress=None) -> dict:
    """Run a fanned-out step once per shard (``--shard K/N``, the same arguments otherwise), at most
    ``parallel`` processes at once. Folded like the local runner folds a fanned-out step: peak RSS = the
    largest shard's, wall = summed over the shards (``wall_s``) and the slowest shard (``wall_max_s``),
    ``elapsed_s`` = first start to last exit; rows, CPU and DB write time summed. ``shards`` has each."""
    def one(shard: str) -> dict:
        tag = shard.replace("/", "of")
        res = run_step(step, run.args(step, shard), run.env, run.run_dir / f"{step.name}.{tag}.log")
        if progress:
            progress(f"    {step.name}[{shard}] {res['wall_s']:.1f} s, CPU {res['cpu_s']:.1f} s, {res['peak_rss_mb'] or 0:.0f} MB, "
                     f"{res['rows']:,} rows")
        return res | {"shard": shard}

    t0 = time.perf_counter()
    if parallel > 1:
        with ThreadPoolExecutor(max_workers=parallel) as pool:  # each thread waits on its own child
            parts = list(pool.map(one, shards))
    else:
        parts = [one(k) for k in shards]
    elapsed = time.perf_counter() - t0
    rss = [p["peak_rss_mb"] for p in parts if p["peak_rss_mb"] is not None]
    rows_by_table: dict[str, int] = {}
    for p in parts:
        for t, n in p["rows_by_table"].items():
            rows_by_table[t] = rows_by_table.get(t, 0) + int(n)
    return {"step": step.name, "status": ",".join(sorted({str(p["status"]) for p in parts})),
            "wall_raw_s": sum(p["wall_raw_s"] for p in parts), "wall_s": sum(p["wall_s"] for p in parts),
            "wall_max_s": max(p["wall_s"] for p in parts), "elapsed_s": elapsed,
            "cpu_s": sum(p["cpu_s"] for p in parts),
            "phase_s": sum(p["phase_s"] or 0 for p in parts), "peak_rss_mb": max(rss) if rss else None,
            "peak_rss_min_mb": min(rss) if rss else None, "rows": sum(p["rows"] for p in parts),
            "rows_by_table": rows_by_table, "db_write_s": sum(p["db_write_s"] for p in parts),
            "db_serialize_s": sum(p["db_serialize_s"] for p in parts),
            "copy_floor_s": sum(p["copy_floor_s"] for p in parts), "db_rows": sum(p["db_rows"] for p in parts),
            "n_shards": len(parts), "shards": parts}


def run_pipeline(db: Database, plan: Plan, start: str, end: str, workdir: Path, floor: bool,
                 only: tuple[str, ...] = (), shard_positions: int = 0, shard_parallel: int = 1,
                 progress=None, shards: int = 0) -> tuple[list[dict], PipelineRun]:
    """Every step once, in DAG order. With ``shard_positions`` (or a fixed number of ``shards``), plan splits
    the book into portfolio shards and every fanned-out step runs once per shard (:func:`run_sharded`)."""
    run_id = f"bench-{plan.size}-{int(time.time() * 1000) % 10**9}"
    run_dir = workdir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    run = PipelineRun(run_id, run_dir, start, end,
                      _env(db, plan, run_dir / "artifacts", floor, shard_positions, shards))
    out = []
    steps = [dag.steps_by_name()["plan"], *[s for s in dag.topological_order() if s.name != "plan"], dag.EXIT_STEP]
    if only:  # plan, then the named steps (and their upstream steps) in DAG order
        keep = {"plan", *only}
        for step in reversed(steps):
            if step.name in keep:
                keep.update(step.upstream)
        steps = [s for s in steps if s.name in keep]
    chosen = ["1/1"]
    for step in steps:
        if step.fan_out and len(chosen) > 1:
            out.append(run_sharded(step, run, chosen, shard_parallel, progress))
        else:
            out.append(run_step(step, run.args(step), run.env, run_dir / f"{step.name}.log")
                       | {"n_shards": 1, "wall_max_s": None, "elapsed_s": None})
            out[-1]["wall_max_s"] = out[-1]["elapsed_s"] = out[-1]["wall_s"]
        if step.name == "plan" and (shard_positions or shards):
            chosen = run.shards()
        if progress:
            s = out[-1]
            progress(f"  {step.name}: {s['wall_s']:.1f} s summed over {s['n_shards']} process(es), "
                     f"slowest {s['wall_max_s']:.1f} s, CPU {s['cpu_s']:.1f} s, peak RSS {s['peak_rss_mb'] or 0:.0f} MB, {s['rows']:,} rows, "
                     f"DB write {s['db_write_s']:.2f} s")
    return out, run


def run_subdag_concurrently(run: PipelineRun, names: tuple[str, ...], max_parallel: int) -> dict:
    """Re-run the steps ``names`` of a finished run as the local runner schedules them: each starts as
    soon as its dependencies inside ``names`` are done, at most ``max_parallel`` at once (re-running a
    step is idempotent). Returns the wall time from the first start to the last exit, and each step's
    own wall time."""
    from shared import locking
    from shared.storage.db import get_engine

    by_name = dag.steps_by_name()
    steps = [by_name[n] for n in names]
    env = {**run.env, "SIGMABATCH_BENCH_COPY_FLOOR": "0"}
    pending, running, done, walls = list(steps), {}, set(), {}
    # the run holds the batch lock for the re-run, as the local runner does: a step that took the free lock
    # itself would release it when it ends and fence out the steps still running beside it
    engine = get_engine(env["SIGMABATCH_DATABASE_URL"])
    locking.acquire(engine, run.run_id)
    t0 = time.perf_counter()
    try:
        while pending or running:
            for step in list(pending):
                if len(running) >= max_parallel:
                    break
                if all(d in done or d not in names for d in step.upstream):
                    log = run.run_dir / f"{step.name}.concurrent.log"
                    cmd = [sys.executable, "-m", "bench._launch", step.module, *run.args(step)]
                    with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
                        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
                    running[proc.pid] = (step, proc, time.perf_counter())
                    pending.remove(step)
            pid, status, _usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            step, proc, started = running.pop(pid)
            proc.returncode = os.waitstatus_to_exitcode(status)
            walls[step.name] = round(time.perf_counter() - started, 3)
            if proc.returncode != 0:
                tail = (run.run_dir / f"{step.name}.concurrent.err").read_text().strip().splitlines()[-5:]
                raise RuntimeError(f"{step.name} (concurrent re-run) exited {proc.returncode}: {' | '.join(tail)}")
            done.add(step.name)
    finally:  # a failed or interrupted measurement leaves no phase process behind, nor the lock
        for _step, proc, _started in running.values():
            proc.kill()
            proc.wait()
        locking.release(engine, run.run_id)
    return {"steps": list(names), "max_parallel": max_parallel, "wall_s": round(time.perf_counter() - t0, 3),
            "step_wall_s": walls}


def run_as_dag(db: Database, plan: Plan, start: str, end: str, workdir: Path, max_parallel: int) -> dict:
    """The whole run as ``sigmabatch run`` schedules it (:class:`~workflows.local.LocalRunner`: each step
    starts when its upstream steps are done, at most ``max_parallel`` at once, BLAS pinned to one thread):
    the wall time from start to the exit handler's end, which is what an operator waits for; each step's own
    wall time (first start to last exit, retries included) beside it."""
    from shared.settings import Settings

    run_id = f"bench-dag-{plan.size}-{int(time.time() * 1000) % 10**9}"
    env = {**_env(db, plan, workdir / run_id / "artifacts", floor=False), "SIGMABATCH_BENCH_COPY_FLOOR": "0"}
    child = {k: v for k, v in env.items() if k.startswith("SIGMABATCH_") or k in BLAS or k == "PYTHONPATH"}
    runner = LocalRunner(Settings.from_env(env), max_parallel=max_parallel, env=child, workdir=workdir / run_id,
                         max_retries=0)
    t0 = time.perf_counter()
    outcome = runner.run(start_date=start, end_date=end, run_id=run_id)
    wall = time.perf_counter() - t0
    if outcome.status not in ("completed", "partial"):  # partial: a step kept what it could (as in the sequential run)
        bad = {n: s.error or s.status for n, s in outcome.steps.items() if s.status in ("failed", "not-run")}
        raise RuntimeError(f"the run as the DAG schedules it ended {outcome.status} (exit {outcome.exit_code}): {bad}")
    return {"max_parallel": max_parallel, "wall_s": round(wall, 3), "status": outcome.status,
            "partial_steps": sorted(n for n, s in outcome.steps.items() if s.status == "partial"),
            "step_wall_s": {n: round(s.seconds, 3) for n, s in outcome.steps.items()}}


def bench_case(size: str, case: str, db_kind: str, repeat: int, workdir: Path | None = None,
               progress=print, backfill_sessions: int = 252, portfolios: int | None = None,
               only: tuple[str, ...] = (), shard_positions: int = 0, shard_parallel: int = 1,
               dag_parallel: int = 0) -> dict:
    """Load the universe for (size, case) and run the pipeline ``repeat`` times; all measurements.

    ``shard_positions``: run sharded (``SIGMABATCH_SHARD_POSITIONS``; fanned-out steps once per shard, at most
    ``shard_parallel`` at once); phase 6 is then not re-run as the DAG schedules it. ``dag_parallel``: after
    each repeat, the same run once more from the same starting state as ``sigmabatch run`` schedules it
    (:func:`run_as_dag`, that many steps at once): the backfill on a freshly loaded database, the nightly
    after its session is undone."""
    plan = Plan.of(size, backfill_sessions=backfill_sessions, portfolios=portfolios)
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"sigmabatch-bench-{size}-"))
    start = plan.end if case == "nightly" else plan.backfill_start
    name = f"bench_{size.lower()}_{case}" + (f"_p{portfolios}" if portfolios else "") + ("_steps" if only else "")
    runs, loads = [], []
    loadavg = [round(x, 2) for x in os.getloadavg()]
    db = None
    try:
        for r in range(repeat):
            if case == "backfill" or db is None:  # a backfill starts from an empty database every time
                if db is not None:
                    db.drop()
                db = Database.create(db_kind, name, workdir)
                db.migrate()
                loads.append(load(plan, case, db.url, db.conninfo))
                progress(f"  [{size} {case}] loaded in {loads[-1]['seconds']:.1f} s: {loads[-1]['rows']}")
            else:
                reset_nightly(db.url, plan.end)
            t0 = time.perf_counter()
            steps, run = run_pipeline(db, plan, start.isoformat(), plan.end.isoformat(), workdir, floor=(r == 0),
                                      only=only, shard_positions=shard_positions, shard_parallel=shard_parallel,
                                      progress=progress if shard_positions else None)
            total = time.perf_counter() - t0
            floor = sum(s["copy_floor_s"] for s in steps)
            runs.append({"repeat": r + 1, "wall_raw_s": total, "wall_s": total - floor, "steps": steps})
            progress(f"  [{size} {case}] run {r + 1}/{repeat}: {total - floor:.1f} s "
                     f"(peak RSS {max(s['peak_rss_mb'] for s in steps):.0f} MB)")
            if case == "nightly" and not only and not shard_positions:
                # Phase 6 once more, as the DAG schedules it (the sequential run above attributes time per step),
                # on the same state: the date's phase-6 results deleted first, as before a night's first run.
                clear_phase6_results(db.url, plan.end)
                runs[-1]["phase6_dag"] = sub = run_subdag_concurrently(run, PHASE6_STEPS, LocalRunner.max_parallel)
                progress(f"  [{size} {case}] phase 6 as the DAG runs it ({sub['max_parallel']} at once): "
                         f"{sub['wall_s']:.1f} s {sub['step_wall_s']}")
            if dag_parallel:
                if case == "backfill":
                    db.drop()
                    db = Database.create(db_kind, name, workdir)
                    db.migrate()
                    load(plan, case, db.url, db.conninfo)
                else:
                    reset_nightly(db.url, plan.end)
                runs[-1]["dag"] = d = run_as_dag(db, plan, start.isoformat(), plan.end.isoformat(), workdir,
                                                 dag_parallel)
                progress(f"  [{size} {case}] the whole run as the DAG schedules it ({dag_parallel} steps at once): "
                         f"{d['wall_s']:.1f} s, {d['status']} {d['partial_steps'] or ''} {d['step_wall_s']}")
    finally:
        if db is not None and os.environ.get("SIGMABATCH_BENCH_KEEP") != "1":  # keep: for profiling a phase
            db.drop()
    return {"size": size, "case": case, "db": db_kind, "shard_positions": shard_positions,
            "shard_parallel": shard_parallel, "loadavg_start": loadavg,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "symbols": plan.symbols, "portfolios": plan.portfolios,
            "positions": plan.positions, "sessions": len(calendar.sessions(start, plan.end)),
            "start": start.isoformat(), "end": plan.end.isoformat(), "load": loads, "runs": runs}
