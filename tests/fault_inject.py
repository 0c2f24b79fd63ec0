"""Test helper: run ``python -m <module> <args>`` but SIGKILL the process in the middle of its writes.

Usage (as the local runner's interpreter): ``fault_inject.py -m phases.pnl_snapshots …`` with
``FAULT_STEP_MODULE`` (module to sabotage), ``FAULT_TABLE`` (table whose write is interrupted) and
``FAULT_MARKER`` (a file: only the first attempt is killed, so the retry succeeds).

Also, for the runner-interruption tests: ``FAULT_PAUSE_MODULE`` makes that module stop at its first
transaction, create the file ``FAULT_PAUSE_READY`` and wait until ``FAULT_PAUSE_GO`` exists;
``FAULT_PIDS`` gets one line ``<pid> <module>`` per process started; ``FAULT_COMMIT_LOG`` gets one line ``<run id> <unix time> <pid> <module>`` per committed transaction that
wrote something (any table, through any engine of the process).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import time
from pathlib import Path


def _log_commits(path: Path, module: str, args: list[str]) -> None:
    from sqlalchemy import Engine, event

    run_id = args[args.index("--run-id") + 1] if "--run-id" in args else "-"

    @event.listens_for(Engine, "before_cursor_execute")
    def _mark(conn, _cursor, statement, *_a):
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            conn.info["wrote"] = True

    @event.listens_for(Engine, "commit")
    def _commit(conn):
        if conn.info.pop("wrote", False):
            with open(path, "a") as fh:
                fh.write(f"{run_id} {time.time():.6f} {os.getpid()} {module}\n")

    @event.listens_for(Engine, "rollback")
    def _rollback(conn):
        conn.info.pop("wrote", None)


def _pause_at_first_transaction(ready: Path, go: Path) -> None:
    from phases import _runtime

    original = _runtime.PhaseContext.transaction
    state = {"paused": False}

    def transaction(self):
        if not state["paused"]:
            state["paused"] = True
            ready.write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(self)

    _runtime.PhaseContext.transaction = transaction


def main() -> None:
    assert sys.argv[1] == "-m", sys.argv
    # Run as a script, its folder (tests/, which has a ``phases`` test package) would come first on the path:
    # import the repository this file belongs to instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    module, args = sys.argv[2], sys.argv[3:]
    marker = Path(os.environ.get("FAULT_MARKER", "/nonexistent/marker"))
    if module == os.environ.get("FAULT_STEP_MODULE") and not marker.exists():
        marker.write_text("killed once")
        from shared.storage import repository

        table = os.environ["FAULT_TABLE"]
        original_upsert, original_replace = repository.upsert, repository.replace

        def die_halfway(write, session, model, frame, *a, **kw):
            if model.__tablename__ == table and frame is not None and len(frame) > 1:
                write(session, model, frame.iloc[: len(frame) // 2], *a, **kw)
                session.flush()  # half the rows are in the open transaction when the process dies
                os.kill(os.getpid(), signal.SIGKILL)
            return write(session, model, frame, *a, **kw)

        repository.upsert = lambda s, m, f, *a, **kw: die_halfway(original_upsert, s, m, f, *a, **kw)
        repository.replace = lambda s, m, f, *a, **kw: die_halfway(original_replace, s, m, f, *a, **kw)
    if os.environ.get("FAULT_PIDS"):  # which processes ran, so a test can wait for orphans to end
        with open(os.environ["FAULT_PIDS"], "a") as fh:
            fh.write(f"{os.getpid()} {module}\n")
    if os.environ.get("FAULT_COMMIT_LOG"):
        _log_commits(Path(os.environ["FAULT_COMMIT_LOG"]), module, args)
    if module == os.environ.get("FAULT_PAUSE_MODULE"):
        _pause_at_first_transaction(Path(os.environ["FAULT_PAUSE_READY"]), Path(os.environ["FAULT_PAUSE_GO"]))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
