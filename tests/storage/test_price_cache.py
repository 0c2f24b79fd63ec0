"""The price-cache snapshot read back compactly equals the long frame written, pivoted by pandas."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from shared import calendar
from shared.errors import BadInputError
from shared.storage import price_cache as pc


def _long(symbols: list[str], start: date, end: date, seed: int) -> pd.DataFrame:
    idx = calendar.session_index(start, end)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"date": np.repeat(idx.values, len(symbols)),
                          "symbol": np.tile(np.array(symbols, dtype=object), len(idx)),
                          "close": rng.uniform(1, 100, len(idx) * len(symbols))})
    return frame.sample(frac=0.9, random_state=seed)  # holes: some (date, symbol) without a close


def test_read_in_batches_equals_pandas_pivot(tmp_path, monkeypatch):
    start, end = date(2026, 1, 2), date(2026, 3, 31)
    parts = [_long(["AAA", "ABC"], start, end, 1), _long(["BRK.B", "MSFT"], start, end, 2),
             _long(["ZZZ"], start, end, 3)]
    writer = pc.PriceCacheWriter(tmp_path / "p.parquet", start, end)
    for part in parts:                       # a row group each, with its own symbol dictionary
        writer.append(part)
    writer.close()
    monkeypatch.setattr(pc, "READ_BATCH_ROWS", 37)    # batches straddle row groups and symbols
    cache = pc.read_price_cache(tmp_path / "p.parquet")
    long = pd.concat(parts)
    expect = (long.assign(date=pd.to_datetime(long["date"])).pivot(index="date", columns="symbol", values="close")
              .reindex(calendar.session_index(start, end)))
    assert cache.symbols == ["AAA", "ABC", "BRK.B", "MSFT", "ZZZ"]
    got = cache.wide()
    np.testing.assert_array_equal(got.to_numpy(), expect.to_numpy())
    assert got.columns.tolist() == expect.columns.tolist() and got.columns.name == "symbol"
    sub = cache.wide(["MSFT", "NOPE", "AAA"], start=date(2026, 2, 2))
    np.testing.assert_array_equal(sub.to_numpy(), expect.loc["2026-02-02":, ["MSFT", "AAA"]]
                                  .reindex(columns=["MSFT", "NOPE", "AAA"]).to_numpy())
    back = cache.long.sort_values(["symbol", "date"]).reset_index(drop=True)
    ref = long.assign(date=pd.to_datetime(long["date"])).sort_values(["symbol", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, ref, check_dtype=False)


def test_empty_and_corrupt(tmp_path):
    path = pc.write_price_cache(tmp_path / "e.parquet", pd.DataFrame(columns=["date", "symbol", "close"]),
                                date(2026, 1, 2), date(2026, 1, 9))
    cache = pc.read_price_cache(path)
    assert cache.symbols == [] and cache.wide().shape == (6, 0)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BadInputError, match="corrupt"):
        pc.read_price_cache(tmp_path / "bad.parquet")
