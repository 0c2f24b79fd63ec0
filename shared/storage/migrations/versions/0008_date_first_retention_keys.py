"""bounded growth: pairwise_correlations keyed date first, date indexes for retention deletes

``pairwise_correlations`` takes ≈ 1.6 M rows a night at 10,000 portfolios. Its primary key started with
the portfolio (``portfolio_id, duration_days, calculation_date, symbol_1, symbol_2``), so a new night's
rows went into every part of the index (4.6 s against 3.0 s with three dates of history, issue 19) and
the retention delete (``calculation_date <`` the first kept session) had no index to range-scan. Keyed
``calculation_date, portfolio_id, duration_days, symbol_1, symbol_2`` a night's inserts append at the
right end of the index and the retention delete is a range at its left end; a portfolio's matrix on a
date (the readers' query) is still one key prefix. The rows are kept (SQLite: the table is copied by
``batch_alter_table``; the 0003 delete trigger on ``portfolios`` is dropped around the copy and made again).

The other large dated tables whose key does not start with the date get an index on it, so that the
retention of ``SIGMABATCH_RETAIN_SESSIONS`` (:mod:`shared.retention`) deletes by an index range too:
``factor_exposures``, ``stress_test_results``, ``stress_test_summaries``, ``correlation_calculations``,
``correlation_clusters``. (``symbol_factor_exposures``, ``symbol_daily_metrics``, ``symbol_volatility``,
``portfolio_snapshots`` and ``market_data_cache`` already have one.)

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "pairwise_correlations"
#: PostgreSQL's default name for 0001's unnamed key; SQLite gets the same name
PK = "pairwise_correlations_pkey"
NEW_KEY = ("calculation_date", "portfolio_id", "duration_days", "symbol_1", "symbol_2")
OLD_KEY = ("portfolio_id", "duration_days", "calculation_date", "symbol_1", "symbol_2")
#: the 0003 trigger that deletes a deleted portfolio's pairwise rows (SQLite: refers to the table by name)
TRIGGER = "portfolios_delete_pairwise_correlations"
#: dated tables whose primary key does not start with the date: (table, index name, date column)
DATE_INDEXES = (
    ("factor_exposures", "ix_factor_exposures_date", "calculation_date"),
    ("stress_test_results", "ix_stress_test_results_date", "calculation_date"),
    ("stress_test_summaries", "ix_stress_test_summaries_date", "calculation_date"),
    ("correlation_calculations", "ix_correlation_calculations_date", "calculation_date"),
    ("correlation_clusters", "ix_correlation_clusters_date", "calculation_date"),
)


def _rekey(key: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # one statement: the table is never without a key; the new index is built from a sort of the heap
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {PK}, ADD CONSTRAINT {PK} PRIMARY KEY ({', '.join(key)})")
        return
    op.execute(f"DROP TRIGGER {TRIGGER}")
    with op.batch_alter_table(TABLE, recreate="always") as batch:
        batch.create_primary_key(PK, list(key))
    op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON portfolios FOR EACH ROW "
               f"BEGIN DELETE FROM {TABLE} WHERE portfolio_id = OLD.id; END")


def upgrade() -> None:
    _rekey(NEW_KEY)
    for table, name, column in DATE_INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for table, name, _column in DATE_INDEXES:
        op.drop_index(name, table_name=table)
    _rekey(OLD_KEY)

