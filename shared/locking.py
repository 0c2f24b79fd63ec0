"""The batch lock: two runs never interleave, across processes, pods and machines; a run that lost it writes
nothing (fencing).

One row of ``batch_locks`` per lock name: the run that holds it (``run_id``, empty when free), the holder
process (``host:pid``), a ``heartbeat`` and a ``generation`` that goes up by one every time the lock changes
hands. The row is never deleted, so the generation never goes back.

* **Taking it** (:func:`acquire`): in one transaction that holds the row (PostgreSQL ``FOR UPDATE``; on
  SQLite the first statement is a write, so the transaction is the only writer). Free → taken, generation
  + 1. Ours → heartbeat refreshed. Held by another run whose **lease** ran out (no heartbeat for
  ``SIGMABATCH_LOCK_LEASE`` seconds) or whose holder process of this machine is dead → taken over,
  generation + 1, and the replaced run is marked ``abandoned`` in ``batch_run_history`` (when, by which
  run), in the same transaction. Otherwise it waits up to ``timeout`` seconds, then :class:`LockBusyError`
  (exit 4).
* **Keeping it**: the holder renews the heartbeat (:class:`Heartbeat`, a thread in the local runner and in
  every phase); a renewal that finds the lock gone stops.
* **Fencing**: ``(run_id, generation)`` at the time a phase starts is its :class:`Fence`. Every write
  transaction of a phase is a :func:`fenced_transaction`: just before the commit it reads the lock row
  (PostgreSQL ``SELECT … FOR SHARE``, which a take-over's ``UPDATE`` must wait for, so the two cannot
  interleave; SQLite has one writer at a time, and the transaction already is it) and, when the lock is no
  longer held by that run and generation, raises :class:`FencedOutError` (exit 5): the transaction is
  rolled back, nothing is written. An orphaned phase of a killed runner, or a zombie Argo pod, stops there.

``plan`` takes the lock for the run (the local runner already holds it under the same run id), every phase
of the run finds it held by its own run id, ``record-run`` releases it. A phase started on its own takes
and releases it around its work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.errors import FencedOutError, LockBusyError
from shared.storage import models as m
from shared.storage.db import session_factory, transaction

LOCK_NAME = "batch"
#: Default lease (SIGMABATCH_LOCK_LEASE): a holder with no heartbeat for this long can be replaced.
LEASE = 300.0
log = logging.getLogger("sigmabatch.lock")


@dataclass(frozen=True)
class Fence:
    """The fencing token of a run: the lock is still ours while the row has this run id and generation."""

    run_id: str
    generation: int
    name: str = LOCK_NAME


@dataclass(frozen=True)
class LockState:
    """The lock row as :func:`state` reads it (``run_id`` None when free)."""

    run_id: str | None
    generation: int
    holder: str | None
    acquired_at: datetime | None
    heartbeat: datetime | None
    lease_left: float | None  # seconds before the lease runs out (negative: expired); None when free
    holder_alive: bool | None  # the holder process, when it runs on this machine; None when unknown


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _aware(t: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; every time stored here is UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _holder(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def holder_alive(holder: str | None) -> bool | None:
    """Whether the ``host:pid`` holder process exists (None when it is not on this machine)."""
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_row(session: Session, name: str, *, for_update: bool = False, for_share: bool = False):
    q = select(m.BatchLock.run_id, m.BatchLock.generation, m.BatchLock.holder, m.BatchLock.heartbeat,
               m.BatchLock.acquired_at).where(m.BatchLock.name == name)
    if for_update:
        q = q.with_for_update()
    elif for_share:
        q = q.with_for_update(read=True)
    return session.execute(q).one_or_none()


def try_acquire(engine: Engine, run_id: str, *, name: str = LOCK_NAME, lease: float = LEASE,
                holder_pid: int | None = None) -> tuple[str, int]:
    """Take the lock for ``run_id`` if it is free, already ours, or its holder is gone (lease expired or
    process dead). Returns the owner's ``(run_id, generation)`` afterwards.

    Re-taking our own lock refreshes its heartbeat but keeps the original holder process.
    """
    from shared import runs

    now = _now()
    table = m.BatchLock.__table__
    ins = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
    with transaction(engine) as s:
        # The first statement writes: on SQLite this transaction is now the only writer; on PostgreSQL the
        # row exists for the FOR UPDATE below.
        s.execute(ins.values(name=name, run_id="", acquired_at=now, heartbeat=now, holder=None, generation=0)
                  .on_conflict_do_nothing(index_elements=["name"]))
        row = _lock_row(s, name, for_update=True)
        if row.run_id == run_id:
            s.execute(update(m.BatchLock).where(m.BatchLock.name == name).values(heartbeat=now))
            return run_id, row.generation
        replaced = row.run_id or None
        if replaced:
            expired = _aware(row.heartbeat) < now - timedelta(seconds=lease)
            dead = holder_alive(row.holder) is False
            if not (expired or dead):
                return replaced, row.generation
        generation = row.generation + 1
        s.execute(update(m.BatchLock).where(m.BatchLock.name == name).values(
            run_id=run_id, generation=generation, acquired_at=now, heartbeat=now, holder=_holder(holder_pid)))
        if replaced:
            why = "its holder process died" if dead else f"no heartbeat for {lease:.0f}s"
            log.warning("took the batch lock over from run %s (%s)", replaced, why)
            runs.mark_abandoned(s, replaced, by=f"run {run_id}", at=now)
        return run_id, generation


def acquire(engine: Engine, run_id: str, *, timeout: float = 0.0, poll: float = 1.0, name: str = LOCK_NAME,
            holder_pid: int | None = None, lease: float = LEASE) -> Fence:
    """Take the lock or raise :class:`LockBusyError` after ``timeout`` seconds; returns the run's fence."""
    deadline = time.monotonic() + timeout
    while True:
        owner_id, generation = try_acquire(engine, run_id, name=name, holder_pid=holder_pid, lease=lease)
        if owner_id == run_id:
            return Fence(run_id, generation, name)
        if time.monotonic() >= deadline:
            raise LockBusyError(
                f"another run ({owner_id}) holds the batch lock; waited {timeout:.0f}s "
                "(set SIGMABATCH_LOCK_TIMEOUT to wait longer, or `sigmabatch unlock` if that run is dead)"
            )
        time.sleep(poll)


def state(engine: Engine, name: str = LOCK_NAME, *, lease: float = LEASE) -> LockState:
    """The lock row, with the time left on its lease and whether its holder process is alive."""
    with transaction(engine) as s:
        row = _lock_row(s, name)
    if row is None or not row.run_id:
        return LockState(None, row.generation if row else 0, None, None, None, None, None)
    beat = _aware(row.heartbeat)
    left = lease - (_now() - beat).total_seconds()
    return LockState(row.run_id, row.generation, row.holder, _aware(row.acquired_at), beat, left,
                     holder_alive(row.holder))


def owner(engine: Engine, name: str = LOCK_NAME) -> str | None:
    with transaction(engine) as s:
        row = _lock_row(s, name)
    return (row.run_id or None) if row is not None else None


def release(engine: Engine, run_id: str | None = None, *, name: str = LOCK_NAME) -> bool:
    """Release the lock (only if ``run_id`` owns it, or unconditionally with ``run_id=None``). The row stays,
    with its generation."""
    with transaction(engine) as s:
        stmt = update(m.BatchLock).where(m.BatchLock.name == name, m.BatchLock.run_id != "")
        if run_id is not None:
            stmt = stmt.where(m.BatchLock.run_id == run_id)
        return (s.execute(stmt.values(run_id="", holder=None)).rowcount or 0) > 0


def renew(engine: Engine, fence: Fence) -> bool:
    """Refresh the heartbeat if the lock is still held under ``fence``; False when it is not."""
    with transaction(engine) as s:
        res = s.execute(update(m.BatchLock).where(
            m.BatchLock.name == fence.name, m.BatchLock.run_id == fence.run_id,
            m.BatchLock.generation == fence.generation).values(heartbeat=_now()))
        return (res.rowcount or 0) > 0


def check_fence(session: Session, fence: Fence) -> None:
    """Inside a write transaction: raise :class:`FencedOutError` unless the lock is still held under
    ``fence``. On PostgreSQL the lock row is read ``FOR SHARE``: a take-over waits for this transaction."""
    row = _lock_row(session, fence.name, for_share=True)
    if row is None or row.run_id != fence.run_id or row.generation != fence.generation:
        now_held = f"run {row.run_id} (generation {row.generation})" if row is not None and row.run_id else "nobody"
        raise FencedOutError(
            f"fenced out: run {fence.run_id} no longer holds the batch lock (it held generation "
            f"{fence.generation}; now held by {now_held}); nothing was written"
        )


@contextmanager
def fenced_transaction(engine: Engine, fence: Fence | None) -> Iterator[Session]:
    """:func:`~shared.storage.db.transaction` whose commit happens only while the lock is held under
    ``fence`` (checked in the same transaction, just before the commit). ``fence=None``: unfenced."""
    with session_factory(engine)() as session, session.begin():
        yield session
        if fence is not None:
            check_fence(session, fence)


def check_not_abandoned(engine: Engine, run_id: str) -> None:
    """A phase of a run that was given up (taken over, interrupted, unlocked) must not start."""
    with transaction(engine) as s:
        row = s.get(m.BatchRunHistory, run_id)
    if row is not None and row.status == "abandoned":
        raise FencedOutError(f"fenced out: run {run_id} was abandoned at {row.abandoned_at} "
                             f"(by {row.abandoned_by}); nothing was written")


class Heartbeat:
    """Renews the lease of ``fence`` every ``every`` seconds in a daemon thread, until :meth:`stop`.

    A renewal that finds the lock taken over stops the thread and sets :attr:`lost` (the fenced commit
    then refuses the write); a database error is logged and retried at the next beat.
    """

    def __init__(self, engine: Engine, fence: Fence, every: float) -> None:
        self.engine, self.fence, self.every = engine, fence, max(float(every), 0.05)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sigmabatch-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not renew(self.engine, self.fence):
                    self.lost = True
                    log.warning("the batch lock was taken over from run %s", self.fence.run_id)
                    return
            except Exception as exc:  # a busy or unreachable database: try again at the next beat
                log.warning("could not renew the batch lock: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def held(engine: Engine, run_id: str, *, timeout: float = 0.0, keep: bool = False,
         lease: float = LEASE) -> Iterator[Fence]:
    """Hold the lock for the block, with a heartbeat; yields the run's :class:`Fence`. If the run already
    held it, it stays held (a phase of a run); otherwise it is released at the end unless ``keep`` (the plan
    step keeps it for the run). A phase of an abandoned run raises :class:`FencedOutError`."""
    check_not_abandoned(engine, run_id)
    had = owner(engine) == run_id
    fence = acquire(engine, run_id, timeout=timeout, lease=lease)
    try:
        with Heartbeat(engine, fence, lease / 4):
            yield fence
    finally:
        if not had and not keep:
            release(engine, run_id)
