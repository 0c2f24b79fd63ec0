"""Test helper: run ``python -m <module> <args>`` but SIGKILL the process in the middle of its writes.

Usage (as the local runner's interpreter): ``fault_inject.py -m phases.pnl_snapshots …`` with
``FAULT_STEP_MODULE`` (module to sabotage), ``FAULT_TABLE`` (table whose write is interrupted) and
``FAULT_MARKER`` (a file: only the first attempt is killed, so the retry succeeds).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path


def main() -> None:
    assert sys.argv[1] == "-m", sys.argv
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
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
