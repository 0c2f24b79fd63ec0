"""Rebuilding a SQLite table under Alembic's ``batch_alter_table`` when views or triggers name it.

SQLite re-checks every view and trigger whose text names a table when the batch renames its copy into
place, and fails on those that name the table while it is gone (the 0004 delete cascade on
``portfolios``, the 0007 position views): they are dropped around the rebuild and made again, views first.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op


def dependents(table: str) -> list[tuple[str, str, str]]:
    """(type, name, SQL) of the views and triggers whose text names ``table``."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') AND sql LIKE ?",
        (f"%{table}%",)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def rebuild(table: str, alter: Callable[[], None]) -> None:
    """Run ``alter`` (a ``batch_alter_table`` of ``table``) with the views and triggers naming it dropped
    around it."""
    deps = dependents(table)
    for kind, name, _sql in deps:
        op.execute(f"DROP {kind.upper()} {name}")
    alter()
    for _kind, _name, sql in sorted(deps, key=lambda d: d[0] != "view"):  # views, then triggers
        op.execute(sql)
