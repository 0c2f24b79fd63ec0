"""Fencing (issue 16): the batch lock has a generation; a phase whose run lost the lock writes nothing.

Runs on SQLite and PostgreSQL. A phase is called in this process (its ``main(argv)``) with the lock held by
its run, as the local runner holds it; at its first write another run takes the lock over (the lease ran
out). Its commit must then fail with exit code 5 and leave every table as it was, run history included.
"""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import func, inspect, select, text

from shared import locking, runs
from shared.errors import FencedOutError, LockBusyError
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import transaction

NOW = "2026-11-27T18:00:00-05:00"


def counts(engine) -> dict[str, int]:
    """Rows in every table (bookkeeping included)."""
    names = inspect(engine).get_table_names()
    with engine.connect() as c:
        return {n: c.execute(text(f"select count(*) from {n}")).scalar_one() for n in names}


@pytest.fixture
def env(monkeypatch, db_url, tmp_path):
    for k in [k for k in __import__("os").environ if k.startswith("SIGMABATCH_")]:
        monkeypatch.delenv(k)
    values = {"SIGMABATCH_DATABASE_URL": db_url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
              "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "8", "SIGMABATCH_NOW": NOW,
              "SIGMABATCH_DEFAULT_SESSIONS": "5"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_generation_goes_up_at_every_take_over_and_the_replaced_run_is_abandoned(engine):
    with transaction(engine) as s:
        runs.start_run(s, "run-a", trigger="manual", start=None, end=None, sessions=0)
    a = locking.acquire(engine, "run-a")
    assert locking.acquire(engine, "run-a") == a  # ours: refreshed, same generation
    with pytest.raises(LockBusyError, match=r"another run \(run-a\) holds the batch lock"):
        locking.acquire(engine, "run-b")  # run-a's holder (this process) is alive and its lease is running
    b = locking.acquire(engine, "run-b", lease=0)  # the lease ran out: taken over
    assert b.generation == a.generation + 1
    with transaction(engine) as s:
        row = s.get(m.BatchRunHistory, "run-a")
        assert (row.status, row.abandoned_by) == ("abandoned", "run run-b") and row.abandoned_at is not None
        with pytest.raises(FencedOutError, match="fenced out: run run-a no longer holds the batch lock"):
            locking.check_fence(s, a)
        locking.check_fence(s, b)
    assert not locking.renew(engine, a) and locking.renew(engine, b)
    assert locking.release(engine, "run-b") and locking.owner(engine) is None
    c = locking.acquire(engine, "run-c")  # a released lock keeps its generation: it never goes back
    assert c.generation == b.generation + 1
    st = locking.state(engine)
    assert (st.run_id, st.generation, st.holder_alive) == ("run-c", c.generation, True) and st.lease_left > 0


@pytest.mark.parametrize("step", ["plan", "company-profiles"])
def test_a_phase_whose_lock_was_taken_over_aborts_its_commit_and_writes_nothing(env, engine, monkeypatch, capsys,
                                                                                   step):
    from shared.demo import seed_demo
    from shared.settings import Settings
    from workflows import dag

    with transaction(engine) as s:
        seed_demo(s, Settings.from_env())
    locking.acquire(engine, "old-run")  # the runner of old-run holds the lock, as `sigmabatch run` does
    before = counts(engine)
    taken: list[locking.Fence] = []
    real_upsert, real_replace = repo.upsert, repo.replace

    def take_over_then(write):
        def wrapped(session, *a, **kw):
            if not taken:  # first write of the phase: meanwhile its lease ran out and a new run took over
                taken.append(locking.acquire(engine, "new-run", lease=0))
            return write(session, *a, **kw)
        return wrapped

    monkeypatch.setattr(repo, "upsert", take_over_then(real_upsert))
    monkeypatch.setattr(repo, "replace", take_over_then(real_replace))
    s = dag.steps_by_name()[step]
    args = dag.step_args(s, start_date="2026-11-23", end_date="2026-11-27", portfolio="", run_id="old-run",
                         force="false", outputs_dir="", trigger="manual")
    code = importlib.import_module(s.module).main(args)
    err = capsys.readouterr().err
    assert taken, "the take-over happened"
    assert code == 5, err[-2000:]
    assert "error: fenced out: run old-run no longer holds the batch lock" in err
    assert counts(engine) == before  # nothing written: no data, no phase record, no run row
    assert locking.owner(engine) == "new-run"


def test_a_phase_of_an_abandoned_run_does_not_start(env, engine, capsys):
    from phases import plan

    with transaction(engine) as s:
        runs.start_run(s, "gone", trigger="manual", start=None, end=None, sessions=0)
        runs.mark_abandoned(s, "gone", by="signal SIGTERM")
    before = counts(engine)
    assert plan.main(["--run-id", "gone", "--start-date", "2026-11-27", "--end-date", "2026-11-27"]) == 5
    assert "error: fenced out: run gone was abandoned" in capsys.readouterr().err
    assert counts(engine) == before


def test_record_run_does_not_resurrect_an_abandoned_run(engine):
    with transaction(engine) as s:
        runs.start_run(s, "gone", trigger="manual", start=None, end=None, sessions=0)
        runs.mark_abandoned(s, "gone", by="run other")
    with transaction(engine) as s:
        assert runs.finish_run(s, "gone") == "abandoned"
        assert s.execute(select(func.count()).select_from(m.BatchRunHistory)
                         .where(m.BatchRunHistory.status == "abandoned")).scalar_one() == 1


def test_on_postgresql_a_take_over_waits_for_a_commit_that_passed_the_fence(pg_url):
    """The fence check reads the lock row FOR SHARE: a take-over cannot slip in between the check and the
    commit (on SQLite the writing transaction is the only writer anyway)."""
    import threading
    import time

    from shared.storage.db import get_engine, migrate

    engine = get_engine(pg_url)
    migrate(engine)
    fence = locking.acquire(engine, "old-run")
    taken: list[locking.Fence] = []
    thread = threading.Thread(target=lambda: taken.append(locking.acquire(engine, "new-run", lease=0)))
    with locking.fenced_transaction(engine, fence) as s:
        locking.check_fence(s, fence)  # what the commit does; the row stays share-locked until the commit
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and not taken, "the take-over did not wait for the fenced transaction"
    thread.join(10)
    assert taken and taken[0].generation == fence.generation + 1
    engine.dispose()


def test_status_shows_abandoned_runs_and_whether_the_lock_holder_is_alive(env, engine, capsys):
    from sqlalchemy import update

    from shared.cli import main

    with transaction(engine) as s:
        runs.start_run(s, "old-run", trigger="manual", start=None, end=None, sessions=0)
    locking.acquire(engine, "old-run")
    assert main(["status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "batch lock held by old-run" in out and "alive, lease" in out
    with transaction(engine) as s:  # its holder died: no such process
        s.execute(update(m.BatchLock).values(holder=f"{__import__('socket').gethostname()}:999999999"))
    assert main(["status"]) == 0
    assert "holder process dead: the next run takes it over" in " ".join(capsys.readouterr().out.split())
    locking.acquire(engine, "new-run")  # takes it over at once
    assert main(["status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "batch lock held by new-run" in out and "abandoned" in out and "by run new-run" in out
