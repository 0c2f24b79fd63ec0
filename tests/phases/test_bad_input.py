"""Every bad input gets a clear message, a documented exit code, and writes nothing (issue 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared.providers.synthetic import SyntheticMarket
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import get_engine, migrate, transaction
from tests.conftest import REPO

BOOKKEEPING = {"batch_run_history", "batch_phase_runs", "batch_locks", "alembic_version"}
#: Written by phases 0, 2 and 5, which run beside phase 1 and need no prices: valid reference data from
#: their own providers. For bad *prices*, "nothing written" means no price and nothing computed from one.
REFERENCE_DATA = {"company_profiles", "symbol_universe", "benchmarks_sector_weights", "financial_statements",
                  "position_sector_tags"}
NOW = "2026-11-27T18:00:00-05:00"


@pytest.fixture(scope="module")
def prices_csv(tmp_path_factory) -> str:
    market = SyntheticMarket(6, seed=5)
    syms = [*market.symbols[:17], market.stock_symbols[0], market.stock_symbols[4]]
    frame = market.fetch_prices(syms, date(2025, 10, 1), date(2026, 11, 27))
    return frame[["date", "symbol", "close", "volume"]].to_csv(index=False)


def make_db(tmp_path, prices_csv, *, equity=1e6, positions=True, extra_symbol=None, entry=date(2026, 11, 20)):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = get_engine(url)
    migrate(engine)
    stocks = SyntheticMarket(6, seed=5).stock_symbols
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([
            {"id": "alpha", "name": "alpha", "equity_balance": equity, "currency": "USD", "is_active": True},
            {"id": "empty", "name": "empty", "equity_balance": 1e5, "currency": "USD", "is_active": False}]))
        if positions:
            lots = [{"portfolio_id": "alpha", "symbol": sym, "position_type": "LONG", "quantity": 100.0,
                     "entry_price": 50.0, "entry_date": entry, "investment_class": "PUBLIC"}
                    for sym in [stocks[0], stocks[4], *([extra_symbol] if extra_symbol else [])]]
            repo.upsert(s, m.Position, pd.DataFrame(lots),
                        conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "prices.csv").write_text(prices_csv)
    return url, engine, data


def data_counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        names = [r[0] for r in c.execute(text("select name from sqlite_master where type='table'"))]
        return {n: c.execute(text(f"select count(*) from {n}")).scalar_one() for n in names if n not in BOOKKEEPING}


def run_cli(tmp_path, url, data, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
                "SIGMABATCH_PROVIDER": f"file:{data}", "SIGMABATCH_NOW": NOW, "PYTHONPATH": str(REPO),
                **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "shared.cli", "run", "--no-progress", "--no-demo", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def corrupt(csv: str, how: str) -> str:
    lines = csv.splitlines()
    header, first = lines[0], lines[1].split(",")
    if how in ("nan", "zero", "negative"):
        first[2] = {"nan": "nan", "zero": "0", "negative": "-12.5"}[how]
        return "\n".join([header, ",".join(first), *lines[2:]]) + "\n"
    if how == "duplicate":
        dup = list(first)
        dup[2] = str(float(first[2]) + 1)
        return "\n".join([header, ",".join(first), ",".join(dup), *lines[2:]]) + "\n"
    if how == "truncated":
        return "\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 3]])
    raise ValueError(how)


STEP_ARGS = ["--start-date", "2026-11-20", "--end-date", "2026-11-27"]

CASES = [
    # id, entrypoint, args, db setup, csv mutation, env, expected exit, expected message
    ("end-before-start", "cli", ["--start-date", "2026-11-20", "--end-date", "2026-11-10"], {}, None, None, 2,
     "is before start date"),
    ("weekend-only", "plan", ["--start-date", "2026-11-21", "--end-date", "2026-11-22"], {}, None, None, 2,
     "no NYSE session"),
    ("future", "plan", ["--start-date", "2026-11-20", "--end-date", "2026-12-15"], {}, None, None, 2,
     "after the last completed NYSE session 2026-11-27"),
    ("not-a-date", "plan", ["--start-date", "20/11/2026"], {}, None, None, 2, "is not a date"),
    ("unknown-portfolio", "plan", ["--portfolio", "nope"], {}, None, None, 2, "unknown or inactive portfolio 'nope'"),
    ("empty-portfolio", "plan", ["--portfolio", "alpha"], {"positions": False}, None, None, 2, "has no positions"),
    ("zero-equity", "plan", [], {"equity": 0.0}, None, None, 2, "zero, negative or missing equity_balance: alpha"),
    ("negative-equity", "plan", [], {"equity": -5.0}, None, None, 2, "zero, negative or missing equity_balance: alpha"),
    ("nan-price", "market-data", STEP_ARGS, {}, "nan", None, 2, "invalid price row"),
    ("zero-price", "market-data", STEP_ARGS, {}, "zero", None, 2, "invalid price row"),
    ("negative-price", "market-data", STEP_ARGS, {}, "negative", None, 2, "invalid price row"),
    ("duplicate-prices", "cli", [], {}, "duplicate", None, 2, "duplicate rows for"),
    ("truncated-csv", "market-data", STEP_ARGS, {}, "truncated", None, 2, "prices.csv"),
    ("unknown-symbol", "market-data", STEP_ARGS, {"extra_symbol": "ZZZZ"}, None, None, 2,
     "no price data at all from file for position symbol(s) ZZZZ"),
    ("corrupt-price-cache", "symbol-factors", [*STEP_ARGS, "--price-cache", "{tmp}/bad.parquet"], {}, None, None, 2,
     "is corrupt or not a sigmabatch snapshot"),
    ("bad-setting", "plan", [], {}, None, {"SIGMABATCH_LOG_FORMAT": "xml"}, 2,
     "SIGMABATCH_LOG_FORMAT='xml' must be text or json"),
    ("unreachable-db", "cli", [], {}, None, {"SIGMABATCH_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/test"},
     1, "database unreachable"),
]


def run_step(step, args, env, monkeypatch, capsys):
    """Run one phase entrypoint in-process (the same ``main`` the container runs)."""
    import importlib

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    module = importlib.import_module(f"phases.{step.replace('-', '_')}")
    code = module.main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("case", "entry", "args", "setup", "mutation", "env", "code", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, prices_csv, monkeypatch, capsys, case, entry, args, setup, mutation, env, code, message):
    url, engine, data = make_db(tmp_path, corrupt(prices_csv, mutation) if mutation else prices_csv, **setup)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 truncated")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = data_counts(engine)
    if entry == "cli":
        proc = run_cli(tmp_path, url, data, *args, env_extra=env)
        rc, out = proc.returncode, proc.stdout + proc.stderr
    else:
        base = {"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / "art"),
                "SIGMABATCH_PROVIDER": f"file:{data}", "SIGMABATCH_NOW": NOW}
        rc, out = run_step(entry, args, {**base, **(env or {})}, monkeypatch, capsys)
    assert rc == code, out[-3000:]
    assert message in out, out[-3000:]
    after = data_counts(engine)
    if entry == "cli" and (mutation or setup.get("extra_symbol")):
        before = {k: v for k, v in before.items() if k not in REFERENCE_DATA}
        after = {k: v for k, v in after.items() if k not in REFERENCE_DATA}
    assert after == before, "a bad input must not write anything"
