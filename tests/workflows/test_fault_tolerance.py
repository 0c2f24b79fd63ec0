"""Re-running is safe (issue 6): a SIGKILL in the middle of writes, two runs at once and a forced re-run
all leave the same tables as one clean run. A runner stopped mid-run (SIGTERM, or SIGKILL leaving its steps
orphaned) and a new run started at once: no write of the old run after the take-over (issue 16)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
