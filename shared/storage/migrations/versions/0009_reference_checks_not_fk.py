"""the large fact tables without foreign keys to the small reference tables: checked per write instead

``factor_exposures.factor_id`` and ``symbol_factor_exposures.factor_id`` (-> ``factor_definitions.id``) and
``stress_test_results.scenario_id`` (-> ``stress_test_scenarios.scenario_id``) were foreign keys: PostgreSQL
checks each with a per-row trigger that looks the key up in the parent, for millions of rows in a backfill
(an M one-year backfill writes ≈ 9.6 M stress results, 7 M factor exposures and 3.5 M symbol betas into
them). 380,000 stress rows went in 9.3 s with the check and 5.7 s without it (the bare COPY: 3.1 s). The
rows refer to a few dozen ids, so :func:`shared.storage.repository.insert` checks the distinct ids of each
write against the reference table in one query (``models.REFERENCES``) and refuses the whole write with a
clear error, before anything is written. Reference rows are never deleted by the batch.

Revision ID: 0009
Revises: 0008
"""
from alembic import op

from shared.storage.migrations.sqlite_rebuild import rebuild

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: (child table, column, parent table, parent column)
REFERENCES = (
    ("factor_exposures", "factor_id", "factor_definitions", "id"),
    ("symbol_factor_exposures", "factor_id", "factor_definitions", "id"),
    ("stress_test_results", "scenario_id", "stress_test_scenarios", "scenario_id"),
)
SQLITE_FK = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"  # names SQLite's unnamed FKs


def _name(table: str, col: str, parent: str, pg: bool) -> str:
    return f"{table}_{col}_fkey" if pg else f"fk_{table}_{col}_{parent}"


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table, col, parent, _key in REFERENCES:
        if pg:
            op.drop_constraint(_name(table, col, parent, pg), table, type_="foreignkey")
            continue

        def alter(table=table, col=col, parent=parent):
            with op.batch_alter_table(table, naming_convention={"fk": SQLITE_FK}) as batch:
                batch.drop_constraint(_name(table, col, parent, False), type_="foreignkey")
        rebuild(table, alter)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table, col, parent, key in REFERENCES:
        op.execute(f"DELETE FROM {table} WHERE {col} NOT IN (SELECT {key} FROM {parent})")
        if pg:
            op.create_foreign_key(_name(table, col, parent, pg), table, parent, [col], [key])
            continue

        def alter(table=table, col=col, parent=parent, key=key):
            with op.batch_alter_table(table) as batch:
                batch.create_foreign_key(_name(table, col, parent, False), parent, [col], [key])
        rebuild(table, alter)
