"""pairwise_correlations without a foreign key: the cascade on portfolio delete becomes a trigger

Risk-correlations writes the last session's pairwise matrix of every portfolio, ~1.6 M rows a night at
10,000 portfolios. PostgreSQL checks a foreign key with a per-row trigger (one index probe of
``portfolios`` per inserted row): ~10 s of a ~16 s COPY into the table, against ~3 s for the same
bytes into a bare table and ~6.5 s with the primary key alone. The check buys nothing there: the phase
only writes rows for portfolios it has just read in the same transaction. What the foreign key also did,
``ON DELETE CASCADE``, is kept by an ``AFTER DELETE`` trigger on ``portfolios`` (one indexed delete per
deleted portfolio; the primary key starts with ``portfolio_id``).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "pairwise_correlations"
PG_FK = "pairwise_correlations_portfolio_id_fkey"  # PostgreSQL's default name (0001 gave none)
SQLITE_FK = "fk_pairwise_correlations_portfolio_id_portfolios"  # name given to SQLite's unnamed one
TRIGGER = "portfolios_delete_pairwise_correlations"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(PG_FK, TABLE, type_="foreignkey")
        op.execute(f"""
            CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM {TABLE} WHERE portfolio_id = OLD.id;
                RETURN NULL;
            END $$""")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON portfolios "
                   f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")
    else:
        with op.batch_alter_table(TABLE, naming_convention={
                "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}) as batch:
            batch.drop_constraint(SQLITE_FK, type_="foreignkey")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON portfolios FOR EACH ROW "
                   f"BEGIN DELETE FROM {TABLE} WHERE portfolio_id = OLD.id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TRIGGER} ON portfolios")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
        op.execute(f"DELETE FROM {TABLE} p WHERE NOT EXISTS (SELECT 1 FROM portfolios WHERE id = p.portfolio_id)")
        op.create_foreign_key(PG_FK, TABLE, "portfolios", ["portfolio_id"], ["id"], ondelete="CASCADE")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
        op.execute(f"DELETE FROM {TABLE} WHERE portfolio_id NOT IN (SELECT id FROM portfolios)")
        with op.batch_alter_table(TABLE) as batch:
            batch.create_foreign_key(SQLITE_FK, "portfolios", ["portfolio_id"], ["id"], ondelete="CASCADE")

