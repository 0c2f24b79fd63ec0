"""Phase 1 over the real Yahoo adapter on loopback: splits re-fetch history, quality lands in the details;
with no network, ``sigmabatch run --provider yfinance`` fails fast and writes nothing."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import date, timedelta

import pandas as pd
import pytest

from phases import market_data
from shared.analytics.factors import FACTOR_ETFS
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, transaction
from tests.providers import fakes
from tests.providers.httpfake import FakeServer

SYM = "SPLT"


def _run_phase(capsys, start: date, end: date) -> tuple[int, dict]:
    code = market_data.main(["--start-date", start.isoformat(), "--end-date", end.isoformat()])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("sigmabatch-result: "))
    return code, json.loads(line.removeprefix("sigmabatch-result: "))


def test_split_refetches_history_and_leaves_no_artificial_return(tmp_path, monkeypatch, capsys):
    raw, split_day = fakes.unadjusted_with_split(n=40, split_at=30, start=date(2026, 3, 2))
    etf = fakes.series([100.0 + 0.1 * k for k in range(40)], date(2026, 3, 2))
    data = {SYM: raw, **{e: etf for e in FACTOR_ETFS}}
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for k, v in {"SIGMABATCH_DATABASE_URL": db, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
                 "SIGMABATCH_PROVIDER": "yfinance", "SIGMABATCH_PROVIDER_CHAIN": "yfinance",
                 "SIGMABATCH_HTTP_TIMEOUT": "2", "SIGMABATCH_HTTP_BACKOFF": "0", "SIGMABATCH_RATE_LIMITS": "yfinance=0",
                 "SIGMABATCH_NOW": "2026-06-30T18:00:00-04:00"}.items():
        monkeypatch.setenv(k, v)
    from shared.storage.db import migrate

    engine = get_engine(db)
    migrate(engine)
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p", "name": "p", "equity_balance": 1e6, "currency": "USD",
                                                    "is_active": True}]))
        repo.upsert(s, m.Position, pd.DataFrame([{"portfolio_id": "p", "symbol": SYM, "position_type": "LONG",
                                                  "quantity": 10.0, "entry_price": 10.0, "entry_date": date(2026, 3, 2),
                                                  "investment_class": "PUBLIC"}]),
                    conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    with FakeServer() as srv:
        monkeypatch.setenv("SIGMABATCH_YAHOO_URL", srv.url)
        before = split_day - timedelta(days=1)
        while before.weekday() >= 5:
            before -= timedelta(days=1)
        # run 1, before the split: Yahoo's history is in pre-split units and reports no split yet
        srv.route("/", fakes.yahoo_handler({**data, SYM: raw[raw["date"] < split_day]}))
        code, first = _run_phase(capsys, before, before)
        assert code == 0, first
        # run 2, after the split: Yahoo now serves adjusted history and a 2:1 split event
        srv.route("/", fakes.yahoo_handler(data, {SYM: [(split_day, 2.0)]}))
        end = raw["date"].iloc[-1]
        code, second = _run_phase(capsys, end, end)
        assert code == 0, second
    details = second["details"]
    assert SYM in details["split_refetched"]
    assert details["splits"] == [{"symbol": SYM, "date": str(split_day), "ratio": 2.0}]
    with transaction(get_engine(db)) as s:
        stored = repo.load_prices(s, [SYM], date(2025, 1, 1), end)
    stored = stored.sort_values("date")
    assert len(stored) == len(raw)
    ret = stored["close"].pct_change().abs()
    assert ret.max() < 0.05  # no -50% day at the split
    pre = stored[stored["date"] < split_day]["close"].to_numpy()
    assert pre == pytest.approx(raw[raw["date"] < split_day]["close"].to_numpy() / 2.0, rel=1e-6)
    assert set(stored["data_source"]) == {"yfinance"}
    quality = details["data_quality"]
    assert quality["outliers"] == 0 and quality["missing"] == 0 and quality["coverage_pct"] == 100.0


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def _yahoo_resolves() -> bool:
    try:
        socket.getaddrinfo("query2.finance.yahoo.com", 443)
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_run_without_network_fails_fast_and_writes_nothing(run_env, tmp_path):
    """Seed a portfolio, then ``sigmabatch run --provider yfinance``: exit 1, a clear message, no price rows.

    On a machine without network this talks to the real Yahoo host names (DNS fails at once); where Yahoo
    resolves, it points the adapter at a closed loopback port instead, so the test never uses the network.
    The local runner retries a failed step once by default (`--retries`): the run's record shows
    market-data failed after exactly those 2 attempts, and no symbol was tried more than the configured
    ``SIGMABATCH_HTTP_RETRIES`` times (behaviour, not seconds: the subprocess timeout is only a watchdog)."""
    env = dict(run_env, SIGMABATCH_HTTP_TIMEOUT="1", SIGMABATCH_HTTP_RETRIES="2", SIGMABATCH_HTTP_BACKOFF="0.05",
               SIGMABATCH_RATE_LIMITS="yfinance=0")
    if _yahoo_resolves():
        env["SIGMABATCH_YAHOO_URL"] = _closed_port()
    pf, pos = tmp_path / "p.csv", tmp_path / "q.csv"
    pf.write_text("portfolio,equity_balance\nnet,100000\n")
    pos.write_text("portfolio,symbol,quantity,entry_price,entry_date\nnet,AAPL,10,150,2026-01-05\n")
    cli = [sys.executable, "-m", "shared.cli"]
    subprocess.run([*cli, "import", "--portfolios", str(pf), "--positions", str(pos)], env=env, cwd=tmp_path,
                   check=True, capture_output=True, timeout=60)
    proc = subprocess.run([*cli, "run", "--provider", "yfinance", "--no-progress"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "no provider could serve prices" in text and "yfinance" in text, text
    logs = list((tmp_path / "var" / "runs").glob("*/market-data.log"))
    assert len(logs) == 1, logs
    retries = re.findall(r"yfinance prices (\S+): \w+ .*; retry (\d+)/(\d+)", logs[0].read_text())
    assert all(int(k) <= int(n) == 1 for _, k, n in retries), retries  # HTTP_RETRIES=2: at most one retry
    assert len(retries) <= 2 * 18  # 2 attempts x 18 symbols (AAPL + 17 factor ETFs), one retry each at most
    with transaction(get_engine(env["SIGMABATCH_DATABASE_URL"])) as s:
        counts = repo.table_counts(s)
        prices = repo.read_frame(s, m.MarketDataCache.__table__.select())
        runs = repo.read_frame(s, m.BatchPhaseRun.__table__.select())
    market = runs[runs["phase"] == "market-data"]
    assert market["status"].tolist() == ["failed"] and market["attempt"].tolist() == [2]
    assert prices.empty and counts.get("market_data_cache", 0) == 0
    assert counts.get("portfolio_snapshots", 0) == 0
    assert isinstance(prices, pd.DataFrame)


def test_fetch_modes_from_coverage():
    """Full backfill without (enough) cache, gap fill for a sparse history, incremental for a missing
    tail, cached when complete; session counts on the NYSE calendar."""
    from shared import calendar

    start, end = date(2026, 1, 2), date(2026, 11, 27)
    sessions = calendar.sessions(start, end)
    assert calendar.session_count(start, end) == len(sessions)
    assert calendar.session_count(date(2026, 11, 28), date(2026, 11, 29)) == 0  # a weekend
    cov = pd.DataFrame({"symbol": ["FULL", "SPARSE", "TAIL", "DONE"],
                        "first": [sessions[0], sessions[0], sessions[0], sessions[0]],
                        "last": [sessions[-1], sessions[-1], sessions[-3], sessions[-1]],
                        "rows": [5, len(sessions) // 2, len(sessions) - 2, len(sessions)]})
    modes = market_data.fetch_modes(cov, ["FULL", "SPARSE", "TAIL", "DONE", "NEW"], start, end)
    assert modes == {"FULL": "full_backfill", "SPARSE": "gap_fill", "TAIL": "incremental", "DONE": "cached",
                     "NEW": "full_backfill"}
