"""Bulk writes for PostgreSQL: frames -> CSV (Arrow, columnar) -> ``COPY`` (psycopg 3).

``repository.upsert``, ``replace`` and ``bulk_update`` come here on PostgreSQL; SQLite keeps the
executemany path. The algorithm:

1. :func:`encode_csv` turns the frame's model columns into CSV bytes with :mod:`pyarrow.csv` (no Python
   loop over rows): dates as ``YYYY-MM-DD``, integer columns rounded (as ``frame_records`` does), JSON
   columns JSON-encoded (orjson), NaN/None as an unquoted empty field (= NULL in ``FORMAT csv``), strings
   always quoted (so ``""`` stays an empty string). Columns the frame lacks but the model gives a Python
   default (``is_active``, ``currency`` …) are filled with it, as a SQLAlchemy INSERT would.
2. ``upsert``: when none of 64 keys sampled from the frame is stored, a plain COPY into the table in a
   savepoint (new rows: a backfill); else, or when that COPY meets a stored key after all, COPY into a
   temporary table with just those columns, then one ``INSERT … SELECT … ON CONFLICT (key) DO UPDATE``. When the frame repeats a key (PostgreSQL refuses to
   update a row twice in one statement) the merge is redone, inside a savepoint, over
   ``DISTINCT ON (key) … ORDER BY ctid DESC``: the last row of the frame wins, as with executemany.
3. ``insert`` (for ``replace``, after its DELETE): COPY straight into the table.
4. ``update``: COPY into a temporary table and one ``UPDATE … FROM`` on the primary key.

Every call adds its wall time and row count to :data:`STATS` (per table), which the phase runtime
reports, so the benchmark can compare the phases' write time with a bare COPY of the same bytes
(:func:`copy_floor`, enabled by ``SIGMABATCH_BENCH_COPY_FLOOR=1``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer
from sqlalchemy.orm import Session

from shared.storage import jsontext
from shared.storage import models as m

#: table -> {"rows", "seconds", "serialize_seconds", "floor_seconds", "calls", "direct" (upserts COPYed straight
#: in), "retried" (upserts whose direct COPY met a stored key)}; reset per process.
STATS: dict[str, dict[str, float]] = {}
FLOOR_ENV = "SIGMABATCH_BENCH_COPY_FLOOR"
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=65536)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _stat(table: str, **add: float) -> None:
    s = STATS.setdefault(table, {"rows": 0, "seconds": 0.0, "serialize_seconds": 0.0, "floor_seconds": 0.0,
                                 "calls": 0, "direct": 0, "retried": 0})
    for k, v in add.items():
        s[k] += v


def stats_summary() -> dict[str, Any]:
    """Totals over every table written by this process (for the phase result line)."""
    if not STATS:
        return {}
    tot = {k: sum(s[k] for s in STATS.values()) for k in ("rows", "seconds", "serialize_seconds", "floor_seconds",
                                                           "calls")}
    return {"total": {k: round(v, 4) if isinstance(v, float) else int(v) for k, v in tot.items()},
            "tables": {t: {k: round(v, 4) if isinstance(v, float) else int(v) for k, v in s.items()}
                       for t, s in STATS.items()}}


# --- encoding -----------------------------------------------------------------------------------

def _json_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return jsontext.dumps(value)


def _arrow_column(col, s: pd.Series) -> pa.Array:
    t = col.type
    if isinstance(t, JSON):
        # rows often share one dict object (e.g. per-scenario metadata): encode each object once
        memo: dict[int, str | None] = {}
        vals = s.to_numpy(dtype=object)
        out = []
        for v in vals:
            k = id(v)
            if k not in memo:
                memo[k] = _json_text(v)
            out.append(memo[k])
        return pa.array(out, type=pa.string())
    if isinstance(t, Boolean):
        if s.dtype == object:
            return pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else bool(v)
                             for v in s], type=pa.bool_())
        return pa.array(s, from_pandas=True).cast(pa.bool_())
    if isinstance(t, Integer):
        if s.dtype.kind == "f":
            return pa.array(np.round(s.to_numpy()), from_pandas=True).cast(pa.int64(), safe=False)
        return pa.array(s, from_pandas=True).cast(pa.int64())
    if isinstance(t, Float):
        return pa.array(s.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
    if isinstance(t, Date):
        if s.dtype.kind == "M":
            return pa.array(s.dt.tz_localize(None) if s.dt.tz is not None else s, from_pandas=True).cast(pa.date32())
        arr = pa.array(s.to_numpy(dtype=object), from_pandas=True)
        if pa.types.is_timestamp(arr.type):
            return arr.cast(pa.date32())
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return pc.strptime(arr, format="%Y-%m-%d", unit="s").cast(pa.date32())
        return arr.cast(pa.date32())
    if isinstance(t, DateTime):
        if s.dtype == object:
            vals = [None if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
                    else (v.isoformat() if isinstance(v, datetime | date) else str(v)) for v in s]
            return pa.array(vals, type=pa.string())
        return pa.array(s, from_pandas=True)
    arr = pa.array(s.to_numpy(dtype=object) if s.dtype == object else s, from_pandas=True)
    return arr if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else arr.cast(pa.string())


def model_columns(model: type[m.Base], frame: pd.DataFrame, defaults: bool = True) -> tuple[list, pd.DataFrame]:
    """The model's columns present in ``frame`` (plus, for inserts, absent ones with a Python scalar
    default)."""
    table = model.__table__
    cols = [c for c in table.columns if c.name in frame.columns]
    extra = {c.name: c.default.arg for c in table.columns
             if defaults and c.name not in frame.columns and c.default is not None
             and getattr(c.default, "is_scalar", False)}
    if extra:
        frame = frame.assign(**extra)
        cols = [c for c in table.columns if c.name in frame.columns]
    return cols, frame


def _arrow_table(model: type[m.Base], frame: pd.DataFrame, defaults: bool = True) -> pa.Table:
    """``frame``'s model columns as an Arrow table of the types :func:`encode_csv` writes."""
    cols, frame = model_columns(model, frame, defaults)
    return pa.Table.from_arrays([_arrow_column(c, frame[c.name]) for c in cols], names=[c.name for c in cols])


def _csv_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, _CSV)
    return sink.getvalue().to_pybytes()


def encode_csv(model: type[m.Base], frame: pd.DataFrame, defaults: bool = True) -> tuple[list[str], bytes]:
    """(column names, CSV bytes) of ``frame``'s model columns, ready for ``COPY … (FORMAT csv)``."""
    table = _arrow_table(model, frame, defaults)
    return table.column_names, _csv_bytes(table)


# --- COPY ---------------------------------------------------------------------------------------

def _raw(session: Session):
    return session.connection().connection.driver_connection


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy(cur, table: str, names: Sequence[str], data: bytes) -> None:
    sql = f"COPY {table} ({', '.join(map(_q, names))}) FROM STDIN (FORMAT csv)"
    with cur.copy(sql) as cp:
        step = 8 << 20
        for i in range(0, len(data), step):
            cp.write(data[i:i + step])


def _temp(cur, model: type[m.Base], names: Sequence[str]) -> str:
    tmp = f"_bulk_{uuid.uuid4().hex[:12]}"
    cur.execute(f"CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {', '.join(map(_q, names))} "
                f"FROM {_q(model.__table__.name)} WITH NO DATA")
    return tmp


def copy_floor(session: Session, model: type[m.Base], names: Sequence[str], data: bytes) -> float:
    """Seconds a bare COPY of ``data`` takes into a new, empty, logged table with the same columns (no
    index, no constraint): the floor a write of the same rows can be compared with. Leaves nothing."""
    raw = _raw(session)
    with raw.cursor() as cur:
        cur.execute("SAVEPOINT sb_floor")
        tmp = f"_floor_{uuid.uuid4().hex[:12]}"
        cur.execute(f"CREATE TABLE {tmp} AS SELECT {', '.join(map(_q, names))} FROM {_q(model.__table__.name)} "
                    "WITH NO DATA")
        t0 = time.perf_counter()
        _copy(cur, tmp, names, data)
        dt = time.perf_counter() - t0
        cur.execute("ROLLBACK TO SAVEPOINT sb_floor")
        cur.execute("RELEASE SAVEPOINT sb_floor")
    return dt


def _finish(session, model, names, data, t0, t_ser, n) -> int:
    dt = time.perf_counter() - t0
    floor = copy_floor(session, model, names, data) if os.environ.get(FLOOR_ENV) == "1" else 0.0
    _stat(model.__table__.name, rows=n, seconds=dt, serialize_seconds=t_ser, floor_seconds=floor, calls=1)
    return n


#: Rows of an upsert's frame whose keys are looked up before it is tried as a plain COPY.
PROBE_ROWS = 64


def _any_stored(cur, target: str, keys: Sequence[str], table: pa.Table) -> bool:
    """Whether any of up to :data:`PROBE_ROWS` rows spread evenly over ``table`` has its key in ``target``
    already (one indexed lookup each)."""
    n = table.num_rows
    take = pa.array(sorted({int(i) for i in np.linspace(0, n - 1, min(n, PROBE_ROWS))}), type=pa.int64())
    rows = list(zip(*(table.column(k).take(take).to_pylist() for k in keys), strict=True))
    one = "(" + ", ".join(["%s"] * len(keys)) + ")"
    cur.execute(f"SELECT 1 FROM {target} WHERE ({', '.join(map(_q, keys))}) IN ({', '.join([one] * len(rows))}) "
                "LIMIT 1", [v for row in rows for v in row])
    return cur.fetchone() is not None


def upsert(session: Session, model: type[m.Base], frame: pd.DataFrame, keys: Sequence[str], *,
           update: bool = True) -> int:
    """Insert the rows, or update (``update=False``: leave) those whose key is stored.

    New keys (a backfill into empty sessions: no sampled key is stored) are COPYed straight into the
    table, as an insert is, inside a savepoint; if a key turns out to be stored after all (or repeated in
    the frame) the COPY fails on the unique index, is rolled back to the savepoint, and the rows are merged:
    COPY into a temporary table and one ``INSERT … SELECT … ON CONFLICT``. Either way the same rows end up
    stored; the plain COPY skips the temporary table and the per-row conflict handling (0.6x the time of
    the merge for the M backfill's price cache, docs/performance.md)."""
    t0 = time.perf_counter()
    table = _arrow_table(model, frame)
    names = table.column_names
    data = _csv_bytes(table)
    t_ser = time.perf_counter() - t0
    target = _q(model.__table__.name)
    cols = ", ".join(map(_q, names))
    non_keys = [c for c in names if c not in keys]
    conflict = f"ON CONFLICT ({', '.join(map(_q, keys))}) "
    conflict += ("DO UPDATE SET " + ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in non_keys)
                 if update and non_keys else "DO NOTHING")
    raw = _raw(session)
    with raw.cursor() as cur:
        if not _any_stored(cur, target, keys, table):
            cur.execute("SAVEPOINT sb_direct")
            try:
                _copy(cur, target, names, data)
            except Exception as exc:  # a key stored (or repeated in the frame) after all: merge instead
                if getattr(exc, "sqlstate", None) != "23505":
                    raise
                cur.execute("ROLLBACK TO SAVEPOINT sb_direct")
                _stat(model.__table__.name, retried=1)
            else:
                cur.execute("RELEASE SAVEPOINT sb_direct")
                _stat(model.__table__.name, direct=1)
                return _finish(session, model, names, data, t0, t_ser, len(frame))
        tmp = _temp(cur, model, names)
        _copy(cur, tmp, names, data)
        cur.execute("SAVEPOINT sb_merge")
        try:
            cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {tmp} {conflict}")
            cur.execute("RELEASE SAVEPOINT sb_merge")
        except Exception as exc:  # a key repeated within the frame: keep its last row
            if getattr(exc, "sqlstate", None) != "21000":
                raise
            cur.execute("ROLLBACK TO SAVEPOINT sb_merge")
            cur.execute(f"INSERT INTO {target} ({cols}) SELECT DISTINCT ON ({', '.join(map(_q, keys))}) {cols} "
                        f"FROM {tmp} ORDER BY {', '.join(map(_q, keys))}, ctid DESC {conflict}")
        cur.execute(f"DROP TABLE {tmp}")
    return _finish(session, model, names, data, t0, t_ser, len(frame))


def insert(session: Session, model: type[m.Base], frame: pd.DataFrame) -> int:
    t0 = time.perf_counter()
    names, data = encode_csv(model, frame)
    t_ser = time.perf_counter() - t0
    with _raw(session).cursor() as cur:
        _copy(cur, _q(model.__table__.name), names, data)
    return _finish(session, model, names, data, t0, t_ser, len(frame))


def update(session: Session, model: type[m.Base], frame: pd.DataFrame, *, as_of: str | None = None) -> int:
    """UPDATE rows by primary key with the frame's other model columns (rows without a match: ignored).

    ``as_of``: a date column; rows whose stored value is later than the new one are left alone."""
    t0 = time.perf_counter()
    names, data = encode_csv(model, frame, defaults=False)
    t_ser = time.perf_counter() - t0
    keys = [c.name for c in model.__table__.primary_key.columns]
    missing = [k for k in keys if k not in names]
    if missing:
        raise ValueError(f"{model.__table__.name}: frame lacks key columns {missing}")
    sets = [c for c in names if c not in keys]
    if not sets:
        return 0
    with _raw(session).cursor() as cur:
        tmp = _temp(cur, model, names)
        _copy(cur, tmp, names, data)
        cur.execute(f"UPDATE {_q(model.__table__.name)} AS t SET "
                    + ", ".join(f"{_q(c)} = s.{_q(c)}" for c in sets)
                    + f" FROM {tmp} AS s WHERE " + " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in keys)
                    + (f" AND (t.{_q(as_of)} IS NULL OR t.{_q(as_of)} <= s.{_q(as_of)})" if as_of else ""))
        cur.execute(f"DROP TABLE {tmp}")
    return _finish(session, model, names, data, t0, t_ser, len(frame))


# --- reads --------------------------------------------------------------------------------------

_ARROW_READ = {DateTime: pa.timestamp("us", tz="UTC"), Date: pa.date32(), Float: pa.float64(),
               Integer: pa.int64(), Boolean: pa.bool_()}


def _read_type(t) -> pa.DataType | None:
    for sa_type, arrow in _ARROW_READ.items():
        if isinstance(t, sa_type):
            return arrow
    from sqlalchemy import String, Text

    if isinstance(t, String | Text) and not isinstance(t, JSON):
        return pa.string()
    return None


def copy_readable(stmt) -> bool:
    """Whether every selected column has a type the COPY reader maps (dates, numbers, text, booleans)."""
    try:
        return all(_read_type(c.type) is not None for c in stmt.selected_columns)
    except AttributeError:
        return False


READ_CHUNK_ROWS = 200_000


def _csv_field(name: str, arrow: pa.DataType) -> str:
    col = f"q.{_q(name)}"
    if arrow == pa.string():
        return f"""coalesce('"' || replace({col}, '"', '""') || '"', '')"""
    return f"coalesce({col}::text, '')"


def read_frame(session: Session, stmt) -> pd.DataFrame:
    """A select as a DataFrame without a Python object per value: the server renders each row as one
    CSV line, a server-side cursor hands them over in chunks of :data:`READ_CHUNK_ROWS`, and Arrow
    parses the text column-wise.

    The same frame ``repository.read_frame`` builds from fetched rows (dates as ``datetime.date``
    objects, NULL -> NaN/None). (``COPY … TO STDOUT`` would do too, but psycopg hands COPY data over
    one row at a time through Python generators, which measured 5x slower here.)
    """
    from sqlalchemy.dialects import postgresql

    cols = list(stmt.selected_columns)
    names = [c.key for c in cols]
    types = {n: _read_type(c.type) for n, c in zip(names, cols, strict=True)}
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    line = " || ',' || ".join(_csv_field(n, types[n]) for n in names)
    chunks: list[bytes] = []
    with _raw(session).cursor(name=f"sb_read_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = READ_CHUNK_ROWS
        cur.execute(f"SELECT {line} FROM ({sql}) AS q".replace("%", "%%"))
        while rows := cur.fetchmany(READ_CHUNK_ROWS):
            chunks.append("\n".join(r[0] for r in rows).encode())
    if not chunks:
        return pd.DataFrame({n: pd.Series(dtype=object if types[n] in (pa.date32(), pa.string()) else
                                          types[n].to_pandas_dtype()) for n in names})
    table = pacsv.read_csv(
        pa.py_buffer(b"\n".join(chunks) + b"\n"),
        read_options=pacsv.ReadOptions(column_names=names, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                             quoted_strings_can_be_null=False, null_values=[""],
                                             true_values=["true", "t"], false_values=["false", "f"]),
    )
    return table.to_pandas(date_as_object=True)
