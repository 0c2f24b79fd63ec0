"""Engine and session factory, and schema creation through Alembic migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared.errors import ConfigError, SigmabatchError
from shared.storage import jsontext

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseUnavailable(SigmabatchError):
    exit_code = 1


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process. SQLite files get their folder created and WAL mode."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=jsontext.dumps)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10},
                             json_serializer=jsontext.dumps)
    except Exception as exc:  # bad driver name etc.
        raise ConfigError(f"SIGMABATCH_DATABASE_URL: cannot create an engine: {exc}") from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed at the end, or rolled back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def vacuum(engine: Engine, tables: list[str]) -> float:
    """PostgreSQL: ``VACUUM (ANALYZE)`` each table, outside a transaction, so that the space of the rows a
    retention deleted is reused by the next night's inserts even where autovacuum is off or behind (a
    plain VACUUM blocks neither reads nor writes). SQLite: nothing (freed pages are reused by later
    inserts). Returns the seconds spent."""
    if engine.dialect.name != "postgresql" or not tables:
        return 0.0
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f'VACUUM (ANALYZE) "{table}"'))
    return time.perf_counter() - t0


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest Alembic revision of the migration scripts (read once a process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision; None when it has none or cannot be read (the caller migrates)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def migrate(engine: Engine, attempts: int = 5) -> None:
    """Bring the schema to the newest Alembic revision (idempotent, safe when processes race).

    A database already at the newest revision is left alone after one query (every step of a run calls
    this; Alembic's own upgrade reads and compiles every migration script each time). On PostgreSQL
    concurrent migrations are serialised by a transaction-level advisory lock; on SQLite a process that
    loses the race retries once the winner has committed (its upgrade is then a no-op).
    """
    from alembic import command

    if current_revision(engine) == head_revision():
        return
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(7305104233)"))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return
        except OperationalError as exc:
            if "already exists" in str(exc.orig) and attempt + 1 < attempts:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise DatabaseUnavailable(f"database unreachable at {engine.url!r}: {exc.orig}") from exc
        except (ProgrammingError, IntegrityError):
            if attempt + 1 < attempts:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise


