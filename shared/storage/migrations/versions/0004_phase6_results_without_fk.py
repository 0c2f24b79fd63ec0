"""phase-6 result tables without foreign keys to portfolios/positions: the cascade becomes triggers

Same change as 0003, for the other large tables phase 6 writes every night (at 10,000 portfolios and
200,000 positions: 130,000 factor exposures, 3 × ~184,000 position betas/volatilities, 190,000 stress
results). PostgreSQL checks each foreign key with a per-row trigger, ~4-7 µs a row here: 184,000
position-volatility rows go into an empty table in 0.7 s without the check and 2.0 s with it. The phases
write rows only for portfolios and positions they have just read in the same transaction, so the check
adds nothing; the ``ON DELETE CASCADE`` is kept by ``AFTER DELETE`` triggers on ``portfolios`` and
``positions`` (each deletes by the leading column of the child's primary key). The foreign keys to the
small reference tables (``factor_definitions``, ``stress_test_scenarios``) stay.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: parent table -> (its key, [(child table, child column)])
CHILDREN = {
    "portfolios": ("id", [("factor_exposures", "portfolio_id"), ("stress_test_results", "portfolio_id")]),
    "positions": ("id", [("position_market_betas", "position_id"), ("position_interest_rate_betas", "position_id"),
                         ("position_volatility", "position_id")]),
}
SQLITE_FK = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"  # names SQLite's unnamed FKs


def _trigger(parent: str) -> str:
    return f"{parent}_delete_phase6_results"


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for parent, (key, children) in CHILDREN.items():
        for table, col in children:
            if pg:
                op.drop_constraint(f"{table}_{col}_fkey", table, type_="foreignkey")
            else:
                with op.batch_alter_table(table, naming_convention={"fk": SQLITE_FK}) as batch:
                    batch.drop_constraint(f"fk_{table}_{col}_{parent}", type_="foreignkey")
        deletes = " ".join(f"DELETE FROM {table} WHERE {col} = OLD.{key};" for table, col in children)
        if pg:
            op.execute(f"CREATE FUNCTION {_trigger(parent)}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                       f"BEGIN {deletes} RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {_trigger(parent)} AFTER DELETE ON {parent} "
                       f"FOR EACH ROW EXECUTE FUNCTION {_trigger(parent)}()")
        else:
            op.execute(f"CREATE TRIGGER {_trigger(parent)} AFTER DELETE ON {parent} FOR EACH ROW BEGIN {deletes} END")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for parent, (key, children) in CHILDREN.items():
        if pg:
            op.execute(f"DROP TRIGGER {_trigger(parent)} ON {parent}")
            op.execute(f"DROP FUNCTION {_trigger(parent)}()")
        else:
            op.execute(f"DROP TRIGGER {_trigger(parent)}")
        for table, col in children:
            op.execute(f"DELETE FROM {table} WHERE {col} NOT IN (SELECT {key} FROM {parent})")
            if pg:
                op.create_foreign_key(f"{table}_{col}_fkey", table, parent, [col], [key], ondelete="CASCADE")
            else:
                with op.batch_alter_table(table) as batch:
                    batch.create_foreign_key(f"fk_{table}_{col}_{parent}", parent, [col], [key], ondelete="CASCADE")
