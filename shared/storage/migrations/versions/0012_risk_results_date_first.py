"""correlation_calculations, correlation_clusters and stress_test_summaries keyed date first

The last result tables keyed portfolio first (``portfolio_id, [duration_days,] calculation_date, …``) with
a separate date index (0008, for the retention delete): each chunk of sessions a risk step writes (at M ten
sessions × 2,000 portfolios) went into every part of the key's index and into the date index. Keyed
``calculation_date, portfolio_id, …`` a chunk's rows append at the right end of one index, as for the
tables of 0008, 0010 and 0011 (the correlation clusters of the M 60-session backfill, six chunks COPYed
into an empty table: 2.0-3.5 s portfolio first, 1.3-1.9 s date first, 0.8-1.1 s without a key). Every
reader asks by date (and portfolios), the replace deletes a (portfolios × sessions) scope and the retention
a date range, so the date indexes go.

Revision ID: 0012
Revises: 0011
"""
from alembic import op

from shared.storage.migrations.sqlite_rebuild import rebuild

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: table -> (new key, old key, the date index the new key replaces)
TABLES = {
    "correlation_calculations": (("calculation_date", "portfolio_id", "duration_days"),
                                 ("portfolio_id", "duration_days", "calculation_date"),
                                 "ix_correlation_calculations_date"),
    "correlation_clusters": (("calculation_date", "portfolio_id", "duration_days", "cluster_number", "symbol"),
                             ("portfolio_id", "duration_days", "calculation_date", "cluster_number", "symbol"),
                             "ix_correlation_clusters_date"),
    "stress_test_summaries": (("calculation_date", "portfolio_id"), ("portfolio_id", "calculation_date"),
                              "ix_stress_test_summaries_date"),
}


def _rekey(table: str, key: tuple[str, ...]) -> None:
    pk = f"{table}_pkey"
    if op.get_bind().dialect.name == "postgresql":
        # one statement: the table is never without a key; the new index is built from a sort of the heap
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {pk}, ADD CONSTRAINT {pk} PRIMARY KEY ({', '.join(key)})")
        return

    def alter() -> None:
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.create_primary_key(pk, list(key))
    rebuild(table, alter)


def upgrade() -> None:
    for table, (new, _old, index) in TABLES.items():
        op.drop_index(index, table_name=table)
        _rekey(table, new)


def downgrade() -> None:
    for table, (_new, old, index) in TABLES.items():
        _rekey(table, old)
        op.create_index(index, table, ["calculation_date"])
