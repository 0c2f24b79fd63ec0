"""Risk steps split long ranges into chunks of sessions (``RunRange.chunks``, ``chunk_sessions``)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import text

from shared import calendar
from shared.planning import RunRange


def _range(n: int) -> RunRange:
    sessions = tuple(calendar.sessions(date(2026, 1, 2), date(2026, 12, 31))[:n])
    return RunRange(sessions[0], sessions[-1], sessions, detected=False)


@pytest.mark.parametrize(("n", "size", "sizes"), [(60, 8, [8] * 7 + [4]), (5, 8, [5]), (3, 1, [1, 1, 1]),
                                                  (4, 0, [1, 1, 1, 1])])
def test_chunks_cover_the_sessions_in_order(n, size, sizes):
    rng = _range(n)
    chunks = rng.chunks(size)
    assert [len(c.sessions) for c in chunks] == sizes
    assert tuple(d for c in chunks for d in c.sessions) == rng.sessions
    assert all(c.start == c.sessions[0] and c.end == c.sessions[-1] for c in chunks)


def test_the_chunk_size_is_the_portfolio_date_budget_over_the_portfolios(monkeypatch):
    from phases import _runtime
    from shared.settings import Settings

    class Ctx:
        settings = Settings.from_env({"SIGMABATCH_CHUNK_PORTFOLIO_DATES": "20000"})
        portfolio_id = "p1"
        portfolio_scope = ["p1"]

    assert _runtime.chunk_sessions(Ctx()) == 20000  # one portfolio
    Ctx.portfolio_scope = [f"p{i}" for i in range(500)]  # a shard's portfolios
    assert _runtime.chunk_sessions(Ctx()) == 40
    Ctx.portfolio_id = Ctx.portfolio_scope = None
    monkeypatch.setattr("shared.storage.repository.load_portfolios", lambda s: range(3000))
    Ctx.transaction = lambda self: _Null()
    assert _runtime.chunk_sessions(Ctx()) == 6
    monkeypatch.setattr("shared.storage.repository.load_portfolios", lambda s: range(30000))
    assert _runtime.chunk_sessions(Ctx()) == 1


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _market_data_run(tmp_path, monkeypatch, capsys, name: str, chunk: str) -> tuple[pd.DataFrame, dict, object]:
    """market-data over 2026-10-01..2026-11-27 on a fresh SQLite database: (cache rows, result, snapshot)."""
    import json

    import pyarrow.parquet as pq

    from phases import market_data
    from shared.providers.synthetic import SyntheticMarket
    from shared.storage import models as m
    from shared.storage import repository as repo
    from shared.storage.db import get_engine, migrate, transaction

    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    cache = tmp_path / f"{name}.parquet"
    for k, v in {"SIGMABATCH_DATABASE_URL": url, "SIGMABATCH_ARTIFACTS": str(tmp_path / f"art-{name}"),
                 "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "12",
                 "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00", "SIGMABATCH_CHUNK_SYMBOL_DATES": chunk}.items():
        monkeypatch.setenv(k, v)
    engine = get_engine(url)
    migrate(engine)
    held = SyntheticMarket(12, seed=7, as_of=date(2026, 11, 27)).stock_symbols[:9]
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": f"p{k}", "name": f"p{k}", "equity_balance": 1e6,
                                                    "currency": "USD", "is_active": True} for k in range(4)]))
        repo.upsert(s, m.Position, pd.DataFrame([{"portfolio_id": f"p{k}", "symbol": sym,
                                                  "position_type": "LONG" if k % 2 else "SHORT",
                                                  "quantity": 10.0 + j, "entry_price": 10.0,
                                                  "entry_date": date(2026, 9, 1 + k), "investment_class": "PUBLIC"}
                                                 for k in range(4) for j, sym in enumerate(held[2 * k:2 * k + 3])]),
                    conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    code = market_data.main(["--start-date", "2026-10-01", "--end-date", "2026-11-27", "--price-cache-out", str(cache)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sigmabatch-result: "))
    result = json.loads(line.removeprefix("sigmabatch-result: "))
    assert code == 0, result
    with engine.connect() as c:
        rows = pd.read_sql(text("select * from market_data_cache order by symbol, date"), c)
    engine.dispose()
    return rows.drop(columns=["updated_at", "id"], errors="ignore"), result, pq.read_table(cache)


def _phase_run(tmp_path, monkeypatch, capsys, phase, setting: str, chunk: str, table: str,
               order: str) -> tuple[pd.DataFrame, dict]:
    """``phase`` (a module of ``phases``) over the market-data run above ("whole") with its chunk
    ``setting`` at ``chunk``, from an empty ``table``: the table's rows (run metadata dropped) and the
    phase's result line."""
    import json

    from shared.storage.db import get_engine

    monkeypatch.setenv(setting, chunk)
    engine = get_engine(f"sqlite:///{tmp_path / 'whole.db'}")
    with engine.begin() as c:
        c.execute(text(f"delete from {table}"))
    code = phase.main(["--start-date", "2026-10-01", "--end-date", "2026-11-27",
                       "--price-cache", str(tmp_path / "whole.parquet")])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sigmabatch-result: "))
    result = json.loads(line.removeprefix("sigmabatch-result: "))
    assert code == 0, result
    with engine.connect() as c:
        rows = pd.read_sql(text(f"select * from {table} order by {order}"), c)
    engine.dispose()
    return rows.drop(columns=["id", "run_id", "created_at", "updated_at"], errors="ignore"), result


def _pnl_run(tmp_path, monkeypatch, capsys, chunk: str) -> tuple[pd.DataFrame, dict]:
    from phases import pnl_snapshots

    return _phase_run(tmp_path, monkeypatch, capsys, pnl_snapshots, "SIGMABATCH_CHUNK_PORTFOLIO_DATES", chunk,
                      "portfolio_snapshots", "portfolio_id, snapshot_date")


def test_market_data_in_chunks_of_symbols_writes_the_same_rows_and_snapshot(tmp_path, monkeypatch, capsys):
    """A run split into chunks of symbols (SIGMABATCH_CHUNK_SYMBOL_DATES small) writes the same cache rows
    and the same snapshot (rows, order, types, metadata) as one chunk, and reports the same details."""
    import pyarrow.parquet as pq

    whole_rows, whole, whole_snap = _market_data_run(tmp_path, monkeypatch, capsys, "whole", "100000000")
    part_rows, part, part_snap = _market_data_run(tmp_path, monkeypatch, capsys, "parts", "2000")
    assert whole["details"]["symbol_chunks"] == 1
    assert part["details"]["symbol_chunks"] >= 5  # 4 symbols a chunk
    pd.testing.assert_frame_equal(whole_rows, part_rows)
    assert len(whole_rows) > 1000
    assert whole_snap.schema == part_snap.schema
    assert whole_snap.equals(part_snap)
    meta = [pq.read_metadata(tmp_path / f"{n}.parquet").metadata[b"sigmabatch"] for n in ("whole", "parts")]
    assert meta[0] == meta[1]
    skip = {"symbol_chunks", "price_cache"}
    assert {k: v for k, v in whole["details"].items() if k not in skip} == \
        {k: v for k, v in part["details"].items() if k not in skip}
    assert whole["rows"] == part["rows"] and whole["status"] == part["status"]


def test_pnl_snapshots_in_chunks_of_portfolios_writes_the_same_rows(tmp_path, monkeypatch, capsys):
    """pnl-snapshots split into chunks of portfolios (SIGMABATCH_CHUNK_PORTFOLIO_DATES small) books the same
    snapshots as one chunk: each portfolio's chain is its own."""
    _market_data_run(tmp_path, monkeypatch, capsys, "whole", "100000000")
    whole_rows, whole = _pnl_run(tmp_path, monkeypatch, capsys, "100000000")
    part_rows, part = _pnl_run(tmp_path, monkeypatch, capsys, "40")  # one portfolio a chunk
    assert whole["details"]["portfolio_chunks"] == 1 and part["details"]["portfolio_chunks"] == 4
    # p2, p3 booked every session; p0, p1 hold the synthetic market's late-listed / delisted stocks (stale
    # prices: booked up to the first stale mark, and listed in the details)
    assert {"p2", "p3"} <= set(whole_rows["portfolio_id"]) and len(whole_rows) > 70
    assert set(whole["details"]["not_booked_stale_prices"]) >= {"p0"}
    pd.testing.assert_frame_equal(whole_rows, part_rows)
    skip = {"portfolio_chunks"}
    assert {k: v for k, v in whole["details"].items() if k not in skip} == \
        {k: v for k, v in part["details"].items() if k not in skip}
    assert (whole["rows"], whole["status"], whole["message"]) == (part["rows"], part["status"], part["message"])


def _metrics_run(tmp_path, capsys, monkeypatch, chunk: str) -> tuple[pd.DataFrame, dict]:
    from phases import symbol_metrics

    return _phase_run(tmp_path, monkeypatch, capsys, symbol_metrics, "SIGMABATCH_CHUNK_SYMBOL_DATES", chunk,
                      "symbol_daily_metrics", "symbol, metrics_date")


def test_symbol_metrics_in_chunks_of_sessions_writes_the_same_rows(tmp_path, monkeypatch, capsys):
    """symbol-metrics split into chunks of sessions (SIGMABATCH_CHUNK_SYMBOL_DATES small) writes the same rows
    and details as one chunk."""
    _market_data_run(tmp_path, monkeypatch, capsys, "whole", "100000000")
    whole_rows, whole = _metrics_run(tmp_path, capsys, monkeypatch, "100000000")
    part_rows, part = _metrics_run(tmp_path, capsys, monkeypatch, "100")  # 29 symbols: 3 sessions a chunk
    assert whole["details"]["chunks"] == 1 and part["details"]["chunks"] > 10
    assert len(whole_rows) > 500
    pd.testing.assert_frame_equal(whole_rows, part_rows)
    assert {k: v for k, v in whole["details"].items() if k != "chunks"} == \
        {k: v for k, v in part["details"].items() if k != "chunks"}
