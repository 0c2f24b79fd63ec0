"""The batch lock: two runs never interleave, across processes, pods and machines.

A row in ``batch_locks`` names the run that holds the lock. It is taken with one atomic statement
(``INSERT … ON CONFLICT DO UPDATE … WHERE`` the row is free, ours or stale), so it works the same on
SQLite and PostgreSQL and survives a killed process (a stale lock — no heartbeat for
``stale_after`` seconds — is taken over). ``plan`` takes it for the run, every phase of the run finds
it held by its own run id (and refreshes the heartbeat), ``record-run`` releases it. A phase started on
its own takes and releases it around its work. Anyone else waits up to ``timeout`` seconds, then
:class:`LockBusyError` (exit code 4).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from shared.errors import LockBusyError
from shared.storage import models as m
from shared.storage.db import transaction

LOCK_NAME = "batch"
STALE_AFTER = 6 * 3600.0


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _holder(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def try_acquire(engine: Engine, run_id: str, *, name: str = LOCK_NAME, stale_after: float = STALE_AFTER,
                holder_pid: int | None = None) -> str:
    """Take the lock for ``run_id`` if it is free, already ours, or stale. Returns the owner's run id.

    Re-taking our own lock refreshes its heartbeat but keeps the original holder process.
    """
    now = _now()
    table = m.BatchLock.__table__
    ins = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = ins.values(name=name, run_id=run_id, acquired_at=now, heartbeat=now, holder=_holder(holder_pid))
    stale = table.c.heartbeat < now - timedelta(seconds=stale_after)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"run_id": stmt.excluded.run_id, "heartbeat": stmt.excluded.heartbeat,
              "holder": case((stale, stmt.excluded.holder), else_=table.c.holder),
              "acquired_at": case((stale, stmt.excluded.acquired_at), else_=table.c.acquired_at)},
        where=(table.c.run_id == stmt.excluded.run_id) | stale,
    )
    with transaction(engine) as s:
        s.execute(stmt)
        return s.execute(select(table.c.run_id).where(table.c.name == name)).scalar_one()


def _dead_local_holder(engine: Engine, name: str) -> bool:
    """Whether the lock was taken by a process of this machine that no longer exists."""
    with transaction(engine) as s:
        holder = s.execute(select(m.BatchLock.holder).where(m.BatchLock.name == name)).scalar()
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(engine: Engine, run_id: str, *, timeout: float = 0.0, poll: float = 1.0, name: str = LOCK_NAME,
            holder_pid: int | None = None) -> None:
    """Take the lock or raise :class:`LockBusyError` after ``timeout`` seconds.

    A lock left by a dead process of this machine (a killed local run) is taken over at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        owner = try_acquire(engine, run_id, name=name, holder_pid=holder_pid)
        if owner == run_id:
            return
        if _dead_local_holder(engine, name):
            release(engine, owner, name=name)
            continue
        if time.monotonic() >= deadline:
            raise LockBusyError(
                f"another run ({owner}) holds the batch lock; waited {timeout:.0f}s "
                "(set SIGMABATCH_LOCK_TIMEOUT to wait longer, or `sigmabatch unlock` if that run is dead)"
            )
        time.sleep(poll)


def owner(engine: Engine, name: str = LOCK_NAME) -> str | None:
    with transaction(engine) as s:
        return s.execute(select(m.BatchLock.run_id).where(m.BatchLock.name == name)).scalar()


def release(engine: Engine, run_id: str | None = None, *, name: str = LOCK_NAME) -> bool:
    """Release the lock (only if ``run_id`` owns it, or unconditionally with ``run_id=None``)."""
    with transaction(engine) as s:
        stmt = delete(m.BatchLock).where(m.BatchLock.name == name)
        if run_id is not None:
            stmt = stmt.where(m.BatchLock.run_id == run_id)
        return (s.execute(stmt).rowcount or 0) > 0


@contextmanager
def held(engine: Engine, run_id: str, *, timeout: float = 0.0, keep: bool = False) -> Iterator[bool]:
    """Hold the lock for the block. If the run already held it, it stays held (a phase of a run);
    otherwise it is released at the end unless ``keep`` (the plan step keeps it for the run)."""
    had = owner(engine) == run_id
    acquire(engine, run_id, timeout=timeout)
    try:
        yield had
    finally:
        if not had and not keep:
            release(engine, run_id)
