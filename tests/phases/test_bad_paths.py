"""Bad files, paths and settings get one line and exit 2, before anything is written (issue 16).

Each case runs the ``sigmabatch`` command as a subprocess against a database that already holds a
portfolio, a lot and a finished run, then checks the exit code, the first line of the message (no
traceback), the row count of every table (run history and the lock included) and that no run folder
``var/runs/<id>`` nor artifact folder was created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction

NOW = "2026-11-27T18:00:00-05:00"
PORTFOLIOS = "portfolio,equity_balance\nbeta,50000\n"
POSITION_HEADER = "portfolio,symbol,quantity,entry_price,entry_date\n"


def _can_mount_readonly() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    )


def readonly(cmd: list[str], folder) -> tuple[list[str], object]:
    """``cmd`` run with ``folder`` read-only: a private read-only bind mount as root (where chmod does not
    stop root), else chmod 555 (returns the command and an undo callable)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return cmd, lambda: folder.chmod(0o755)
    if not _can_mount_readonly():
        pytest.skip("root without unshare: cannot make a folder read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(folder), *cmd], lambda: None


def make_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'db' / 'sigmabatch.db'}"
    engine = get_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        repo.upsert(
            s,
            m.Portfolio,
            pd.DataFrame(
                [
                    {
                        "id": "alpha",
                        "name": "alpha",
                        "equity_balance": 1e6,
                        "currency": "USD",
                        "is_active": True,
                    }
                ]
            ),
        )
        repo.upsert(
            s,
            m.Position,
            pd.DataFrame(
                [
                    {
                        "portfolio_id": "alpha",
                        "symbol": "SPY",
                        "position_type": "LONG",
                        "quantity": 100.0,
                        "entry_price": 50.0,
                        "entry_date": date(2026, 11, 20),
                        "investment_class": "PUBLIC",
                    }
                ]
            ),
            conflict=("portfolio_id", "symbol", "position_type", "entry_date"),
        )
        repo.upsert(
            s,
            m.BatchRunHistory,
            pd.DataFrame(
                [
                    {
                        "run_id": "local-20261127-180000-abcdef",
                        "triggered_by": "manual",
                        "status": "completed",
                        "start_date": date(2026, 11, 27),
                        "end_date": date(2026, 11, 27),
                        "sessions": 1,
                        "started_at": datetime(2026, 11, 27, 23, tzinfo=UTC),
                        "completed_at": datetime(2026, 11, 27, 23, 1, tzinfo=UTC),
                    }
                ]
            ),
        )
    return url, engine


def counts(engine) -> dict[str, int]:
    """Rows of every table, bookkeeping included."""
    with engine.connect() as c:
        names = [r[0] for r in c.execute(text("select name from sqlite_master where type='table'"))]
        return {n: c.execute(text(f'select count(*) from "{n}"')).scalar_one() for n in names}


def files(tmp_path):
    """Input files, one per kind of bad input."""
    (tmp_path / "latin1.csv").write_bytes(
        POSITION_HEADER.encode() + "alpha,AAPL,1,10,2026-11-02\n# caf\xe9\n".encode("latin-1")
    )
    (tmp_path / "binary.csv").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)))
    (tmp_path / "utf16.csv").write_text(PORTFOLIOS, encoding="utf-16")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "readonly").mkdir()
    (tmp_path / "prices-missing").mkdir()
    (tmp_path / "pf.csv").write_text(PORTFOLIOS)
    (tmp_path / "huge.csv").write_text(POSITION_HEADER + "alpha,AAPL,1e30,175,2026-11-02\n")
    (tmp_path / "infinite.csv").write_text(POSITION_HEADER + "alpha,AAPL,inf,175,2026-11-02\n")
    (tmp_path / "huge-equity.csv").write_text("portfolio,equity_balance\nbeta,5e15\n")
    (tmp_path / "future.csv").write_text(POSITION_HEADER + "alpha,AAPL,10,175,2030-01-02\n")
    (tmp_path / "ancient.csv").write_text(POSITION_HEADER + "alpha,AAPL,10,175,1900-01-02\n")


# id, command arguments, environment, folder made read-only, first line, second line (or None)
CASES = [
    (
        "import-not-utf8",
        ["import", "--positions", "latin1.csv"],
        {},
        None,
        "error: latin1.csv line 3: not UTF-8 text (byte 0xe9 at offset",
        None,
    ),
    (
        "import-binary",
        ["import", "--portfolios", "binary.csv"],
        {},
        None,
        "error: binary.csv: is a binary file, not a CSV text file",
        None,
    ),
    (
        "import-utf16",
        ["import", "--portfolios", "utf16.csv"],
        {},
        None,
        "error: utf16.csv: is UTF-16 text; save the file as UTF-8 CSV",
        None,
    ),
    (
        "import-folder",
        ["import", "--portfolios", "a-folder"],
        {},
        None,
        "error: a-folder: is a folder, not a CSV file",
        None,
    ),
    (
        "import-huge-quantity",
        ["import", "--positions", "huge.csv"],
        {},
        None,
        "error: import rejected, nothing was written:",
        "huge.csv line 2, field quantity: 1e+30 x 175 is a notional of 1.75e+32, above the limit of 1e+12",
    ),
    (
        "import-infinite-quantity",
        ["import", "--positions", "infinite.csv"],
        {},
        None,
        "error: import rejected, nothing was written:",
        "infinite.csv line 2, field quantity: 'inf' is not finite",
    ),
    (
        "import-huge-equity",
        ["import", "--portfolios", "huge-equity.csv"],
        {},
        None,
        "error: import rejected, nothing was written:",
        "huge-equity.csv line 2, field equity_balance: 5e+15 is above the limit of 1e+12",
    ),
    (
        "import-future-entry",
        ["import", "--positions", "future.csv"],
        {},
        None,
        "error: import rejected, nothing was written:",
        "future.csv line 2, field entry_date: 2030-01-02 is in the future (today is 2026-11-27)",
    ),
    (
        "import-entry-before-calendar",
        ["import", "--positions", "ancient.csv"],
        {},
        None,
        "error: import rejected, nothing was written:",
        "ancient.csv line 2, field entry_date: 1900-01-02 is before 1990-01-02, the first session",
    ),
    (
        "artifacts-through-a-file",
        ["run"],
        {"SIGMABATCH_ARTIFACTS": "afile/artifacts"},
        None,
        "error: SIGMABATCH_ARTIFACTS=afile/artifacts: afile is a regular file, not a folder",
        None,
    ),
    (
        "artifacts-is-a-file",
        ["run"],
        {"SIGMABATCH_ARTIFACTS": "afile"},
        None,
        "error: SIGMABATCH_ARTIFACTS=afile: afile is a regular file, not a folder",
        None,
    ),
    (
        "artifacts-read-only",
        ["run"],
        {"SIGMABATCH_ARTIFACTS": "readonly/artifacts"},
        "readonly",
        "error: SIGMABATCH_ARTIFACTS=readonly/artifacts: readonly is not writable",
        None,
    ),
    ("var-read-only", ["run"], {}, "var", "error: the run-log folder var/runs: var is not writable", None),
    ("database-folder-read-only", ["run"], {}, "db", "error: SIGMABATCH_DATABASE_URL=sqlite:///", None),
    (
        "provider-file-missing",
        ["run"],
        {"SIGMABATCH_PROVIDER": "file:/nonexistent/prices.csv"},
        None,
        "error: SIGMABATCH_PROVIDER=file:/nonexistent/prices.csv: /nonexistent/prices.csv does not exist",
        None,
    ),
    (
        "provider-flag-missing",
        ["run", "--provider", "file:/nonexistent"],
        {},
        None,
        "error: --provider=file:/nonexistent: /nonexistent does not exist",
        None,
    ),
    (
        "provider-folder-without-prices",
        ["run"],
        {"SIGMABATCH_PROVIDER": "file:prices-missing"},
        None,
        "error: SIGMABATCH_PROVIDER=file:prices-missing: the folder prices-missing has no prices.csv",
        None,
    ),
    (
        "onboard-provider-missing",
        ["onboard", "alpha"],
        {"SIGMABATCH_PROVIDER": "file:/nonexistent"},
        None,
        "error: SIGMABATCH_PROVIDER=file:/nonexistent: /nonexistent does not exist",
        None,
    ),
    (
        "phase-provider-file-missing",
        ["phases.market_data"],
        {"SIGMABATCH_PROVIDER": "file:/nonexistent"},
        None,
        "error: SIGMABATCH_PROVIDER=file:/nonexistent: /nonexistent does not exist",
        None,
    ),
    (
        "report-out-through-a-file",
        ["report", "--out", "afile/report.html"],
        {},
        None,
        "error: --out afile/report.html: afile is a regular file, not a folder",
        None,
    ),
    (
        "report-out-is-a-folder",
        ["report", "--out", "a-folder"],
        {},
        None,
        "error: --out a-folder: a-folder is a folder; give a file name",
        None,
    ),
    (
        "report-out-read-only",
        ["report", "--out", "readonly/report.html"],
        {},
        "readonly",
        "error: --out readonly/report.html: readonly is not writable",
        None,
    ),
    (
        "report-artifacts-through-a-file",
        ["report"],
        {"SIGMABATCH_ARTIFACTS": "afile"},
        None,
        "error: the report path afile/reports/local-20261127-180000-abcdef.html (SIGMABATCH_ARTIFACTS=afile): afile is a regular file",
        None,
    ),
]


@pytest.mark.parametrize(("case", "args", "env", "ro", "first", "second"), CASES, ids=[c[0] for c in CASES])
def test_bad_path_or_file(tmp_path, case, args, env, ro, first, second):
    url, engine = make_db(tmp_path)
    files(tmp_path)
    (tmp_path / "var").mkdir()
    before = counts(engine)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    run_env.update(
        {
            "SIGMABATCH_DATABASE_URL": url,
            "SIGMABATCH_ARTIFACTS": "artifacts",
            "SIGMABATCH_PROVIDER": "synthetic",
            "SIGMABATCH_SYNTHETIC_SYMBOLS": "6",
            "SIGMABATCH_NOW": NOW,
            "PYTHONPATH": str(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))),
            **env,
        }
    )
    cmd = [sys.executable, "-m", *(args if args[0].startswith("phases.") else ["shared.cli", *args])]
    if args[0] in ("run", "onboard"):
        cmd.append("--no-progress")
    undo = lambda: None  # noqa: E731
    if ro:
        cmd, undo = readonly(cmd, tmp_path / ro)
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
    finally:
        undo()
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert err and err[0].startswith(first), proc.stderr
    if second is not None:
        assert len(err) > 1 and second in err[1], proc.stderr
    else:
        assert len(err) == 1, proc.stderr  # one line, no traceback
    assert "Traceback" not in proc.stderr
    assert counts(engine) == before, "a bad input must not write anything (run history included)"
    assert not (tmp_path / "var" / "runs").exists(), "no run folder for a refused run"
    assert not (tmp_path / "artifacts").exists()


def test_report_path_is_checked_before_rendering(tmp_path, monkeypatch, capsys):
    """A long report is not rendered for nothing: the path is refused before the data is even loaded."""
    import shared.report
    from shared import cli

    url, _engine = make_db(tmp_path)
    files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIGMABATCH_DATABASE_URL", url)

    def render(*_args, **_kwargs):
        raise AssertionError("the report was rendered before its path was checked")

    monkeypatch.setattr(shared.report, "write_report", render)
    monkeypatch.setattr(shared.report, "load_report_data", render)
    assert cli.main(["report", "--out", "afile/report.html"]) == 2
    assert "afile is a regular file" in capsys.readouterr().err
