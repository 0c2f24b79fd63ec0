"""The ``sigmabatch`` command: run the DAG locally, import portfolios, show run status, write run reports.

``sigmabatch run`` runs every phase of :mod:`workflows.dag` as subprocesses (the same command lines as
the Argo containers), detecting missed NYSE sessions when no dates are given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.clihelp import HelpFormatter
from shared.errors import BadInputError, ConfigError, SigmabatchError
from shared.settings import VARIABLES, Settings

DESCRIPTION = (
    "sigmabatch: the nightly portfolio-analytics batch (market data, P&L snapshots, risk analytics, a report).\n\n"
    "`sigmabatch run` runs every step of the DAG on this machine, as subprocesses with the same command "
    "lines as the Argo containers; with no dates it catches up every NYSE session some active portfolio "
    "lacks. `sigmabatch <command> --help` tells more."
)
EPILOG = "Environment:\n" + "\n".join(f"  {k:<34} {v}" for k, v in VARIABLES.items()) + (
    "\n\nExit codes: 0 completed or up to date, 1 failed, 2 bad input, 3 partial, 4 lock busy, "
    "5 fenced out (the run lost the batch lock), 130/143 interrupted (Ctrl-C/SIGTERM; the run is abandoned)."
)


def _console(no_color: bool = False):
    from rich.console import Console

    console = Console(stderr=False, no_color=no_color, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=False, no_color=True, highlight=False, width=160)
    return console


def _engine(settings: Settings):
    from shared import preflight
    from shared.storage.db import get_engine, migrate

    preflight.sqlite_folder(settings)
    engine = get_engine(settings.database_url)
    migrate(engine)
    return engine


# --- run ----------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.live import Live

    from shared import preflight
    from shared.storage import repository as repo
    from shared.storage.db import transaction
    from workflows.local import LocalRunner

    # Before anything is created or recorded: a bad path or provider is refused here, nothing written.
    preflight.run(settings, ".", provider_source_name="--provider" if args.provider else "SIGMABATCH_PROVIDER")
    console = _console()
    dates = _check_run_request(args, settings)  # bad input: refused before anything is taken or recorded
    engine = _engine(settings)
    with transaction(engine) as s:
        empty = repo.load_portfolios(s, active_only=False).empty
        if not empty:
            _check_run_size(s, args, dates)
    if empty and not args.no_demo:
        if not settings.provider.startswith("synthetic"):
            raise BadInputError("the database has no portfolio: import some with `sigmabatch import` "
                                "(demo portfolios are only seeded with the synthetic provider)")
        from shared.demo import seed_demo

        with transaction(engine) as s:
            made = seed_demo(s, settings)
        console.print(f"[bold]Empty database:[/] seeded {len(made)} demo portfolios ({', '.join(made)}).")
        with transaction(engine) as s:
            _check_run_size(s, args, dates)
    env = {"SIGMABATCH_PROVIDER": settings.provider} if args.provider else None
    runner = LocalRunner(settings, max_parallel=args.max_parallel, env=env, max_retries=args.retries)
    interactive = console.is_terminal and not args.no_progress
    trigger = run_trigger(args)
    if interactive:
        view = ProgressView()
        with Live(view, console=console, refresh_per_second=4, transient=True):
            runner.on_change = view.update
            outcome = runner.run(start_date=args.start_date, end_date=args.end_date, portfolio=args.portfolio,
                                 trigger=trigger, force=args.force)
    else:
        from shared.logs import setup_logging

        setup_logging(settings.log_format, settings.log_level)
        outcome = runner.run(start_date=args.start_date, end_date=args.end_date, portfolio=args.portfolio,
                             trigger=trigger, force=args.force)
    _print_summary(console, outcome)
    return outcome.exit_code


def _check_run_request(args: argparse.Namespace, settings: Settings):
    """Options and dates of ``run``/``onboard``, checked before the database is touched."""
    from shared import calendar
    from shared.run_checks import check_count, check_dates

    check_count(args.max_parallel, "--max-parallel", 1)
    check_count(args.retries, "--retries", 0)
    return check_dates(args.start_date, args.end_date, calendar.last_completed_session(settings.current_time()))


def _check_run_size(session, args: argparse.Namespace, dates) -> None:
    """The run's sessions as plan will resolve them (read only): unknown portfolio, no equity, and a run
    longer than a year without ``--yes`` are refused here, before any lock or run record."""
    from shared.planning import resolve_range
    from shared.run_checks import check_size
    from shared.storage import repository as repo

    rng = resolve_range(session, start=dates.start, end=dates.end, latest=dates.latest,
                        portfolio_id=args.portfolio or None, force=bool(args.force), close_gaps=True)
    if rng is not None:
        portfolios = 1 if args.portfolio else len(repo.load_portfolios(session))
        check_size(rng, portfolios, bool(getattr(args, "yes", False)))


def run_trigger(args: argparse.Namespace) -> str:
    """``--trigger`` when given; else a forced run over explicit dates is a ``backfill``, anything else
    ``manual``."""
    if args.trigger:
        return args.trigger
    return "backfill" if args.force and (args.start_date or args.end_date) else "manual"


STATUS_STYLE = {"ok": "green", "partial": "yellow", "skipped": "dim", "failed": "red", "running": "cyan",
                "pending": "dim", "not-run": "dim"}


class ProgressView:
    """The live table: each step's status, seconds (running steps count up from their start) and rows."""

    def __init__(self, clock=None) -> None:
        import time

        self.clock = clock or time.monotonic
        self.steps: dict = {}
        self.started: dict[str, tuple[int, float]] = {}  # step -> (attempt, when it was seen running)

    def update(self, steps) -> None:
        self.steps = steps
        for name, o in steps.items():
            if o.status == "running" and self.started.get(name, (None,))[0] != o.attempts:
                self.started[name] = (o.attempts, self.clock())

    def seconds(self, name: str) -> str:
        o = self.steps.get(name)
        if o is None:
            return ""
        if o.status == "running" and name in self.started:
            return f"{o.seconds + self.clock() - self.started[name][1]:.1f}"
        return f"{o.seconds:.1f}" if o.seconds else ""

    def __rich__(self):
        from rich.table import Table

        from workflows import dag

        t = Table(title="sigmabatch run", expand=False)
        for c in ("phase", "step", "status", "seconds", "rows"):
            t.add_column(c, justify="right" if c in ("seconds", "rows") else "left")
        for s in (*dag.STEPS, dag.EXIT_STEP):
            o = self.steps.get(s.name)
            status = o.status if o else "pending"
            t.add_row(s.phase, _step_cell(s.name, o), f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
                      self.seconds(s.name), _rows_cell(o) if o else "")
        return t


def _step_cell(name: str, o) -> str:
    """A step's name; a fanned-out step's with its shards done (``pnl-snapshots 3/4 shards``), then the
    slowest once all are (``pnl-snapshots ×4, slowest 2/4``)."""
    shards = getattr(o, "shards", None) if o is not None else None
    if not shards:
        return name
    done = sum(1 for x in shards.values() if x.status in ("ok", "partial", "skipped", "failed"))
    if done < len(shards):
        return f"{name} {done}/{len(shards)} shards"
    slowest = max(shards.items(), key=lambda kv: kv[1].seconds)[0]
    return f"{name} ×{len(shards)}, slowest {slowest}"


def _rows_cell(o) -> str:
    """Rows a step inserted, then rows it updated in place (``474, 25 updated``)."""
    parts = [f"{sum(o.rows.values()):,}"] if o.rows else []
    if o.updated:
        parts.append(f"{sum(o.updated.values()):,} updated")
    return ", ".join(parts)


def _print_summary(console, outcome) -> None:
    from rich.table import Table

    from workflows import dag

    if outcome.up_to_date:
        console.print(f"[green]Up to date[/]: every portfolio has a snapshot for the last completed session "
                      f"(run {outcome.run_id}, nothing written).")
        return
    plan = outcome.steps["plan"]
    if outcome.status == "abandoned":
        console.print(f"[red]Run {outcome.run_id} abandoned[/] (interrupted; exit {outcome.exit_code}): running steps "
                      "were stopped, nothing more was written. Run `sigmabatch run` again to finish the range.",
                      soft_wrap=True)
        return
    if plan.status == "failed":
        console.print(f"[red]Could not plan the run[/]: {plan.error}", soft_wrap=True)
        return
    t = Table(title=f"Run {outcome.run_id}: {outcome.start_date} .. {outcome.end_date} — {outcome.status}")
    for c in ("phase", "step", "status", "seconds", "attempts", "rows", "note"):
        t.add_column(c, justify="right" if c in ("seconds", "attempts", "rows") else "left",
                     no_wrap=c != "note", overflow="fold")
    for s in (*dag.STEPS, dag.EXIT_STEP):
        o = outcome.steps[s.name]
        rows = _rows_cell(o)  # per table: below, and `sigmabatch status --run RUN_ID`
        note = o.error or o.message or ""
        t.add_row(s.phase, _step_cell(s.name, o), f"[{STATUS_STYLE.get(o.status, '')}]{o.status}[/]",
                  f"{o.seconds:.2f}", str(o.attempts), rows, note[:80])
    console.print(t)
    for s in (*dag.STEPS, dag.EXIT_STEP):
        o = outcome.steps[s.name]
        if o.status == "failed":
            console.print(f"[red]{s.name} failed[/] (exit {o.exit_code}, {o.attempts} attempt(s)): {o.error}",
                          soft_wrap=True)
            if o.log_path:
                console.print(f"  log: {o.log_path}", soft_wrap=True)
        elif o.status == "partial" and o.message:  # what is incomplete, in full (the table cuts notes)
            console.print(f"[yellow]{s.name} partial[/]: {o.message}", soft_wrap=True)
    console.print("Rows inserted: " + (", ".join(f"{k} {v:,}" for k, v in sorted(outcome.rows.items())) or "none"))
    updated = {}
    for o in outcome.steps.values():
        for k, v in o.updated.items():
            updated.setdefault(k, []).append((o.name, v))
    if updated:  # a row two steps update is counted once per step: say which steps
        console.print("Rows updated: " + ", ".join(
            f"{k} {sum(v for _, v in by):,}" + (f" ({' + '.join(f'{n} {v:,}' for n, v in by)})" if len(by) > 1 else "")
            for k, by in sorted(updated.items())), soft_wrap=True)
    md = outcome.steps.get("market-data")
    quality = (md.details or {}).get("data_quality") if md else None
    if quality:
        from shared.data_quality import summary_line

        errors = len((md.details or {}).get("provider_errors") or [])
        console.print("Data quality: " + summary_line(quality)
                      + (f" · provider failures {errors} (see `sigmabatch status --run {outcome.run_id}`)" if errors else ""))
    sessions = outcome.steps["plan"].details.get("sessions")
    console.print(f"Sessions: {sessions}  ·  wall time {outcome.seconds:.1f}s  ·  logs: {outcome.run_dir}")
    if outcome.report is not None:
        console.print(f"Report: {outcome.report}")
    else:
        console.print(f"Report: not written; render it with `sigmabatch report --run {outcome.run_id}`")


# --- import / status / db -----------------------------------------------------------------------

def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from shared.importer import import_files
    from shared.storage.db import transaction

    if not args.portfolios and not args.positions:
        raise BadInputError("give --portfolios and/or --positions")
    engine = _engine(settings)
    from shared.planning import parse_date

    today = settings.current_time().date()
    flow_date = parse_date(args.flow_date, "--flow-date") or today
    with transaction(engine) as s:
        summary = import_files(s, args.portfolios, args.positions, update=args.update, flow_date=flow_date,
                               today=today)
    print(f"imported {summary.portfolios} new portfolio(s) and {summary.positions} new position(s); "
          f"{summary.unchanged} unchanged, {summary.updated} updated, {summary.capital_flows} capital flow(s)")
    for note in summary.notes:
        print(f"  {note}")
    return 0


def _when(value) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``""`` when there is none (never "NaT")."""
    import pandas as pd

    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return ""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return f"{ts:%Y-%m-%d %H:%M:%S}"


def _took(started, completed, status: str) -> str:
    """How long a run took (``1m08s``); ``-`` for a run still recorded as running."""
    import pandas as pd

    if not _when(completed) or not _when(started):
        return "-" if status == "running" else ""
    secs = int(round((pd.Timestamp(completed) - pd.Timestamp(started)).total_seconds()))
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else \
        f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def _plain(value):
    """A JSON-ready value: timestamps as ISO strings, NaN/NaT as null, numpy scalars as numbers."""
    import math
    from datetime import date, datetime

    import pandas as pd

    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, dict | list | str):
        return _plain(value.item())
    return value


def _records(frame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses
    import json

    from rich.table import Table

    from shared.storage import repository as repo
    from shared.storage.db import transaction

    console = _console()
    from shared.run_checks import check_count

    check_count(args.limit, "--limit", 1)
    engine = _engine(settings)
    with transaction(engine) as s:
        if args.run:
            phases = repo.load_phase_runs(s, args.run)
            if phases.empty:
                raise BadInputError(f"no phase recorded for run {args.run!r}")
            if args.json:
                print(json.dumps({"run_id": args.run, "phases": _records(phases)}, indent=2, default=str))
                return 0
            t = Table(title=f"run {args.run}")
            for c in ("phase", "status", "attempt", "seconds", "rows inserted / updated", "error"):
                t.add_column(c, overflow="fold")
            for r in phases.itertuples():
                updated = (r.details or {}).get("rows_updated") or {}
                rows = ", ".join([*(f"{k} {v}" for k, v in (r.rows_written or {}).items()),
                                  *(f"{k} {v} updated" for k, v in updated.items())])
                shards = (r.details or {}).get("shards")  # a fanned-out step: its shards folded
                phase = f"{r.phase} ×{shards} (slowest {(r.details or {}).get('slowest_shard')})" if shards else r.phase
                t.add_row(phase, r.status, str(r.attempt), f"{r.duration_seconds or 0:.2f}", rows,
                          (r.error or "")[:100])
            console.print(t)
            return 0
        runs = repo.load_runs(s, args.limit)
    from shared import locking

    lock = locking.state(engine, lease=settings.lock_lease)
    if args.json:
        print(json.dumps({"lock_holder": lock.run_id, "lock": dataclasses.asdict(lock), "runs": _records(runs)}, indent=2, default=str))
        return 0
    from rich import box

    t = Table(title="recent runs — " + lock_line(lock), box=box.SIMPLE_HEAD,
              padding=(0, 1), show_edge=False, pad_edge=False, collapse_padding=True)
    width = max([len("run id"), *(len(r) for r in runs["run_id"])]) if not runs.empty else 6
    t.add_column("run id", no_wrap=True, min_width=width)  # whole, so it can be pasted into --run
    t.add_column("trigger", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("dates", min_width=10)
    t.add_column("sessions", justify="right", min_width=4)
    t.add_column("cov%", justify="right", no_wrap=True)
    t.add_column("started (UTC)", min_width=10)
    t.add_column("took", justify="right", no_wrap=True)
    wide = console.width >= 140  # else errors go under the table, where they have the whole width
    if wide:
        t.add_column("errors", overflow="fold")
    below = []
    for r in runs.itertuples():
        dates = f"{r.start_date} .. {r.end_date}" if r.start_date else "-"
        cov = (r.data_coverage or {}).get("data_coverage_pct", "")
        errs = "; ".join(f"{e.get('phase') or e.get('node') or ''}: {e.get('error') or e.get('message') or ''}"
                         for e in (r.error_summary or []))
        if r.status == "abandoned":
            errs = f"abandoned {str(r.abandoned_at or '')[:19]} by {r.abandoned_by}" + (f"; {errs}" if errs else "")
        cells = [r.run_id, r.triggered_by, r.status, dates, str(r.sessions or 0), str(cov), _when(r.started_at),
                 _took(r.started_at, r.completed_at, r.status)]
        t.add_row(*cells, *([errs[:80]] if wide else []))
        if errs and not wide:
            below.append(f"{r.run_id}: {errs[:300]}")
    console.print(t)
    for line in below:
        console.print(line, soft_wrap=True, markup=False)
    return 0


def lock_line(lock) -> str:
    """The batch lock for ``status``: free, or its run, holder process, and whether that holder is alive."""
    if lock.run_id is None:
        return "batch lock free"
    if lock.holder_alive is False:
        health = "holder process dead: the next run takes it over"
    elif lock.lease_left is not None and lock.lease_left < 0:
        health = f"stale: no heartbeat for {-lock.lease_left:.0f}s past its lease; the next run takes it over"
    else:
        alive = "alive" if lock.holder_alive else "heartbeat"
        health = f"{alive}, lease {lock.lease_left:.0f}s left"
    return f"batch lock held by {lock.run_id} ({lock.holder}, generation {lock.generation}; {health})"


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from shared import locking, runs
    from shared.storage.db import transaction

    engine = _engine(settings)
    owner = locking.owner(engine)
    if owner is None:
        print("the batch lock is free")
        return 0
    locking.release(engine)
    with transaction(engine) as s:
        runs.mark_abandoned(s, owner, by="sigmabatch unlock")
    print(f"released the batch lock held by run {owner} (marked abandoned)")
    return 0


def cmd_onboard(args: argparse.Namespace, settings: Settings) -> int:
    args.portfolio, args.trigger, args.force = args.portfolio_id, "onboarding", False
    args.start_date = args.end_date = ""
    return cmd_run(args, settings)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from shared import preflight
    from shared.report import default_report_path, write_report
    from shared.storage import repository as repo
    from shared.storage.db import transaction

    engine = _engine(settings)
    with transaction(engine) as s:
        run_id = args.run or repo.latest_run_id(s)
        if not run_id:
            raise BadInputError("no run in the database yet: run `sigmabatch run` first")
        out = args.out
        if out is None:
            base = Path("var") if settings.artifacts_are_s3 else settings.artifacts_path
            out = default_report_path(base, run_id)
            where = f"the report path {out}" + ("" if settings.artifacts_are_s3
                                                else f" (SIGMABATCH_ARTIFACTS={settings.artifacts})")
        else:
            where = f"--out {out}"
        preflight.writable_file(out, where)  # before rendering, which takes a while on a big run
        written = write_report(s, run_id, out, workers=None)
    for problem in written.problems:
        print(f"warning: chart not drawn: {problem}", file=sys.stderr)
    print(written.path)
    if args.open:
        import webbrowser

        webbrowser.open(written.path.resolve().as_uri())
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    _engine(settings)
    print(f"database schema is up to date ({settings.database_url.split('@')[-1]})")
    return 0


# --- parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigmabatch", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the whole DAG locally (detects missed sessions)", epilog=EPILOG,
                       formatter_class=HelpFormatter,
                       description="Run every phase locally, in DAG order, independent phases in parallel. "
                       "With no dates: from the first session some active portfolio lacks to the last completed "
                       "NYSE session. On an empty database with the synthetic provider, demo portfolios are seeded.")
    r.add_argument("--start-date", default="", metavar="YYYY-MM-DD",
                   help="first session (default: the first session some active portfolio lacks)")
    r.add_argument("--end-date", default="", metavar="YYYY-MM-DD",
                   help="last session (default: the last completed NYSE session)")
    r.add_argument("--portfolio", default="", metavar="ID", help="onboard/refresh one portfolio only")
    r.add_argument("--force", action="store_true", help="recompute and replace results for the range")
    r.add_argument("--provider", default=None, help="override SIGMABATCH_PROVIDER")
    r.add_argument("--trigger", default=None, choices=("cron", "backfill", "onboarding", "manual"),
                   help="what the run is recorded as (default: backfill with --force and dates, else manual)")
    r.add_argument("--max-parallel", type=int, default=3, help="steps run at once (default 3)")
    r.add_argument("--retries", type=int, default=1, metavar="N",
                   help="retry a failed step at most N times (default 1; Argo uses each step's own policy)")
    r.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live table")
    r.add_argument("--no-demo", action="store_true", help="never seed demo portfolios")
    r.add_argument("--yes", action="store_true", help="confirm a run longer than a year (otherwise refused, "
                   "with its sessions x portfolios)")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("import", help="import portfolios and positions from CSV (all or nothing)",
                       formatter_class=HelpFormatter, description="Portfolios CSV columns: portfolio, "
                       "equity_balance, and optionally currency, name.\n\n"
                       "Positions CSV columns: portfolio, symbol, quantity, entry_price, entry_date, and optionally "
                       "exit_date, exit_price, position_type, investment_class. Quantities are signed (short < 0); "
                       "position types LONG SHORT LC LP SC SP (options: LC LP SC SP, multiplier 100).\n\n"
                       "Refused (the file imports nothing; each bad row is named by file, line and field): "
                       "a non-UTF-8 or binary file, an equity_balance or a lot notional (|quantity x "
                       "entry_price|, x100 for options) above 1e12, entry or exit dates in the future or "
                       "before 1990-01-02, and changes to stored portfolios or lots without --update.")
    i.add_argument("--portfolios", type=Path, metavar="CSV", help="portfolios file (UTF-8 CSV)")
    i.add_argument("--positions", type=Path, metavar="CSV",
                   help="positions file (UTF-8 CSV); its portfolios must exist or be in --portfolios")
    i.add_argument("--update", action="store_true",
                   help="apply changes to portfolios or lots that exist (default: refuse them); a new equity "
                        "becomes a capital flow, the inception equity is kept")
    i.add_argument("--flow-date", default="", metavar="YYYY-MM-DD",
                   help="date of the capital flow an --update of equity records (default: today)")
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("status", help="recent runs, or one run's phases")
    s.add_argument("--run", default="", metavar="RUN_ID", help="a run id: show its phases")
    s.add_argument("--limit", type=int, default=15, metavar="N", help="show the N latest runs (default 15)")
    s.add_argument("--json", action="store_true", help="print JSON (for scripts) instead of a table")
    s.set_defaults(func=cmd_status)

    o = sub.add_parser("onboard", help="backfill one new portfolio from its first entry date (its symbols + ETFs)")
    o.add_argument("portfolio_id", metavar="PORTFOLIO", help="the id of an imported portfolio")
    o.add_argument("--provider", default=None, help="override SIGMABATCH_PROVIDER")
    o.add_argument("--max-parallel", type=int, default=3, help="steps run at once (default 3)")
    o.add_argument("--retries", type=int, default=1, metavar="N", help="retry a failed step at most N times (default 1)")
    o.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live table")
    o.add_argument("--yes", action="store_true", help="confirm a backfill longer than a year")
    o.set_defaults(func=cmd_onboard, no_demo=True)

    u = sub.add_parser("unlock", help="release the batch lock left by a run that died")
    u.set_defaults(func=cmd_unlock)

    rp = sub.add_parser("report", help="write a run's HTML report (charts inline) and print its path",
                        description="Render one run's report: phases, data quality, and per portfolio equity, "
                        "P&L, factor and sector exposures, volatility, stress tests and a correlation heatmap. "
                        "One self-contained HTML file (no network needed to view it).")
    rp.add_argument("--run", default="", metavar="RUN_ID", help="the run (default: the latest run that covered sessions)")
    rp.add_argument("--out", type=Path, default=None, metavar="PATH",
                    help="output file (default: <SIGMABATCH_ARTIFACTS>/reports/<run-id>.html)")
    rp.add_argument("--open", action="store_true", help="open it in the default web browser")
    rp.set_defaults(func=cmd_report)

    d = sub.add_parser("db", help="create or upgrade the database schema (Alembic)")
    d.set_defaults(func=cmd_db)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "provider", None):
            settings = settings.with_overrides(provider=args.provider)
        return args.func(args, settings)
    except (ConfigError, BadInputError, SigmabatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
