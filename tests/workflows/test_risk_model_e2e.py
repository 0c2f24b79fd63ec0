"""Issue 15 end to end: the whole local DAG on purpose-built books over the synthetic market.

* an SPY-only book: "Market Decline 10%" direct = -10 % of the SPY value exactly, correlated within
  [-11 %, -9 %], every session; one position -> effective positions 1;
* a book long a stock and short SPY by the stock's market beta: a pure market shock moves it < 1 % of gross;
* a book whose only position closed: 0 in every scenario once it holds only cash;
* half SPY, half cash: exactly half the SPY-only book's volatility;
* the report's stress table shows the stored numbers and its footnote states the model;
* a range in which nobody held anything: the risk steps skip (exit 0), the run completes and has a report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from shared import calendar
from shared.analytics.symbol_betas import compute_symbol_betas
from shared.providers.registry import build_market_data
from shared.settings import Settings
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO

pytestmark = pytest.mark.slow

LAST = date(2026, 11, 27)
ENTRY = calendar.shift_sessions(LAST, -3)
EXIT = calendar.shift_sessions(ENTRY, 1)
EQ = 1_000_000.0
PURE_MARKET = ("market_up_5", "market_down_5", "market_up_10", "market_down_10", "market_crash_35",
               "market_rally_25")


def sigmabatch(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("risk15")
    url = f"sqlite:///{tmp / 'sb.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp / "artifacts"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00", "PYTHONPATH": str(REPO)})
    market = build_market_data(Settings.from_env(env)).prices
    stock = market.stock_symbols[3]
    px = market.close_matrix(["SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV", stock],
                             ENTRY - timedelta(days=200), ENTRY)
    close = px.loc[pd.Timestamp(ENTRY)]
    betas = compute_symbol_betas(px, [ENTRY])
    beta = float(betas.loc[(betas["symbol"] == stock) & (betas["factor"] == "Market Beta (90D)"), "beta_value"].iloc[0])

    def lot(pid, sym, dollars, exit_date=None):
        price = float(close[sym])
        return {"portfolio_id": pid, "symbol": sym, "quantity": dollars / price, "entry_price": price,
                "entry_date": ENTRY, "position_type": "LONG" if dollars > 0 else "SHORT",
                "investment_class": "PUBLIC", "exit_date": exit_date,
                "exit_price": float(market.close_matrix([sym], EXIT, EXIT).iloc[-1, 0]) if exit_date else None}

    engine = get_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([
            {"id": pid, "name": pid, "equity_balance": EQ, "currency": "USD", "is_active": True}
            for pid in ("spy-only", "half-spy", "hedged", "cash-later")]))
        repo.upsert(s, m.Position, pd.DataFrame([
            lot("spy-only", "SPY", EQ), lot("half-spy", "SPY", EQ / 2),
            lot("hedged", stock, EQ / 2), lot("hedged", "SPY", -beta * EQ / 2),
            lot("cash-later", stock, EQ / 2, exit_date=EXIT)]),
            conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    engine.dispose()
    proc = sigmabatch(env, tmp, "run", "--no-progress", "--no-demo")
    assert proc.returncode == 0, f"STDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-4000:]}"
    eng = get_engine(url)
    with eng.connect() as c:
        stress = pd.DataFrame(c.execute(text("select * from stress_test_results")).mappings().all())
        snaps = pd.DataFrame(c.execute(text("select * from portfolio_snapshots")).mappings().all())
        corr = pd.DataFrame(c.execute(text("select * from correlation_calculations")).mappings().all())
        run_id = c.execute(text("select run_id from batch_run_history")).scalar_one()
    eng.dispose()
    for f in (stress, snaps, corr):
        for col in ("calculation_date", "snapshot_date"):
            if col in f:
                f[col] = pd.to_datetime(f[col]).dt.date
    return {"tmp": tmp, "env": env, "url": url, "stress": stress.set_index(["portfolio_id", "calculation_date",
                                                                           "scenario_id"]),
            "snaps": snaps.set_index(["portfolio_id", "snapshot_date"]), "corr": corr, "run_id": run_id}


def test_spy_only_book(e2e):
    stress, snaps = e2e["stress"], e2e["snaps"]
    sessions = calendar.sessions(ENTRY, LAST)
    for d in sessions:
        spy_mv = snaps.loc[("spy-only", d), "long_value"]
        row = stress.loc[("spy-only", d, "market_down_10")]
        assert row["direct_pnl"] == pytest.approx(-0.10 * spy_mv, rel=1e-9)
        assert -0.11 * spy_mv <= row["correlated_pnl"] <= -0.09 * spy_mv
    single = e2e["corr"].set_index(["portfolio_id", "calculation_date"]).loc["spy-only"]
    assert (single["positions_included"] == 1).all()
    assert (single["effective_positions"] == 1.0).all()           # used to be NULL


def test_beta_hedged_book(e2e):
    gross = e2e["snaps"].loc[("hedged", ENTRY), "gross_exposure"]
    assert gross > 1.5 * EQ / 2
    for sid in PURE_MARKET:
        assert abs(e2e["stress"].loc[("hedged", ENTRY, sid), "correlated_pnl"]) < 0.01 * gross, sid


def test_cash_only_book_is_zero(e2e):
    stress = e2e["stress"].loc["cash-later"]
    for d in calendar.sessions(EXIT, LAST):
        day = stress.xs(d, level="calculation_date")
        assert len(day) == 19
        assert (day[["direct_pnl", "correlated_pnl", "correlation_effect"]] == 0.0).all().all()
    assert (stress.xs(ENTRY, level="calculation_date")["direct_pnl"] != 0.0).any()


def test_half_spy_half_cash_has_half_the_volatility(e2e):
    snaps = e2e["snaps"]
    half, full = snaps.loc[("half-spy", ENTRY)], snaps.loc[("spy-only", ENTRY)]
    for col in ("realized_volatility_21d", "realized_volatility_63d", "expected_volatility_21d"):
        assert half[col] == pytest.approx(full[col] / 2, rel=1e-6), col   # quantities are stored to 4 decimals


def test_report_shows_the_new_numbers_and_states_the_model(e2e):
    from shared.report import fmt
    from tests.report.dom import parse

    html = (e2e["tmp"] / "var" / "runs" / e2e["run_id"] / "report.html").read_text(encoding="utf-8")
    section = parse(html).by_id(fmt.anchor("spy-only"))
    assert section is not None
    table = next(t for t in section.find_all("table") if "stress" in t.attrs.get("class", ""))
    rows = {r.find_all("td")[0].text().strip(): [td.text().strip() for td in r.find_all("td")]
            for r in table.find_all("tbody")[0].find_all("tr")}
    stored = e2e["stress"].loc[("spy-only", LAST, "market_down_10")]
    assert rows["Market Decline 10%"][3] == fmt.money(stored["direct_pnl"])
    assert rows["Market Decline 10%"][4] == fmt.money(stored["correlated_pnl"])
    assert rows["Market Decline 10%"][6] == "-10.0%"                 # of equity (the old model: about -19 %)
    text_ = " ".join(section.text().split())
    assert "m = Σ·S Σ_SS⁻¹ s" in text_ and "EWMA covariance" in text_ and "net of the market" in text_


def test_a_range_where_nothing_was_held_skips_the_risk_steps(e2e):
    start, end = calendar.shift_sessions(ENTRY, -8), calendar.shift_sessions(ENTRY, -5)
    proc = sigmabatch(e2e["env"], e2e["tmp"], "run", "--no-progress", "--no-demo", "--start-date", start.isoformat(),
                      "--end-date", end.isoformat())
    assert proc.returncode == 0, f"STDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-4000:]}"
    eng = get_engine(e2e["url"])
    with eng.connect() as c:
        run_id, status = c.execute(text("select run_id, status from batch_run_history where start_date = :s"),
                                   {"s": start}).one()
        steps = dict(c.execute(text("select phase, status from batch_phase_runs where run_id = :r"),
                               {"r": run_id}).fetchall())
    eng.dispose()
    assert status == "completed"
    for step in ("risk-exposures", "risk-volatility", "risk-correlations", "stress-tests"):
        assert steps[step] == "skipped", steps
    assert "no portfolio held a position" in proc.stdout + proc.stderr
    assert (e2e["tmp"] / "var" / "runs" / run_id / "report.html").exists()
