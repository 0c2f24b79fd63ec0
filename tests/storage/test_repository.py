"""Storage on SQLite and PostgreSQL: migrations, idempotent upserts, replace, loaders."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import inspect

from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import migrate, transaction


def test_migration_creates_every_table_and_is_idempotent(engine):
    migrate(engine)  # second time: nothing to do
    tables = set(inspect(engine).get_table_names())
    assert set(m.Base.metadata.tables) <= tables
    # the per-position facts are views (0007), never tables
    assert set(m.ViewBase.metadata.tables) <= set(inspect(engine).get_view_names())
    assert not set(m.ViewBase.metadata.tables) & tables
    idx = {i["name"] for i in inspect(engine).get_indexes("positions")}
    assert "ix_positions_portfolio_asof" in idx


def _prices(close: float) -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["AAA", "AAA", "BBB"], "date": [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 2)],
                         "close": [close, close + 1, 50.0], "volume": [1e6, float("nan"), 2e6],
                         "data_source": "synthetic"})


def test_upsert_is_idempotent_and_updates(engine):
    with transaction(engine) as s:
        assert repo.upsert(s, m.MarketDataCache, _prices(100.0)) == 3
    with transaction(engine) as s:
        repo.upsert(s, m.MarketDataCache, _prices(100.0))
        repo.upsert(s, m.MarketDataCache, _prices(101.0))
    with transaction(engine) as s:
        got = repo.load_prices(s, ["AAA", "BBB"], date(2026, 3, 1), date(2026, 3, 31))
        cov = repo.price_coverage(s, ["AAA", "BBB"], date(2026, 3, 1), date(2026, 3, 31)).set_index("symbol")
    assert len(got) == 3
    assert got.loc[got.symbol == "AAA", "close"].tolist() == [101.0, 102.0]
    assert got["volume"].isna().sum() == 1
    assert cov.loc["AAA", "rows"] == 2 and cov.loc["AAA", "last"] == date(2026, 3, 3)


def test_transaction_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError), transaction(engine) as s:
        repo.upsert(s, m.MarketDataCache, _prices(100.0))
        raise RuntimeError("boom")
    with transaction(engine) as s:
        assert repo.load_prices(s, None, date(2026, 1, 1), date(2026, 12, 31)).empty


def test_positions_upsert_on_lot_key_and_replace(engine):
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p1", "name": "P1", "equity_balance": 1e5,
                                                    "currency": "USD", "is_active": True}]))
        lots = pd.DataFrame([{"portfolio_id": "p1", "symbol": "AAA", "position_type": "LONG", "quantity": 10.0,
                              "entry_price": 9.0, "entry_date": date(2026, 1, 5), "investment_class": "PUBLIC"}])
        conflict = ("portfolio_id", "symbol", "position_type", "entry_date")
        repo.upsert(s, m.Position, lots, conflict=conflict)
        repo.upsert(s, m.Position, lots.assign(quantity=12.0), conflict=conflict)
    with transaction(engine) as s:
        pos = repo.load_positions(s, ["p1"], start=date(2026, 2, 1), end=date(2026, 2, 2))
        assert pos["quantity"].tolist() == [12.0]
        ids = repo.seed_factor_definitions(s)
        assert len(ids) == 13
        rows = pd.DataFrame({"portfolio_id": "p1", "factor_id": [ids["Value"], ids["Growth"]],
                             "calculation_date": date(2026, 3, 2), "exposure_value": [0.1, 0.2],
                             "exposure_dollar": [1e4, 2e4]})
        repo.replace(s, m.FactorExposure, rows, {"portfolio_id": ["p1"], "calculation_date": [date(2026, 3, 2)]})
        repo.replace(s, m.FactorExposure, rows.iloc[:1], {"portfolio_id": ["p1"], "calculation_date": [date(2026, 3, 2)]})
    with transaction(engine) as s:
        assert repo.table_counts(s)["factor_exposures"] == 1


def test_watermarks(engine):
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([
            {"id": p, "name": p, "equity_balance": 1e5, "currency": "USD", "is_active": True} for p in ("a", "b")]))
    with transaction(engine) as s:
        marks = repo.snapshot_watermarks(s).set_index("portfolio_id")
    assert set(marks.index) == {"a", "b"} and marks["last_snapshot"].isna().all()


def test_deleting_a_portfolio_deletes_its_pairwise_correlations(engine):
    """pairwise_correlations has no foreign key (migration 0003); a trigger keeps the cascade."""
    from sqlalchemy import text

    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([
            {"id": p, "name": p, "equity_balance": 1e5, "currency": "USD", "is_active": True} for p in ("a", "b")]))
        pairs = pd.DataFrame({"portfolio_id": ["a", "a", "b"], "duration_days": 90,
                              "calculation_date": date(2026, 3, 2), "symbol_1": ["X", "X", "X"],
                              "symbol_2": ["Y", "Z", "Y"], "correlation_value": [0.1, 0.2, 0.3]})
        repo.replace(s, m.PairwiseCorrelation, pairs, {"portfolio_id": ["a", "b"],
                                                       "calculation_date": [date(2026, 3, 2)]})
    with transaction(engine) as s:
        s.execute(text("DELETE FROM portfolios WHERE id = 'a'"))
    with transaction(engine) as s:
        left = s.execute(text("SELECT portfolio_id FROM pairwise_correlations")).scalars().all()
    assert left == ["b"]
    assert not inspect(engine).get_foreign_keys("pairwise_correlations")


def test_deleting_a_position_or_portfolio_deletes_its_phase6_results(engine):
    """Phase-6 result tables have no foreign key to portfolios (0004); triggers keep the cascade. The
    per-position tables are views (0007): a deleted position's rows go with it."""
    from sqlalchemy import text

    day = date(2026, 3, 2)
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p1", "name": "P1", "equity_balance": 1e5,
                                                    "currency": "USD", "is_active": True}]))
        lots = pd.DataFrame([{"portfolio_id": "p1", "symbol": sym, "position_type": "LONG", "quantity": 10.0,
                              "entry_price": 9.0, "entry_date": date(2026, 1, 5), "investment_class": "PUBLIC"}
                             for sym in ("AAA", "BBB")])
        repo.upsert(s, m.Position, lots, conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
        ids = repo.load_positions(s, ["p1"])["id"].tolist()
        fids = repo.seed_factor_definitions(s)
        repo.upsert(s, m.PortfolioSnapshot, pd.DataFrame([_snapshot("p1", day)]))
        repo.upsert(s, m.SymbolFactorExposure, pd.DataFrame(
            {"symbol": sym, "factor_id": fids[f], "calculation_date": day, "beta_value": 1.0,
             "calculation_method": "ols"} for sym in ("AAA", "BBB") for f in ("Market Beta (90D)", "IR Beta")))
        repo.upsert(s, m.SymbolVolatility, pd.DataFrame({"symbol": ["AAA", "BBB"], "calculation_date": day,
                                                         "realized_vol_21d": 0.2}))
        repo.replace(s, m.FactorExposure, pd.DataFrame({
            "portfolio_id": ["p1"], "factor_id": [fids["Value"]], "calculation_date": [day],
            "exposure_value": [0.1], "exposure_dollar": [1e4]}), {"portfolio_id": ["p1"], "calculation_date": [day]})
        repo.upsert(s, m.StressTestScenario, pd.DataFrame([{"scenario_id": "s1", "name": "S1", "category": "c",
                                                            "severity": "base", "shock_config": {"Market": 0.1}}]))
        repo.replace(s, m.StressTestPnl, pd.DataFrame({
            "portfolio_id": ["p1"], "scenario_id": ["s1"], "calculation_date": [day], "direct_pnl": [1.0],
            "correlated_pnl": [1.0], "correlation_effect": [0.0], "loss_capped": [False]}),
                     {"portfolio_id": ["p1"], "calculation_date": [day]})
    position_tables = ("position_market_betas", "position_interest_rate_betas", "position_volatility")

    def count(table):
        with transaction(engine) as s:
            return s.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

    assert [count(t) for t in position_tables] == [2, 2, 2]
    with transaction(engine) as s:
        s.execute(text("DELETE FROM positions WHERE id = :i"), {"i": ids[0]})
    assert [count(t) for t in position_tables] == [1, 1, 1]
    with transaction(engine) as s:
        s.execute(text("DELETE FROM positions"))
        s.execute(text("DELETE FROM portfolios"))
    assert [count(t) for t in (*position_tables, "factor_exposures", "stress_test_pnl", "stress_test_results")] \
        == [0] * 6
    assert count("symbol_volatility") == 2  # per-symbol facts outlive the positions
    # no foreign key at all: not to portfolios (0004), nor to the scenarios (0009: checked per write)
    assert not inspect(engine).get_foreign_keys("stress_test_pnl")


def _snapshot(pid: str, day: date) -> dict:
    zero = ("cash_value", "long_value", "short_value", "gross_exposure", "net_exposure", "daily_pnl",
            "daily_unrealized_pnl", "daily_realized_pnl", "daily_capital_flow", "cumulative_pnl",
            "cumulative_realized_pnl", "cumulative_capital_flow", "num_positions", "num_long_positions",
            "num_short_positions")
    return {"portfolio_id": pid, "snapshot_date": day, "net_asset_value": 1e5, "equity_balance": 1e5,
            **dict.fromkeys(zero, 0)}


def test_views_are_not_written(engine):
    with transaction(engine) as s, pytest.raises(TypeError, match="is a view"):
        repo.upsert(s, m.PositionVolatility, pd.DataFrame({"position_id": [1], "calculation_date": [date(2026, 3, 2)],
                                                           "portfolio_id": ["p1"]}))


def test_replace_with_a_scope_longer_than_sqlites_variable_limit(engine):
    """40,000 keys in one scope: SQLite binds one variable per value (limit 32,766), so the delete goes in
    chunks there; PostgreSQL sends one array. Only the scoped rows go."""
    n = 40_000
    syms = [f"S{i}" for i in range(n)]
    rows = pd.DataFrame({"symbol": syms, "calculation_date": date(2026, 3, 2), "realized_vol_21d": 0.2})
    other_day = rows.iloc[:5].assign(calculation_date=date(2026, 3, 3))
    scope = {"symbol": syms, "calculation_date": [date(2026, 3, 2)]}
    with transaction(engine) as s:
        repo.replace(s, m.SymbolVolatility, pd.concat([rows, other_day]), {"symbol": ["none"],
                                                                           "calculation_date": [date(2026, 3, 2)]})
        assert repo.replace(s, m.SymbolVolatility, rows.iloc[: n // 2], scope) == n // 2
        assert repo.delete_where(s, m.SymbolVolatility, scope) == n // 2
        assert repo.table_counts(s)["symbol_volatility"] == 5


def test_reads_with_more_portfolios_than_the_databases_parameter_limits(engine):
    """A whole-book read at XL (100,000 portfolios): PostgreSQL takes at most 65,535 bound parameters a
    statement (SQLite 32,766 unless built with more), so a long IN list is rendered inline (quoted); only the
    listed rows come. (Fails on PostgreSQL with one parameter per value: plan failed so at XL.)"""
    ids = [f"p{i}" for i in range(70_000)] + ["o'brien"]
    book = pd.DataFrame([{"id": pid, "name": pid, "equity_balance": 1e5, "currency": "USD", "is_active": True}
                         for pid in ("o'brien", "p7", "unlisted")])
    required = {c.name: 0 for c in m.PortfolioSnapshot.__table__.columns if not c.nullable and c.default is None
                and c.server_default is None}
    snaps = pd.DataFrame([{**required, "portfolio_id": pid, "snapshot_date": d, "run_id": "r"}
                          for pid in ("o'brien", "p7", "unlisted") for d in (date(2026, 3, 2), date(2026, 3, 3))])
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, book)
        repo.upsert(s, m.PortfolioSnapshot, snaps)
        got = repo.latest_snapshots_before(s, ids, date(2026, 3, 4))
        assert sorted(got["portfolio_id"]) == ["o'brien", "p7"]
        assert set(got["snapshot_date"].astype(str)) == {"2026-03-03"}
        assert sorted(repo.load_snapshots(s, ids, None, None)["portfolio_id"]) == ["o'brien", "o'brien", "p7", "p7"]


def test_load_positions_can_select_columns(engine):
    with transaction(engine) as s:
        repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": "p1", "name": "P1", "equity_balance": 1e5,
                                                    "currency": "USD", "is_active": True}]))
        repo.upsert(s, m.Position, pd.DataFrame([{"portfolio_id": "p1", "symbol": "AAA", "position_type": "LONG",
                                                  "quantity": 10.0, "entry_price": 9.0,
                                                  "entry_date": date(2026, 1, 5), "investment_class": "PUBLIC"}]),
                    conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
        got = repo.load_positions(s, ["p1"], columns=("id", "symbol", "quantity"))
    assert list(got.columns) == ["id", "symbol", "quantity"] and got["quantity"].tolist() == [10.0]


def test_positions_leave_room_for_the_nightly_update_on_postgresql(pg_url):
    """Migration 0005: positions get fillfactor 60, so market-values' update is heap-only (no index writes)."""
    from sqlalchemy import text

    from shared.storage.db import get_engine

    eng = get_engine(pg_url)
    migrate(eng)
    with eng.connect() as c:
        opts = c.execute(text("SELECT reloptions FROM pg_class WHERE oid = 'positions'::regclass")).scalar_one()
    assert "fillfactor=60" in (opts or [])


def _two_books(s) -> pd.DataFrame:
    """Portfolios p1 (AAA, BBB, an option on AAA) and p2 (AAA); their positions."""
    repo.upsert(s, m.Portfolio, pd.DataFrame([{"id": p, "name": p, "equity_balance": 1e5, "currency": "USD",
                                               "is_active": True} for p in ("p1", "p2")]))
    lots = pd.DataFrame([
        {"portfolio_id": "p1", "symbol": "AAA", "underlying_symbol": None, "investment_class": "PUBLIC"},
        {"portfolio_id": "p1", "symbol": "BBB", "underlying_symbol": None, "investment_class": "PUBLIC"},
        {"portfolio_id": "p1", "symbol": "AAA260320C00010000", "underlying_symbol": "AAA", "investment_class": "OPTIONS"},
        {"portfolio_id": "p2", "symbol": "AAA", "underlying_symbol": None, "investment_class": "PUBLIC"},
    ]).assign(position_type="LONG", quantity=10.0, entry_price=9.0, entry_date=date(2026, 1, 5))
    repo.upsert(s, m.Position, lots, conflict=("portfolio_id", "symbol", "position_type", "entry_date"))
    return repo.load_positions(s)


@pytest.mark.parametrize("in_chunk", [repo.SQLITE_IN_CHUNK, 1])  # stored dates read by key, or by the scope
def test_replace_current_within_a_scope_touches_only_the_scope(engine, monkeypatch, in_chunk):
    """A portfolio shard's sector tags: what ``within`` excludes is neither read nor deleted, and a tag dated
    later than the new one is kept, whichever way the stored dates are read."""
    monkeypatch.setattr(repo, "SQLITE_IN_CHUNK", in_chunk)
    d1, d2, d3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
    with transaction(engine) as s:
        pos = _two_books(s)
        tags = pd.DataFrame({"position_id": pos["id"], "portfolio_id": pos["portfolio_id"], "sector": "Old",
                             "tagged_on": d1})
        tags.loc[1, "tagged_on"] = d3  # p1's second position: tagged later than the re-run below
        repo.insert(s, m.PositionSectorTag, tags)
    p1 = tags[tags["portfolio_id"] == "p1"].assign(sector="New", tagged_on=d2)
    with transaction(engine) as s:
        assert repo.replace_current(s, m.PositionSectorTag, p1, "position_id", "tagged_on",
                                    within={"portfolio_id": ["p1"]}) == 2
        got = repo.read_frame(s, m.PositionSectorTag.__table__.select()).set_index("position_id")
    assert got.loc[pos["id"], "sector"].tolist() == ["New", "Old", "New", "Old"]  # p1 later tag kept; p2 untouched
    assert str(got.loc[pos["id"][3], "tagged_on"]) == str(d1)


def test_load_held_symbols_is_one_row_a_symbol_and_class(engine):
    with transaction(engine) as s:
        _two_books(s)
        every = repo.load_held_symbols(s)
        p2 = repo.load_held_symbols(s, ["p2"], start=date(2026, 2, 1), end=date(2026, 2, 2))
        before = repo.load_held_symbols(s, end=date(2026, 1, 4))
    assert list(every.columns) == ["symbol", "underlying_symbol", "investment_class"]
    assert every["symbol"].tolist() == ["AAA", "AAA260320C00010000", "BBB"]  # AAA held twice: one row
    assert p2["symbol"].tolist() == ["AAA"] and before.empty
