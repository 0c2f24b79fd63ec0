"""The only module with queries: bulk idempotent upserts and loaders that return DataFrames.

Writes take tidy frames whose columns are the table's columns. ``upsert`` is ``INSERT … ON CONFLICT
(primary key) DO UPDATE`` on both SQLite and PostgreSQL (SQLite: executemany in chunks; PostgreSQL: COPY
into a temporary table and one INSERT … SELECT, see :mod:`shared.storage.bulk`); ``replace`` deletes a
scope (e.g. one portfolio and date) and inserts the new rows, for result sets that may shrink. Callers own the
transaction, so a phase can make a whole date all-or-nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, any_, bindparam, delete, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from shared.errors import UnknownReferenceError
from shared.storage import bulk
from shared.storage import models as m

CHUNK = 2000
SQLITE_IN_CHUNK = 10_000  # values per IN list of a SQLite DELETE (its limit: 32,766 variables)

#: Above this many values an IN list is rendered inline (PostgreSQL's protocol takes at most 65,535 bound
#: parameters a statement, SQLite 32,766): the whole-book portfolio lists of an XL book (100,000 ids).
INLINE_IN_ABOVE = 10_000


def _in(column, values: Iterable[Any]):
    """``column IN (values)``; a long list is rendered as literals (quoted by the column's type) instead of
    one bound parameter per value, which both databases cap."""
    values = list(values)
    if len(values) <= INLINE_IN_ABOVE:
        return column.in_(values)
    return column.in_(bindparam(None, values, type_=column.type, expanding=True, literal_execute=True))


# --- conversion helpers -------------------------------------------------------------------------

def _py(value: Any) -> Any:
    """A DB-friendly Python scalar: NaN/NaT -> None, numpy -> Python, Timestamp -> date/datetime."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, dict | list):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def frame_records(model: type[m.Base], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` restricted to the model's columns, with DB-friendly values."""
    table = model.__table__
    cols = [c.name for c in table.columns if c.name in frame.columns]
    date_cols = {c.name for c in table.columns if c.type.python_type is date and c.name in frame.columns}
    int_cols = {c.name for c in table.columns if c.type.python_type is int and c.name in frame.columns}
    out = frame[cols]
    records = []
    for row in out.itertuples(index=False, name=None):
        rec = {}
        for name, value in zip(cols, row, strict=True):
            v = _py(value)
            if name in date_cols and isinstance(v, datetime):
                v = v.date()
            elif name in int_cols and isinstance(v, float):
                v = int(round(v))
            rec[name] = v
        records.append(rec)
    return records


def _writable(model: type) -> None:
    """A view (:class:`shared.storage.models.ViewBase`: rows rebuilt from facts stored once) is read, never
    written: its rows come from the tables it joins."""
    if issubclass(model, m.ViewBase):
        raise TypeError(f"{model.__tablename__} is a view: write the tables it is made of "
                        f"({', '.join(model.__table__.info.get('view_of', {}))}) instead")


def _check_references(session: Session, model: type[m.Base], frame: pd.DataFrame) -> None:
    """Refuse a write whose rows refer to ids missing from their reference table (``models.REFERENCES``:
    the foreign keys that migration 0009 replaced): one query per reference over the distinct ids."""
    for col, (ref, key) in m.REFERENCES.get(model, {}).items():
        if col not in frame.columns:
            continue
        ids = pd.unique(frame[col].dropna())
        if not len(ids):
            continue
        kcol = ref.__table__.c[key]
        known = set(session.scalars(select(kcol).where(kcol.in_(ids.tolist()))))
        missing = sorted({str(v) for v in ids.tolist()} - {str(v) for v in known})
        if missing:
            raise UnknownReferenceError(
                f"{model.__tablename__}.{col}: {len(missing)} id(s) not in {ref.__tablename__}.{key} "
                f"({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}); nothing written")


def _insert(session: Session, model: type[m.Base]):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"upsert is implemented for sqlite and postgresql, not {dialect}")


def upsert(
    session: Session, model: type[m.Base], frame: pd.DataFrame, *, update: bool = True,
    conflict: Sequence[str] | None = None,
) -> int:
    """Insert rows, or update the non-key columns of rows whose key exists. Returns rows sent.

    The key is the primary key, or the columns of a unique constraint given as ``conflict``.
    """
    _writable(model)
    if frame is None or frame.empty:
        return 0
    table = model.__table__
    keys = list(conflict) if conflict else [c.name for c in table.primary_key.columns]
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: frame lacks key columns {missing}")
    _check_references(session, model, frame)
    if bulk.is_postgres(session):
        return bulk.upsert(session, model, frame, keys, update=update)
    records = frame_records(model, frame)
    cols = list(records[0].keys())
    n = 0
    for i in range(0, len(records), CHUNK):
        chunk = records[i : i + CHUNK]
        stmt = _insert(session, model)
        non_keys = [c for c in cols if c not in keys]
        if update and non_keys:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in non_keys})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        session.execute(stmt, chunk)
        n += len(chunk)
    return n


def bulk_update(session: Session, model: type[m.Base], frame: pd.DataFrame, *, as_of: str | None = None) -> int:
    """UPDATE existing rows by primary key with the frame's other columns (ORM bulk update).

    ``as_of`` names a date column of "current state" (e.g. ``market_value_date``): a row is then only
    updated when its stored date is null or not later than the new one, so current state only moves
    forward in time (a backfill of older dates never rolls it back; domain spec decision 13)."""
    _writable(model)
    if frame is None or frame.empty:
        return 0
    from sqlalchemy import bindparam
    from sqlalchemy import update as sa_update

    if bulk.is_postgres(session):
        return bulk.update(session, model, frame, as_of=as_of)
    records = frame_records(model, frame)
    if as_of is None:
        stmt = sa_update(model)
    else:  # core UPDATE … WHERE key = :key AND (date IS NULL OR date <= :new) per record
        t = model.__table__
        keys = [c.name for c in t.primary_key.columns]
        sets = [c for c in records[0] if c not in keys]
        stmt = (sa_update(t).where(*(t.c[k] == bindparam(f"k_{k}") for k in keys),
                                   or_(t.c[as_of].is_(None), t.c[as_of] <= bindparam(f"v_{as_of}")))
                .values({c: bindparam(f"v_{c}") for c in sets}))
        records = [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{c}": r[c] for c in sets}} for r in records]
    for i in range(0, len(records), CHUNK):
        session.execute(stmt, records[i : i + CHUNK])
    return len(records)


def replace_current(session: Session, model: type[m.Base], frame: pd.DataFrame, key: str, as_of: str, *,
                    within: dict[str, Iterable[Any]] | None = None) -> int:
    """Replace the rows of ``frame``'s ``key`` values, except where the stored row is dated later.

    "Current state" keyed by ``key`` (e.g. a position's sector tag dated ``tagged_on``) only moves forward:
    a key whose stored ``as_of`` is later than the new row's keeps its stored row. ``within`` (column ->
    allowed values, e.g. a shard's portfolio ids) bounds what is read and deleted: rows outside it are
    never touched, and the stored dates read are those of the scope, not of the whole table. Returns rows
    written."""
    if frame is None or frame.empty:
        return 0
    t = model.__table__
    within = {col: list(values) for col, values in (within or {}).items()}
    scope = [_in(t.c[col], values) for col, values in within.items()]
    stmt = select(t.c[key], t.c[as_of])
    if len(frame) <= SQLITE_IN_CHUNK:
        stmt = stmt.where(t.c[key].in_(frame[key].tolist()), *scope)
    elif scope:
        stmt = stmt.where(*scope)
    stored = read_frame(session, stmt)
    if not stored.empty:
        newer = stored.set_index(key)[as_of].map(pd.Timestamp)
        when = frame[key].map(newer)
        frame = frame[when.isna().to_numpy() | (when <= pd.to_datetime(frame[as_of])).to_numpy()]
    return replace(session, model, frame, {key: frame[key].tolist(), **within})


def replace(session: Session, model: type[m.Base], frame: pd.DataFrame, scope: dict[str, Iterable[Any]]) -> int:
    """Delete the rows matching ``scope`` (column -> allowed values) and insert ``frame``."""
    delete_where(session, model, scope)
    return insert(session, model, frame)


def insert(session: Session, model: type[m.Base], frame: pd.DataFrame) -> int:
    """Insert the rows of ``frame`` (new rows: a key that exists is an error). Returns rows written."""
    _writable(model)
    if frame is None or frame.empty:
        return 0
    _check_references(session, model, frame)
    if bulk.is_postgres(session):
        return bulk.insert(session, model, frame)
    session.execute(_insert(session, model), frame_records(model, frame))
    return len(frame)


def delete_where(session: Session, model: type[m.Base], scope: dict[str, Iterable[Any]], *, where=None) -> int:
    """Delete the rows whose every ``scope`` column is one of its values (nothing if a list is empty) and,
    when given, that satisfy the extra condition ``where``.

    On PostgreSQL each list is one array parameter (``col = ANY(:array)``), not one bind parameter per
    value: with 10,000 portfolios that saves ~0.1-0.2 s of statement building per call."""
    _writable(model)
    table = model.__table__
    scope = {col: list(values) for col, values in scope.items()}
    if not scope or any(not values for values in scope.values()):
        return 0
    extra = [] if where is None else [where]
    if bulk.is_postgres(session):
        conds = [table.c[col] == any_(literal(values, ARRAY(table.c[col].type))) for col, values in scope.items()]
        return session.execute(delete(table).where(and_(*conds, *extra))).rowcount or 0
    # SQLite binds one variable per value (at most 32,766 per statement): the longest list goes in chunks
    longest = max(scope, key=lambda col: len(scope[col]))
    others = [table.c[col].in_(values) for col, values in scope.items() if col != longest]
    n = 0
    for i in range(0, len(scope[longest]), SQLITE_IN_CHUNK):
        chunk = table.c[longest].in_(scope[longest][i:i + SQLITE_IN_CHUNK])
        n += session.execute(delete(table).where(and_(chunk, *others, *extra))).rowcount or 0
    return n


def delete_before(session: Session, model: type[m.Base], date_column: str, before: date,
                  scope: dict[str, Iterable[Any]]) -> int:
    """Delete the rows dated strictly before ``before`` whose ``scope`` columns match (retention)."""
    return delete_where(session, model, scope, where=model.__table__.c[date_column] < before)


def delete_dated_before(session: Session, model: type[m.Base], date_column: str, before: date) -> int:
    """Delete every row dated strictly before ``before`` (retention by a rule on the date, every portfolio
    and symbol): one ``DELETE … WHERE date_column < :before``, a range scan of an index that starts with
    the date (the key of ``pairwise_correlations``, a date index elsewhere: migration 0008)."""
    _writable(model)
    table = model.__table__
    return session.execute(delete(table).where(table.c[date_column] < before)).rowcount or 0


def read_frame(session: Session, stmt) -> pd.DataFrame:
    """Run a select and return a DataFrame (column names from the select).

    On PostgreSQL a select of plain columns (dates, numbers, text, booleans) is streamed with
    ``COPY … TO STDOUT`` and parsed column-wise (:func:`shared.storage.bulk.read_frame`)."""
    if bulk.is_postgres(session) and bulk.copy_readable(stmt):
        return bulk.read_frame(session, stmt)
    result = session.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# --- portfolios and positions -------------------------------------------------------------------

def load_portfolios(session: Session, portfolio_id: str | None = None, *, active_only: bool = True,
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Portfolios (active ones by default), by id; every column or only ``columns``."""
    t = m.Portfolio.__table__
    stmt = select(t) if columns is None else select(*(t.c[c] for c in columns))
    if active_only:
        stmt = stmt.where(t.c.is_active.is_(True), t.c.deleted_at.is_(None))
    if portfolio_id:
        stmt = stmt.where(t.c.id == portfolio_id)
    return read_frame(session, stmt.order_by(t.c.id))


def load_positions(
    session: Session, portfolio_ids: Sequence[str] | None = None, *, start: date | None = None,
    end: date | None = None, columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Non-deleted positions held at some point in ``[start, end]`` (entry <= end, exit null or > start),
    every column or only ``columns``."""
    t = m.Position.__table__
    stmt = _held_between(select(t) if columns is None else select(*(t.c[c] for c in columns)), portfolio_ids,
                         start, end)
    return read_frame(session, stmt.order_by(t.c.portfolio_id, t.c.id))


def _held_between(stmt, portfolio_ids: Sequence[str] | None, start: date | None, end: date | None):
    """``stmt`` (a select from ``positions``) limited to the non-deleted positions of ``portfolio_ids`` held
    at some point in ``[start, end]`` (entry <= end, exit null or >= start)."""
    t = m.Position.__table__
    stmt = stmt.where(t.c.deleted_at.is_(None))
    if portfolio_ids is not None:
        stmt = stmt.where(_in(t.c.portfolio_id, portfolio_ids))
    if end is not None:
        stmt = stmt.where(t.c.entry_date <= end)
    if start is not None:
        stmt = stmt.where(or_(t.c.exit_date.is_(None), t.c.exit_date >= start))
    return stmt


def load_held_symbols(session: Session, portfolio_ids: Sequence[str] | None = None, *, start: date | None = None,
                      end: date | None = None) -> pd.DataFrame:
    """The distinct (symbol, underlying_symbol, investment_class) of the positions :func:`load_positions`
    selects: one row a symbol and class, never one a position (20,000 rows for an XL book of 2 M positions)."""
    t = m.Position.__table__
    stmt = _held_between(select(t.c.symbol, t.c.underlying_symbol, t.c.investment_class), portfolio_ids, start, end)
    return read_frame(session, stmt.distinct().order_by(t.c.symbol, t.c.underlying_symbol, t.c.investment_class))


def count_positions(session: Session, *, start: date | None = None, end: date | None = None) -> dict[str, int]:
    """Positions per portfolio, counted as :func:`load_positions` selects them (non-deleted, held at some
    point in ``[start, end]``): one row a portfolio read, never one a position."""
    t = m.Position.__table__
    stmt = select(t.c.portfolio_id, func.count().label("n")).where(t.c.deleted_at.is_(None))
    if end is not None:
        stmt = stmt.where(t.c.entry_date <= end)
    if start is not None:
        stmt = stmt.where(or_(t.c.exit_date.is_(None), t.c.exit_date >= start))
    rows = session.execute(stmt.group_by(t.c.portfolio_id)).all()
    return {str(pid): int(n) for pid, n in rows}


def first_entry_dates(session: Session, portfolio_ids: Sequence[str] | None = None) -> pd.Series:
    """Each portfolio's earliest entry date over its non-deleted positions (a Series by portfolio id, only
    portfolios with positions): one row a portfolio read, never one a position."""
    t = m.Position.__table__
    stmt = select(t.c.portfolio_id, func.min(t.c.entry_date).label("entry_date")).where(t.c.deleted_at.is_(None))
    if portfolio_ids is not None:
        stmt = stmt.where(_in(t.c.portfolio_id, portfolio_ids))
    frame = read_frame(session, stmt.group_by(t.c.portfolio_id).order_by(t.c.portfolio_id))
    return frame.set_index("portfolio_id")["entry_date"]


def load_equity_changes(session: Session, portfolio_ids: Sequence[str], start: date, end: date) -> pd.DataFrame:
    t = m.EquityChange.__table__
    stmt = select(t.c.portfolio_id, t.c.change_date, t.c.amount).where(
        t.c.deleted_at.is_(None), _in(t.c.portfolio_id, portfolio_ids), t.c.change_date.between(start, end)
    )
    return read_frame(session, stmt)


# --- prices -------------------------------------------------------------------------------------

def load_prices(session: Session, symbols: Sequence[str] | None, start: date, end: date) -> pd.DataFrame:
    """Long frame [date, symbol, close, volume, data_source] of cached closes (close > 0)."""
    t = m.MarketDataCache.__table__
    stmt = select(t.c.date, t.c.symbol, t.c.close, t.c.volume, t.c.data_source).where(
        t.c.date.between(start, end), t.c.close > 0
    )
    if symbols is not None:
        symbols = list(symbols)
        if not symbols:
            return pd.DataFrame(columns=["date", "symbol", "close", "volume", "data_source"])
        stmt = stmt.where(t.c.symbol.in_(symbols))
    return read_frame(session, stmt.order_by(t.c.symbol, t.c.date))


def price_coverage(session: Session, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
    """Per symbol: first and last cached date in the range and the row count."""
    t = m.MarketDataCache.__table__
    stmt = (
        select(t.c.symbol, func.min(t.c.date).label("first"), func.max(t.c.date).label("last"),
               func.count().label("rows"))
        .where(t.c.symbol.in_(list(symbols)), t.c.date.between(start, end), t.c.close > 0)
        .group_by(t.c.symbol)
    )
    return read_frame(session, stmt)


def delete_prices(session: Session, symbols: Sequence[str], start: date, end: date) -> int:
    """Delete the cached closes of ``symbols`` in ``[start, end]`` (before re-inserting a re-fetched window)."""
    symbols = list(symbols)
    if not symbols:
        return 0
    t = m.MarketDataCache.__table__
    res = session.execute(delete(t).where(t.c.symbol.in_(symbols), t.c.date.between(start, end)))
    return res.rowcount or 0


def cached_symbols(session: Session) -> list[str]:
    t = m.MarketDataCache.__table__
    return [r[0] for r in session.execute(select(t.c.symbol).distinct().order_by(t.c.symbol))]


# --- profiles -----------------------------------------------------------------------------------

def load_profiles(session: Session, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    t = m.CompanyProfile.__table__
    stmt = select(t)
    if symbols is not None:
        stmt = stmt.where(t.c.symbol.in_(list(symbols)))
    return read_frame(session, stmt)


def load_symbol_universe(session: Session, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """``symbol_universe`` rows: of ``symbols``, or every row."""
    t = m.SymbolUniverse.__table__
    stmt = select(t)
    if symbols is not None:
        stmt = stmt.where(_in(t.c.symbol, symbols))
    return read_frame(session, stmt)


# --- snapshots ----------------------------------------------------------------------------------

def snapshot_watermarks(session: Session, portfolio_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per active portfolio: its latest snapshot date (NaT/None when it has none)."""
    p = m.Portfolio.__table__
    s = m.PortfolioSnapshot.__table__
    stmt = (
        select(p.c.id.label("portfolio_id"), func.max(s.c.snapshot_date).label("last_snapshot"))
        .select_from(p.outerjoin(s, s.c.portfolio_id == p.c.id))
        .where(p.c.is_active.is_(True), p.c.deleted_at.is_(None))
        .group_by(p.c.id)
    )
    if portfolio_ids is not None:
        stmt = stmt.where(_in(p.c.id, portfolio_ids))
    return read_frame(session, stmt)


def load_snapshots(
    session: Session, portfolio_ids: Sequence[str] | None, start: date | None, end: date | None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Snapshots in ``[start, end]``, every column or only ``columns`` (without the JSON
    ``sector_exposure`` PostgreSQL streams them through COPY, several times faster)."""
    t = m.PortfolioSnapshot.__table__
    stmt = select(t) if columns is None else select(*(t.c[c] for c in columns))
    if portfolio_ids is not None:
        stmt = stmt.where(_in(t.c.portfolio_id, portfolio_ids))
    if start is not None:
        stmt = stmt.where(t.c.snapshot_date >= start)
    if end is not None:
        stmt = stmt.where(t.c.snapshot_date <= end)
    return read_frame(session, stmt.order_by(t.c.portfolio_id, t.c.snapshot_date))


def latest_snapshots_before(session: Session, portfolio_ids: Sequence[str], before: date) -> pd.DataFrame:
    """For each portfolio, its most recent snapshot strictly before ``before`` (if any)."""
    t = m.PortfolioSnapshot.__table__
    last = (
        select(t.c.portfolio_id, func.max(t.c.snapshot_date).label("d"))
        .where(_in(t.c.portfolio_id, portfolio_ids), t.c.snapshot_date < before)
        .group_by(t.c.portfolio_id)
        .subquery()
    )
    stmt = select(t).join(last, and_(t.c.portfolio_id == last.c.portfolio_id, t.c.snapshot_date == last.c.d))
    return read_frame(session, stmt)


def latest_snapshot_dates_before(session: Session, portfolio_ids: Sequence[str] | None, before: date) -> pd.DataFrame:
    """[portfolio_id, snapshot_date]: each portfolio's latest snapshot date strictly before ``before`` (those
    with one), without reading the snapshots themselves; ``portfolio_ids`` None: every portfolio."""
    t = m.PortfolioSnapshot.__table__
    stmt = select(t.c.portfolio_id, func.max(t.c.snapshot_date).label("snapshot_date")).where(t.c.snapshot_date < before)
    if portfolio_ids is not None:
        stmt = stmt.where(_in(t.c.portfolio_id, portfolio_ids))
    return read_frame(session, stmt.group_by(t.c.portfolio_id))


def largest_portfolios(session: Session, on: date, n: int, *, active_only: bool = True) -> list[str]:
    """The ``n`` portfolios with the highest ``equity_balance`` in their snapshot of ``on`` (snapshots
    without one left out), highest first, ties by portfolio id; only active portfolios by default."""
    t, p = m.PortfolioSnapshot.__table__, m.Portfolio.__table__
    stmt = select(t.c.portfolio_id).where(t.c.snapshot_date == on, t.c.equity_balance.is_not(None))
    if active_only:
        stmt = stmt.join(p, p.c.id == t.c.portfolio_id).where(p.c.is_active.is_(True), p.c.deleted_at.is_(None))
    stmt = stmt.order_by(t.c.equity_balance.desc(), t.c.portfolio_id).limit(n)
    return [str(r[0]) for r in session.execute(stmt)]


# --- factor definitions -------------------------------------------------------------------------

def seed_factor_definitions(session: Session) -> dict[str, int]:
    """Insert the factor definitions if missing; return name -> id."""
    from shared.analytics.factors import FACTOR_DEFINITIONS

    frame = pd.DataFrame(
        [
            {"id": i + 1, "name": f.name, "description": f.description, "factor_type": f.factor_type,
             "calculation_method": f.calculation_method, "etf_proxy": f.etf_proxy,
             "display_order": f.display_order, "is_active": True}
            for i, f in enumerate(FACTOR_DEFINITIONS)
        ]
    )
    upsert(session, m.FactorDefinitionRow, frame)
    return factor_ids(session)


def factor_ids(session: Session) -> dict[str, int]:
    t = m.FactorDefinitionRow.__table__
    return {name: fid for fid, name in session.execute(select(t.c.id, t.c.name))}


# --- run tracking -------------------------------------------------------------------------------

def load_runs(session: Session, limit: int = 20) -> pd.DataFrame:
    t = m.BatchRunHistory.__table__
    return read_frame(session, select(t).order_by(t.c.started_at.desc()).limit(limit))


def load_run_coverage(session: Session, since: date) -> tuple[list[dict], set[tuple[str, str]]]:
    """Runs whose planned range reaches ``since`` or later (run_id, portfolio_id, start_date, end_date), and
    the (run_id, phase) pairs of their phases that finished (ok, partial or skipped)."""
    h, p = m.BatchRunHistory.__table__, m.BatchPhaseRun.__table__
    runs = [dict(r) for r in session.execute(
        select(h.c.run_id, h.c.portfolio_id, h.c.start_date, h.c.end_date)
        .where(h.c.start_date.is_not(None), h.c.end_date >= since)).mappings()]
    ids = [r["run_id"] for r in runs]
    done = set()
    if ids:
        from shared.sharding import split_phase

        finished = ("ok", "partial", "skipped")
        recorded = session.execute(select(p.c.run_id, p.c.phase, p.c.status).where(p.c.run_id.in_(ids))).all()
        shards: dict[tuple[str, str], dict[int, str]] = {}
        counts: dict[tuple[str, str], int] = {}
        for r in recorded:
            step, shard = split_phase(r.phase)
            if shard is None:
                if r.status in finished:
                    done.add((r.run_id, r.phase))
                continue
            shards.setdefault((r.run_id, step), {})[shard.index] = r.status
            counts[(r.run_id, step)] = max(counts.get((r.run_id, step), 0), shard.count)
        # a sharded step is done when every one of its shards finished
        done |= {key for key, st in shards.items()
                 if len(st) == counts[key] and all(v in finished for v in st.values())}
    return runs, done


def load_phase_runs(session: Session, run_id: str, *, fold: bool = True) -> pd.DataFrame:
    """The run's phase records in start order; the shards of a step folded into one row per step
    (:func:`shared.runs.fold_shards`) unless ``fold=False``."""
    t = m.BatchPhaseRun.__table__
    frame = read_frame(session, select(t).where(t.c.run_id == run_id).order_by(t.c.started_at))
    if not fold:
        return frame
    from shared.runs import fold_shards

    return fold_shards(frame)


def table_counts(session: Session) -> dict[str, int]:
    """Rows of every table and view (:func:`shared.storage.models.relations`)."""
    return {
        name: session.execute(select(func.count()).select_from(table)).scalar_one()
        for name, table in m.relations().items()
    }


# --- symbol analytics and reference data ---------------------------------------------------------

def load_symbol_betas(session: Session, dates: Sequence[date], symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Symbol factor betas on ``dates``: [calculation_date, symbol, factor, beta_value, alpha, r_squared,
    std_error, p_value, observations], ordered by (date, symbol, factor id): the sums over them must not
    depend on the order the rows were written in (a re-run symbol shard rewrites its rows last)."""
    t = m.SymbolFactorExposure.__table__
    f = m.FactorDefinitionRow.__table__
    stmt = (
        select(t.c.calculation_date, t.c.symbol, f.c.name.label("factor"), t.c.beta_value, t.c.alpha,
               t.c.r_squared, t.c.std_error, t.c.p_value, t.c.observations)
        .join(f, f.c.id == t.c.factor_id)
        .where(t.c.calculation_date.in_(list(dates)))
        .order_by(t.c.calculation_date, t.c.symbol, t.c.factor_id)
    )
    frame = read_frame(session, stmt)
    if symbols is not None and not frame.empty:
        frame = frame[frame["symbol"].isin(set(symbols))]
    return frame.reset_index(drop=True)


def load_symbol_beta_values(session: Session, dates: Sequence[date], symbols: Sequence[str],
                            factors: Sequence[str]) -> pd.DataFrame:
    """``beta_value`` of a few symbols and factors on ``dates`` (filtered in SQL, e.g. the factor ETFs'
    own betas): [calculation_date, symbol, factor, beta_value], ordered as :func:`load_symbol_betas`."""
    t = m.SymbolFactorExposure.__table__
    f = m.FactorDefinitionRow.__table__
    stmt = (
        select(t.c.calculation_date, t.c.symbol, f.c.name.label("factor"), t.c.beta_value)
        .join(f, f.c.id == t.c.factor_id)
        .where(t.c.calculation_date.in_(list(dates)), t.c.symbol.in_(list(symbols)), f.c.name.in_(list(factors)))
        .order_by(t.c.calculation_date, t.c.symbol, t.c.factor_id)
    )
    return read_frame(session, stmt)


def load_benchmark_weights(session: Session, code: str, dates: Sequence[date]) -> pd.DataFrame:
    """A benchmark's sector weights as of each of ``dates``: ``[calculation_date, sector, weight]``.

    Only rows dated exactly on the date count: weights stored for another session (an earlier run's) would
    make a session's numbers depend on what ran before it."""
    t = m.BenchmarkSectorWeight.__table__
    frame = read_frame(session, select(t.c.asof_date.label("calculation_date"), t.c.sector, t.c.weight)
                       .where(t.c.benchmark_code == code, t.c.asof_date.in_(list(dates))))
    if not frame.empty:
        frame["calculation_date"] = pd.to_datetime(frame["calculation_date"]).dt.date
    return frame


# --- run report (read-only) ---------------------------------------------------------------------

def load_run(session: Session, run_id: str) -> dict[str, Any] | None:
    """One ``batch_run_history`` row as a dict (None when unknown)."""
    t = m.BatchRunHistory.__table__
    row = session.execute(select(t).where(t.c.run_id == run_id)).mappings().first()
    return dict(row) if row else None


def latest_run_id(session: Session) -> str | None:
    """The most recent run that covered some sessions (else the most recent run at all)."""
    t = m.BatchRunHistory.__table__
    for cond in (t.c.end_date.is_not(None), None):
        stmt = select(t.c.run_id).order_by(t.c.started_at.desc()).limit(1)
        found = session.execute(stmt.where(cond) if cond is not None else stmt).scalar()
        if found:
            return found
    return None


def load_factor_exposures(session: Session, portfolio_ids: Sequence[str], on: date) -> pd.DataFrame:
    """Portfolio factor exposures on one date: [portfolio_id, factor, display_order, exposure_value,
    exposure_dollar, coverage]."""
    t = m.FactorExposure.__table__
    f = m.FactorDefinitionRow.__table__
    stmt = (
        select(t.c.portfolio_id, f.c.name.label("factor"), f.c.display_order, t.c.exposure_value,
               t.c.exposure_dollar, t.c.coverage)
        .join(f, f.c.id == t.c.factor_id)
        .where(_in(t.c.portfolio_id, portfolio_ids), t.c.calculation_date == on)
        .order_by(t.c.portfolio_id, f.c.display_order)
    )
    return read_frame(session, stmt)


def load_exposure_dollars(session: Session, dates: Sequence[date], factors: Sequence[str],
                          portfolio_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Dollar factor exposures of ``factors`` on ``dates`` (all portfolios, or ``portfolio_ids``):
    [portfolio_id, calculation_date, factor, exposure_dollar]."""
    t = m.FactorExposure.__table__
    f = m.FactorDefinitionRow.__table__
    stmt = (
        select(t.c.portfolio_id, t.c.calculation_date, f.c.name.label("factor"), t.c.exposure_dollar)
        .join(f, f.c.id == t.c.factor_id)
        .where(t.c.calculation_date.in_(list(dates)), f.c.name.in_(list(factors)))
    )
    if portfolio_ids is not None:
        stmt = stmt.where(_in(t.c.portfolio_id, portfolio_ids))
    return read_frame(session, stmt)


def load_stress_results(session: Session, portfolio_ids: Sequence[str], on: date) -> pd.DataFrame:
    """Stress-test results on one date with the scenario's name, category and severity."""
    t = m.StressTestPnl.__table__
    sc = m.StressTestScenario.__table__
    stmt = (
        select(t.c.portfolio_id, t.c.scenario_id, sc.c.name, sc.c.category, sc.c.severity, t.c.direct_pnl,
               t.c.correlated_pnl, t.c.correlation_effect)
        .join(sc, sc.c.scenario_id == t.c.scenario_id)
        .where(_in(t.c.portfolio_id, portfolio_ids), t.c.calculation_date == on)
        .order_by(t.c.portfolio_id, t.c.correlated_pnl)
    )
    return read_frame(session, stmt)


def load_stress_summaries(session: Session, portfolio_ids: Sequence[str], on: date) -> pd.DataFrame:
    t = m.StressTestSummary.__table__
    stmt = select(t).where(_in(t.c.portfolio_id, portfolio_ids), t.c.calculation_date == on)
    return read_frame(session, stmt)


def load_pairwise_correlations(session: Session, portfolio_id: str, on_or_before: date) -> pd.DataFrame:
    """The latest stored pairwise correlations of a portfolio on or before a date (longest window)."""
    t = m.PairwiseCorrelation.__table__
    key = session.execute(
        select(t.c.calculation_date, t.c.duration_days)
        .where(t.c.portfolio_id == portfolio_id, t.c.calculation_date <= on_or_before)
        .order_by(t.c.calculation_date.desc(), t.c.duration_days.desc()).limit(1)
    ).first()
    if key is None:
        return pd.DataFrame(columns=["calculation_date", "duration_days", "symbol_1", "symbol_2",
                                     "correlation_value", "data_points"])
    stmt = select(t.c.calculation_date, t.c.duration_days, t.c.symbol_1, t.c.symbol_2, t.c.correlation_value,
                  t.c.data_points).where(t.c.portfolio_id == portfolio_id, t.c.calculation_date == key[0],
                                         t.c.duration_days == key[1])
    return read_frame(session, stmt)


def load_correlation_calculations(session: Session, portfolio_ids: Sequence[str], on: date) -> pd.DataFrame:
    t = m.CorrelationCalculation.__table__
    stmt = select(t).where(_in(t.c.portfolio_id, portfolio_ids), t.c.calculation_date == on)
    return read_frame(session, stmt)
