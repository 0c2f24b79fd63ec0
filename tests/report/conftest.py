"""A small synthetic run (5 sessions, 20 symbols) through the whole local DAG, shared by the report tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO


@dataclass
class SyntheticRun:
    tmp: Path
    env: dict[str, str]
    url: str
    run_id: str
    stdout: str


def sigmabatch(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> SyntheticRun:
    tmp = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{tmp / 'sb.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_DEFAULT_SESSIONS": "5", "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00",
                "PYTHONPATH": str(REPO)})
    proc = sigmabatch(env, tmp, "run", "--no-progress")
    assert proc.returncode == 0, f"STDOUT\n{proc.stdout}\nSTDERR\n{proc.stderr[-4000:]}"
    runs = sorted((tmp / "var" / "runs").iterdir())
    assert len(runs) == 1
    return SyntheticRun(tmp, env, url, runs[0].name, proc.stdout)
