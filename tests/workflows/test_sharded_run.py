"""Issue 18: a run fanned out over portfolio and symbol shards writes exactly the tables the unsharded run writes.

The five demo books, cloned three times (15 portfolios with distinct ids, the same 20 synthetic stocks
and the ETFs), entered 20 sessions before ``D``; one run over ``[D−20, D]`` (a backfill: the risk steps go
in chunks of sessions) with 1 shard and with 4 (``SIGMABATCH_SHARDS``), each on its own database, the
DAG's steps in this process (:mod:`tests.dagrun`, one shard after another). Every table but the run
records must hold the same rows (every column but run metadata), the numbers to 1e-12 relative: a
portfolio's numbers do not depend on which other portfolios share its process, only the vectorised
kernels' blocking does (stacks of other sizes, other session chunks: the last bit, as for the launch
shapes of ``test_range_invariance.py``). The symbol steps split the symbols (the same 4 shards): every
symbol's rows are written by its own shard only, the factor ETFs' included. A forced re-run of one shard then
leaves every table as it was, to the bit (the same work: the same range and shard). On SQLite and on
PostgreSQL.

sector-tags splits the portfolios like the P&L steps; company-profiles and fundamentals split the symbols, and
the run-wide rows of company-profiles (the benchmark's sector weights, the treasury yields) are written by
shard 1 alone.

The shards of one step committing side by side (several processes of the run under its lock) are
covered by ``test_concurrent_shards_under_the_local_runner``: the subprocess runner, 4 shards, 4 at a time.
"""

from __future__ import annotations

import json
import os
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared import calendar, sharding
from shared.storage import models as m
from shared.storage.compare import differences
from shared.storage.compare import table_rows as all_rows
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO
from tests.dagrun import environment, run_dag
from tests.workflows.test_range_invariance import _pg

pytestmark = pytest.mark.slow

D = date(2026, 11, 13)
BOOK_SESSIONS = 20
COPIES = 3
#: What sector-tags, company-profiles and fundamentals write (the last steps made to fan out).
FANNED_LAST = ("position_sector_tags", "company_profiles", "symbol_universe", "benchmarks_sector_weights",
               "macro_series", "financial_statements")


def _clock(day: date) -> str:
    return f"{day.isoformat()}T18:00:00-05:00"


def _env(url: str, tmp, shards: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_NOW": _clock(D), "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS),
                "SIGMABATCH_PAIRWISE_SESSIONS": "3", "SIGMABATCH_CHUNK_PORTFOLIO_DATES": "100",
                "SIGMABATCH_SHARDS": str(shards), "PYTHONPATH": str(REPO)})
    return env


def seed_cloned_demo(url: str) -> list[str]:
    """The demo books, each also cloned ``COPIES - 1`` times under new (deterministic) ids."""
    from shared.demo import seed_demo
    from shared.settings import Settings

    settings = Settings.from_env({"SIGMABATCH_NOW": _clock(D), "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                                  "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS)})
    eng = get_engine(url)
    migrate(eng)
    with transaction(eng) as s:
        ids = seed_demo(s, settings)
    pf, pos = m.Portfolio.__table__, m.Position.__table__
    with eng.begin() as c:
        books = [dict(r) for r in c.execute(pf.select()).mappings()]
        lots = [dict(r) for r in c.execute(pos.select()).mappings()]
        for copy in range(1, COPIES):
            new = {b["id"]: f"{b['id']}-{copy}" for b in books}
            c.execute(pf.insert(), [{**b, "id": new[b["id"]], "name": f"{b['name']} {copy}"} for b in books])
            c.execute(pos.insert(), [{**{k: v for k, v in p.items() if k != "id"},
                                      "portfolio_id": new[p["portfolio_id"]]} for p in lots])
            ids += list(new.values())
    eng.dispose()
    return ids


def _phase_records(url: str) -> pd.DataFrame:
    eng = get_engine(url)
    with eng.connect() as c:
        frame = pd.read_sql(text("select run_id, phase, status, rows_written from batch_phase_runs"), c)
    frame["rows_written"] = frame["rows_written"].map(lambda v: json.loads(v) if isinstance(v, str) else v or {})
    eng.dispose()
    return frame


def _done(url: str) -> set[tuple[str, str]]:
    """The (run_id, step) pairs planning counts as finished (:func:`repo.load_run_coverage`)."""
    from shared.storage import repository as repo

    eng = get_engine(url)
    with transaction(eng) as s:
        _, done = repo.load_run_coverage(s, calendar.shift_sessions(D, -BOOK_SESSIONS))
    eng.dispose()
    return done


def _build(url: str, tmp, shards: int) -> dict:
    ids = seed_cloned_demo(url)
    run_dag(_env(url, tmp, shards), tmp, start=calendar.shift_sessions(D, -BOOK_SESSIONS).isoformat(),
            end=D.isoformat())
    after = all_rows(url)
    rerun = None
    if shards > 1:  # a forced re-run of one shard leaves every table as it was
        from workflows import dag

        run_id = _phase_records(url)["run_id"].iloc[0]
        with environment(_env(url, tmp, shards)):
            import importlib

            from shared import locking

            eng = get_engine(url)
            locking.acquire(eng, run_id, holder_pid=os.getpid())
            try:
                # shard 2 of every fanned-out step, and shard 1 of company-profiles (the run-wide rows)
                again = [(step, 2) for step in dag.STEPS if step.fan_out] + [(dag.steps_by_name()["company-profiles"], 1)]
                for step, k in again:
                    args = dag.step_args(step, start_date=calendar.shift_sessions(D, -BOOK_SESSIONS).isoformat(),
                                         end_date=D.isoformat(), portfolio="",
                                         run_id=run_id, force="true", shard=f"{k}/{shards}",
                                         price_cache_in=str(tmp / run_id / dag.PRICE_CACHE_FILE))
                    assert importlib.import_module(step.module).main(args) == 0, (step.name, k)
            finally:
                locking.release(eng, run_id)
                eng.dispose()
        rerun = all_rows(url)
    return {"ids": ids, "rows": after, "rerun": rerun, "phases": _phase_records(url), "done": _done(url)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def built(request, tmp_path_factory) -> dict[int, dict]:
    out = {}
    for shards in (1, 4):
        tmp = tmp_path_factory.mktemp(f"shards{shards}")
        if request.param == "sqlite":
            out[shards] = _build(f"sqlite:///{tmp / 'sb.db'}", tmp, shards)
        else:
            out[shards] = _pg(request, lambda url, tmp=tmp, shards=shards: _build(url, tmp, shards))
    return out


def test_every_shard_holds_portfolios(built):
    per = sharding.assign(built[4]["ids"], 4)
    assert sorted(set(per.values())) == [1, 2, 3, 4], per


def test_sharded_run_writes_the_same_tables_as_the_unsharded_run(built):
    one, four = built[1]["rows"], built[4]["rows"]
    assert one["portfolio_snapshots"].shape[0] >= 15 * BOOK_SESSIONS
    assert len(one["pairwise_correlations"]) and len(one["stress_test_results"])
    assert len(one["symbol_factor_exposures"]) and len(one["symbol_daily_metrics"])
    # the tables of the steps that fanned out last (sector-tags by portfolio, company-profiles and fundamentals
    # by symbol) are compared like every other: they must not be empty
    for table in FANNED_LAST:
        assert len(one[table]) and len(four[table]), table
    diff = differences(one, four)
    assert not diff, "4 shards differ from 1:\n  " + "\n  ".join(diff)


def test_rerunning_one_shard_leaves_the_tables_unchanged(built):
    diff = differences(built[4]["rows"], built[4]["rerun"], rel=0.0)
    assert not diff, "re-running a shard changed:\n  " + "\n  ".join(diff)


def test_each_symbol_shard_writes_only_its_own_symbols(built):
    """The symbol shards' rows add up to the table: no symbol (not even a factor ETF, which every shard reads
    as a regressor) is written by two shards, and every shard wrote some."""
    phases = built[4]["phases"]
    first = phases[phases["run_id"] == phases["run_id"].iloc[0]].set_index("phase")
    for step, table in (("symbol-factors", "symbol_factor_exposures"), ("symbol-metrics", "symbol_daily_metrics"),
                        ("company-profiles", "company_profiles"), ("company-profiles", "symbol_universe"),
                        ("fundamentals", "financial_statements")):
        per = [first.loc[f"{step}[{k}/4]", "rows_written"].get(table, 0) for k in range(1, 5)]
        assert all(per) and sum(per) == len(built[1]["rows"][table]) == len(built[4]["rows"][table]), (step, per)
    etfs = built[4]["rows"]["symbol_factor_exposures"]
    assert {"SPY", "TLT", "MTUM"} <= set(etfs["symbol"])  # the ETFs' own betas are there, once
    # the run-wide rows of company-profiles: shard 1 writes them all, the other shards none
    for table in ("benchmarks_sector_weights", "macro_series"):
        per = [first.loc[f"company-profiles[{k}/4]", "rows_written"].get(table, 0) for k in range(1, 5)]
        assert per[0] == len(built[1]["rows"][table]) > 0 and per[1:] == [0, 0, 0], (table, per)


def test_each_shard_is_recorded_and_folded_per_step(built):
    from shared import runs

    phases = built[4]["phases"]
    run_id = phases["run_id"].iloc[0]
    names = set(phases.loc[phases["run_id"] == run_id, "phase"])
    fanned = ("pnl-snapshots", "symbol-factors", "symbol-metrics", "sector-tags", "company-profiles", "fundamentals")
    assert {f"{step}[{k}/4]" for k in range(1, 5) for step in fanned} <= names
    assert not names & set(fanned) and "market-data" in names
    assert set(built[1]["phases"]["phase"]) >= {"pnl-snapshots", "stress-tests"}
    frame = phases.assign(started_at=pd.Timestamp("2026-01-01"), finished_at=pd.Timestamp("2026-01-01"),
                          duration_seconds=1.0, attempt=1, rows_written=[{}] * len(phases),
                          details=[{}] * len(phases), error=None)
    folded = runs.fold_shards(frame[frame["run_id"] == run_id])
    assert folded["phase"].is_unique and "pnl-snapshots" in set(folded["phase"])
    for step in fanned:
        row = folded.set_index("phase").loc[step]
        assert row["status"] == "ok" and row["details"]["shards"] == 4, step
    # planning's missed-work detection counts each step done (every shard of it finished)
    assert {(run_id, step) for step in fanned} <= built[4]["done"]


def test_concurrent_shards_under_the_local_runner(built, request, tmp_path):
    """The subprocess runner, 4 shards, up to 4 processes at once: the shards of a step commit side by side
    under the run's lock (fenced writes), and the tables are those of the unsharded run."""
    import sys

    from shared.settings import Settings
    from workflows.local import LocalRunner

    kind = request.node.callspec.params["built"]

    def run(url: str) -> dict:
        seed_cloned_demo(url)
        env = _env(url, tmp_path, 4)
        with environment(env):
            runner = LocalRunner(Settings.from_env(), max_parallel=4, python=sys.executable, workdir=tmp_path,
                                 env=env, retry_delay_cap=0.1, max_retries=0)
            outcome = runner.run(start_date=calendar.shift_sessions(D, -BOOK_SESSIONS).isoformat(),
                                 end_date=D.isoformat())
        return {"outcome": outcome, "rows": all_rows(url)}

    got = run(f"sqlite:///{tmp_path / 'sb.db'}") if kind == "sqlite" else _pg(request, run)
    outcome = got["outcome"]
    failed = {k: (o.status, o.error) for k, o in outcome.steps.items() if o.status not in ("ok", "skipped")}
    assert outcome.status == "completed", failed
    pnl = outcome.steps["pnl-snapshots"]
    assert sorted(pnl.shards) == ["1/4", "2/4", "3/4", "4/4"] and all(o.status == "ok" for o in pnl.shards.values())
    assert pnl.rows["portfolio_snapshots"] == len(built[1]["rows"]["portfolio_snapshots"])
    diff = differences(built[1]["rows"], got["rows"])
    assert not diff, "the local runner's 4 shards differ from 1:\n  " + "\n  ".join(diff)
