"""What the image installs (the project without extras) installs and imports in a clean venv, and every
step's ``python -m <module>`` starts from it — the closest check to the image without a Docker engine."""

from __future__ import annotations

import subprocess
import venv

import pytest

from tests.conftest import REPO
from workflows import dag

pytestmark = pytest.mark.slow


def test_runtime_dependencies_install_and_every_step_starts(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-compile",
                           "--disable-pip-version-check", str(REPO)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for step in (*dag.STEPS, dag.EXIT_STEP):
        out = subprocess.run([py, "-m", step.module, "--help"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{step.module}: {out.stderr[-2000:]}"
        assert "usage:" in out.stdout
    # deploy-time tools stay out of the runtime image
    assert subprocess.run([py, "-c", "import hera"], capture_output=True).returncode != 0
