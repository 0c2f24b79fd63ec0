"""The ``sigmabatch`` command: run the DAG locally, import portfolios, show run status, write run reports.

``sigmabatch run`` runs every phase of :mod:`workflows.dag` as subprocesses (the same command lines as
the Argo containers), detecting missed NYSE sessions when no dates are given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.errors import BadInputError, ConfigError, SigmabatchError
from shared.settings import VARIABLES, Settings

EPILOG = "Environment:\n" + "\n".join(f"  {k:<34} {v}" for k, v in VARIABLES.items()) + (
    "\n\nExit codes: 0 completed or up to date, 1 failed, 2 bad input, 3 partial, 4 lock busy."
)


def _console(no_color: bool = False):
    from rich.console import Console

    console = Console(stderr=False, no_color=no_color, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=False, no_color=True, highlight=False, width=160)
    return console


def _engine(settings: Settings):
    from shared.storage.db import get_engine, migrate

    engine = get_engine(settings.database_url)
    migrate(engine)
    return engine


# --- run ----------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.live import Live

    from shared.storage import repository as repo
    from shared.storage.db import transaction
    from workflows.local import LocalRunner

    console = _console()
    engine = _engine(settings)
    with transaction(engine) as s:
        empty = repo.load_portfolios(s, active_only=False).empty
    if empty and not args.no_demo:
        if not settings.provider.startswith("synthetic"):
            raise BadInputError("the database has no portfolio: import some with `sigmabatch import` "
                                "(demo portfolios are only seeded with the synthetic provider)")
        from shared.demo import seed_demo

        with transaction(engine) as s:
            made = seed_demo(s, settings)
        console.print(f"[bold]Empty database:[/] seeded {len(made)} demo portfolios ({', '.join(made)}).")
    env = {"SIGMABATCH_PROVIDER": settings.provider} if args.provider else None
    runner = LocalRunner(settings, max_parallel=args.max_parallel, env=env, max_retries=args.retries)
    interactive = console.is_terminal and not args.no_progress
    if interactive:
        with Live(_progress_table({}), console=console, refresh_per_second=8, transient=True) as live:
            runner.on_change = lambda steps: live.update(_progress_table(steps))
            outcome = runner.run(start_date=args.start_date, end_date=args.end_date, portfolio=args.portfolio,
                                 trigger=args.trigger, force=args.force)
    else:
        from shared.logs import setup_logging

        setup_logging(settings.log_format, settings.log_level)
        outcome = runner.run(start_date=args.start_date, end_date=args.end_date, portfolio=args.portfolio,
                             trigger=args.trigger, force=args.force)
    _print_summary(console, outcome)
    return outcome.exit_code


STATUS_STYLE = {"ok": "green", "partial": "yellow", "skipped": "dim", "failed": "red", "running": "cyan",
                "pending": "dim", "not-run": "dim"}


def _progress_table(steps):
    from rich.table import Table

    from workflows import dag

    t = Table(title="sigmabatch run", expand=False)
    for c in ("phase", "step", "status", "seconds", "rows"):
        t.add_column(c)
    for s in (*dag.STEPS, dag.EXIT_STEP):
        o = steps.get(s.name)
        status = o.status if o else "pending"
        rows = sum(o.rows.values()) if o and o.rows else ""
        t.add_row(s.phase, s.name, f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
                  f"{o.seconds:.1f}" if o and o.seconds else "", str(rows))
    return t


def _print_summary(console, outcome) -> None:
    from rich.table import Table

    from workflows import dag

    if outcome.up_to_date:
        console.print(f"[green]Up to date[/]: every portfolio has a snapshot for the last completed session "
                      f"(run {outcome.run_id}, nothing written).")
        return
    plan = outcome.steps["plan"]
    if plan.status == "failed":
        console.print(f"[red]Could not plan the run[/]: {plan.error}", soft_wrap=True)
        return
    t = Table(title=f"Run {outcome.run_id}: {outcome.start_date} .. {outcome.end_date} — {outcome.status}")
    for c in ("phase", "step", "status", "seconds", "attempts", "rows written", "note"):
        t.add_column(c)
    for s in (*dag.STEPS, dag.EXIT_STEP):
        o = outcome.steps[s.name]
        rows = ", ".join(f"{k} {v:,}" for k, v in o.rows.items())
        note = o.error or o.message or ""
        t.add_row(s.phase, s.name, f"[{STATUS_STYLE.get(o.status, '')}]{o.status}[/]", f"{o.seconds:.2f}",
                  str(o.attempts), rows, note[:80])
    console.print(t)
    for s in (*dag.STEPS, dag.EXIT_STEP):
        o = outcome.steps[s.name]
        if o.status == "failed":
            console.print(f"[red]{s.name} failed[/] (exit {o.exit_code}, {o.attempts} attempt(s)): {o.error}",
                          soft_wrap=True)
            if o.log_path:
                console.print(f"  log: {o.log_path}", soft_wrap=True)
    total = outcome.rows
    console.print("Rows written: " + (", ".join(f"{k} {v:,}" for k, v in sorted(total.items())) or "none"))
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

    flow_date = parse_date(args.flow_date, "--flow-date") or settings.current_time().date()
    with transaction(engine) as s:
        summary = import_files(s, args.portfolios, args.positions, update=args.update, flow_date=flow_date)
    print(f"imported {summary.portfolios} new portfolio(s) and {summary.positions} new position(s); "
          f"{summary.unchanged} unchanged, {summary.updated} updated, {summary.capital_flows} capital flow(s)")
    for note in summary.notes:
        print(f"  {note}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from shared.storage import repository as repo
    from shared.storage.db import transaction

    console = _console()
    engine = _engine(settings)
    with transaction(engine) as s:
        if args.run:
            phases = repo.load_phase_runs(s, args.run)
            if phases.empty:
                raise BadInputError(f"no phase recorded for run {args.run!r}")
            t = Table(title=f"run {args.run}")
            for c in ("phase", "status", "attempt", "seconds", "rows", "error"):
                t.add_column(c)
            for r in phases.itertuples():
                rows = ", ".join(f"{k} {v}" for k, v in (r.rows_written or {}).items())
                t.add_row(r.phase, r.status, str(r.attempt), f"{r.duration_seconds or 0:.2f}", rows,
                          (r.error or "")[:100])
            console.print(t)
            return 0
        runs = repo.load_runs(s, args.limit)
    from shared import locking

    holder = locking.owner(engine)
    t = Table(title="recent runs" + (f" — batch lock held by {holder}" if holder else ""))
    for c in ("run id", "trigger", "status", "dates", "sessions", "coverage %", "started", "completed", "errors"):
        t.add_column(c)
    for r in runs.itertuples():
        dates = f"{r.start_date} .. {r.end_date}" if r.start_date else "-"
        cov = (r.data_coverage or {}).get("data_coverage_pct", "")
        errs = "; ".join(f"{e.get('phase') or e.get('node') or ''}: {e.get('error') or e.get('message') or ''}"
                         for e in (r.error_summary or []))[:80]
        t.add_row(r.run_id, r.triggered_by, r.status, dates, str(r.sessions or 0), str(cov), str(r.started_at)[:19],
                  str(r.completed_at or "")[:19], errs)
    console.print(t)
    return 0


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from shared import locking

    engine = _engine(settings)
    owner = locking.owner(engine)
    if owner is None:
        print("the batch lock is free")
        return 0
    locking.release(engine)
    print(f"released the batch lock held by run {owner}")
    return 0


def cmd_onboard(args: argparse.Namespace, settings: Settings) -> int:
    args.portfolio, args.trigger, args.force = args.portfolio_id, "onboarding", False
    args.start_date = args.end_date = ""
    return cmd_run(args, settings)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
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
    p = argparse.ArgumentParser(prog="sigmabatch", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the whole DAG locally (detects missed sessions)", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run every phase locally, in DAG order, independent phases in parallel. "
                       "With no dates: from the first session some active portfolio lacks to the last completed "
                       "NYSE session. On an empty database with the synthetic provider, demo portfolios are seeded.")
    r.add_argument("--start-date", default="", metavar="YYYY-MM-DD")
    r.add_argument("--end-date", default="", metavar="YYYY-MM-DD")
    r.add_argument("--portfolio", default="", metavar="ID", help="onboard/refresh one portfolio only")
    r.add_argument("--force", action="store_true", help="recompute and replace results for the range")
    r.add_argument("--provider", default=None, help="override SIGMABATCH_PROVIDER")
    r.add_argument("--trigger", default="manual", choices=("cron", "backfill", "onboarding", "manual"))
    r.add_argument("--max-parallel", type=int, default=3, help="steps run at once (default 3)")
    r.add_argument("--retries", type=int, default=1, metavar="N",
                   help="retry a failed step at most N times (default 1; Argo uses each step's own policy)")
    r.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live table")
    r.add_argument("--no-demo", action="store_true", help="never seed demo portfolios")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("import", help="import portfolios and positions from CSV (all or nothing)",
                       description="Portfolios CSV: portfolio,equity_balance[,currency,name]. Positions CSV: "
                       "portfolio,symbol,quantity,entry_price,entry_date[,exit_date,exit_price,position_type,"
                       "investment_class]. Signed quantities; types LONG SHORT LC LP SC SP.")
    i.add_argument("--portfolios", type=Path)
    i.add_argument("--positions", type=Path)
    i.add_argument("--update", action="store_true",
                   help="apply changes to portfolios or lots that exist (default: refuse them); a new equity "
                        "becomes a capital flow, the inception equity is kept")
    i.add_argument("--flow-date", default="", metavar="YYYY-MM-DD",
                   help="date of the capital flow an --update of equity records (default: today)")
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("status", help="recent runs, or one run's phases")
    s.add_argument("--run", default="", help="a run id: show its phases")
    s.add_argument("--limit", type=int, default=15)
    s.set_defaults(func=cmd_status)

    o = sub.add_parser("onboard", help="backfill one new portfolio from its first entry date (its symbols + ETFs)")
    o.add_argument("portfolio_id", metavar="PORTFOLIO")
    o.add_argument("--provider", default=None)
    o.add_argument("--max-parallel", type=int, default=3)
    o.add_argument("--retries", type=int, default=1)
    o.add_argument("--no-progress", action="store_true")
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
