"""Run the DAG of :mod:`workflows.dag` on this machine, the way Argo runs it on a cluster.

The algorithm:

1. Give the run an id and a folder ``var/runs/<run-id>/`` (one log file per step).
2. Run ``plan`` with the requested dates (empty = detect). It writes ``start-date``, ``end-date`` and
   ``has-work`` files, exactly Argo's output parameters. No work: record the run and stop ("up to date").
3. Schedule the other steps in topological order: every step whose upstream steps succeeded is started
   as a subprocess with the same command line as its container (``python -m <module> <dag.step_args>``),
   up to ``max_parallel`` at once, so independent phases (1.5 and 1.75, 3 and 4 …) run concurrently.
4. A failed step is retried up to its ``retry.limit`` (not for exit codes that retrying cannot fix). After
   a final failure no new step starts (Argo's failFast); running ones finish.
5. The price-cache snapshot is passed by path; with an ``s3://`` artifact location it goes through S3
   under the same key Argo uses (upload after market-data, download before each consumer).
6. The report step writes the run's HTML report to ``var/runs/<run-id>/report.html``
   (:attr:`RunOutcome.report`); it runs like any other step, so it is not run after a failure.
7. ``record-run`` always runs last (Argo's onExit) and closes the run's history row.
8. The runner holds the batch lock for the whole run and renews its lease (a heartbeat thread). SIGTERM or
   SIGINT (Ctrl-C) is forwarded to the process group of every running step (each step runs in its own
   group), no new step starts, the runner waits for them (``stop_grace`` seconds, then SIGKILL), marks the
   run ``abandoned`` in ``batch_run_history``, releases the lock and exits 128 + the signal number (143,
   130). A step it could not stop (a runner killed with SIGKILL leaves its steps orphaned) is fenced: its
   next commit finds the lock gone or taken over and writes nothing (:mod:`shared.locking`).

Shards: plan's ``shards`` output (a JSON list of ``K/N``) fans out every step marked ``fan_out`` in
:mod:`workflows.dag`: one process per shard with ``--shard K/N``, within ``max_parallel`` like any step. A
shard's step waits for the same shard of its fanned-out upstream steps split by the same key (a per-shard
sub-DAG: a slow shard holds no other) and for the whole of the others (a portfolio shard of
``risk-exposures`` waits for every symbol shard of ``symbol-factors``); a step after a fanned-out one (the report) waits for
every shard. A shard is retried on its own. :class:`StepOutcome` of a fanned-out step folds its shards
(worst status, rows summed, the slowest shard's time); :attr:`StepOutcome.shards` has each.

Progress: a live table on a terminal; plain structured lines otherwise. The outcome carries per-step
status, duration and rows written, for the closing summary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from shared import locking, runs
from shared.errors import BadInputError, LockBusyError
from shared.settings import Settings
from shared.storage.artifacts import artifact_store, price_cache_key
from shared.storage.db import get_engine, migrate, transaction
from workflows import dag

log = logging.getLogger("sigmabatch.runner")
RESULT_PREFIX = "sigmabatch-result: "
EXIT_CODES = {"completed": 0, "partial": 3, "failed": 1}
#: Signals the runner forwards to its steps before giving the run up.
FORWARDED = (signal.SIGTERM, signal.SIGINT)
BLAS_SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class StepOutcome:
    name: str
    status: str = "pending"  # pending | running | ok | partial | skipped | failed | not-run
    exit_code: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # inserted (or replaced whole)
    updated: dict[str, int] = field(default_factory=dict)  # updated in place (columns added to existing rows)
    details: dict = field(default_factory=dict)
    message: str = ""
    error: str | None = None
    log_path: Path | None = None
    #: The shards of a fanned-out step ("K/N" -> its outcome); empty for a step run once.
    shards: dict[str, StepOutcome] = field(default_factory=dict)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    exit_code: int
    start_date: str
    end_date: str
    steps: dict[str, StepOutcome]
    seconds: float
    up_to_date: bool = False
    run_dir: Path | None = None

    @property
    def report(self) -> Path | None:
        """The run's HTML report, when the report step wrote it."""
        path = self.run_dir / dag.REPORT_FILE if self.run_dir else None
        return path if path is not None and path.exists() else None

    @property
    def rows(self) -> dict[str, int]:
        """Rows inserted (or replaced whole) per table, over all steps."""
        return _total(s.rows for s in self.steps.values())

    @property
    def updated(self) -> dict[str, int]:
        """Row updates per table, over all steps (a row updated by two steps counts twice)."""
        return _total(s.updated for s in self.steps.values())


_RANK = {"failed": 5, "running": 4, "pending": 3, "not-run": 3, "partial": 2, "ok": 1, "skipped": 0}


def _fold(out: StepOutcome) -> None:
    """Set a fanned-out step's outcome from its shards' (see the module docstring)."""
    parts = list(out.shards.values())
    states = {p.status for p in parts}
    if "failed" in states:
        out.status = "failed"
    elif "running" in states or ("pending" in states and states - {"pending"}):
        out.status = "running"
    else:
        out.status = max((p.status for p in parts), key=lambda st: _RANK.get(st, 1))
    out.rows, out.updated = _total(p.rows for p in parts), _total(p.updated for p in parts)
    out.seconds = max((p.seconds for p in parts), default=0.0)
    out.attempts = max((p.attempts for p in parts), default=0)
    failed = [p for p in parts if p.status == "failed"]
    out.exit_code = failed[0].exit_code if failed else (0 if parts and all(p.exit_code == 0 for p in parts) else None)
    out.error = " | ".join(f"shard {k}: {p.error}" for k, p in out.shards.items() if p.error) or None
    out.message = " · ".join(f"shard {k}: {p.message}" for k, p in out.shards.items() if p.message)
    slowest = max(out.shards.items(), key=lambda kv: kv[1].seconds)[0] if parts else None
    out.details = {"shards": len(parts), "slowest_shard": slowest,
                   "shard_seconds": {k: round(p.seconds, 3) for k, p in out.shards.items()}}


def _total(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + int(v)
    return total


@dataclass
class LocalRunner:
    """Runs the DAG with subprocesses. ``on_change`` is called whenever a step changes state."""

    settings: Settings
    max_parallel: int = 3
    python: str = sys.executable
    workdir: Path = Path(".")
    env: dict[str, str] | None = None
    on_change: Callable[[dict[str, StepOutcome]], None] | None = None
    retry_delay_cap: float = 2.0
    #: Cap on each step's retries (None: the step's own policy, as in Argo).
    max_retries: int | None = None
    #: Seconds the steps get to exit after a forwarded SIGTERM/SIGINT before they are killed.
    stop_grace: float = 30.0
    _signal: int | None = field(default=None, init=False, repr=False)
    _children: dict[int, subprocess.Popen] = field(default_factory=dict, init=False, repr=False)

    def run(self, *, start_date: str = "", end_date: str = "", portfolio: str = "", trigger: str = "manual",
            force: bool = False, run_id: str | None = None) -> RunOutcome:
        if self.max_parallel < 1:  # it would wait forever for a free slot
            raise BadInputError(f"--max-parallel must be at least 1 (got {self.max_parallel})")
        t0 = time.monotonic()
        self._signal = None
        run_id = run_id or f"local-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        run_dir = Path(self.workdir) / "var" / "runs" / run_id
        steps = {s.name: StepOutcome(s.name) for s in (*dag.STEPS, dag.EXIT_STEP)}
        common = {"portfolio": portfolio, "run_id": run_id, "force": "true" if force else "false"}
        engine = get_engine(self.settings.database_url)
        migrate(engine)
        try:  # the runner holds the batch lock for the whole run; its steps find it held by their run id
            fence = locking.acquire(engine, run_id, timeout=self.settings.lock_timeout, holder_pid=os.getpid(),
                                    lease=self.settings.lock_lease)
        except LockBusyError as exc:
            log.error("%s", exc)
            steps["plan"].status, steps["plan"].exit_code, steps["plan"].error = "failed", exc.exit_code, str(exc)
            for s in (*dag.STEPS[1:], dag.EXIT_STEP):
                steps[s.name].status = "not-run"
            return RunOutcome(run_id, "failed", exc.exit_code, start_date, end_date, steps, time.monotonic() - t0,
                              run_dir=run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        previous = self._forward_signals()
        try:
            with locking.Heartbeat(engine, fence, self.settings.lock_lease / 4):
                outcome = self._run_locked(steps, run_dir, common, start_date, end_date, trigger, t0)
            if self._signal is not None:
                outcome = self._abandon(engine, outcome)
            return outcome
        finally:
            self._restore_signals(previous)
            locking.release(engine, run_id)

    # -- signals ---------------------------------------------------------------------------------

    def _forward_signals(self) -> dict:
        """Install the SIGTERM/SIGINT handlers (main thread only; elsewhere signals are not ours to take)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, _frame) -> None:
        first = self._signal is None
        self._signal = signum
        log.warning("received %s: stopping the running steps", signal.Signals(signum).name)
        for proc in list(self._children.values()):
            self._kill_group(proc, signum)
        if first and self.stop_grace >= 0:
            timer = threading.Timer(self.stop_grace, self._kill_children)
            timer.daemon = True
            timer.start()

    def _kill_children(self) -> None:
        for proc in list(self._children.values()):
            self._kill_group(proc, signal.SIGKILL)

    @staticmethod
    def _kill_group(proc: subprocess.Popen, signum: int) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)  # the step's own process group: the step and anything it started

    def _abandon(self, engine, outcome: RunOutcome) -> RunOutcome:
        """After a forwarded signal: every step has stopped; record the run as abandoned."""
        name = signal.Signals(self._signal).name
        with transaction(engine) as s:
            runs.ensure_run(s, outcome.run_id)
            runs.mark_abandoned(s, outcome.run_id, by=f"signal {name}",
                                reason=f"the runner received {name}; running steps were stopped")
        log.error("run %s abandoned after %s", outcome.run_id, name)
        outcome.status, outcome.exit_code = "abandoned", 128 + int(self._signal)
        return outcome

    def _run_locked(self, steps, run_dir, common, start_date, end_date, trigger, t0) -> RunOutcome:
        run_id = common["run_id"]

        plan = dag.steps_by_name()["plan"]
        outputs = run_dir / "outputs"
        self._run_step(plan, steps, run_dir, dag.step_args(
            plan, start_date=start_date, end_date=end_date, outputs_dir=str(outputs), trigger=trigger, **common))
        has_work = (outputs / "has-work").exists() and (outputs / "has-work").read_text().strip() == "true"
        start = (outputs / "start-date").read_text().strip() if has_work else ""
        end = (outputs / "end-date").read_text().strip() if has_work else ""
        shard_file = outputs / "shards"
        shards = json.loads(shard_file.read_text()) if has_work and shard_file.exists() else ["1/1"]
        if steps["plan"].status != "ok" or not has_work or self._signal is not None:
            for s in dag.STEPS[1:]:
                steps[s.name].status = "not-run"
        else:
            self._run_dag(steps, run_dir, start, end, common, shards)
        if self._signal is None:
            self._run_step(dag.EXIT_STEP, steps, run_dir, dag.step_args(
                dag.EXIT_STEP, start_date=start, end_date=end, trigger=trigger, **common))
        else:
            steps[dag.EXIT_STEP.name].status = "not-run"
        status = self._status(steps)
        code = EXIT_CODES[status]
        failed_codes = {o.exit_code for o in steps.values() if o.status == "failed"}
        for special in (4, 2, 5):  # lock busy, bad input, fenced out: say so rather than a generic failure
            if special in failed_codes:
                code = special
        return RunOutcome(run_id, status, code, start, end, steps, time.monotonic() - t0,
                          up_to_date=steps["plan"].status == "skipped", run_dir=run_dir)

    # -- scheduling ------------------------------------------------------------------------------

    def _tasks(self, steps: dict[str, StepOutcome], shards: list[str]):
        """(key, step, shard or None, upstream keys) of every step after plan, in topological order; a
        fanned-out step is one task per shard when there is more than one."""
        sharded = len(shards) > 1
        tasks = []
        for s in dag.topological_order():
            if s.name == "plan":
                continue
            for shard in (shards if s.fan_out and sharded else [None]):
                ups: list[str] = []
                for u in s.upstream:
                    up = dag.steps_by_name()[u]
                    if up.fan_out and sharded:
                        # the same shard of an upstream split by the same key; else all its shards (a
                        # portfolio shard needs the factors of symbols of every symbol shard)
                        same = shard is not None and dag.same_shards(up, s)
                        ups += [f"{u}[{shard}]"] if same else [f"{u}[{k}]" for k in shards]
                    else:
                        ups.append(u)
                key = s.name if shard is None else f"{s.name}[{shard}]"
                if shard is not None:
                    steps[s.name].shards[shard] = StepOutcome(key)
                tasks.append((key, s, shard, ups))
        return tasks

    def _run_dag(self, steps: dict[str, StepOutcome], run_dir: Path, start: str, end: str, common: dict,
                 shards: list[str] | None = None) -> None:
        store = artifact_store(self.settings)
        key = price_cache_key(end, common["run_id"])
        produced = run_dir / "out" / dag.PRICE_CACHE_FILE
        tasks = self._tasks(steps, shards or ["1/1"])
        outcomes: dict[str, StepOutcome] = {"plan": steps["plan"]}
        for k, s, shard, _ in tasks:
            outcomes[k] = steps[s.name] if shard is None else steps[s.name].shards[shard]
        pending = list(tasks)
        running: dict[str, tuple] = {}
        failed = False
        while pending or running:
            if self._signal is not None:
                failed = True  # stop: start nothing more, wait for the running steps
            if not failed:
                for task in list(pending):
                    if len(running) >= self.max_parallel:
                        break
                    k, s, shard, ups = task
                    if all(outcomes[u].status in ("ok", "partial", "skipped") for u in ups):
                        pending.remove(task)
                        cache_in = None
                        if s.reads_price_cache:
                            cache_in = run_dir / "in" / _file_name(k) / dag.PRICE_CACHE_FILE
                            store.get(key, cache_in)
                        args = dag.step_args(s, start_date=start, end_date=end,
                                             price_cache_in=str(cache_in) if cache_in else None,
                                             price_cache_out=str(produced),
                                             report_out=str(run_dir / dag.REPORT_FILE), shard=shard, **common)
                        running[k] = (task, *self._start(s, steps, run_dir, args, key=k, out=outcomes[k]), args)
            if failed and not running:
                break
            finished = [n for n, (_, proc, _, _) in running.items() if proc.poll() is not None]
            if not finished:
                time.sleep(0.05)
                continue
            for k in finished:
                task, proc, t_start, args = running.pop(k)
                s = task[1]
                out = outcomes[k]
                self._finish(s, proc, steps, t_start, out=out)
                if out.status == "failed" and self._should_retry(s, out):
                    delay = min(self.retry_delay_cap, 0.5 * (2 ** (out.attempts - 1)))
                    log.warning("retrying %s in %.1fs (attempt %d failed with exit %s)", k, delay,
                                out.attempts, out.exit_code)
                    time.sleep(delay)
                    running[k] = (task, *self._start(s, steps, run_dir, args, key=k, out=out), args)
                    continue
                if out.status == "failed":
                    failed = True
                elif s.writes_price_cache and produced.exists():
                    store.put(produced, key)
                    latest = self.settings.artifacts_path / "latest" if not self.settings.artifacts_are_s3 else None
                    if latest is not None:
                        latest.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(produced, latest / dag.PRICE_CACHE_FILE)
        for k, _s, _shard, _ in pending:
            outcomes[k].status = "not-run"
        for s in dag.STEPS:
            if steps[s.name].shards:
                _fold(steps[s.name])
        self._notify(steps)

    def _should_retry(self, step: dag.Step, out: StepOutcome) -> bool:
        if self._signal is not None:
            return False
        limit = step.retry.limit if self.max_retries is None else min(step.retry.limit, self.max_retries)
        return out.attempts <= limit and out.exit_code not in step.retry.no_retry_exit_codes

    def _run_step(self, step: dag.Step, steps: dict[str, StepOutcome], run_dir: Path, args: list[str]) -> None:
        while True:
            proc, t_start = self._start(step, steps, run_dir, args)
            proc.wait()
            self._finish(step, proc, steps, t_start)
            out = steps[step.name]
            if out.status != "failed" or not self._should_retry(step, out):
                return
            time.sleep(min(self.retry_delay_cap, 0.5 * (2 ** (out.attempts - 1))))

    def _start(self, step: dag.Step, steps: dict[str, StepOutcome], run_dir: Path, args: list[str], *,
               key: str | None = None, out: StepOutcome | None = None):
        out = out or steps[step.name]
        out.attempts += 1
        out.status = "running"
        out.log_path = run_dir / f"{_file_name(key or step.name)}.log"
        cmd = [self.python, "-m", step.module, *args]
        log.info("start %s", key or step.name, extra={"step": step.name, "attempt": out.attempts,
                                                      **({"task": key} if key and key != step.name else {})})
        fh = open(out.log_path, "a")  # noqa: SIM115 - closed in _finish
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        # Steps run side by side on few cores and their kernels are memory-bound: one BLAS thread each.
        env = {**BLAS_SINGLE_THREAD, **os.environ, **(self.env or {})}
        # Its own process group: a Ctrl-C on the terminal reaches the runner only, which forwards it.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, cwd=self.workdir, env=env,
                                start_new_session=True)
        proc._sigmabatch_log = fh  # type: ignore[attr-defined]
        self._children[proc.pid] = proc
        if self._signal is not None:  # a signal came while this step was being started
            self._kill_group(proc, self._signal)
        if steps[step.name].shards:
            _fold(steps[step.name])
        self._notify(steps)
        return proc, time.monotonic()

    def _finish(self, step: dag.Step, proc: subprocess.Popen, steps: dict[str, StepOutcome], t_start: float, *,
                out: StepOutcome | None = None) -> None:
        self._children.pop(proc.pid, None)
        stdout = proc.stdout.read() if proc.stdout else ""
        fh = proc._sigmabatch_log  # type: ignore[attr-defined]
        fh.write(stdout)
        fh.close()
        out = out or steps[step.name]
        out.exit_code = proc.returncode
        out.seconds += time.monotonic() - t_start
        result = None
        for line in stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
        if result:
            out.rows, out.details = result.get("rows") or {}, result.get("details") or {}
            out.updated = result.get("updated") or {}
            out.message, out.error = result.get("message") or "", result.get("error")
        if proc.returncode == 0:
            out.status = result["status"] if result and result.get("status") in ("ok", "partial", "skipped") else "ok"
        else:
            out.status = "failed"
            if not out.error:
                tail = out.log_path.read_text().strip().splitlines()[-3:] if out.log_path else []
                out.error = " | ".join(tail) or f"exit code {proc.returncode}"
        log.info("finish %s", out.name, extra={"step": step.name, "status": out.status,
                                                "exit_code": proc.returncode, "seconds": round(out.seconds, 2)})
        if steps[step.name].shards:
            _fold(steps[step.name])
        self._notify(steps)

    def _notify(self, steps: dict[str, StepOutcome]) -> None:
        if self.on_change:
            self.on_change(steps)

    @staticmethod
    def _status(steps: dict[str, StepOutcome]) -> str:
        return runs.run_status({s.name: steps[s.name].status for s in dag.STEPS})


def _file_name(key: str) -> str:
    """A task key as a file name: ``pnl-snapshots[2/4]`` -> ``pnl-snapshots.2-of-4``."""
    if key.endswith("]") and "[" in key:
        step, _, shard = key[:-1].partition("[")
        return f"{step}." + shard.replace("/", "-of-")
    return key
