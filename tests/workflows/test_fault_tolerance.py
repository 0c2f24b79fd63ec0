"""Re-running is safe (issue 6): a SIGKILL in the middle of writes, two runs at once and a forced re-run
all leave the same tables as one clean run. A runner stopped mid-run (SIGTERM, or SIGKILL leaving its steps
orphaned) and a new run started at once: no write of the old run after the take-over (issue 16)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from shared.storage import models as m
from shared.storage.db import get_engine
from tests.conftest import REPO

pytestmark = pytest.mark.slow

#: From the demo books' first entry (15 sessions before the clock): since issue 16's gap rule, a range that starts
#: after a book's inception on an empty database books no snapshot for it.
START, END = "2026-11-05", "2026-11-27"
#: Columns that legitimately differ between runs (which run wrote the row, when).
VOLATILE = {"run_id", "created_at", "updated_at", "acquired_at", "heartbeat"}
BOOKKEEPING = {"batch_run_history", "batch_phase_runs", "batch_locks", "alembic_version"}


def env_for(tmp: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGMABATCH_", "FAULT_"))}
    env.update({"SIGMABATCH_DATABASE_URL": f"sqlite:///{tmp / 'sb.db'}", "SIGMABATCH_ARTIFACTS": str(tmp / "art"),
                "SIGMABATCH_SYNTHETIC_SYMBOLS": "20", "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00",
                "SIGMABATCH_DEFAULT_SESSIONS": "15", "PYTHONPATH": str(REPO), **extra})
    return env


def sigmabatch(tmp: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=tmp, env=env or env_for(tmp),
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def dump(tmp: Path) -> dict[str, pd.DataFrame]:
    """Every data table and view (the per-position rows of per-symbol facts: what a reader of a position
    sees), sorted by its primary key (a view's: its model's), without the volatile columns."""
    engine = get_engine(f"sqlite:///{tmp / 'sb.db'}")
    insp = inspect(engine)
    out = {}
    with engine.connect() as c:
        for name in sorted(set(insp.get_table_names()) - BOOKKEEPING) + sorted(insp.get_view_names()):
            pk = (insp.get_pk_constraint(name)["constrained_columns"]
                  or [col.name for col in m.relations()[name].primary_key.columns])
            frame = pd.read_sql(text(f"select * from {name}"), c)
            frame = frame.drop(columns=[col for col in frame.columns if col in VOLATILE])
            out[name] = frame.sort_values(pk).reset_index(drop=True)
    engine.dispose()
    return out


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)  # bit for bit: the same work


def build_reference(tmp: Path) -> tuple[Path, dict[str, pd.DataFrame]]:
    """One clean run in ``tmp``: its folder (database, artifacts) and its tables. Built once per test
    session by the ``reference_run`` fixture (tests/workflows/conftest.py), shared with test_concurrency."""
    sigmabatch(tmp, "run", "--no-progress", "--start-date", START, "--end-date", END)
    tables = dump(tmp)
    assert len(tables["portfolio_snapshots"]) > 0 and len(tables["stress_test_results"]) > 0
    return tmp, tables


def copy_of(reference_run, tmp_path: Path) -> None:
    """Start from the clean run's database and artifacts."""
    src = reference_run[0]
    shutil.copyfile(src / "sb.db", tmp_path / "sb.db")
    shutil.copytree(src / "art", tmp_path / "art")


def fault_env(tmp: Path, module: str, table: str) -> dict[str, str]:
    wrapper = tmp / "python-with-fault"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fault_inject.py"}" "$@"\n')
    wrapper.chmod(0o755)
    return {"FAULT_STEP_MODULE": module, "FAULT_TABLE": table, "FAULT_MARKER": str(tmp / "killed")}, wrapper


@pytest.mark.parametrize(("module", "table"), [("phases.pnl_snapshots", "portfolio_snapshots")])
def test_sigkill_mid_write_in_the_dag_then_retry_equals_clean_run(tmp_path, reference, module, table):
    extra, wrapper = fault_env(tmp_path, module, table)
    from shared.settings import Settings
    from workflows.local import LocalRunner

    env = env_for(tmp_path, **extra)
    settings = Settings.from_env(env)
    from shared.demo import seed_demo
    from shared.storage.db import migrate, transaction

    engine = get_engine(settings.database_url)
    migrate(engine)
    with transaction(engine) as s:
        seed_demo(s, settings)
    runner = LocalRunner(settings, python=str(wrapper), workdir=tmp_path, env=env)
    outcome = runner.run(start_date=START, end_date=END)
    assert (tmp_path / "killed").exists(), "the fault was injected"
    step = next(s for s in outcome.steps.values() if s.attempts > 1)
    assert step.status == "ok" and outcome.status == "completed", outcome.steps
    assert_same(reference, dump(tmp_path))


def test_sigkill_mid_write_of_a_single_phase_leaves_nothing_half_written(tmp_path, reference_run, reference):
    copy_of(reference_run, tmp_path)
    extra, _ = fault_env(tmp_path, "phases.risk_exposures", "factor_exposures")
    env = env_for(tmp_path, **extra)
    cache = tmp_path / "art" / "latest" / "price_cache.parquet"
    args = ["--start-date", START, "--end-date", END, "--force", "--price-cache", str(cache)]
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "fault_inject.py"), "-m", "phases.risk_exposures",
                             *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9
    assert_same(reference, dump(tmp_path))  # the killed transaction left no trace
    rerun = subprocess.run([sys.executable, "-m", "phases.risk_exposures", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same(reference, dump(tmp_path))


def test_forced_rerun_leaves_identical_tables(tmp_path, reference_run, reference):
    copy_of(reference_run, tmp_path)
    sigmabatch(tmp_path, "run", "--no-progress", "--start-date", START, "--end-date", END, "--force")
    assert_same(reference, dump(tmp_path))


OLD_RUNNER = """
import sys
from pathlib import Path

from shared.demo import seed_demo
from shared.settings import Settings
from shared.storage.db import get_engine, migrate, transaction
from workflows.local import LocalRunner

settings = Settings.from_env()
engine = get_engine(settings.database_url)
migrate(engine)
with transaction(engine) as s:
    seed_demo(s, settings)
runner = LocalRunner(settings, python=sys.argv[1], workdir=Path.cwd(), stop_grace=5)
sys.exit(runner.run(start_date=sys.argv[2], end_date=sys.argv[3], run_id="old-run").exit_code)
"""


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_runner_stopped_mid_run_then_a_new_run_at_once(tmp_path, reference, sig):
    """SIGTERM: the runner stops its steps and gives the run up. SIGKILL: its steps are orphaned and go on;
    the new run takes the lock over and the orphans' commits are fenced out. Either way no write of the old
    run lands after the take-over, the old run is ``abandoned`` and the tables equal one clean run."""
    extra, wrapper = fault_env(tmp_path, "-", "-")
    ready, go, commits, pids = (tmp_path / n for n in ("paused", "go", "commits.log", "pids.log"))
    env = env_for(tmp_path, **extra, FAULT_PAUSE_MODULE="phases.pnl_snapshots", FAULT_PAUSE_READY=str(ready),
                  FAULT_PAUSE_GO=str(go), FAULT_COMMIT_LOG=str(commits), FAULT_PIDS=str(pids),
                  SIGMABATCH_LOCK_TIMEOUT="120")
    old_out, new_out = tmp_path / "old.out", tmp_path / "new.out"
    with open(old_out, "w") as out:
        old = subprocess.Popen([sys.executable, "-c", OLD_RUNNER, str(wrapper), START, END], cwd=tmp_path, env=env,
                               stdout=out, stderr=subprocess.STDOUT)
    _wait_for(lambda: ready.exists() or old.poll() is not None, "pnl-snapshots to start")
    assert old.poll() is None, old_out.read_text()[-3000:]
    old.send_signal(sig)
    old.wait(timeout=120)
    assert old.returncode == (143 if sig == signal.SIGTERM else -9), old_out.read_text()[-3000:]
    with open(new_out, "w") as out:
        new = subprocess.Popen([sys.executable, "-m", "shared.cli", "run", "--no-progress", "--start-date", START,
                                "--end-date", END], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    engine = get_engine(env["SIGMABATCH_DATABASE_URL"])
    from shared import locking

    _wait_for(lambda: locking.owner(engine) not in (None, "old-run") or new.poll() is not None, "the take-over")
    engine.dispose()
    go.write_text("go")  # a paused orphan (SIGKILL case) now tries to write, under the new run's lock
    new.wait(timeout=600)
    assert new.returncode == 0, new_out.read_text()[-3000:]
    _wait_for(lambda: not any(_alive(int(ln.split()[0])) for ln in pids.read_text().splitlines()),
              "every step of the old run to end", timeout=120)
    engine = get_engine(env["SIGMABATCH_DATABASE_URL"])
    with engine.connect() as c:
        row = c.execute(text("select status, abandoned_at, abandoned_by from batch_run_history "
                             "where run_id = 'old-run'")).one()
        new_id = c.execute(text("select run_id from batch_run_history where run_id != 'old-run'")).scalar_one()
    engine.dispose()
    assert row.status == "abandoned"
    assert row.abandoned_by == ("signal SIGTERM" if sig == signal.SIGTERM else f"run {new_id}")
    taken_over = pd.Timestamp(row.abandoned_at).tz_localize("UTC").timestamp()
    lines = [ln.split() for ln in commits.read_text().splitlines()]
    late = [ln for ln in lines if ln[0] == "old-run" and float(ln[1]) > taken_over]
    assert not late, f"writes of the old run after the take-over: {late}"
    assert any(ln[0] == "old-run" for ln in lines), "the old run wrote before it was stopped"
    if sig == signal.SIGKILL:  # the orphaned pnl-snapshots went on after the take-over, and was fenced out
        log = (tmp_path / "var" / "runs" / "old-run" / "pnl-snapshots.log").read_text()
        assert "fenced out: run old-run no longer holds the batch lock" in log, log[-3000:]
    assert_same(reference, dump(tmp_path))



def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an orphan's zombie may wait for a non-reaping init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
