"""The price-cache snapshot: one Parquet file of closes that phase 1 writes and later phases read.

Long layout ``date, symbol, close`` (sorted), with the covered range in the file's metadata. Readers get a
wide frame on the NYSE session grid (sessions × symbols, NaN where a symbol has no close), which is what
the vectorized kernels take. In Argo the file travels between steps as an S3 artifact; locally the
runner passes its path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared import calendar
from shared.errors import BadInputError

META_KEY = b"sigmabatch"


@dataclass(frozen=True)
class PriceCache:
    """Closes for a set of symbols over ``[start, end]``."""

    start: date
    end: date
    long: pd.DataFrame  # date (datetime64), symbol, close

    @property
    def symbols(self) -> list[str]:
        return sorted(self.long["symbol"].unique().tolist())

    def wide(self, symbols: list[str] | None = None, start: date | None = None) -> pd.DataFrame:
        """Closes as a sessions × symbols frame over ``[start or self.start, self.end]``.

        Columns are the cached symbols in sorted order (or ``symbols``, in their order, NaN for unknown
        ones); a close dated off the session grid is dropped. The same frame as ``pivot`` + ``reindex``,
        built by one scatter into a (sessions × symbols) array (~7x faster for 10,000 symbols × a year).
        """
        idx = calendar.session_index(start or self.start, self.end).rename("date")
        frame = self.long
        if symbols is not None:
            frame = frame[frame["symbol"].isin(symbols)]
        codes, names = pd.factorize(frame["symbol"], sort=True)
        rows = idx.get_indexer(frame["date"])
        on_grid = rows >= 0
        cell = (rows.astype(np.int64) * len(names) + codes)[on_grid]
        if len(cell) and np.bincount(cell).max() > 1:
            raise ValueError("price cache holds a (date, symbol) twice")
        values = np.full(len(idx) * len(names), np.nan)
        values[cell] = frame["close"].to_numpy(dtype="float64")[on_grid]
        wide = pd.DataFrame(values.reshape(len(idx), len(names)), index=idx,
                            columns=pd.Index(names, name="symbol"))
        if symbols is not None:
            wide = wide.reindex(columns=list(symbols))
            wide.columns.name = "symbol"
        return wide


#: The snapshot's columns (the long layout the readers take).
SCHEMA = pa.schema([("date", pa.timestamp("ms")), ("symbol", pa.large_string()), ("close", pa.float64())])


class PriceCacheWriter:
    """Writes a snapshot part by part (bounded memory for many symbols × a long window).

    Parts are appended in symbol order (each part's symbols after the previous part's); each is sorted by
    (symbol, date), so the file holds the same rows in the same order as one :func:`write_price_cache`
    of the whole frame. The file appears at ``path`` (atomically) on :meth:`close`; :meth:`abort` leaves
    nothing behind.
    """

    def __init__(self, path: str | Path, start: date, end: date):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start, self.end = start, end
        self.rows = 0
        self._symbols: set[str] = set()
        self._tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self._writer = pq.ParquetWriter(self._tmp, SCHEMA, compression="zstd")

    def append(self, prices: pd.DataFrame) -> None:
        frame = prices[["date", "symbol", "close"]].copy()
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ms]")
        frame["symbol"] = frame["symbol"].astype(str)
        frame["close"] = frame["close"].astype("float64")
        frame = frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
        if frame.empty:
            return
        self._writer.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False))
        self.rows += len(frame)
        self._symbols.update(frame["symbol"].unique().tolist())

    def close(self) -> Path:
        meta = {"start": self.start.isoformat(), "end": self.end.isoformat(), "rows": self.rows,
                "symbols": len(self._symbols)}
        self._writer.add_key_value_metadata({META_KEY: json.dumps(meta).encode()})
        self._writer.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_price_cache(path: str | Path, prices: pd.DataFrame, start: date, end: date) -> Path:
    """Write ``prices`` (long: date, symbol, close) atomically to ``path``; returns the path."""
    writer = PriceCacheWriter(path, start, end)
    try:
        writer.append(prices)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def read_price_cache(path: str | Path) -> PriceCache:
    """Read a snapshot; a missing or corrupt file raises :class:`BadInputError` naming it."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"price cache {path} does not exist (run phase market-data first, or pass --price-cache)")
    try:
        table = pq.read_table(path)
        # the file's key-value metadata (a snapshot written part by part has it there, not in the schema)
        meta = json.loads((pq.read_metadata(path).metadata or {})[META_KEY])
        frame = table.to_pandas()
    except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
        raise BadInputError(f"price cache {path} is corrupt or not a sigmabatch snapshot: {exc}") from None
    missing = {"date", "symbol", "close"} - set(frame.columns)
    if missing:
        raise BadInputError(f"price cache {path} lacks columns {sorted(missing)}")
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return PriceCache(date.fromisoformat(meta["start"]), date.fromisoformat(meta["end"]), frame)
