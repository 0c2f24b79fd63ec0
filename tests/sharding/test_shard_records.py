"""The run records of a sharded step: one ``step[K/N]`` row per shard, folded per step for every reader
(status, the report, record-run's run status) and for the detection of missed work (planning)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared import runs
from shared.sharding import Shard, phase_name, split_phase
from shared.storage import repository as repo
from shared.storage.db import transaction

T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def _record(s, run_id: str, phase: str, status: str, seconds: float, rows: int, error: str | None = None) -> None:
    runs.record_phase(s, run_id, phase, status=status, started_at=T0, finished_at=T0 + timedelta(seconds=seconds),
                      rows={"portfolio_snapshots": rows}, details={"portfolios": rows, "shard": phase}, error=error)


def test_phase_names_round_trip():
    assert phase_name("pnl-snapshots", Shard(2, 4)) == "pnl-snapshots[2/4]"
    assert phase_name("pnl-snapshots", Shard(1, 1)) == "pnl-snapshots" == phase_name("pnl-snapshots", None)
    assert split_phase("pnl-snapshots[2/4]") == ("pnl-snapshots", Shard(2, 4))
    assert split_phase("market-data") == ("market-data", None)


@pytest.fixture
def run(engine):
    with transaction(engine) as s:
        runs.start_run(s, "r1", trigger="manual", start=date(2026, 11, 25), end=date(2026, 11, 25), sessions=1)
        _record(s, "r1", "market-data", "ok", 5, 0)
        for k, (st, sec) in enumerate([("ok", 3.0), ("partial", 9.0), ("ok", 4.0)], start=1):
            _record(s, "r1", phase_name("pnl-snapshots", Shard(k, 4)), st, sec, 10 * k)
    return engine


def test_shards_fold_into_one_row_per_step(run):
    with transaction(run) as s:
        raw = repo.load_phase_runs(s, "r1", fold=False)
        folded = repo.load_phase_runs(s, "r1")
    assert len(raw) == 4 and list(folded["phase"]) == ["market-data", "pnl-snapshots"]
    pnl = folded.set_index("phase").loc["pnl-snapshots"]
    # shard 4/4 never recorded: the step is not done, whatever the others say
    assert pnl["status"] == "failed" and "1 of 4 shards not recorded" in pnl["error"]
    assert pnl["rows_written"] == {"portfolio_snapshots": 60} and pnl["details"]["portfolios"] == 60
    assert pnl["duration_seconds"] == 9.0 and pnl["details"]["slowest_shard"] == "2/4"
    assert pnl["details"]["shards"] == 4 and pnl["details"]["shards_recorded"] == 3
    assert set(pnl["details"]["shard_runs"]) == {"1/4", "2/4", "3/4"}


def test_a_step_is_covered_only_when_every_shard_finished(run):
    with transaction(run) as s:
        _, done = repo.load_run_coverage(s, date(2026, 11, 1))
    assert ("r1", "market-data") in done and ("r1", "pnl-snapshots") not in done
    with transaction(run) as s:
        _record(s, "r1", "pnl-snapshots[4/4]", "skipped", 0.1, 0)
        _, done = repo.load_run_coverage(s, date(2026, 11, 1))
        folded = repo.load_phase_runs(s, "r1").set_index("phase")
        status = runs.finish_run(s, "r1")
    assert ("r1", "pnl-snapshots") in done
    assert folded.loc["pnl-snapshots", "status"] == "partial" and folded.loc["pnl-snapshots", "error"] is None
    assert status == "partial"  # a partial shard makes the run partial, as a partial step does


def test_the_run_table_shows_shard_progress_and_the_slowest_shard():
    from shared.cli import _step_cell
    from workflows.local import StepOutcome, _fold

    o = StepOutcome("pnl-snapshots", shards={"1/2": StepOutcome("pnl-snapshots[1/2]", status="ok", seconds=2.0),
                                             "2/2": StepOutcome("pnl-snapshots[2/2]", status="running")})
    _fold(o)
    assert o.status == "running" and _step_cell("pnl-snapshots", o) == "pnl-snapshots 1/2 shards"
    o.shards["2/2"].status, o.shards["2/2"].seconds, o.shards["2/2"].rows = "partial", 5.0, {"t": 3}
    _fold(o)
    assert o.status == "partial" and o.seconds == 5.0 and o.rows == {"t": 3}
    assert _step_cell("pnl-snapshots", o) == "pnl-snapshots ×2, slowest 2/2"
    assert _step_cell("plan", StepOutcome("plan")) == "plan"
