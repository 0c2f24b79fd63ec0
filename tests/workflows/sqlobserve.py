"""Which tables and columns each DAG step really reads and writes: SQL statements observed on every engine.

A SQLAlchemy ``before_cursor_execute`` listener on :class:`~sqlalchemy.engine.Engine` (all engines, so the
ones a phase creates itself too) records each statement under the step being run; :func:`touched` turns
them into (table, column) pairs read and written. Reads are every ``table.column`` a SELECT names (SQLAlchemy
always qualifies them) plus bare ``FROM``/``JOIN`` tables, and for a view the columns of the tables it joins;
writes are the columns of INSERT and UPDATE … SET, and every column of a DELETE's table. Bookkeeping tables (run records, the lock, Alembic) are left out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.storage import models as m

BOOKKEEPING = {"batch_run_history", "batch_phase_runs", "batch_locks", "alembic_version"}
TABLES = {name: tuple(c.name for c in t.columns) for name, t in m.Base.metadata.tables.items()}
#: A view read is a read of what it joins (table -> columns; none = the whole row): ``models.ViewBase``.
VIEWS = {name: t.info["view_of"] for name, t in m.ViewBase.metadata.tables.items()}

_INSERT = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+\"?(\w+)\"?\s*\(([^)]*)\)", re.I | re.S)
_UPDATE = re.compile(r"^\s*UPDATE\s+\"?(\w+)\"?\s+SET\s+(.*?)(?:\s+WHERE\s|$)", re.I | re.S)
_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+\"?(\w+)\"?", re.I)
_QUALIFIED = re.compile(r"\"?(\w+)\"?\.\"?(\w+)\"?")
_FROM = re.compile(r"\b(?:FROM|JOIN)\s+\"?(\w+)\"?", re.I)


class Observer:
    """Collects the SQL statements of each step: ``with observer.step(step): ...``."""

    def __init__(self) -> None:
        self.statements: dict[str, list[str]] = defaultdict(list)
        self.current: str | None = None

    def _listen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.current is not None:
            self.statements[self.current].append(statement)

    @contextmanager
    def step(self, step) -> Iterator[None]:
        self.current = step.name
        try:
            yield
        finally:
            self.current = None

    @contextmanager
    def listening(self) -> Iterator[Observer]:
        event.listen(Engine, "before_cursor_execute", self._listen)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self._listen)

    def touched(self, name: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(columns read, columns written) by one step, bookkeeping left out. A read of a table's whole row
        (every column, a loader's ``select(table)``) or of no named column is recorded as ``(table, "")``."""
        reads: set[tuple[str, str]] = set()
        writes: set[tuple[str, str]] = set()
        for sql in self.statements.get(name, []):
            if mt := _INSERT.match(sql):
                table = mt.group(1)
                writes |= {(table, c.strip().strip('"')) for c in mt.group(2).split(",")}
            elif mt := _UPDATE.match(sql):
                writes |= {(mt.group(1), c) for c in re.findall(r"\"?(\w+)\"?\s*=", mt.group(2))}
            elif mt := _DELETE.match(sql):
                writes |= {(mt.group(1), c) for c in TABLES.get(mt.group(1), ())}
            elif sql.lstrip().upper().startswith(("SELECT", "WITH")):
                named = {(t, c) for t, c in _QUALIFIED.findall(sql) if c in TABLES.get(t, ())}
                for t in set(_FROM.findall(sql)) & set(TABLES):
                    cols = {c for nt, c in named if nt == t}
                    if not cols or cols >= set(TABLES[t]):
                        named = {(nt, c) for nt, c in named if nt != t} | {(t, "")}
                for v in set(_FROM.findall(sql)) & set(VIEWS):
                    named |= {(t, c) for t, cols in VIEWS[v].items() for c in (cols or ("",))}
                reads |= named
        keep = lambda pairs: {p for p in pairs if p[0] in TABLES and p[0] not in BOOKKEEPING}  # noqa: E731
        return keep(reads), keep(writes)


def item_of(table: str, column: str, groups: dict[str, tuple[str, ...]]) -> str:
    """The unit of data a column belongs to: its column group (``table.group``) or the table."""
    return next((g for g, cols in groups.items() if g.split(".")[0] == table and column in cols), table)
