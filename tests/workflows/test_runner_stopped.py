"""Issue 16: the runner stopped mid-run (SIGTERM: steps stopped, run abandoned; SIGKILL: orphaned steps
fenced out), then a new run at once: no write of the old run lands after the take-over, and the tables equal
the clean reference run. In a file of its own so that the test workers share the slow fault tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from shared.storage.db import get_engine
from tests.workflows.test_fault_tolerance import END, START, assert_same, dump, env_for, fault_env

pytestmark = pytest.mark.slow

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
