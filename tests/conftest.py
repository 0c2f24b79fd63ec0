"""Shared fixtures: databases (SQLite file, PostgreSQL schema), settings and a subprocess environment."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("SIGMABATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_BASE.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def pg_available() -> None:
    err = _pg_reachable()
    if err:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_BASE} is unreachable and CI=true: {err}")
        pytest.skip(f"PostgreSQL unreachable ({err}); set CI=true to make this a failure")


@contextlib.contextmanager
def pg_schema():
    """A fresh schema in the test database, dropped afterwards; yields a URL that pins search_path to it.
    Callers depend on ``pg_available`` (which fails under CI=true instead of skipping)."""
    import psycopg

    schema = f"sbtest_{uuid.uuid4().hex[:10]}"
    raw = PG_BASE.replace("+psycopg", "")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url(pg_available) -> str:
    """A fresh schema in the test database; the URL pins search_path to it."""
    with pg_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'sigmabatch.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sigmabatch.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(db_url):
    from shared.storage.db import get_engine, migrate

    eng = get_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def run_env(tmp_path, sqlite_url) -> dict[str, str]:
    """Environment for subprocess runs: a private SQLite file and artifact folder, a fixed clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({
        "SIGMABATCH_DATABASE_URL": sqlite_url,
        "SIGMABATCH_ARTIFACTS": str(tmp_path / "artifacts"),
        "SIGMABATCH_PROVIDER": "synthetic",
        "SIGMABATCH_SYNTHETIC_SYMBOLS": "30",
        "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00",
        "SIGMABATCH_DEFAULT_SESSIONS": "25",
        "PYTHONPATH": str(REPO),
    })
    return env
