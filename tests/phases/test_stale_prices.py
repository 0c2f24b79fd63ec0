"""Results that look complete but are not (issue 16): prices that stop before the end of the run make it
``partial`` (exit 3), the message names the symbols and sessions, and no snapshot is booked on a session
without fresh prices (no zero P&L from a carried-forward close)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared import calendar
from tests.phases.test_bad_input import make_db, prices_csv, run_cli

__all__ = ["prices_csv"]
LAST_PRICE = "2026-11-13"


@pytest.fixture(scope="module")
def stale_run(tmp_path_factory, prices_csv):
    """A file provider whose prices end 2026-11-13; one portfolio entered 2026-11-02; a run to 2026-11-30."""
    tmp = tmp_path_factory.mktemp("stale")
    lines = prices_csv.splitlines()
    csv = "\n".join([lines[0], *(ln for ln in lines[1:] if ln.split(",", 1)[0] <= LAST_PRICE)]) + "\n"
    url, engine, data = make_db(tmp, csv, entry=date(2026, 11, 2))
    proc = run_cli(tmp, url, data, env_extra={"SIGMABATCH_NOW": "2026-11-30T18:00:00-05:00"})
    with engine.connect() as c:
        snaps = pd.read_sql(text("select snapshot_date, daily_pnl from portfolio_snapshots "
                                 "where portfolio_id = 'alpha' order by snapshot_date"), c)
        status = c.execute(text("select status from batch_run_history")).scalar_one()
    engine.dispose()
    return proc, snaps, status


def test_prices_ending_before_the_run_make_it_partial_exit_3(stale_run):
    proc, _, status = stale_run
    out = proc.stdout + proc.stderr
    stale = calendar.sessions(date(2026, 11, 14), date(2026, 11, 30))
    assert proc.returncode == 3, out[-3000:]
    assert status == "partial"
    assert (f"stale or missing prices on {len(stale)} session(s) {stale[0]} .. {stale[-1]} "
            "(coverage below SIGMABATCH_MIN_COVERAGE=100%): no close for") in out
    assert "pnl-snapshots partial: no snapshot from the first session without a fresh close: alpha from 2026-11-16" in out


def test_no_snapshot_is_booked_on_sessions_without_fresh_prices(stale_run):
    _, snaps, _ = stale_run
    booked = [pd.Timestamp(d).date() for d in snaps["snapshot_date"]]
    assert booked == calendar.sessions(date(2026, 11, 2), date.fromisoformat(LAST_PRICE))
