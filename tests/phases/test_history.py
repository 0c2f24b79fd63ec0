"""Issue 14: the price history is declared in sessions by every step and sized from the union of them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared import calendar
from shared.history import STALE_SESSIONS, History, history_start
from shared.retention import first_kept_session, kept_sessions
from shared.storage.db import get_engine
from tests.conftest import REPO
from workflows import dag


def test_every_step_reading_the_price_cache_declares_its_history():
    need = dag.price_history()
    # the 252-return windows (volatility, stress EWMA) and the 1-year return are the longest look-backs
    assert need == History(sessions=252, years=1)


def test_history_start_counts_sessions_and_calendar_years():
    first = date(2018, 12, 31)
    start = history_start(first, History(sessions=252, years=1))
    one_year = calendar.session_on_or_before(date(2017, 12, 31))  # 2017-12-29: Dec 31 was a Sunday
    by_sessions = calendar.shift_sessions(first, -252)
    assert start == calendar.shift_sessions(min(one_year, by_sessions), -STALE_SESSIONS)
    assert history_start(first, History(sessions=5)) == calendar.shift_sessions(first, -5 - STALE_SESSIONS)
    # a date near the calendar's start is clamped, never wrapped around to 2045
    assert history_start(date(1990, 2, 1), History(sessions=252, years=1)) == calendar.first_session()
    with pytest.raises(ValueError, match="outside the calendar"):
        calendar.shift_sessions(date(1990, 1, 3), -10)


def test_pairwise_sessions_are_a_rule_on_the_date():
    latest = date(2026, 11, 27)
    assert first_kept_session(latest, 1) == latest
    assert first_kept_session(latest, 3) == date(2026, 11, 24)  # 11-26 is Thanksgiving
    run = calendar.sessions(date(2026, 11, 2), date(2026, 11, 27))
    assert kept_sessions(run, latest, 3) == [date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]
    assert kept_sessions(run[:3], latest, 3) == []  # an old range keeps none, whatever its shape


@pytest.mark.slow
def test_year_end_after_a_weekend_new_year_has_ytd_and_one_year_returns(tmp_path):
    """The nightly run of 2018-12-31 (the prior Dec 31 was a Sunday) on real S&P 500 closes (arch's data
    through the file provider): YTD and 1-year returns come from the 2017-12-29 close, not null."""
    from arch.data import sp500

    closes = sp500.load()["Adj Close"].loc["2016-06-01":"2018-12-31"]
    prices = pd.DataFrame({"date": closes.index.strftime("%Y-%m-%d"), "symbol": "SPX", "close": closes.to_numpy()})
    csv = tmp_path / "prices.csv"
    prices.to_csv(csv, index=False)
    (tmp_path / "p.csv").write_text("portfolio,equity_balance\nidx,1000000\n")
    (tmp_path / "q.csv").write_text("portfolio,symbol,quantity,entry_price,entry_date\nidx,SPX,100,2700,2018-06-01\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    url = f"sqlite:///{tmp_path / 'sb.db'}"
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "artifacts"),
                "SIGMABATCH_PROVIDER": f"file:{csv}", "SIGMABATCH_NOW": "2018-12-31T18:00:00-05:00",
                "PYTHONPATH": str(REPO)})

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    run("shared.cli", "import", "--portfolios", str(tmp_path / "p.csv"), "--positions", str(tmp_path / "q.csv"))
    nightly = ("--start-date", "2018-12-31", "--end-date", "2018-12-31")
    run("phases.market_data", *nightly)
    run("phases.symbol_metrics", *nightly)
    with get_engine(url).connect() as c:
        row = c.execute(text("select return_ytd, return_1y, current_price from symbol_daily_metrics "
                             "where symbol='SPX' and metrics_date='2018-12-31'")).one()
    prior_year_end = closes.loc["2017-12-29"]
    assert row.current_price == closes.loc["2018-12-31"]
    assert row.return_ytd == pytest.approx(closes.loc["2018-12-31"] / prior_year_end - 1, rel=1e-12)
    assert row.return_1y == pytest.approx(closes.loc["2018-12-31"] / prior_year_end - 1, rel=1e-12)
