"""per-symbol facts stored once: symbol_volatility, and the position-level tables become views

``position_market_betas`` and ``position_interest_rate_betas`` repeated, for every position held on a
date, its symbol's 90-session OLS market and rate beta already in ``symbol_factor_exposures``;
``position_volatility`` repeated the volatility of the position's symbol (an option's underlying). At
40,000 positions that was ~30 M of the 57.6 M rows of a one-year backfill (issue 19). Phase 6b now writes
``symbol_volatility`` (one row per held symbol and session) and the three names become views with the
same columns: the positions held on the date (not deleted, ``entry_date <= d`` and no exit or
``exit_date > d``: the P&L kernel's rule) in a portfolio with a snapshot on ``d`` (the risk steps'
holdings), joined with their symbol's row. Existing volatility rows move to ``symbol_volatility`` (one
per symbol and date); the beta rows are already in ``symbol_factor_exposures``. The delete trigger of
0004 on ``positions`` goes: nothing position-keyed is stored any more.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VOL_COLUMNS = ("realized_vol_21d", "realized_vol_63d", "vol_daily", "vol_weekly", "vol_monthly", "expected_vol_21d",
               "vol_trend", "vol_trend_strength", "vol_percentile", "observations", "model_r_squared")
#: positions held at the close of each snapshot date of their portfolio
_HELD = ("FROM positions p JOIN portfolio_snapshots s ON s.portfolio_id = p.portfolio_id "
         "AND p.entry_date <= s.snapshot_date AND (p.exit_date IS NULL OR p.exit_date > s.snapshot_date)")
#: the series whose volatility a position has: an option's underlying, else its own symbol
_SERIES = ("CASE WHEN upper(p.investment_class) = 'OPTIONS' AND p.underlying_symbol IS NOT NULL "
           "THEN p.underlying_symbol ELSE p.symbol END")


def _beta_view(factor: str, date_col: str, columns: str) -> str:
    return (f"SELECT p.id AS position_id, s.snapshot_date AS {date_col}, p.portfolio_id AS portfolio_id, {columns} "
            f"{_HELD} JOIN symbol_factor_exposures e ON e.symbol = p.symbol AND e.calculation_date = s.snapshot_date "
            f"JOIN factor_definitions f ON f.id = e.factor_id AND f.name = '{factor}' "
            "WHERE p.deleted_at IS NULL AND upper(p.investment_class) = 'PUBLIC'")


VIEWS = {
    "position_market_betas": _beta_view(
        "Market Beta (90D)", "calc_date",
        "e.beta_value AS beta, e.alpha AS alpha, e.r_squared AS r_squared, e.std_error AS std_error, "
        "e.p_value AS p_value, e.observations AS observations, 90 AS window_days, 'OLS_SIMPLE' AS method, "
        "'SPY' AS market_index"),
    "position_interest_rate_betas": _beta_view(
        "IR Beta", "calculation_date",
        "e.beta_value AS ir_beta, e.r_squared AS r_squared, e.observations AS observations"),
    "position_volatility": (
        "SELECT p.id AS position_id, s.snapshot_date AS calculation_date, p.portfolio_id AS portfolio_id, "
        + ", ".join(f"v.{c} AS {c}" for c in VOL_COLUMNS)
        + f" {_HELD} JOIN symbol_volatility v ON v.calculation_date = s.snapshot_date AND v.symbol = {_SERIES} "
        "WHERE p.deleted_at IS NULL"),
}
#: the 0004 trigger that deleted a deleted position's rows
TRIGGER = "positions_delete_phase6_results"


def _volatility_columns() -> list[sa.Column]:
    return [sa.Column(c, sa.String(20) if c == "vol_trend" else sa.Integer() if c == "observations" else sa.Float(),
                      nullable=True) for c in VOL_COLUMNS]


def _old_tables() -> dict[str, list[sa.Column]]:
    """The tables as 0006 left them (0001 without the foreign keys 0004 dropped)."""

    def key() -> list[sa.Column]:
        return [sa.Column("position_id", sa.Integer(), nullable=False)]

    def pf() -> sa.Column:
        return sa.Column("portfolio_id", sa.String(64), nullable=False)

    return {
        "position_market_betas": [*key(), sa.Column("calc_date", sa.Date(), nullable=False), pf(),
                                  sa.Column("beta", sa.Float(), nullable=False),
                                  *(sa.Column(c, sa.Float()) for c in ("alpha", "r_squared", "std_error", "p_value")),
                                  sa.Column("observations", sa.Integer()),
                                  sa.Column("window_days", sa.Integer(), nullable=False),
                                  sa.Column("method", sa.String(20), nullable=False),
                                  sa.Column("market_index", sa.String(10), nullable=False),
                                  sa.PrimaryKeyConstraint("position_id", "calc_date")],
        "position_interest_rate_betas": [*key(), sa.Column("calculation_date", sa.Date(), nullable=False), pf(),
                                         sa.Column("ir_beta", sa.Float(), nullable=False),
                                         sa.Column("r_squared", sa.Float()), sa.Column("observations", sa.Integer()),
                                         sa.PrimaryKeyConstraint("position_id", "calculation_date")],
        "position_volatility": [*key(), sa.Column("calculation_date", sa.Date(), nullable=False), pf(),
                                *_volatility_columns(), sa.PrimaryKeyConstraint("position_id", "calculation_date")],
    }


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table("symbol_volatility", sa.Column("symbol", sa.String(32), nullable=False),
                    sa.Column("calculation_date", sa.Date(), nullable=False), *_volatility_columns(),
                    sa.PrimaryKeyConstraint("symbol", "calculation_date"))
    op.create_index("ix_symbol_volatility_date", "symbol_volatility", ["calculation_date"])
    # every position of a symbol had the same values on a date: keep one (a deleted position's rows too)
    op.execute(f"INSERT INTO symbol_volatility (symbol, calculation_date, {', '.join(VOL_COLUMNS)}) "
               f"SELECT {_SERIES}, o.calculation_date, {', '.join(f'max(o.{c})' for c in VOL_COLUMNS)} "
               f"FROM position_volatility o JOIN positions p ON p.id = o.position_id "
               f"GROUP BY {_SERIES}, o.calculation_date")
    if pg:
        op.execute(f"DROP TRIGGER {TRIGGER} ON positions")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    for name, sql in VIEWS.items():
        op.drop_table(name)
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for name, columns in _old_tables().items():
        op.create_table(f"{name}_0006", *columns)
        op.execute(f"INSERT INTO {name}_0006 SELECT * FROM {name}")
        op.execute(f"DROP VIEW {name}")
        op.rename_table(f"{name}_0006", name)
    deletes = " ".join(f"DELETE FROM {name} WHERE position_id = OLD.id;" for name in VIEWS)
    if pg:
        op.execute(f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {deletes} RETURN NULL; "
                   "END $$")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON positions FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")
    else:
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON positions FOR EACH ROW BEGIN {deletes} END")
    op.drop_index("ix_symbol_volatility_date", "symbol_volatility")
    op.drop_table("symbol_volatility")
