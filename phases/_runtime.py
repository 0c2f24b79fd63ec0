"""What every phase entrypoint shares: arguments, settings, logging, date resolution, run records.

A phase module defines ``run(ctx: PhaseContext) -> PhaseResult`` and
``main = entrypoint("step-name", "description", run)``. The wrapper parses the common arguments,
builds settings and the database, resolves the sessions (explicit dates, or detection of missed
sessions), calls ``run``, records the outcome in ``batch_phase_runs`` and exits with a documented code:

0 success, nothing to do, or partial (recorded as such; the DAG goes on) · 1 failed · 2 bad input
(not retried) · 4 lock busy · 5 fenced out (the run lost the batch lock: nothing written, not even the
phase record). The run as a whole (``sigmabatch run``, ``record-run``) exits 3 when some phase was partial.

Every write goes through :meth:`PhaseContext.transaction`, a :func:`shared.locking.fenced_transaction`:
it commits only while the run still holds the batch lock at the generation the phase started under.

A step that fans out over portfolio shards (``fan_out`` in :mod:`workflows.dag`) takes ``--shard K/N``:
:attr:`PhaseContext.portfolio_scope` is then the shard's portfolios (:mod:`shared.sharding`), what the
step reads and replaces is limited to them, and its record is ``step[K/N]``. A step sharded by symbol
(``shard_by="symbol"``: the symbol steps) keeps every portfolio and limits the symbols it writes to
:meth:`PhaseContext.symbol_scope`; what such a step writes once for the whole run (not per symbol) is
written by shard 1 only (:attr:`PhaseContext.lead_shard`). Either way its record is ``step[K/N]`` (folded
per step by :func:`shared.runs.fold_shards`). The shards of a run run side by side under the run's lock and
run id.

The last stdout line is ``sigmabatch-result: {json}`` with the row counts, for the local runner.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared import calendar
from shared.clihelp import HelpFormatter
from shared.errors import EXIT_OK, BadInputError, ConfigError, FencedOutError, SigmabatchError
from shared.logs import setup_logging
from shared.planning import RunRange, parse_date, resolve_range
from shared.settings import VARIABLES, Settings
from shared.sharding import Shard, parse_shard, phase_name

RESULT_PREFIX = "sigmabatch-result: "
log = logging.getLogger("sigmabatch")


@dataclass
class PhaseResult:
    """What a phase reports: rows written per table (inserted, or replaced whole), rows updated in place
    (columns a later step adds to rows an earlier step wrote), free-form details, and its status."""

    rows: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok | partial | skipped
    message: str = ""


@dataclass
class PhaseContext:
    step: str
    settings: Settings
    engine: Engine
    run_id: str
    range: RunRange | None
    portfolio_id: str | None
    force: bool
    args: argparse.Namespace
    log: logging.Logger
    run_range: RunRange | None = None  # the whole run when ``range`` is one chunk of it (else the same)
    latest: date | None = None  # the last completed session at the run's reference time (clock or schedule)
    fence: Any = None  # shared.locking.Fence: the lock generation this phase writes under
    shard: Shard | None = None  # --shard K/N of a fanned-out step (None: no shard)
    shard_by: str = "portfolio"  # what the shard splits: "portfolio" or "symbol" (workflows.dag.Step.shard_by)

    def __post_init__(self) -> None:
        if self.run_range is None:
            self.run_range = self.range

    @cached_property
    def portfolio_scope(self) -> list[str] | None:
        """The portfolio ids the step reads and writes: ``[--portfolio]``, the shard's portfolios (of every
        portfolio row, active or not: membership depends on the id only), both (the one portfolio if it is
        in the shard, else none), or None for all. A symbol shard keeps every portfolio."""
        if self.shard is None or self.shard.whole or self.shard_by != "portfolio":
            return [self.portfolio_id] if self.portfolio_id else None
        if self.portfolio_id:
            return self.shard.select([self.portfolio_id])
        from shared.storage import repository as repo

        with self.transaction() as s:
            ids = repo.load_portfolios(s, active_only=False)["id"].tolist()
        return self.shard.select(ids)

    def symbol_scope(self, symbols) -> list[str]:
        """The symbols of ``symbols`` this process writes, sorted: those of its symbol shard (the jump hash of
        the symbol string, :func:`shared.sharding.shard_of`), or all of them with no symbol shard."""
        if self.shard is None or self.shard.whole or self.shard_by != "symbol":
            return sorted(symbols)
        return self.shard.select(symbols)

    @property
    def lead_shard(self) -> bool:
        """Whether this process writes what a sharded step writes once for the whole run (not split by its
        shard key, e.g. company-profiles' benchmark weights): with no shard or the whole book, and shard 1."""
        return self.shard is None or self.shard.whole or self.shard.index == 1

    def narrowed(self, chunk: RunRange) -> PhaseContext:
        """The same context for one chunk of the run's sessions, sharing what it has already loaded
        (the price-cache snapshot, the providers)."""
        ctx = dataclasses.replace(self, range=chunk)
        for name in ("price_cache", "market_data", "portfolio_scope"):
            if name in self.__dict__:
                ctx.__dict__[name] = self.__dict__[name]
        return ctx

    @cached_property
    def market_data(self):
        from shared.providers.registry import build_market_data

        return build_market_data(self.settings)

    @property
    def price_cache_path(self) -> Path:
        return Path(self.args.price_cache) if self.args.price_cache else default_price_cache(self.settings)

    @property
    def price_cache_out(self) -> Path:
        return Path(self.args.price_cache_out) if self.args.price_cache_out else default_price_cache(self.settings)

    @cached_property
    def price_cache(self):
        from shared.storage.price_cache import read_price_cache

        return read_price_cache(self.price_cache_path)

    def transaction(self):
        """A write transaction, committed only while the run still holds the batch lock (fenced)."""
        from shared.locking import fenced_transaction

        return fenced_transaction(self.engine, self.fence)


def default_price_cache(settings: Settings) -> Path:
    if settings.artifacts_are_s3:
        return Path("/tmp/sigmabatch/price_cache.parquet")
    return settings.artifacts_path / "latest" / "price_cache.parquet"


def _bool(value: str) -> bool:
    v = (value or "").strip().lower()
    if v in ("", "false", "0", "no"):
        return False
    if v in ("true", "1", "yes"):
        return True
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def build_parser(step: str, description: str) -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {k:<34} {v}" for k, v in VARIABLES.items())
    p = argparse.ArgumentParser(
        prog=f"python -m phases.{step.replace('-', '_')}",
        description=description,
        formatter_class=HelpFormatter,
        epilog=(
            "Dates: with no --start-date the phase detects the first session some active portfolio lacks;\n"
            "with no --end-date it runs to the last completed NYSE session (16:30 New York time).\n"
            "Exit codes: 0 ok, nothing to do or partial (recorded), 1 failed, 2 bad input, 4 lock busy,\n"
            "5 fenced out (the run lost the batch lock; nothing written).\n\n"
            "Environment:\n" + env_help
        ),
    )
    p.add_argument("--start-date", default="", metavar="YYYY-MM-DD", help="first session (empty = detect)")
    p.add_argument("--end-date", default="", metavar="YYYY-MM-DD", help="last session (empty = last completed)")
    p.add_argument("--portfolio", default="", metavar="ID", help="limit the phase to one portfolio (empty = all)")
    p.add_argument("--run-id", default="", help="the run this phase belongs to (default: a new manual run id)")
    p.add_argument("--force", type=_bool, default=False, nargs="?", const=True,
                   help="recompute and replace results for the range even if they exist")
    p.add_argument("--price-cache", default="", metavar="PATH", help="price-cache snapshot to read")
    p.add_argument("--price-cache-out", default="", metavar="PATH", help="price-cache snapshot to write")
    p.add_argument("--provider", default=None, help="override SIGMABATCH_PROVIDER (synthetic, file:PATH, …)")
    p.add_argument("--scheduled-time", default="", help="the scheduled time of a cron run (RFC 3339); "
                   "the business date comes from it instead of the clock")
    if fans_out(step):
        p.add_argument("--shard", default="", metavar="K/N",
                       help=f"limit the phase to {shard_key(step)} shard K of N (plan's shards; empty or 1/1 = all)")
    return p


def fans_out(step: str) -> bool:
    """Whether the DAG runs ``step`` once per portfolio shard (it then takes ``--shard``)."""
    from workflows import dag

    return bool(getattr(dag.steps_by_name().get(step), "fan_out", False))


def shard_key(step: str) -> str:
    """What the shards of ``step`` split: ``"portfolio"`` or ``"symbol"`` (:attr:`workflows.dag.Step.shard_by`)."""
    from workflows import dag

    return getattr(dag.steps_by_name().get(step), "shard_by", "portfolio")


def reference_time(settings: Settings, scheduled: str) -> datetime:
    """The instant that decides the last completed session: the cron's scheduled time, else the clock."""
    scheduled = (scheduled or "").strip()
    if scheduled and not scheduled.startswith("{{"):
        try:
            return datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"--scheduled-time={scheduled!r} is not an RFC 3339 time") from None
    return settings.current_time()


def entrypoint(
    step: str,
    description: str,
    run: Callable[[PhaseContext], PhaseResult],
    *,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    record: bool = True,
    allow_empty: bool = False,
    keep_lock: bool = False,
    chunked: bool = False,
) -> Callable[[list[str] | None], int]:
    """Wrap ``run`` into ``main(argv) -> int`` with the shared behaviour described above.

    ``chunked``: the step's work grows with portfolios × sessions (the risk steps). A range of more than
    ``SIGMABATCH_CHUNK_PORTFOLIO_DATES`` / portfolios sessions is run in consecutive chunks of that many
    sessions, each computed and committed on its own (bounded memory on long backfills; a failure keeps
    the chunks already written, and a re-run rewrites them identically). ``ctx.run_range`` is the whole run.
    """

    def main(argv: list[str] | None = None) -> int:
        parser = build_parser(step, description)
        if add_arguments:
            add_arguments(parser)
        args = parser.parse_args(argv)
        try:
            shard = parse_shard(getattr(args, "shard", ""))
        except ValueError as exc:
            parser.error(str(exc))  # exit 2
        t0 = time.monotonic()
        started = datetime.now().astimezone()
        try:
            settings = Settings.from_env().with_overrides(provider=args.provider)
            from shared import preflight

            preflight.provider_source(settings, "--provider" if args.provider else "SIGMABATCH_PROVIDER")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        setup_logging(settings.log_format, settings.log_level)
        plog = logging.getLogger(f"sigmabatch.{step}")
        run_id = args.run_id or f"manual-{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        engine = None
        outcome = {"result": PhaseResult(), "error": None, "code": EXIT_OK, "recorded": False}

        def failed(exc: BaseException) -> None:
            if isinstance(exc, SigmabatchError):
                outcome["error"], outcome["code"] = str(exc), exc.exit_code
                plog.error(str(exc))
            else:  # unexpected: keep the traceback in the log and the run record
                outcome["error"], outcome["code"] = f"{type(exc).__name__}: {exc}", 1
                plog.error("unexpected failure\n%s", traceback.format_exc())
            outcome["result"].status = "failed"

        def record_outcome(fence) -> None:
            # A fenced-out phase records nothing: the run it belongs to no longer owns the batch.
            outcome["recorded"] = True
            if record and engine is not None and outcome["code"] != FencedOutError.exit_code:
                try:
                    _record(engine, run_id, phase_name(step, shard), outcome["result"], started, outcome["error"],
                            plog, fence)
                except FencedOutError as exc:  # lost the lock after the work: its writes are in, its record not
                    failed(exc)

        try:
            from shared.storage.db import get_engine, migrate

            engine = get_engine(settings.database_url)
            migrate(engine)
            from shared import locking

            with locking.held(engine, run_id, timeout=settings.lock_timeout, keep=keep_lock,
                              lease=settings.lock_lease) as fence:
                try:
                    outcome["result"] = _work(step, run, settings, engine, run_id, args, plog, fence,
                                              allow_empty=allow_empty, chunked=chunked, shard=shard)
                except Exception as exc:
                    failed(exc)
                record_outcome(fence)  # while the lock is held: the record is fenced like the writes
        except Exception as exc:  # the lock or the database (busy, fenced out before starting, unreachable)
            failed(exc)
        if not outcome["recorded"]:
            record_outcome(None)
        result, error, code = outcome["result"], outcome["error"], outcome["code"]
        duration = time.monotonic() - t0
        from shared.storage.bulk import stats_summary

        summary = {"step": step, **({"shard": str(shard)} if shard else {}), "status": result.status, "seconds": round(duration, 3), "rows": result.rows,
                   "updated": result.updated,
                   "details": result.details, "message": result.message, "error": error, "exit_code": code,
                   "db_write": stats_summary()}
        with contextlib.suppress(BrokenPipeError):  # the runner reading it is gone (an orphaned step)
            print(RESULT_PREFIX + json.dumps(summary, default=str), flush=True)
        if error:
            print(f"error: {error}", file=sys.stderr)
        return code

    return main


def _work(step, run, settings, engine, run_id, args, plog, fence, *, allow_empty, chunked,
          shard: Shard | None = None) -> PhaseResult:
    """Resolve the sessions and run the phase (the lock is held under ``fence``)."""
    from shared.storage.db import transaction

    latest = calendar.last_completed_session(reference_time(settings, args.scheduled_time))
    with transaction(engine) as session:
        rng = resolve_range(
            session,
            start=parse_date(args.start_date, "--start-date"),
            end=parse_date(args.end_date, "--end-date"),
            latest=latest,
            portfolio_id=args.portfolio or None,
            force=bool(args.force),
            close_gaps=step == "plan",
        )
    if rng is None and not allow_empty:
        plog.info("nothing to do: every portfolio is up to date")
        return PhaseResult(status="skipped", message="up to date: no missing session")
    ctx = PhaseContext(step, settings, engine, run_id, rng, args.portfolio or None, bool(args.force), args, plog,
                       latest=latest, fence=fence, shard=shard, shard_by=shard_key(step))
    plog.info("start", extra={"run_id": run_id, "range": str(rng or "up to date"), "portfolio": args.portfolio or "all",
                              **({"shard": str(shard)} if shard else {})})
    if shard is not None and not shard.whole and ctx.shard_by == "symbol":
        res = _run_chunks(run, ctx) if chunked else run(ctx)
        res.details = {**res.details, "shard": str(shard)}
        return res
    if shard is not None and not shard.whole:
        scope = ctx.portfolio_scope
        if not scope:
            plog.info("shard %s holds no portfolio: nothing to do", shard)
            return PhaseResult(status="skipped", message="no portfolio in this shard: nothing to do",
                               details={"shard": str(shard), "shard_portfolios": 0})
        plog.info("shard %s: %d portfolios", shard, len(scope))
        res = _run_chunks(run, ctx) if chunked else run(ctx)
        res.details = {**res.details, "shard": str(shard), "shard_portfolios": len(scope)}
        return res
    return _run_chunks(run, ctx) if chunked else run(ctx)


def chunk_sessions(ctx: PhaseContext) -> int:
    """Sessions per chunk for a risk step: the portfolio × session budget over the portfolios in scope."""
    if ctx.portfolio_scope is not None:
        portfolios = max(len(ctx.portfolio_scope), 1)
    else:
        from shared.storage import repository as repo

        with ctx.transaction() as s:
            portfolios = max(len(repo.load_portfolios(s)), 1)
    return max(ctx.settings.chunk_portfolio_dates // portfolios, 1)


_STATUS_RANK = {"failed": 3, "partial": 2, "ok": 1, "skipped": 0}


def _run_chunks(run: Callable[[PhaseContext], PhaseResult], ctx: PhaseContext) -> PhaseResult:
    """``run`` over consecutive chunks of the range (see :func:`entrypoint`), results merged: rows
    summed, the worst status, the last chunk's details plus ``chunks`` and ``chunk_sessions``."""
    if len(ctx.range.sessions) == 1:  # a nightly run: nothing to split, no portfolio count needed
        return run(ctx)
    size = chunk_sessions(ctx)
    chunks = ctx.range.chunks(size)
    if len(chunks) == 1:
        return run(ctx)
    ctx.log.info("running %d sessions in %d chunks of up to %d", len(ctx.range.sessions), len(chunks), size)
    rows: dict[str, int] = {}
    updated: dict[str, int] = {}
    results = []
    for i, chunk in enumerate(chunks, start=1):
        t0 = time.monotonic()
        res = run(ctx.narrowed(chunk))
        for table, n in res.rows.items():
            rows[table] = rows.get(table, 0) + int(n)
        for table, n in res.updated.items():
            updated[table] = updated.get(table, 0) + int(n)
        results.append(res)
        ctx.log.info("chunk %d/%d done: %s in %.1f s", i, len(chunks), chunk, time.monotonic() - t0,
                     extra={"chunk": i, "chunks": len(chunks), "rows": sum(res.rows.values())})
    worst = max(results, key=lambda r: _STATUS_RANK.get(r.status, 1))
    message = next((r.message for r in reversed(results) if r.message), "")
    return PhaseResult(rows=rows, details={**results[-1].details, "chunks": len(chunks), "chunk_sessions": size},
                       status=worst.status, message=message, updated=updated)


def _record(engine, run_id, step, result, started, error, plog, fence=None) -> None:
    from shared import runs
    from shared.locking import fenced_transaction

    try:
        with fenced_transaction(engine, fence) as session:
            runs.ensure_run(session, run_id)
            runs.record_phase(session, run_id, step, status=result.status, started_at=started,
                              finished_at=datetime.now().astimezone(), rows=result.rows,
                              details={**result.details, "rows_updated": result.updated} if result.updated
                              else result.details, error=error)
    except FencedOutError:
        raise
    except Exception as exc:  # the database may be the thing that failed
        plog.warning("could not record the phase outcome: %s", exc)


