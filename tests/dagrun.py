"""The DAG of :mod:`workflows.dag` run inside the test process, one step after another.

For tests that need many whole runs (range invariance): the same steps, arguments and order as
:class:`workflows.local.LocalRunner` (plan's output dates, ``dag.step_args``, the batch lock held by the run
id, ``record-run`` last), but each phase's ``main(argv)`` is called in this process instead of a
``python -m`` subprocess, so the interpreter start-up and imports (≈ 1 s a step) are paid once. The report
step (it writes no table) is left out. The subprocess runner stays covered by ``test_local_run.py``.

A step that fans out (``fan_out``) runs once per shard of plan's ``shards`` output (``--shard K/N``), shard
after shard, when plan chose more than one.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from workflows import dag


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` replaced by ``env`` for the duration (restored afterwards)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


Around = Callable[[dag.Step], AbstractContextManager]


def _main(step: dag.Step, args: list[str], around: Around | None = None) -> int:
    with around(step) if around else nullcontext():
        return importlib.import_module(step.module).main(args)


def run_dag(env: Mapping[str, str], workdir: Path, *, start: str = "", end: str = "", force: bool = False,
            portfolio: str = "", around: Around | None = None) -> tuple[str, str]:
    """Run the whole DAG once under ``env``; returns the (start, end) dates plan chose ("" when up to date).

    Every step must exit 0; a failure raises ``AssertionError`` naming the step. ``around(step)``, if
    given, is a context manager entered around each step (tests observe what a step does with it).
    """
    from shared import locking
    from shared.settings import Settings
    from shared.storage.db import get_engine, migrate

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    run_dir = Path(workdir) / run_id
    common = {"portfolio": portfolio, "run_id": run_id, "force": "true" if force else "false"}
    with environment(env):
        engine = get_engine(Settings.from_env().database_url)
        migrate(engine)
        locking.acquire(engine, run_id, timeout=0, holder_pid=os.getpid())
        try:
            plan = dag.steps_by_name()["plan"]
            outputs = run_dir / "outputs"
            code = _main(plan, dag.step_args(plan, start_date=start, end_date=end, outputs_dir=str(outputs),
                                             trigger="manual", **common), around)
            assert code == 0, f"plan exited {code}"
            has_work = (outputs / "has-work").read_text().strip() == "true"
            s = (outputs / "start-date").read_text().strip() if has_work else ""
            e = (outputs / "end-date").read_text().strip() if has_work else ""
            if has_work:
                import json

                cache = str(run_dir / dag.PRICE_CACHE_FILE)
                shards = json.loads((outputs / "shards").read_text()) if (outputs / "shards").exists() else []
                for step in dag.topological_order():
                    if step.name in ("plan", dag.REPORT_STEP.name):
                        continue
                    for shard in (shards if step.fan_out and len(shards) > 1 else [None]):
                        code = _main(step, dag.step_args(step, start_date=s, end_date=e, price_cache_in=cache,
                                                          price_cache_out=cache, shard=shard, **common), around)
                        assert code == 0, f"{step.name} {shard or ''} exited {code} on {s}..{e}"
            _main(dag.EXIT_STEP, dag.step_args(dag.EXIT_STEP, start_date=s, end_date=e, trigger="manual", **common),
                  around)
        finally:
            locking.release(engine, run_id)
            engine.dispose()
    return s, e
