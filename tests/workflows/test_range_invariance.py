"""Issue 14: a session's numbers depend on the session alone, not on the shape of the run that computed it.

One synthetic market, the five demo books entered 20 sessions before a fixed session ``D``. Session ``D``
is computed four ways, each on its own database (the DAG's steps run in this process, :mod:`tests.dagrun`),
and every dated table's rows for ``D`` (every column but
run metadata) must agree — to the bit where the work is the same, else to 1e-12 relative:

* **nightly**: the 20 sessions before ``D``, then the nightly run of ``D`` (dates detected, clock at D);
* **backfill-21**: one run over ``[D−20, D]`` (clock at D);
* **backfill-206**: one run over ``[D−200, D+5]`` (clock at D+5: the run starts long before the books);
* **re-run**: a run over ``[D−20, D+5]``, then a forced re-run of ``[D, D]`` (clock at D+5);
* **onboarding**: four books run over ``[D−20, D]``, then the fifth is imported and onboarded (a run scoped
  to it, dates detected: its symbols and the factor ETFs are recomputed, shared ones included).

The pairwise matrices follow the date rule of :mod:`shared.retention` (here: the latest 10 sessions, so
``D`` keeps one in every shape). On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Date, text

from shared import calendar
from shared.storage import models as m
from shared.storage.compare import differences
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO
from tests.dagrun import run_dag

pytestmark = pytest.mark.slow

D = date(2026, 11, 13)
BOOK_SESSIONS = 20
#: The book of the onboarding shape: ETFs and two stocks it shares with the long-only book.
ONBOARDED = "demo-etf-heavy"
#: Tables whose rows are "as of now" (current marks, tags, profiles), not dated by session, and run records.
NOT_DATED = {"positions", "position_sector_tags", "company_profiles", "symbol_universe", "batch_run_history",
             "batch_phase_runs", "batch_locks", "portfolios", "equity_changes", "financial_statements",
             "stress_test_scenarios", "factor_definitions"}
#: Run metadata: which run wrote a row and when.
METADATA = {"run_id", "created_at", "updated_at", "id"}


def _clock(day: date) -> str:
    return f"{day.isoformat()}T18:00:00-05:00"


def _env(url: str, tmp, now: date) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_NOW": _clock(now), "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS),
                "SIGMABATCH_PAIRWISE_SESSIONS": "10", "PYTHONPATH": str(REPO)})
    return env


def _seed(url: str) -> None:
    """The demo books, entered BOOK_SESSIONS sessions before D, identical in every database."""
    from shared.demo import seed_demo
    from shared.settings import Settings

    settings = Settings.from_env({"SIGMABATCH_NOW": _clock(D), "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                                  "SIGMABATCH_DEFAULT_SESSIONS": str(BOOK_SESSIONS)})
    eng = get_engine(url)
    migrate(eng)
    with transaction(eng) as s:
        seed_demo(s, settings)
    eng.dispose()


def shift(n: int) -> str:
    return calendar.shift_sessions(D, n).isoformat()


WAYS = {
    "nightly": [(D, {"start": shift(-BOOK_SESSIONS), "end": shift(-1)}), (D, {})],
    "backfill-21": [(D, {"start": shift(-BOOK_SESSIONS), "end": D.isoformat()})],
    "backfill-206": [(calendar.shift_sessions(D, 5), {"start": shift(-200), "end": shift(5)})],
    "re-run": [(calendar.shift_sessions(D, 5), {"start": shift(-BOOK_SESSIONS), "end": shift(5)}),
               (calendar.shift_sessions(D, 5), {"start": D.isoformat(), "end": D.isoformat(), "force": True})],
    # four books run to D, then the fifth is imported and onboarded (its symbols and the ETFs only)
    "onboarding": [("set-aside", ONBOARDED), (D, {"start": shift(-BOOK_SESSIONS), "end": D.isoformat()}),
                   ("put-back", None), (D, {"portfolio": ONBOARDED})],
}


def dated_rows(url: str, day: date) -> dict[str, pd.DataFrame]:
    """Every dated table's rows for ``day``, without run metadata, in a canonical order."""
    eng = get_engine(url)
    out = {}
    with eng.connect() as c:
        # the views (per-position rows of per-symbol facts) too: what a reader of a position sees
        for table in (*m.Base.metadata.sorted_tables, *m.ViewBase.metadata.sorted_tables):
            if table.name in NOT_DATED:
                continue
            dcol = next(col.name for col in table.columns if isinstance(col.type, Date))
            frame = pd.read_sql(text(f"select * from {table.name} where {dcol} = :d"), c, params={"d": day})
            frame = frame.drop(columns=[x for x in frame.columns if x in METADATA])
            for x in frame.columns:  # JSON columns: decoded by psycopg, text on SQLite
                if frame[x].map(lambda v: isinstance(v, dict | list)).any():
                    frame[x] = frame[x].map(lambda v: None if v is None else json.dumps(v))
            pk = [col.name for col in table.primary_key.columns if col.name in frame.columns]
            keys = pk + [x for x in frame.columns if x not in pk and (frame[x].dtype == object or x.endswith("_id"))]
            order = frame[keys].astype(str).sort_values(keys).index if len(frame) else frame.index
            out[table.name] = frame.loc[order].reset_index(drop=True)
    eng.dispose()
    return out


def _set_aside(url: str, portfolio: str) -> tuple[list[dict], list[dict]]:
    """Take a seeded book out of the database (to import it again later, with the same ids)."""
    from sqlalchemy import delete, select

    pf, pos = m.Portfolio.__table__, m.Position.__table__
    with get_engine(url).begin() as c:
        book = ([dict(r) for r in c.execute(select(pf).where(pf.c.id == portfolio)).mappings()],
                [dict(r) for r in c.execute(select(pos).where(pos.c.portfolio_id == portfolio)).mappings()])
        c.execute(delete(pos).where(pos.c.portfolio_id == portfolio))
        c.execute(delete(pf).where(pf.c.id == portfolio))
    return book


def _put_back(url: str, book: tuple[list[dict], list[dict]]) -> None:
    with get_engine(url).begin() as c:
        c.execute(m.Portfolio.__table__.insert(), book[0])
        c.execute(m.Position.__table__.insert(), book[1])


def _build(url: str, tmp, steps) -> dict[str, pd.DataFrame]:
    _seed(url)
    aside = None
    for now, kwargs in steps:
        if now == "set-aside":
            aside = _set_aside(url, kwargs)
        elif now == "put-back":
            _put_back(url, aside)
        else:
            run_dag(_env(url, tmp, now), tmp, **kwargs)
    return dated_rows(url, D)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def computed(request, tmp_path_factory) -> dict[str, dict[str, pd.DataFrame]]:
    """D's rows computed the four ways, on one engine kind."""
    out = {}
    for way, steps in WAYS.items():
        tmp = tmp_path_factory.mktemp(way)
        if request.param == "sqlite":
            out[way] = _build(f"sqlite:///{tmp / 'sb.db'}", tmp, steps)
        else:
            out[way] = _pg(request, lambda url, tmp=tmp, steps=steps: _build(url, tmp, steps))
    return out


def _pg(request, build):
    import uuid

    import psycopg

    from tests.conftest import PG_BASE, _pg_reachable

    err = _pg_reachable()
    if err:
        from tests.conftest import IN_CI

        (pytest.fail if IN_CI else pytest.skip)(f"PostgreSQL unreachable: {err}")
    schema = f"sbinv_{uuid.uuid4().hex[:10]}"
    raw = PG_BASE.replace("+psycopg", "")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        return build(f"{PG_BASE}?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_every_dated_table_has_rows_for_the_session(computed):
    rows = computed["nightly"]
    empty = [t for t, f in rows.items() if f.empty and t not in ("correlation_clusters",)]
    assert not empty, f"no row for {D} in {empty}"
    assert len(rows["pairwise_correlations"]) > 0


@pytest.mark.parametrize("way", ["backfill-21", "backfill-206", "onboarding"])
def test_session_is_the_same_whatever_the_launch_shape(computed, way):
    """Other ranges: other BLAS blockings in the rolling regressions, so 1e-12 relative (README)."""
    diff = differences(computed["nightly"], computed[way])
    assert not diff, f"{way} differs from the nightly run on {D}:\n  " + "\n  ".join(diff)


def test_forced_rerun_of_the_session_is_bit_identical_to_its_nightly_run(computed):
    """The same work (one session, the same history) gives the same bits, whatever ran before."""
    diff = differences(computed["nightly"], computed["re-run"], rel=0.0)
    assert not diff, f"re-run of {D} differs from its nightly run:\n  " + "\n  ".join(diff)
