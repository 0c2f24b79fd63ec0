"""factor_exposures and symbol_factor_exposures keyed date first

Both take millions of rows in a backfill (an M one-year backfill: 7.0 M factor exposures, 6.6 M symbol
betas) and were keyed by portfolio (symbol), factor, date: each chunk of sessions went into every part of
the key's index, so a chunk's insert grew with the history already written (the stress results, keyed the
same way, took 1.8 s growing to 6.2 s a chunk against a flat 1.0-1.5 s keyed date first; 0008 measured the
same on pairwise_correlations). Keyed ``calculation_date, portfolio_id, factor_id`` (``calculation_date,
symbol, factor_id``) the rows of a chunk append at the right end; every reader asks by date (and the
retention delete is a range at the left end), so the separate date indexes go.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

from shared.storage.migrations.sqlite_rebuild import rebuild

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: table -> (new key, old key, the date index the new key replaces: name, columns)
TABLES = {
    "factor_exposures": (("calculation_date", "portfolio_id", "factor_id"),
                         ("portfolio_id", "factor_id", "calculation_date"),
                         ("ix_factor_exposures_date", ["calculation_date"])),
    "symbol_factor_exposures": (("calculation_date", "symbol", "factor_id"),
                                ("symbol", "factor_id", "calculation_date"),
                                ("ix_symbol_factor_exposures_date", ["calculation_date", "factor_id"])),
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
    for table, (new, _old, (index, _cols)) in TABLES.items():
        op.drop_index(index, table_name=table)
        _rekey(table, new)


def downgrade() -> None:
    for table, (_new, old, (index, cols)) in TABLES.items():
        _rekey(table, old)
        op.create_index(index, table, cols)
