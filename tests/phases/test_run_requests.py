"""A bad ``sigmabatch run`` request is refused before anything is taken or recorded (issue 16): exit code,
the first line of the message, and nothing written (row counts of every table, run history and lock
included; no ``var/runs/<id>`` folder)."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import inspect, text

from shared.storage.db import get_engine, migrate, transaction

NOW = "2026-11-27T18:00:00-05:00"  # last completed session 2026-11-27 (a Friday; 11-26 is Thanksgiving)
COVERAGE = "(1990-01-02 .. 2045-12-29)"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A database with the five demo portfolios and no run yet (copied for each test)."""
    from shared.demo import seed_demo
    from shared.settings import Settings

    tmp = tmp_path_factory.mktemp("requests")
    url = f"sqlite:///{tmp / 'sb.db'}"
    engine = get_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        seed_demo(s, Settings(database_url=url, synthetic_symbols=8, now=Settings.from_env({"SIGMABATCH_NOW": NOW}).now,
                              default_sessions=5))
    engine.dispose()
    return tmp / "sb.db"


def counts(url: str) -> dict[str, int]:
    engine = get_engine(url)
    with engine.connect() as c:
        return {n: c.execute(text(f"select count(*) from {n}")).scalar_one()
                for n in inspect(engine).get_table_names()}


BAD = [
    (["run", "--max-parallel", "0"], "error: --max-parallel must be at least 1 (got 0)"),
    (["run", "--max-parallel", "-2"], "error: --max-parallel must be at least 1 (got -2)"),
    (["run", "--retries", "-1"], "error: --retries must be at least 0 (got -1)"),
    (["onboard", "demo-long-only", "--max-parallel", "0"], "error: --max-parallel must be at least 1 (got 0)"),
    (["status", "--limit", "0"], "error: --limit must be at least 1 (got 0)"),
    (["run", "--start-date", "1900-01-01"], f"error: --start-date 1900-01-01 is outside the NYSE calendar's coverage {COVERAGE}"),
    (["run", "--start-date", "1900-01-01", "--end-date", "1900-01-05"],
     f"error: --start-date 1900-01-01 is outside the NYSE calendar's coverage {COVERAGE}"),
    (["run", "--start-date", "2026-11-02", "--end-date", "2046-01-02"],
     f"error: --end-date 2046-01-02 is outside the NYSE calendar's coverage {COVERAGE}"),
    (["run", "--start-date", "2026-11-21", "--end-date", "2026-11-22"],
     "error: no NYSE session between 2026-11-21 and 2026-11-22 (weekends/holidays only)"),
    (["run", "--start-date", "2026-11-26", "--end-date", "2026-11-26"],
     "error: no NYSE session between 2026-11-26 and 2026-11-26 (weekends/holidays only)"),
    (["run", "--start-date", "2026-11-20", "--end-date", "2026-11-10"],
     "error: end date 2026-11-10 is before start date 2026-11-20"),
    (["run", "--end-date", "2026-12-15"], "error: end date 2026-12-15 is after the last completed NYSE session 2026-11-27"),
    (["run", "--start-date", "2024-11-01", "--end-date", "2026-11-27"],
     "error: 2024-11-01..2026-11-27 is 519 sessions x 5 portfolio(s) = 2,595 portfolio-sessions (more than a year): "
     "add --yes to run it"),
    (["run", "--start-date", "2020-01-02", "--portfolio", "demo-options"],
     "error: 2020-01-02..2026-11-27 is 1,736 sessions x 1 portfolio(s) = 1,736 portfolio-sessions (more than a "
     "year): add --yes to run it"),
    (["run", "--portfolio", "nope"], "error: unknown or inactive portfolio 'nope'"),
]


@pytest.mark.parametrize(("argv", "first_line"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_run_request_writes_nothing(seeded, tmp_path, monkeypatch, capsys, argv, first_line):
    from shared.cli import main

    shutil.copyfile(seeded, tmp_path / "sb.db")
    url = f"sqlite:///{tmp_path / 'sb.db'}"
    for k in [k for k in os.environ if k.startswith("SIGMABATCH_")]:
        monkeypatch.delenv(k)
    for k, v in {"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
                 "SIGMABATCH_SYNTHETIC_SYMBOLS": "8", "SIGMABATCH_NOW": NOW}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    before = counts(url)
    extra = ["--no-progress"] if argv[0] in ("run", "onboard") else []
    code = main([*argv, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.splitlines()[0] == first_line
    assert counts(url) == before
    assert before["batch_run_history"] == 0 and before["batch_locks"] == 0
    assert not (tmp_path / "var").exists()
