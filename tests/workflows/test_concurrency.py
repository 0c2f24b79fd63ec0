"""Two runs at once end as one run; a run that cannot get the batch lock exits with code 4 (issue 6)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.storage.db import get_engine
from tests.workflows.test_fault_tolerance import (
    END,
    START,
    assert_same,
    dump,
    env_for,
    sigmabatch,
)

pytestmark = pytest.mark.slow


def test_two_runs_at_once_end_as_one_run(tmp_path, reference):
    env = env_for(tmp_path, SIGMABATCH_LOCK_TIMEOUT="300")
    cmd = [sys.executable, "-m", "shared.cli", "run", "--no-progress", "--start-date", START, "--end-date", END]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[0][-2000:] + o[1][-2000:] for o in outs]
    assert_same(reference, dump(tmp_path))


def test_second_run_without_waiting_exits_with_lock_busy(tmp_path):
    env = env_for(tmp_path)
    from shared import locking
    from shared.storage.db import migrate

    engine = get_engine(env["SIGMABATCH_DATABASE_URL"])
    migrate(engine)
    locking.acquire(engine, "someone-else")  # held by this (live) test process
    proc = sigmabatch(tmp_path, "run", "--no-progress", env=env, check=False)
    assert proc.returncode == 4
    assert "another run (someone-else) holds the batch lock" in proc.stdout + proc.stderr
    locking.release(engine, "someone-else")
