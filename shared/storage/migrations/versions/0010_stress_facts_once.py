"""per-scenario and per-portfolio stress facts stored once; stress_test_results becomes a view

Each ``stress_test_results`` row carried two JSON documents: ``calculation_metadata`` (the scenario's name
and category, the covariance model, its date and data days, the duration and the factor moves the scenario
implies that date), the same for every portfolio on a date, and ``factor_impacts`` (per shocked factor:
its label, the portfolio's exposure, the shock and the direct P&L), the portfolio's exposures times the
scenario's shocks. At 2,000 portfolios × 19 scenarios that was ≈ 650 bytes a row, 9.6 M rows and about 6 GB
of a one-year M backfill (issue 19), most of the backfill's writes. They are now stored once:

* ``stress_test_pnl``: the numbers of each (portfolio, scenario, date) and whether the loss was capped;
* ``stress_exposures``: the eight dollar exposures the model applied, one row per (portfolio, date);
* ``stress_scenario_sessions``: one row per (date, scenario) with the shocks as run and the implied moves;

each keyed date first (a backfill's or a night's rows append at the right end of the key: with the
portfolio first every chunk of a one-year M backfill went into every part of the index, 1.8 s growing to
6.2 s a chunk against a flat 1.0-1.5 s), and ``stress_test_results`` is a view with its old columns, the JSON rebuilt from those rows (the same
keys, the same numbers: ``shock_pct`` = shock × 100, ``direct_pnl`` = exposure × shock, for
``Interest_Rate`` ``tlt_return`` = −duration × Δy). Existing rows move (their exposures from the
``factor_impacts`` they hold, the sessions from the metadata and the scenario's stored shocks); the
0004 trigger on ``portfolios`` deletes from the new tables.

Revision ID: 0010
Revises: 0009
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: scenario factor key -> (stress_exposures column, label in factor_impacts); Interest_Rate is special
KEYS = {"Market": ("market", "Market Beta (90D)"), "Value": ("value", "Value"), "Growth": ("growth", "Growth"),
        "Momentum": ("momentum", "Momentum"), "Quality": ("quality", "Quality"), "Size": ("size", "Size"),
        "Low Volatility": ("low_volatility", "Low Volatility")}
IR_KEY, IR_COLUMN, IR_LABEL = "Interest_Rate", "rates", "IR Beta (net of market)"
EXPOSURES = (*(c for c, _ in KEYS.values()), IR_COLUMN)
TRIGGER = "portfolios_delete_phase6_results"   # 0004: deletes a deleted portfolio's phase-6 results
TRIGGER_TABLES_OLD = ("factor_exposures", "stress_test_results")
TRIGGER_TABLES_NEW = ("factor_exposures", "stress_test_pnl", "stress_exposures")


def _case(expr: str, pairs: dict[str, str]) -> str:
    return "CASE " + expr + " " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in pairs.items()) + " END"


def view_sql(pg: bool) -> str:
    """The SELECT of the ``stress_test_results`` view on PostgreSQL or SQLite."""
    shock = "(k.value::text)::float8" if pg else "k.value"
    exposure = _case("k.key", {k: f"x.{c}" for k, (c, _) in KEYS.items()})
    label = _case("k.key", {k: f"'{lab}'" for k, (_, lab) in KEYS.items()})
    obj, agg = ("json_build_object", "json_object_agg") if pg else ("json_object", "json_group_object")
    ir = (f"{obj}('exposure_factor', '{IR_LABEL}', 'exposure', x.{IR_COLUMN}, 'shock_pct', {shock} * 100.0, "
          f"'tlt_return', -ss.tlt_duration * {shock}, 'direct_pnl', x.{IR_COLUMN} * (-ss.tlt_duration * {shock}))")
    other = (f"{obj}('exposure_factor', {label}, 'exposure', {exposure}, 'shock_pct', {shock} * 100.0, "
             f"'direct_pnl', {exposure} * {shock})")
    entry = f"CASE WHEN k.key = '{IR_KEY}' THEN {ir} ELSE {other} END"
    if not pg:
        entry = f"json({entry})"
    impacts = f"(SELECT {agg}(k.key, {entry}) FROM json_each(ss.shocks) AS k)"

    def boolean(col: str) -> str:
        return col if pg else f"json(CASE WHEN {col} THEN 'true' ELSE 'false' END)"

    meta = (f"CASE WHEN ss.scenario_id IS NULL THEN NULL ELSE {obj}("
            "'scenario_name', ss.scenario_name, 'category', ss.category, 'model', ss.model, "
            f"'covariance_date', {'to_char(r.calculation_date, ' + repr('YYYY-MM-DD') + ')' if pg else 'r.calculation_date'}, "
            f"'data_days', ss.data_days, 'covariance', {boolean('ss.covariance')}, 'tlt_duration', ss.tlt_duration, "
            f"'loss_capped', {boolean('r.loss_capped')}, "
            f"'implied_moves', {'ss.implied_moves' if pg else 'json(ss.implied_moves)'}) END")
    return ("SELECT r.portfolio_id AS portfolio_id, r.scenario_id AS scenario_id, "
            "r.calculation_date AS calculation_date, r.direct_pnl AS direct_pnl, r.correlated_pnl AS correlated_pnl, "
            f"r.correlation_effect AS correlation_effect, {impacts} AS factor_impacts, {meta} AS calculation_metadata "
            "FROM stress_test_pnl r "
            "LEFT JOIN stress_scenario_sessions ss ON ss.calculation_date = r.calculation_date "
            "AND ss.scenario_id = r.scenario_id "
            "LEFT JOIN stress_exposures x ON x.portfolio_id = r.portfolio_id AND x.calculation_date = r.calculation_date")


def _trigger(pg: bool, tables: tuple[str, ...]) -> None:
    deletes = " ".join(f"DELETE FROM {t} WHERE portfolio_id = OLD.id;" for t in tables)
    if pg:
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON portfolios")
        op.execute(f"CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN {deletes} RETURN NULL; END $$")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON portfolios FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
        op.execute(f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON portfolios FOR EACH ROW BEGIN {deletes} END")


def _loads(v):
    return v if v is None or isinstance(v, dict) else json.loads(v)


def _move_rows(bind) -> None:
    """The stored results into the three tables (one date at a time)."""
    shocks_of = {sid: _loads(cfg) for sid, cfg in bind.execute(
        sa.text("SELECT scenario_id, shock_config FROM stress_test_scenarios"))}
    dates = [r[0] for r in bind.execute(sa.text("SELECT DISTINCT calculation_date FROM stress_test_results"))]
    pnl = sa.table("stress_test_pnl", *(sa.column(c) for c in (
        "portfolio_id", "scenario_id", "calculation_date", "direct_pnl", "correlated_pnl", "correlation_effect",
        "loss_capped")))
    expo = sa.table("stress_exposures", *(sa.column(c) for c in ("portfolio_id", "calculation_date", *EXPOSURES)))
    sess = sa.table("stress_scenario_sessions", *(sa.column(c) for c in (
        "calculation_date", "scenario_id", "scenario_name", "category", "model", "data_days", "covariance",
        "tlt_duration", "shocks", "implied_moves")))
    for d in dates:
        rows = bind.execute(sa.text(
            "SELECT portfolio_id, scenario_id, calculation_date, direct_pnl, correlated_pnl, correlation_effect, "
            "factor_impacts, calculation_metadata FROM stress_test_results WHERE calculation_date = :d"),
            {"d": d}).fetchall()
        p_rows, x_rows, s_rows = [], {}, {}
        for pid, sid, cd, direct, corr, eff, fi, md in rows:
            fi, md = _loads(fi) or {}, _loads(md) or {}
            p_rows.append({"portfolio_id": pid, "scenario_id": sid, "calculation_date": cd, "direct_pnl": direct,
                           "correlated_pnl": corr, "correlation_effect": eff,
                           "loss_capped": bool(md.get("loss_capped", False))})
            x = x_rows.setdefault(pid, dict.fromkeys(EXPOSURES, 0.0))
            for k, e in fi.items():
                col = IR_COLUMN if k == IR_KEY else KEYS.get(k, (None,))[0]
                if col is not None and e.get("exposure") is not None:
                    x[col] = e["exposure"]
            if sid not in s_rows and md:
                s_rows[sid] = {"calculation_date": cd, "scenario_id": sid, "scenario_name": md.get("scenario_name", sid),
                               "category": md.get("category", ""), "model": md.get("model", ""),
                               "data_days": int(md.get("data_days") or 0), "covariance": bool(md.get("covariance")),
                               "tlt_duration": float(md.get("tlt_duration") or 0.0),
                               "shocks": json.dumps(shocks_of.get(sid) or {}),
                               "implied_moves": json.dumps(md.get("implied_moves") or {})}
        if p_rows:
            op.bulk_insert(pnl, p_rows)
        if x_rows:
            op.bulk_insert(expo, [{"portfolio_id": pid, "calculation_date": d, **x} for pid, x in x_rows.items()])
        if s_rows:
            op.bulk_insert(sess, list(s_rows.values()))


def upgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.create_table("stress_test_pnl",
                    sa.Column("portfolio_id", sa.String(64), nullable=False),
                    sa.Column("scenario_id", sa.String(64), nullable=False),
                    sa.Column("calculation_date", sa.Date(), nullable=False),
                    *(sa.Column(c, sa.Float(), nullable=False) for c in ("direct_pnl", "correlated_pnl",
                                                                          "correlation_effect")),
                    sa.Column("loss_capped", sa.Boolean(), nullable=False),
                    sa.PrimaryKeyConstraint("calculation_date", "portfolio_id", "scenario_id",
                                            name="stress_test_pnl_pkey"))
    op.create_table("stress_exposures",
                    sa.Column("portfolio_id", sa.String(64), nullable=False),
                    sa.Column("calculation_date", sa.Date(), nullable=False),
                    *(sa.Column(c, sa.Float(), nullable=False) for c in EXPOSURES),
                    sa.PrimaryKeyConstraint("calculation_date", "portfolio_id", name="stress_exposures_pkey"))
    op.create_table("stress_scenario_sessions",
                    sa.Column("calculation_date", sa.Date(), nullable=False),
                    sa.Column("scenario_id", sa.String(64), nullable=False),
                    sa.Column("scenario_name", sa.String(255), nullable=False),
                    sa.Column("category", sa.String(64), nullable=False),
                    sa.Column("model", sa.String(64), nullable=False),
                    sa.Column("data_days", sa.Integer(), nullable=False),
                    sa.Column("covariance", sa.Boolean(), nullable=False),
                    sa.Column("tlt_duration", sa.Float(), nullable=False),
                    sa.Column("shocks", sa.JSON(), nullable=False),
                    sa.Column("implied_moves", sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint("calculation_date", "scenario_id", name="stress_scenario_sessions_pkey"))
    _move_rows(bind)
    _trigger(pg, TRIGGER_TABLES_NEW)
    op.drop_index("ix_stress_test_results_date", "stress_test_results")
    op.drop_table("stress_test_results")
    op.execute(f"CREATE VIEW stress_test_results AS {view_sql(pg)}")


def downgrade() -> None:
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    op.create_table("stress_test_results_0009",
                    sa.Column("portfolio_id", sa.String(64), nullable=False),
                    sa.Column("scenario_id", sa.String(64), nullable=False),
                    sa.Column("calculation_date", sa.Date(), nullable=False),
                    *(sa.Column(c, sa.Float(), nullable=False) for c in ("direct_pnl", "correlated_pnl",
                                                                          "correlation_effect")),
                    sa.Column("factor_impacts", sa.JSON(), nullable=True),
                    sa.Column("calculation_metadata", sa.JSON(), nullable=True),
                    sa.PrimaryKeyConstraint("portfolio_id", "scenario_id", "calculation_date"))
    op.execute("INSERT INTO stress_test_results_0009 SELECT * FROM stress_test_results")
    op.execute("DROP VIEW stress_test_results")
    op.rename_table("stress_test_results_0009", "stress_test_results")
    if pg:  # 0001's name of the key, as the older migrations expect it
        op.execute("ALTER TABLE stress_test_results RENAME CONSTRAINT stress_test_results_0009_pkey "
                   "TO stress_test_results_pkey")
    op.create_index("ix_stress_test_results_date", "stress_test_results", ["calculation_date"])
    _trigger(pg, TRIGGER_TABLES_OLD)
    for table in ("stress_scenario_sessions", "stress_exposures", "stress_test_pnl"):
        for ix in sa.inspect(bind).get_indexes(table):
            op.drop_index(ix["name"], table_name=table)
        op.drop_table(table)
