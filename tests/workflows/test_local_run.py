"""The whole DAG end to end on the embedded default (SQLite, local artifacts, synthetic market)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from shared import calendar
from shared.storage.db import get_engine
from tests.conftest import REPO

pytestmark = pytest.mark.slow

LAST = date(2026, 11, 27)  # SIGMABATCH_NOW in run_env is 2026-11-27 18:00 New York: after that day's (early) close


def sigmabatch(env, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT\n{proc.stdout}\nSTDERR\n{proc.stderr[-4000:]}")
    return proc


def counts(url):
    eng = get_engine(url)
    with eng.connect() as c:
        tables = [r[0] for r in c.execute(text("select name from sqlite_master where type='table'"))]
        return {t: c.execute(text(f"select count(*) from {t}")).scalar_one() for t in tables
                if t not in ("batch_run_history", "batch_phase_runs", "alembic_version")}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{tmp / 'sb.db'}"
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_SYNTHETIC_SYMBOLS": "30", "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00",
                "SIGMABATCH_DEFAULT_SESSIONS": "60"})
    proc = sigmabatch(env, "run", "--no-progress")
    return env, url, proc


def test_first_run_builds_every_session_for_every_demo_portfolio(first_run):
    env, url, proc = first_run
    assert "seeded 5 demo portfolios" in proc.stdout
    first = calendar.shift_sessions(LAST, -60)
    expected = calendar.sessions(first, LAST)
    assert len(expected) == 61
    eng = get_engine(url)
    with eng.connect() as c:
        rows = c.execute(text("select portfolio_id, count(*), min(snapshot_date), max(snapshot_date) "
                              "from portfolio_snapshots group by portfolio_id")).fetchall()
        span = c.execute(text("select min(date), max(date) from market_data_cache where symbol='SPY'")).one()
        status = c.execute(text("select status from batch_run_history")).scalars().all()
        rates = c.execute(text("select count(*) from macro_series where series='DGS10'")).scalar()
    assert len(rows) == 5
    for pid, n, lo, hi in rows:
        assert n == len(expected), pid
        assert str(lo) == first.isoformat() and str(hi) == LAST.isoformat()
    assert date.fromisoformat(str(span[0])) <= first - timedelta(days=360)
    assert status == ["completed"]
    assert rates > 200  # a year of 10-year Treasury yields for the rates view


def test_second_run_is_up_to_date_and_changes_nothing(first_run):
    env, url, _ = first_run
    before = counts(url)
    proc = sigmabatch(env, "run", "--no-progress")
    assert "Up to date" in proc.stdout
    assert counts(url) == before


def test_backfill_leaves_symbol_betas_and_risk_for_every_session(first_run):
    """Issues 3 and 4: every session of a 60-session backfill has symbol betas, and every snapshot has
    betas, volatility, factor exposures and stress results."""
    _, url, _ = first_run
    sessions = calendar.sessions(calendar.shift_sessions(LAST, -60), LAST)
    eng = get_engine(url)
    with eng.connect() as c:
        beta_dates = c.execute(text("select count(distinct calculation_date) from symbol_factor_exposures")).scalar()
        per_date = c.execute(text(
            "select calculation_date, count(distinct factor_id) from symbol_factor_exposures "
            "where symbol='SPY' group by calculation_date")).fetchall()
        missing = c.execute(text(
            "select count(*) from portfolio_snapshots where beta_calculated_90d is null or beta_provider_1y is null "
            "or ir_beta is null or realized_volatility_21d is null or realized_volatility_63d is null "
            "or expected_volatility_21d is null or volatility_percentile is null or hhi is null "
            "or sector_exposure is null")).scalar()
        exposures = c.execute(text(
            "select s.portfolio_id, s.snapshot_date, count(f.factor_id) from portfolio_snapshots s "
            "left join factor_exposures f on f.portfolio_id=s.portfolio_id and f.calculation_date=s.snapshot_date "
            "group by s.portfolio_id, s.snapshot_date")).fetchall()
        stress = c.execute(text(
            "select s.portfolio_id, s.snapshot_date, count(r.scenario_id) from portfolio_snapshots s "
            "left join stress_test_results r on r.portfolio_id=s.portfolio_id and r.calculation_date=s.snapshot_date "
            "group by s.portfolio_id, s.snapshot_date")).fetchall()
        corr = c.execute(text("select count(*) from correlation_calculations")).scalar()
    assert beta_dates == len(sessions)
    assert {n for _, n in per_date} == {13}
    assert missing == 0
    assert {n for *_, n in exposures} == {13}
    assert {n for *_, n in stress} == {19}
    assert corr == 5 * len(sessions)


def test_return_after_a_holiday_uses_the_previous_session(first_run):
    """1.75 on 2026-11-27 (after Thanksgiving): 1-day return against the close of 2026-11-25."""
    _, url, _ = first_run
    eng = get_engine(url)
    with eng.connect() as c:
        row = c.execute(text("select symbol, return_1d, current_price from symbol_daily_metrics "
                             "where metrics_date='2026-11-27' and symbol='SPY'")).one()
        prev = c.execute(text("select close from market_data_cache where symbol='SPY' and date='2026-11-25'")).scalar()
    assert row.return_1d == pytest.approx(row.current_price / prev - 1, rel=1e-12)


PHASE6_TABLES = ("factor_exposures", "position_market_betas", "position_interest_rate_betas", "position_volatility",
                 "symbol_volatility",
                 "correlation_calculations", "correlation_clusters", "pairwise_correlations", "stress_test_results",
                 "stress_test_summaries")


def _dump(url) -> dict:
    import pandas as pd

    eng = get_engine(url)
    with eng.connect() as c:
        out = {}
        for t in PHASE6_TABLES:
            frame = pd.read_sql(text(f"select * from {t}"), c).drop(columns=["id", "created_at"], errors="ignore")
            out[t] = frame.sort_values(list(frame.columns[:5])).reset_index(drop=True)
        snaps = pd.read_sql(text("select * from portfolio_snapshots"), c)
    eng.dispose()
    out["portfolio_snapshots"] = snaps.drop(columns=["created_at", "run_id"], errors="ignore").sort_values(
        ["portfolio_id", "snapshot_date"]).reset_index(drop=True)
    return out


def test_risk_steps_in_chunks_of_sessions_write_the_same_rows(first_run):
    """A long backfill runs each risk step (6a-6d) in chunks of sessions (bounded memory): with a budget of
    40 portfolio-dates (5 portfolios: chunks of 8 sessions, 8 chunks) the 60-session backfill's results
    are rewritten identically, the pairwise matrix still only for the last session."""
    import pandas as pd

    env, url, _ = first_run
    before = _dump(url)
    first = calendar.shift_sessions(LAST, -60)
    chunked = {**env, "SIGMABATCH_CHUNK_PORTFOLIO_DATES": "40"}
    for module in ("risk_exposures", "risk_volatility", "risk_correlations", "stress_tests"):
        proc = subprocess.run([sys.executable, "-m", f"phases.{module}", "--start-date", first.isoformat(),
                               "--end-date", LAST.isoformat(), "--force"], cwd=REPO, env=chunked,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "chunk 8/8 done" in proc.stderr + proc.stdout, module
        assert '"chunks": 8' in proc.stdout and '"chunk_sessions": 8' in proc.stdout
    after = _dump(url)
    assert set(before["pairwise_correlations"]["calculation_date"].astype(str)) == {LAST.isoformat()}
    for table, frame in before.items():
        pd.testing.assert_frame_equal(after[table], frame, check_exact=False, rtol=1e-12, obj=table)


def test_backfill_of_older_dates_keeps_current_state_and_adds_no_pairwise_matrix(first_run):
    """Issue 14: current state only moves forward. A forced backfill of three old sessions leaves every
    position's mark (last price, market value and its date) and sector tag date as the latest run left
    them, and adds no pairwise matrix (kept for the latest session only: a rule on the date)."""
    env, url, _ = first_run
    eng = get_engine(url)

    def state():
        with eng.connect() as c:
            marks = c.execute(text("select id, last_price, market_value, market_value_date from positions "
                                   "order by id")).fetchall()
            tags = c.execute(text("select position_id, sector, tagged_on from position_sector_tags "
                                  "order by position_id")).fetchall()
            pairs = c.execute(text("select distinct calculation_date from pairwise_correlations")).scalars().all()
        return marks, tags, pairs

    marks, tags, pairs = state()
    assert {str(r.market_value_date) for r in marks if r.market_value_date} == {LAST.isoformat()}
    assert {str(r.tagged_on) for r in tags} == {LAST.isoformat()}
    assert [str(p) for p in pairs] == [LAST.isoformat()]
    start, end = calendar.shift_sessions(LAST, -30), calendar.shift_sessions(LAST, -28)
    sigmabatch(env, "run", "--no-progress", "--start-date", start.isoformat(), "--end-date", end.isoformat(),
               "--force")
    after_marks, after_tags, after_pairs = state()
    assert (after_marks, after_pairs) == (marks, pairs)
    # every tag is as the latest run left it; a lot closed before LAST (so untagged by it) may gain one dated
    # on the backfill's last session, which rolls nothing back
    assert set(tags) <= set(after_tags)
    assert {str(r.tagged_on) for r in set(after_tags) - set(tags)} <= {end.isoformat()}
    eng.dispose()
