"""The rendered WorkflowTemplates (charts/sigmabatch/files), executed by :mod:`tests.workflows.argo_emulator`
under Argo's substitution, ``depends``/``when`` and retry rules, in production situations (issue 17):

* a cron tick on an NYSE holiday and a duplicate submit: a green, short workflow (every node after ``plan``
  Skipped) recorded ``nothing-to-do``, tables untouched;
* a backfill range and an onboarding: every node Succeeded, the tables filled, the workflow name recorded;
* a step that fails (4 attempts) then ``argo retry``: the failed node and what it blocked run again, the
  succeeded ones are kept, the run's failure details reach ``batch_run_history`` and the retry completes it;
* a step that fails and is not retried: the next night's run completes the session it missed;
* terminate and stop; and the rendered DAG writes bit-identical tables to the local DAG (tests/dagrun.py).

One SQLite database goes through the scenarios in order (module fixture); the report step is replaced by a
stub that writes its HTML output (it writes no table; tests/report cover it).
"""

from __future__ import annotations

import copy
import json
import os
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from shared import calendar
from shared.storage import models as m
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO
from tests.workflows.argo_emulator import Emulator, SubmitError

FILES = REPO / "charts" / "sigmabatch" / "files"
NIGHTLY, ONBOARDING, CRON = "sigmabatch-nightly", "sigmabatch-onboarding", "sigmabatch-nightly"
THANKSGIVING = "2026-11-26T23:30:00Z"  # 18:30 New York, the cron's schedule, on an NYSE holiday
WEDNESDAY = "2026-11-25T23:30:00Z"
FRIDAY = "2026-11-27T23:30:00Z"
BACKFILL_END = "2026-11-25"
ONBOARDED = "demo-etf-heavy"
BOOK_SESSIONS = 8
#: The main DAG's tasks after plan: the portfolio-fanned steps are one task, the per-shard sub-DAG.
AFTER_PLAN = ["company-profiles", "market-data", "symbol-factors", "symbol-metrics", "fundamentals",
              "portfolio-shard", "report"]
SHARD_DAG = "portfolio-shard"
#: The per-shard sub-DAG's tasks (issue 18): each shard's chain of portfolio steps.
CHAIN = ["pnl-snapshots", "market-values", "sector-tags", "risk-exposures", "risk-volatility", "risk-correlations",
         "stress-tests"]


def _stub_report(args: list[str]) -> int:
    out = Path(args[args.index("--out") + 1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("<html><body>report</body></html>")
    return 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A seeded database with the demo books (one set aside for onboarding) and an emulator over it."""
    from shared.demo import seed_demo
    from shared.settings import Settings

    tmp = tmp_path_factory.mktemp("argo")
    url = f"sqlite:///{tmp / 'sb.db'}"
    clock = {"SIGMABATCH_NOW": "2026-12-01T20:00:00-05:00", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
             "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS),
             "SIGMABATCH_CHUNK_SYMBOL_DATES": "100"}  # symbol-factors in chunks of 3 sessions
    engine = get_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        seed_demo(s, Settings.from_env({**clock, "SIGMABATCH_NOW": "2026-11-13T18:00:00-05:00"}))
    pf, pos = m.Portfolio.__table__, m.Position.__table__
    with engine.begin() as c:  # the book onboarded later: out of the database until then
        aside = ([dict(r) for r in c.execute(pf.select().where(pf.c.id == ONBOARDED)).mappings()],
                 [dict(r) for r in c.execute(pos.select().where(pos.c.portfolio_id == ONBOARDED)).mappings()])
        c.execute(pos.delete().where(pos.c.portfolio_id == ONBOARDED))
        c.execute(pf.delete().where(pf.c.id == ONBOARDED))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    base_env.update(clock)
    emu = Emulator(FILES, tmp, base_env=base_env, secrets={"database-url": url},
                   modules={"phases.report": _stub_report})
    emu.set_default("provider", "synthetic")  # the chart's `provider` value
    yield emu, engine, aside
    engine.dispose()


def _q(engine, sql: str, **params):
    with engine.connect() as c:
        return c.execute(text(sql), params).fetchall()


def _history(engine, run_id: str) -> tuple:
    status, name, trigger, errors, sessions = _q(
        engine, "select status, workflow_name, triggered_by, error_summary, sessions "
                "from batch_run_history where run_id = :r", r=run_id)[0]
    return status, name, trigger, json.loads(errors) if isinstance(errors, str) else errors, sessions


def _dated_counts(engine) -> dict[str, int]:
    tables = ("portfolio_snapshots", "factor_exposures", "stress_test_results", "market_data_cache",
              "symbol_factor_exposures")
    return {t: _q(engine, f"select count(*) from {t}")[0][0] for t in tables}


def _snapshot_dates(engine, portfolio: str | None = None) -> set[str]:
    where = "where portfolio_id = :p" if portfolio else ""
    return {str(r[0]) for r in _q(engine, f"select distinct snapshot_date from portfolio_snapshots {where}",
                                  p=portfolio)}


# ---- the scenarios, in order on one database ----------------------------------------------------------


def test_1_backfill_range(world) -> None:
    emu, engine, _ = world
    # from the books' first session (P&L is a chain: a range may not start after a gap)
    first = str(_q(engine, "select min(entry_date) from positions")[0][0])[:10]
    wf = emu.submit(NIGHTLY, {"start-date": first, "end-date": BACKFILL_END, "trigger": "backfill"})
    assert wf.phase == "Succeeded", "\n".join(emu.logs)
    assert set(wf.phases().values()) == {"Succeeded"}
    assert wf.exit_node.phase == "Succeeded"
    pods = [n for n in wf.all_nodes().values() if n.runs_pods]
    assert [len(n.attempts) for n in pods] == [1] * len(pods)
    assert len(pods) == 1 + len(AFTER_PLAN) - 1 + len(CHAIN)  # plan, the other tasks (one shard), the chain
    sessions = {d.isoformat() for d in calendar.sessions(date.fromisoformat(first),
                                                          date.fromisoformat(BACKFILL_END))}
    assert sessions <= _snapshot_dates(engine)
    stress = {str(r[0]) for r in _q(engine, "select distinct calculation_date from stress_test_results")}
    assert sessions <= stress
    betas = {str(r[0]) for r in _q(engine, "select distinct calculation_date from symbol_factor_exposures "
                                           "where symbol = 'SPY'")}
    assert sessions <= betas  # symbol-factors ran in chunks: every chunk's sessions are kept
    status, workflow_name, trigger, errors, n = _history(engine, wf.name)
    assert (status, workflow_name, trigger, errors, n) == ("completed", wf.name, "backfill", None, len(sessions))
    assert _q(engine, "select count(*) from batch_locks where run_id <> ''")[0][0] == 0


def test_2_cron_tick_on_a_holiday_is_green_and_does_nothing(world) -> None:
    emu, engine, _ = world
    before = _dated_counts(engine)
    wf = emu.cron_tick(CRON, THANKSGIVING)
    assert wf.phase == "Succeeded"
    phases = wf.phases()
    assert phases.pop("plan") == "Succeeded"
    assert set(phases.values()) == {"Skipped"}, phases
    assert wf.nodes["plan"].parameters["has-work"] == "false"
    assert "evaluated false" in wf.nodes["market-data"].message
    assert wf.exit_node.phase == "Succeeded"
    assert _history(engine, wf.name)[:3] == ("nothing-to-do", wf.name, "cron")
    assert _dated_counts(engine) == before
    assert _q(engine, "select count(*) from batch_locks where run_id <> ''")[0][0] == 0


def test_3_duplicate_submit_of_a_covered_day_is_green_and_does_nothing(world) -> None:
    emu, engine, _ = world
    before = _dated_counts(engine)
    wf = emu.cron_tick(CRON, WEDNESDAY)  # the backfill already covered 11-25
    assert wf.phase == "Succeeded"
    assert [p for p in wf.phases().values() if p != "Skipped"] == ["Succeeded"]
    assert _history(engine, wf.name)[0] == "nothing-to-do"
    assert _dated_counts(engine) == before


def test_4_a_step_fails_then_argo_retry_completes_the_run(world) -> None:
    emu, engine, _ = world
    emu.fault = lambda template, attempt: 1 if template == "risk-exposures" else None
    try:
        wf = emu.cron_tick(CRON, FRIDAY)
    finally:
        emu.fault = None
    assert wf.phase == "Failed"
    phases = wf.phases()
    [shard] = wf.nodes[SHARD_DAG].children.values()  # one shard: the small book
    inner = {name: n.phase for name, n in shard.tasks.items()}
    assert inner["risk-exposures"] == "Failed" and len(shard.tasks["risk-exposures"].attempts) == 4
    assert inner["stress-tests"] == "Omitted"
    assert {inner[n] for n in CHAIN if n not in ("risk-exposures", "stress-tests")} == {"Succeeded"}
    assert phases[SHARD_DAG] == "Failed" and phases["report"] == "Omitted"
    assert {phases[n] for n in AFTER_PLAN if n not in (SHARD_DAG, "report")} == {"Succeeded"}
    assert wf.exit_node.phase == "Succeeded"  # the exit handler records the failure
    status, name, _, errors, _ = _history(engine, wf.name)
    assert status == "partial" and name == wf.name
    failed_nodes = {e.get("node") for e in errors}
    assert {"risk-exposures", "risk-exposures(3)"} <= failed_nodes, errors  # node details, not "workflow Failed"
    friday = "2026-11-27"
    assert friday in _snapshot_dates(engine)
    assert _q(engine, "select count(*) from factor_exposures where calculation_date = :d", d=friday)[0][0] == 0
    kept = {n: len(wf.all_nodes()[n].attempts) for n in ("plan", "market-data", f"{shard.name}.pnl-snapshots")}

    wf = emu.retry(wf)
    assert wf.phase == "Succeeded"
    assert set(wf.phases().values()) == {"Succeeded"}
    nodes = wf.all_nodes()
    assert {n: len(nodes[n].attempts) for n in kept} == kept, "argo retry keeps the succeeded nodes"
    assert len(nodes[f"{shard.name}.risk-exposures"].attempts) == 1
    assert len(nodes[f"{shard.name}.stress-tests"].attempts) == 1
    assert _history(engine, wf.name)[0] == "completed"
    assert _q(engine, "select count(*) from factor_exposures where calculation_date = :d", d=friday)[0][0] > 0
    assert _q(engine, "select count(*) from stress_test_results where calculation_date = :d", d=friday)[0][0] > 0
    assert _q(engine, "select count(*) from batch_locks where run_id <> ''")[0][0] == 0


def test_5_onboarding(world) -> None:
    emu, engine, aside = world
    with pytest.raises(SubmitError, match="portfolio"):
        emu.submit(ONBOARDING, {})
    with engine.begin() as c:
        c.execute(m.Portfolio.__table__.insert(), aside[0])
        c.execute(m.Position.__table__.insert(), aside[1])
    assert _snapshot_dates(engine, ONBOARDED) == set()
    wf = emu.submit(ONBOARDING, {"portfolio": ONBOARDED})
    assert wf.phase == "Succeeded", "\n".join(emu.logs)
    assert set(wf.phases().values()) == {"Succeeded"}
    assert "2026-11-27" in _snapshot_dates(engine, ONBOARDED)
    assert _snapshot_dates(engine, ONBOARDED) <= _snapshot_dates(engine)
    assert _history(engine, wf.name)[:3] == ("completed", wf.name, "onboarding")


# ---- the emulator refuses what Argo refuses, and sees what the old manifests did -------------------------


def test_submit_validates_enum_parameters(world) -> None:
    emu, _, _ = world
    with pytest.raises(SubmitError, match="trigger"):
        emu.submit(NIGHTLY, {"trigger": "nightly"})
    with pytest.raises(SubmitError, match="unknown"):
        emu.submit(NIGHTLY, {"image": "evil.example/x:1"})


def test_without_when_a_quiet_night_fails_as_the_issue_describes(world, tmp_path) -> None:
    """The manifests before issue 17 (no ``when``): market-data exits 0 without its artifact -> Error."""
    emu, engine, _ = world
    doc = copy.deepcopy(emu.docs[("WorkflowTemplate", NIGHTLY)])
    for t in next(t for t in doc["spec"]["templates"] if t["name"] == "main")["dag"]["tasks"]:
        t.pop("when", None)
    files = tmp_path / "files"
    files.mkdir()
    (files / "wt.yaml").write_text(yaml.safe_dump(doc))
    (files / "cron.yaml").write_text((FILES / "cronworkflow-nightly.yaml").read_text())
    evening = {**emu.base_env, "SIGMABATCH_NOW": "2026-11-26T18:45:00-05:00"}  # the steps run that evening
    old = Emulator(files, tmp_path, base_env=evening, secrets=emu.secrets, modules=emu.modules)
    wf = old.cron_tick(CRON, THANKSGIVING)
    assert wf.phase in ("Failed", "Error"), wf.nodes["plan"].parameters
    assert wf.nodes["market-data"].phase == "Error"
    assert "price_cache.parquet" in wf.nodes["market-data"].message


def test_6_error_nodes_and_lock_busy_are_retried(world) -> None:
    """retryPolicy Always: an S3 failure in the wait container (Error) is retried, and so is lock busy (4)."""
    emu, engine, _ = world
    faults = {("market-data", 0): "Error", ("pnl-snapshots", 0): 4}
    emu.fault = lambda template, attempt: faults.get((template, attempt))
    try:
        wf = emu.submit(NIGHTLY, {"start-date": "2026-11-27", "end-date": "2026-11-27", "force": "true"})
    finally:
        emu.fault = None
    assert wf.phase == "Succeeded", {n: (x.phase, x.message) for n, x in wf.nodes.items()}
    assert [a.phase for a in wf.nodes["market-data"].attempts] == ["Error", "Succeeded"]
    assert [a.exit_code for n in wf.step_nodes("pnl-snapshots") for a in n.attempts] == [4, 0]


def test_7_hopeless_exit_codes_are_not_retried(world) -> None:
    """Exit 2 (bad input), 5 (fenced out) and 137 (out of memory at the same limit) fail at once (exit 1
    is retried: test_4)."""
    emu, engine, _ = world
    faults = {"symbol-metrics": 2, "fundamentals": 5, "symbol-factors": 137}
    emu.fault = lambda template, attempt: faults.get(template)
    try:
        wf = emu.submit(NIGHTLY, {"start-date": "2026-11-27", "end-date": "2026-11-27", "force": "true"})
    finally:
        emu.fault = None
    assert wf.phase == "Failed"
    attempts = {n: [a.exit_code for x in wf.step_nodes(n) for a in x.attempts] for n in faults}
    assert attempts == {"symbol-metrics": [2], "fundamentals": [5], "symbol-factors": [137]}
    assert _history(engine, wf.name)[0] == "partial"


def test_8_the_next_night_completes_what_a_failed_step_missed(world) -> None:
    """risk-exposures fails on Monday and nobody retries; Tuesday's run covers Monday again (issue 17 item 4)."""
    emu, engine, _ = world
    monday, tuesday = "2026-11-30", "2026-12-01"
    emu.fault = lambda template, attempt: 1 if template == "risk-exposures" else None
    try:
        wf = emu.cron_tick(CRON, "2026-11-30T23:30:00Z")
    finally:
        emu.fault = None
    assert wf.phase == "Failed" and [n.phase for n in wf.step_nodes("risk-exposures")] == ["Failed"]
    assert monday in _snapshot_dates(engine)  # snapshots alone would call Monday done
    # (the onboarded book already has Monday: its onboarding ran to the clock's last session)
    count = f"select count(*) from {{}} where calculation_date = :d and portfolio_id <> '{ONBOARDED}'"
    assert _q(engine, count.format("factor_exposures"), d=monday)[0][0] == 0

    wf = emu.cron_tick(CRON, "2026-12-01T23:30:00Z")
    assert wf.phase == "Succeeded", {n: (x.phase, x.message) for n, x in wf.nodes.items()}
    start, end = wf.nodes["plan"].parameters["start-date"], wf.nodes["plan"].parameters["end-date"]
    assert start <= monday and end == tuesday
    for table in ("factor_exposures", "stress_test_results"):
        assert _q(engine, count.format(table), d=monday)[0][0] > 0, table
        assert _q(engine, count.format(table), d=tuesday)[0][0] > 0, table

    wf = emu.cron_tick(CRON, "2026-12-01T23:35:00Z")  # a later submit: nothing is missing any more
    assert wf.phase == "Succeeded" and wf.nodes["plan"].parameters["has-work"] == "false"


def test_9_a_terminated_run_leaves_the_lock_until_its_lease_runs_out(world) -> None:
    """``argo terminate`` skips the exit handler: the lock stays with the terminated run, the next nightly
    `plan` is refused (exit 4, retried) while the lease runs, and takes the lock over once the heartbeat is
    older than the lease (the workflow is gone: no step renews it), marking the terminated run abandoned."""
    emu, engine, _ = world
    wf = emu.submit(NIGHTLY, {"start-date": "2026-12-01", "end-date": "2026-12-01", "force": "true"},
                    terminate_after="market-data")
    assert wf.phase == "Failed" and wf.exit_node is None, "terminate: no exit handler"
    assert wf.phases()["market-data"] == "Succeeded" and wf.phases()[SHARD_DAG] == "-"
    assert _q(engine, "select run_id from batch_locks where run_id <> ''") == [(wf.name,)]
    assert _history(engine, wf.name)[0] == "running"

    plan = next(t for t in emu.docs[("WorkflowTemplate", NIGHTLY)]["spec"]["templates"] if t["name"] == "plan")
    timeout = next(e for e in plan["container"]["env"] if e["name"] == "SIGMABATCH_LOCK_TIMEOUT")
    saved, timeout["value"] = timeout["value"], "1"  # time is not modelled: wait 1 s instead of 1200
    try:
        busy = emu.cron_tick(CRON, "2026-12-01T23:40:00Z")
    finally:
        timeout["value"] = saved
    assert busy.phase == "Failed" and busy.phases()["plan"] == "Failed"
    assert [a.exit_code for a in busy.nodes["plan"].attempts] == [4] * 5, "lock busy is retried"
    assert _q(engine, "select run_id from batch_locks where run_id <> ''") == [(wf.name,)]

    with engine.begin() as c:  # the terminated workflow's steps are gone: nobody renews the heartbeat
        c.execute(text("update batch_locks set heartbeat = :t"), {"t": "2026-01-01 00:00:00"})
    wf_next = emu.cron_tick(CRON, "2026-12-01T23:45:00Z")
    assert wf_next.phase == "Succeeded", {n: (x.phase, x.message) for n, x in wf_next.nodes.items()}
    assert wf_next.nodes["plan"].parameters["has-work"] == "false"  # Tuesday was complete before
    assert _history(engine, wf.name)[0] == "abandoned", "the lock's take-over marks the terminated run"
    assert _q(engine, "select run_id from batch_locks where run_id <> ''") == []


def test_10_a_stopped_run_is_recorded_and_frees_the_lock(world) -> None:
    """``argo stop`` runs the exit handler: the run is recorded (not ``running``), the lock is released, and
    the next run does not wait."""
    emu, engine, _ = world
    wf = emu.submit(NIGHTLY, {"start-date": "2026-12-01", "end-date": "2026-12-01", "force": "true"},
                    stop_after="market-data")
    assert wf.phase == "Failed" and wf.exit_node.phase == "Succeeded"
    status, _, _, errors, _ = _history(engine, wf.name)
    assert status == "partial" and any("Stop" in (e.get("message") or "") for e in errors), errors
    assert _q(engine, "select run_id from batch_locks where run_id <> ''") == []
    nxt = emu.cron_tick(CRON, "2026-12-01T23:50:00Z")
    assert nxt.phase == "Succeeded" and len(nxt.nodes["plan"].attempts) == 1


def test_11_a_failing_shard_holds_no_other_shard_and_argo_retry_reruns_only_it(world) -> None:
    """Issue 18, one sub-DAG per portfolio shard: risk-exposures fails in shard 2/3 only. That shard's
    stress-tests is Omitted (its other steps run); shards 1/3 and 3/3 run their whole chain; the report
    waits. ``argo retry`` then runs shard 2's risk-exposures and stress-tests, the report and the exit
    handler — nothing else."""
    emu, engine, _ = world
    failing = f"{SHARD_DAG}(1:2/3).risk-exposures"
    emu.base_env["SIGMABATCH_SHARDS"] = "3"
    emu.node_fault = lambda node, attempt: 1 if node == failing else None
    try:
        wf = emu.submit(NIGHTLY, {"start-date": "2026-12-01", "end-date": "2026-12-01", "force": "true"})
    finally:
        emu.node_fault = None
    try:
        assert wf.phase == "Failed"
        shards = wf.nodes[SHARD_DAG].children
        assert list(shards) == ["1/3", "2/3", "3/3"]
        for item in ("1/3", "3/3"):
            assert shards[item].phase == "Succeeded"
            assert {k: n.phase for k, n in shards[item].tasks.items()} == dict.fromkeys(CHAIN, "Succeeded"), item
        bad = shards["2/3"].tasks
        assert shards["2/3"].phase == "Failed" and bad["risk-exposures"].phase == "Failed"
        assert [a.exit_code for a in bad["risk-exposures"].attempts] == [1] * 4
        assert bad["stress-tests"].phase == "Omitted"
        assert {bad[n].phase for n in CHAIN if n not in ("risk-exposures", "stress-tests")} == {"Succeeded"}
        assert wf.phases()[SHARD_DAG] == "Failed" and wf.phases()["report"] == "Omitted"
        status, _, _, errors, _ = _history(engine, wf.name)
        assert status == "partial" and {"risk-exposures", "risk-exposures(3)"} <= {e.get("node") for e in errors}

        def recorded() -> set[str]:
            return {r[0] for r in _q(engine, "select phase from batch_phase_runs where run_id = :r", r=wf.name)}

        every = {f"{step}[{k}/3]" for step in CHAIN for k in (1, 2, 3)}
        assert every - recorded() == {"risk-exposures[2/3]", "stress-tests[2/3]"}

        ran = len(emu.logs)
        wf = emu.retry(wf)
        assert wf.phase == "Succeeded", {n: (x.phase, x.message) for n, x in wf.all_nodes().items()}
        assert [line.split(" exit ")[0] for line in emu.logs[ran:]] == [
            f"{failing}(0)", f"{SHARD_DAG}(1:2/3).stress-tests(0)", "report(0)", f"{wf.name}.onExit(0)"]
        assert {n.phase for n in wf.all_nodes().values()} == {"Succeeded"}
        assert every <= recorded() and _history(engine, wf.name)[0] == "completed"
    finally:
        del emu.base_env["SIGMABATCH_SHARDS"]


# ---- the rendered DAG computes what the local runner computes -----------------------------------------


def _seed_db(url: str) -> None:
    from shared.demo import seed_demo
    from shared.settings import Settings

    engine = get_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        seed_demo(s, Settings.from_env({"SIGMABATCH_NOW": "2026-11-13T18:00:00-05:00",
                                        "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                                        "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS)}))
    engine.dispose()


def _tables(url: str) -> dict:
    import pandas as pd
    from sqlalchemy import inspect

    skip = {"batch_run_history", "batch_phase_runs", "batch_locks", "alembic_version"}
    volatile = {"id", "run_id", "created_at", "updated_at", "acquired_at", "heartbeat"}
    engine = get_engine(url)
    out = {}
    with engine.connect() as c:
        for name in sorted(set(inspect(engine).get_table_names()) - skip):
            frame = pd.read_sql(text(f"select * from {name}"), c)
            frame = frame.drop(columns=[col for col in frame.columns if col in volatile])
            out[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    engine.dispose()
    return out


@pytest.mark.parametrize("shards", [1, 3])
def test_the_rendered_dag_writes_the_same_tables_as_the_local_runner(tmp_path, shards) -> None:
    """The rendered DAG and the local one (unsharded) write the same tables; with 3 shards (issue 18) every
    symbol step runs one pod per shard (withParam), every shard runs its sub-DAG of portfolio steps (one
    pod per step) with ``--shard K/N``, and the numbers agree to 1e-12 relative (other stack
    sizes in the vectorised kernels), the rows exactly."""
    import pandas as pd

    from shared.storage.compare import differences
    from tests.dagrun import run_dag

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_NOW": "2026-11-25T20:00:00-05:00", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS), "SIGMABATCH_PROVIDER": "synthetic"})
    argo_env = {**env, "SIGMABATCH_SHARDS": str(shards)}
    urls = {way: f"sqlite:///{tmp_path / f'{way}.db'}" for way in ("argo", "local")}
    for url in urls.values():
        _seed_db(url)
    emu = Emulator(FILES, tmp_path / "argo", base_env=argo_env, secrets={"database-url": urls["argo"]},
                   modules={"phases.report": _stub_report})
    emu.set_default("provider", "synthetic")
    wf = emu.cron_tick(CRON, WEDNESDAY)
    assert wf.phase == "Succeeded", "\n".join(emu.logs[-3:])
    expected = [f"{k}/{shards}" for k in range(1, shards + 1)]
    assert json.loads(wf.nodes["plan"].parameters["shards"]) == expected
    for task in ("symbol-factors", SHARD_DAG):  # a pod per shard; a sub-DAG per shard
        node = wf.nodes[task]
        assert list(node.children) == expected and all(c.phase == "Succeeded" for c in node.children.values())
    for step in ("symbol-factors", *CHAIN):
        assert [a.args[a.args.index("--shard") + 1] for n in wf.step_nodes(step) for a in n.attempts] == expected
    assert [n.name for n in wf.step_nodes("stress-tests")] == [
        f"{SHARD_DAG}({k - 1}:{k}/{shards}).stress-tests" for k in range(1, shards + 1)]
    start, end = (wf.nodes["plan"].parameters[p] for p in ("start-date", "end-date"))
    assert end == "2026-11-25" and start < end
    local_env = {**env, "SIGMABATCH_DATABASE_URL": urls["local"],
                 "SIGMABATCH_ARTIFACTS": str(tmp_path / "local-artifacts")}
    assert run_dag(local_env, tmp_path / "local") == (start, end)
    argo_tables, local_tables = _tables(urls["argo"]), _tables(urls["local"])
    assert argo_tables.keys() == local_tables.keys()
    assert len(argo_tables["portfolio_snapshots"]) > 0 and len(argo_tables["stress_test_pnl"]) > 0
    if shards == 1:
        for name in argo_tables:
            pd.testing.assert_frame_equal(argo_tables[name], local_tables[name], check_exact=True, obj=name)
    else:
        diff = differences(local_tables, argo_tables)
        assert not diff, f"the rendered DAG over {shards} shards differs:\n  " + "\n  ".join(diff)
