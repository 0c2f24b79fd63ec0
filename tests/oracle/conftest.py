"""The oracle's pipeline run: the book of :mod:`tests.oracle.book` through the whole DAG once (SQLite, the
steps in this process: :mod:`tests.dagrun`), shared by every oracle test of the session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from tests.oracle import book as bk


@dataclass
class Run:
    url: str
    wide: pd.DataFrame  # the provider's closes, as written
    portfolios: pd.DataFrame
    positions: pd.DataFrame  # with the stored ids
    flows: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    sessions: list  # the run's sessions (datetime.date)


def _read_tables(url: str) -> dict[str, pd.DataFrame]:
    from shared.storage import models as m
    from shared.storage.db import get_engine

    eng = get_engine(url)
    with eng.connect() as c:
        # the views through their mapped columns: a SQLite view's computed JSON has no declared type
        out = {name: pd.read_sql_table(name, c) if name in m.Base.metadata.tables else pd.read_sql(select(t), c)
               for name, t in m.relations().items()}
    eng.dispose()
    return out


def run_oracle_book(tmp: Path) -> Run:
    from shared import calendar
    from shared.storage import models as m
    from shared.storage.db import get_engine, migrate
    from tests.dagrun import run_dag

    wide = bk.market()
    bk.write_provider(tmp / "provider", wide)
    portfolios, positions, flows = bk.book(wide)
    url = f"sqlite:///{tmp / 'oracle.db'}"
    eng = get_engine(url)
    migrate(eng)
    with eng.begin() as c:
        c.execute(m.Portfolio.__table__.insert(), portfolios.to_dict("records"))
        c.execute(m.Position.__table__.insert(),
                  [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
                   for r in positions.to_dict("records")])
        c.execute(m.EquityChange.__table__.insert(), flows.to_dict("records"))
    eng.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": f"file:{tmp / 'provider'}", "SIGMABATCH_NOW": bk.NOW,
                "OPENBLAS_NUM_THREADS": "1"})
    start, end = run_dag(env, tmp, start=bk.START.isoformat(), end=bk.END.isoformat())
    assert (start, end) == (bk.START.isoformat(), bk.END.isoformat())
    tables = _read_tables(url)
    stored = tables["positions"][["id", "portfolio_id", "symbol", "position_type", "entry_date"]].copy()
    stored["entry_date"] = pd.to_datetime(stored["entry_date"]).dt.date
    positions = positions.merge(stored, on=["portfolio_id", "symbol", "position_type", "entry_date"], how="left")
    assert positions["id"].notna().all()
    return Run(url, wide, portfolios, positions, flows, tables, calendar.sessions(bk.START, bk.END))


@pytest.fixture(scope="session")
def oracle_run(tmp_path_factory) -> Run:
    return run_oracle_book(tmp_path_factory.mktemp("oracle"))



def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """``-v``: the oracle's column-coverage table after the run (docs/testing.md keeps a copy)."""
    if config.getoption("verbose") > 0 and any("tests/oracle" in str(r.fspath) for r in
                                               terminalreporter.stats.get("passed", [])
                                               + terminalreporter.stats.get("failed", [])):
        from tests.oracle.coverage import counts, markdown

        checked, keys, other = counts()
        terminalreporter.section("oracle column coverage")
        terminalreporter.write_line(f"{checked} columns checked, {keys} keys, {other} not checked (reason given)")
        terminalreporter.write_line(markdown())
