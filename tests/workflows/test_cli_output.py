"""What an operator reads: `status` (whole ids, no NaT, --json), help texts, the run summary and the live
table, `make help` off a terminal, the trigger of a forced backfill (issue 16)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from shared import cli
from shared.errors import ConfigError
from shared.settings import Settings, validate_provider
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import transaction
from workflows.local import RunOutcome, StepOutcome

REPO = Path(__file__).resolve().parents[2]
LONG_ID = "sigmabatch-nightly-backfill-2026-11-27-portfolio-onboarding-abcdef"[:64]


def _history(engine) -> None:
    with transaction(engine) as s:
        repo.upsert(
            s,
            m.BatchRunHistory,
            pd.DataFrame(
                [
                    {
                        "run_id": LONG_ID,
                        "triggered_by": "cron",
                        "status": "running",
                        "start_date": date(2026, 11, 27),
                        "end_date": date(2026, 11, 27),
                        "sessions": 1,
                        "started_at": datetime(2026, 11, 27, 23, tzinfo=UTC),
                        "completed_at": None,
                    },
                    {
                        "run_id": "local-20261126-180000-abcdef",
                        "triggered_by": "manual",
                        "status": "partial",
                        "start_date": date(2026, 11, 25),
                        "end_date": date(2026, 11, 25),
                        "sessions": 1,
                        "started_at": datetime(2026, 11, 26, 23, tzinfo=UTC),
                        "completed_at": datetime(2026, 11, 26, 23, 1, 8, tzinfo=UTC),
                        "error_summary": [{"phase": "risk-volatility", "status": "failed", "error": "boom"}],
                    },
                ]
            ),
        )


def _status(monkeypatch, capsys, engine, *argv) -> str:
    monkeypatch.setenv("SIGMABATCH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    assert cli.main(["status", *argv]) == 0
    return capsys.readouterr().out


def test_status_prints_whole_ids_and_no_nat(engine, monkeypatch, capsys):
    _history(engine)
    out = _status(monkeypatch, capsys, engine)
    assert LONG_ID in out and "…" not in out
    assert "NaT" not in out and "None" not in out
    running = next(line for line in out.splitlines() if LONG_ID in line)
    assert "running" in running and "2026-11-27" in running
    assert "1m08s" in out  # how long the finished run took


def test_status_json(engine, monkeypatch, capsys):
    _history(engine)
    runs = json.loads(_status(monkeypatch, capsys, engine, "--json"))["runs"]
    assert [r["run_id"] for r in runs] == [LONG_ID, "local-20261126-180000-abcdef"]
    assert runs[0]["completed_at"] is None and runs[0]["status"] == "running"
    assert runs[1]["started_at"].startswith("2026-11-26T23:00:00")
    assert runs[1]["error_summary"][0]["error"] == "boom"


def _help(*argv: str, columns: int = 80) -> str:
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else "python",
            "-m",
            "shared.cli",
            *argv,
            "--help",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("command", [[], ["run"], ["import"], ["status"], ["onboard"], ["report"]])
def test_help_has_no_markup_and_wraps_at_words(command):
    out = _help(*command)
    assert "``" not in out and ":mod:" not in out and ":class:" not in out
    assert all(len(line) <= 80 for line in out.splitlines()), [ln for ln in out.splitlines() if len(ln) > 80]
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in [("sigmabatch", parser)] if not command else [(command[0], sub.choices[command[0]])]:
        for action in p._actions:
            if (
                action.option_strings
                and action.dest != "help"
                or (not action.option_strings and name != "sigmabatch")
            ):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_import_help_names_every_column_whole():
    out = _help("import", columns=60)
    words = set(re.findall(r"[a-z_]+", out))
    for column in (
        "equity_balance",
        "entry_price",
        "entry_date",
        "exit_date",
        "position_type",
        "investment_class",
    ):
        assert column in words


def test_unknown_provider_message_lists_no_test_provider():
    with pytest.raises(ConfigError) as err:
        validate_provider("yahoo", "SIGMABATCH_PROVIDER")
    assert "failing" not in str(err.value)
    assert "synthetic, file, yfinance, polygon or fmp" in str(err.value)
    validate_provider("failing", "SIGMABATCH_PROVIDER")  # still accepted for outage drills


def test_make_help_without_colour_off_a_terminal():
    proc = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "test" in proc.stdout
    assert "\x1b[" not in proc.stdout


@pytest.mark.parametrize(
    ("argv", "trigger"),
    [
        (["run"], "manual"),
        (["run", "--force"], "manual"),
        (["run", "--start-date", "2026-11-02"], "manual"),
        (["run", "--start-date", "2026-11-02", "--force"], "backfill"),
        (["run", "--start-date", "2026-11-02", "--end-date", "2026-11-20", "--force"], "backfill"),
        (["run", "--start-date", "2026-11-02", "--force", "--trigger", "cron"], "cron"),
    ],
)
def test_forced_run_over_dates_is_a_backfill(argv, trigger):
    assert cli.run_trigger(cli.build_parser().parse_args(argv)) == trigger


def test_live_table_counts_running_steps_up():
    now = [100.0]
    view = cli.ProgressView(clock=lambda: now[0])
    steps = {
        "plan": StepOutcome("plan", status="ok", seconds=1.25),
        "market-data": StepOutcome("market-data", status="running", attempts=1),
    }
    view.update(steps)
    now[0] = 112.5
    assert view.seconds("market-data") == "12.5"
    assert view.seconds("plan") == "1.2"
    steps["market-data"].status, steps["market-data"].seconds = "failed", 13.0
    view.update(steps)
    steps["market-data"].status, steps["market-data"].attempts = "running", 2  # a retry counts from its start
    view.update(steps)
    now[0] = 114.5
    assert view.seconds("market-data") == "15.0"  # 13 s of the first attempt + 2 s of this one


def test_summary_shows_rows_inserted_and_updated_apart(tmp_path):
    from rich.console import Console

    from workflows import dag

    steps = {s.name: StepOutcome(s.name, status="ok", attempts=1) for s in (*dag.STEPS, dag.EXIT_STEP)}
    steps["plan"].details = {"sessions": 5}
    steps["pnl-snapshots"].rows = {"portfolio_snapshots": 25}
    steps["risk-exposures"].rows, steps["risk-exposures"].updated = (
        {"factor_exposures": 300},
        {"portfolio_snapshots": 25},
    )
    steps["risk-volatility"].updated = {"portfolio_snapshots": 25}
    steps["market-values"].updated = {"positions": 31}
    outcome = RunOutcome("local-x", "completed", 0, "2026-11-20", "2026-11-27", steps, 1.0, run_dir=tmp_path)
    console = Console(width=200, record=True, no_color=True)
    cli._print_summary(console, outcome)
    text = console.export_text()
    assert "Rows inserted: factor_exposures 300, portfolio_snapshots 25\n" in text
    assert (
        "Rows updated: portfolio_snapshots 50 (risk-exposures 25 + risk-volatility 25), positions 31" in text
    )
    assert "portfolio_snapshots 75" not in text


def test_settings_default_sessions_matches_the_readme():
    """The README states the demo window as the code builds it: N sessions back, so N + 1 sessions."""
    from shared import calendar

    n = Settings().default_sessions
    latest = date(2026, 11, 27)
    entry = calendar.shift_sessions(latest, -n)  # as shared/demo.py enters the demo lots
    built = len(calendar.sessions(entry, latest))
    readme = (REPO / "README.md").read_text()
    assert built == n + 1
    assert (
        f"entered {n} sessions (`SIGMABATCH_DEFAULT_SESSIONS`)" in readme
        and f"**{built} sessions**" in readme
    )


def test_doc_links_stay_inside_the_repository():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(REPO) and path.exists(), (
                f"{doc.name}: link {target} leaves the repo or is broken"
            )
        assert "../shared" not in doc.read_text(), doc.name


def test_readme_keeps_what_other_issues_rely_on():
    readme = (REPO / "README.md").read_text()
    for must in (
        "## Two commands",
        "## Using it",
        "## Settings",
        "## Exit codes",
        "## Re-running is safe",
        "## Running on Argo",
        "## How it is built",
        "m = Σ·S Σ_SS⁻¹ s",
        "| risk-correlations | 90 sessions |",
        "docs/performance.md",
    ):
        assert must in readme, must
