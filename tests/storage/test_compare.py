"""shared.storage.compare: what the shard-equality checks (tests and ``python -m bench --shard-equality``) call equal."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import text

from shared.storage.compare import differences, max_relative_difference, relative_difference, table_rows
from shared.storage.db import get_engine, migrate


def _tables(beta: float = 0.25, label: str = "x", impacts: str = '{"SPY": -1000.0, "TLT": 5.0}',
            rows: int = 3) -> dict[str, pd.DataFrame]:
    return {"t": pd.DataFrame({"symbol": ["A", "B", "C"][:rows], "beta": [beta, 2.0, None][:rows],
                               "label": [label, "y", "z"][:rows], "impacts": [impacts, None, "[]"][:rows]})}


def test_equal_tables_have_no_difference():
    assert differences(_tables(), _tables(), rel=0.0) == []
    assert max_relative_difference(_tables(), _tables()) == (0.0, "")


def test_numbers_within_the_tolerance_agree_and_beyond_it_differ():
    near = _tables(beta=0.25 * (1 + 1e-13))
    assert differences(_tables(), near) == []
    assert differences(_tables(), near, rel=0.0) != []
    worst, where = max_relative_difference(_tables(), near)
    assert where == "t.beta" and worst == pytest.approx(1e-13, rel=1e-2)
    far = differences(_tables(), _tables(beta=0.25 * (1 + 1e-10)))
    assert len(far) == 1 and far[0].startswith("t.beta: 1 of 3 rows differ") and "'symbol': 'A'" in far[0]


def test_texts_counts_and_json_are_compared():
    assert differences(_tables(), _tables(label="w")) == ["t.label: 1 of 3 rows differ, e.g. 'x' vs 'w' ({'symbol': 'A'})"]
    assert differences(_tables(), _tables(rows=2)) == ["t: 3 rows vs 2"]
    # a JSON dict's numbers are judged against the dict's largest |value|: 5 vs 5 + 1e-10 is 1e-13 of 1000
    assert differences(_tables(), _tables(impacts='{"SPY": -1000.0, "TLT": 5.0000000001}')) == []
    assert differences(_tables(), _tables(impacts='{"SPY": -1000.0, "TLT": 5.1}')) != []
    assert differences(_tables(), _tables(impacts='{"SPY": -1000.0}')) != []


def test_relative_difference_of_missing_and_special_values():
    assert relative_difference(None, math.nan) == 0.0
    assert relative_difference(None, 0.0) == math.inf
    assert relative_difference(math.inf, math.inf) == 0.0
    assert relative_difference(1.0, math.inf) == math.inf
    assert relative_difference(True, 1.5) == math.inf
    assert relative_difference(2.0, 1.0) == 0.5


def test_table_rows_drops_run_metadata_and_orders_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    eng = get_engine(url)
    migrate(eng)
    with eng.begin() as c:
        for pid in ("p2", "p1"):
            c.execute(text("insert into portfolios (id, name, currency, equity_balance, is_active, created_at) "
                           "values (:i, :i, 'USD', 1.0, 1, '2026-01-01')"), {"i": pid})
        c.execute(text("insert into batch_run_history (run_id, triggered_by, status, started_at) values ('r', 'manual', 'running', '2026-01-01')"))
    rows = table_rows(url)
    assert "batch_run_history" not in rows and list(rows["portfolios"]["id"]) == ["p1", "p2"]
    assert not {"created_at", "run_id"} & set(rows["portfolios"].columns)
