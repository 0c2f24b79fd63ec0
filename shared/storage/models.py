"""SQLAlchemy 2 models: every table the phases read or write (domain spec §1, with our decisions).

Numbers are stored as double precision (``Float``): analytics are computed in float64 and written back
without a lossy decimal round trip. Keys are natural where the domain has one (symbol, date), so every
write is an idempotent upsert on that key. Indexes the old system lacked are declared here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# --- portfolios and positions -------------------------------------------------------------------

class Portfolio(Base):
    """A portfolio. ``equity_balance`` is the NAV at inception and is never overwritten by the batch;
    rolled-forward equity lives in :class:`PortfolioSnapshot`."""

    __tablename__ = "portfolios"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="USD")
    equity_balance: Mapped[float] = mapped_column(Float, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Position(Base):
    """One lot. Quantity is signed (shorts negative); options carry a multiplier of 100."""

    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("portfolio_id", "symbol", "position_type", "entry_date", name="uq_positions_lot"),
        Index("ix_positions_portfolio_asof", "portfolio_id", "deleted_at", "entry_date", "exit_date"),
        Index("ix_positions_symbol", "symbol"),
        # room on each page for the nightly market-value update to stay on it (migration 0005)
        {"postgresql_with": {"fillfactor": 60}},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False)
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    underlying_symbol: Mapped[str | None] = mapped_column(String(20))
    position_type: Mapped[str] = mapped_column(String(8), nullable=False)
    investment_class: Mapped[str] = mapped_column(String(20), nullable=False, default="PUBLIC")
    quantity: Mapped[float] = mapped_column(Float, nullable=False)
    entry_price: Mapped[float] = mapped_column(Float, nullable=False)
    entry_date: Mapped[date] = mapped_column(Date, nullable=False)
    exit_price: Mapped[float | None] = mapped_column(Float)
    exit_date: Mapped[date | None] = mapped_column(Date)
    strike_price: Mapped[float | None] = mapped_column(Float)
    expiration_date: Mapped[date | None] = mapped_column(Date)
    last_price: Mapped[float | None] = mapped_column(Float)
    market_value: Mapped[float | None] = mapped_column(Float)
    unrealized_pnl: Mapped[float | None] = mapped_column(Float)
    market_value_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = _now()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EquityChange(Base):
    """A capital flow: positive contribution, negative withdrawal (USD)."""

    __tablename__ = "equity_changes"
    __table_args__ = (Index("ix_equity_changes_portfolio_date", "portfolio_id", "change_date"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False)
    change_date: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    notes: Mapped[str | None] = mapped_column(String(500))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- market data --------------------------------------------------------------------------------

class MarketDataCache(Base):
    __tablename__ = "market_data_cache"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    close: Mapped[float] = mapped_column(Float, nullable=False)
    volume: Mapped[float | None] = mapped_column(Float)
    data_source: Mapped[str] = mapped_column(String(32), nullable=False)
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_market_data_cache_date", "date"),)


class CompanyProfile(Base):
    __tablename__ = "company_profiles"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_name: Mapped[str | None] = mapped_column(String(255))
    sector: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    exchange: Mapped[str | None] = mapped_column(String(50))
    country: Mapped[str | None] = mapped_column(String(50))
    market_cap: Mapped[float | None] = mapped_column(Float)
    beta: Mapped[float | None] = mapped_column(Float)
    pe_ratio: Mapped[float | None] = mapped_column(Float)
    forward_pe: Mapped[float | None] = mapped_column(Float)
    dividend_yield: Mapped[float | None] = mapped_column(Float)
    week_52_high: Mapped[float | None] = mapped_column(Float)
    week_52_low: Mapped[float | None] = mapped_column(Float)
    is_etf: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_fund: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    target_mean_price: Mapped[float | None] = mapped_column(Float)
    forward_eps: Mapped[float | None] = mapped_column(Float)
    revenue_growth: Mapped[float | None] = mapped_column(Float)
    earnings_growth: Mapped[float | None] = mapped_column(Float)
    profit_margin: Mapped[float | None] = mapped_column(Float)
    next_earnings_date: Mapped[date | None] = mapped_column(Date)
    fundamentals_last_fetched: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    data_source: Mapped[str | None] = mapped_column(String(32))
    last_updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SymbolUniverse(Base):
    __tablename__ = "symbol_universe"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset_type: Mapped[str] = mapped_column(String(20), nullable=False, default="equity")
    sector: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    first_seen_date: Mapped[date] = mapped_column(Date, nullable=False)
    last_seen_date: Mapped[date] = mapped_column(Date, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class BenchmarkSectorWeight(Base):
    __tablename__ = "benchmarks_sector_weights"
    benchmark_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    asof_date: Mapped[date] = mapped_column(Date, primary_key=True)
    sector: Mapped[str] = mapped_column(String(100), primary_key=True)
    weight: Mapped[float] = mapped_column(Float, nullable=False)
    data_source: Mapped[str | None] = mapped_column(String(32))


class MacroSeries(Base):
    __tablename__ = "macro_series"
    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    date: Mapped[date] = mapped_column(Date, primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    data_source: Mapped[str | None] = mapped_column(String(32))


class FinancialStatementItem(Base):
    """Income statement, balance sheet and cash-flow line items, long format (plus derived ratios,
    stored as items of statement ``derived``)."""

    __tablename__ = "financial_statements"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    statement: Mapped[str] = mapped_column(String(12), primary_key=True)
    period_date: Mapped[date] = mapped_column(Date, primary_key=True)
    frequency: Mapped[str] = mapped_column(String(1), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    fiscal_quarter: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)


# --- symbol analytics ---------------------------------------------------------------------------

class FactorDefinitionRow(Base):
    __tablename__ = "factor_definitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    factor_type: Mapped[str] = mapped_column(String(20), nullable=False)
    calculation_method: Mapped[str] = mapped_column(String(32), nullable=False)
    etf_proxy: Mapped[str | None] = mapped_column(String(10))
    display_order: Mapped[int] = mapped_column(Integer, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class SymbolFactorExposure(Base):
    __tablename__ = "symbol_factor_exposures"
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    factor_id: Mapped[int] = mapped_column(Integer, nullable=False)  # factor_definitions.id (REFERENCES)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    beta_value: Mapped[float] = mapped_column(Float, nullable=False)
    alpha: Mapped[float | None] = mapped_column(Float)
    r_squared: Mapped[float | None] = mapped_column(Float)
    std_error: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int | None] = mapped_column(Integer)
    quality_flag: Mapped[str | None] = mapped_column(String(32))
    calculation_method: Mapped[str] = mapped_column(String(32), nullable=False)
    regularization_alpha: Mapped[float | None] = mapped_column(Float)
    regression_window_days: Mapped[int | None] = mapped_column(Integer)
    # date first (migration 0011): a chunk's rows append at the right end of the key; readers ask by date
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "symbol", "factor_id",
                                           name="symbol_factor_exposures_pkey"),)


class SymbolDailyMetrics(Base):
    """One row per symbol and date (the old system kept one row per symbol; we keep history)."""

    __tablename__ = "symbol_daily_metrics"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    metrics_date: Mapped[date] = mapped_column(Date, primary_key=True)
    current_price: Mapped[float | None] = mapped_column(Float)
    return_1d: Mapped[float | None] = mapped_column(Float)
    return_mtd: Mapped[float | None] = mapped_column(Float)
    return_ytd: Mapped[float | None] = mapped_column(Float)
    return_1m: Mapped[float | None] = mapped_column(Float)
    return_3m: Mapped[float | None] = mapped_column(Float)
    return_1y: Mapped[float | None] = mapped_column(Float)
    market_cap: Mapped[float | None] = mapped_column(Float)
    pe_ratio: Mapped[float | None] = mapped_column(Float)
    sector: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(255))
    data_quality_score: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_symbol_daily_metrics_date", "metrics_date"),)


class SymbolVolatility(Base):
    """Volatility of a symbol on a session (phase 6b), computed once per held symbol (an option's underlying)
    and session; a position's row is the view ``position_volatility`` (migration 0007)."""

    __tablename__ = "symbol_volatility"
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    calculation_date: Mapped[date] = mapped_column(Date, primary_key=True)
    realized_vol_21d: Mapped[float | None] = mapped_column(Float)
    realized_vol_63d: Mapped[float | None] = mapped_column(Float)
    vol_daily: Mapped[float | None] = mapped_column(Float)
    vol_weekly: Mapped[float | None] = mapped_column(Float)
    vol_monthly: Mapped[float | None] = mapped_column(Float)
    expected_vol_21d: Mapped[float | None] = mapped_column(Float)
    vol_trend: Mapped[str | None] = mapped_column(String(20))
    vol_trend_strength: Mapped[float | None] = mapped_column(Float)
    vol_percentile: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int | None] = mapped_column(Integer)
    model_r_squared: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_symbol_volatility_date", "calculation_date"),)


# --- portfolio analytics ------------------------------------------------------------------------

class PortfolioSnapshot(Base):
    __tablename__ = "portfolio_snapshots"
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), primary_key=True)
    snapshot_date: Mapped[date] = mapped_column(Date, primary_key=True)
    net_asset_value: Mapped[float] = mapped_column(Float, nullable=False)
    cash_value: Mapped[float] = mapped_column(Float, nullable=False)
    long_value: Mapped[float] = mapped_column(Float, nullable=False)
    short_value: Mapped[float] = mapped_column(Float, nullable=False)
    gross_exposure: Mapped[float] = mapped_column(Float, nullable=False)
    net_exposure: Mapped[float] = mapped_column(Float, nullable=False)
    daily_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    daily_unrealized_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    daily_realized_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    daily_return: Mapped[float | None] = mapped_column(Float)
    daily_capital_flow: Mapped[float] = mapped_column(Float, nullable=False)
    cumulative_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    cumulative_realized_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    cumulative_capital_flow: Mapped[float] = mapped_column(Float, nullable=False)
    equity_balance: Mapped[float] = mapped_column(Float, nullable=False)
    num_positions: Mapped[int] = mapped_column(Integer, nullable=False)
    num_long_positions: Mapped[int] = mapped_column(Integer, nullable=False)
    num_short_positions: Mapped[int] = mapped_column(Integer, nullable=False)
    positions_without_price: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    realized_volatility_21d: Mapped[float | None] = mapped_column(Float)
    realized_volatility_63d: Mapped[float | None] = mapped_column(Float)
    expected_volatility_21d: Mapped[float | None] = mapped_column(Float)
    volatility_trend: Mapped[str | None] = mapped_column(String(20))
    volatility_percentile: Mapped[float | None] = mapped_column(Float)
    beta_calculated_90d: Mapped[float | None] = mapped_column(Float)
    beta_calculated_90d_r_squared: Mapped[float | None] = mapped_column(Float)
    beta_calculated_90d_observations: Mapped[int | None] = mapped_column(Integer)
    beta_provider_1y: Mapped[float | None] = mapped_column(Float)
    ir_beta: Mapped[float | None] = mapped_column(Float)
    sector_exposure: Mapped[dict | None] = mapped_column(JSON)
    hhi: Mapped[float | None] = mapped_column(Float)
    effective_num_positions: Mapped[float | None] = mapped_column(Float)
    top_3_concentration: Mapped[float | None] = mapped_column(Float)
    top_10_concentration: Mapped[float | None] = mapped_column(Float)
    run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_portfolio_snapshots_date", "snapshot_date"),)


class FactorExposure(Base):
    __tablename__ = "factor_exposures"
    # no foreign key (migration 0004, as pairwise_correlations): a trigger on portfolios cascades deletes
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    factor_id: Mapped[int] = mapped_column(Integer, nullable=False)  # factor_definitions.id (REFERENCES)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    exposure_value: Mapped[float] = mapped_column(Float, nullable=False)
    exposure_dollar: Mapped[float] = mapped_column(Float, nullable=False)
    coverage: Mapped[float | None] = mapped_column(Float)
    # date first (migration 0011): a chunk's rows append at the right end of the key; readers ask by date
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", "factor_id",
                                           name="factor_exposures_pkey"),)


class PositionSectorTag(Base):
    __tablename__ = "position_sector_tags"
    position_id: Mapped[int] = mapped_column(ForeignKey("positions.id", ondelete="CASCADE"), primary_key=True)
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sector: Mapped[str] = mapped_column(String(100), nullable=False)
    tagged_on: Mapped[date] = mapped_column(Date, nullable=False)


class StressTestScenario(Base):
    __tablename__ = "stress_test_scenarios"
    scenario_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(20), nullable=False)
    shock_config: Mapped[dict] = mapped_column(JSON, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class StressTestPnl(Base):
    """One stress scenario's P&L of a portfolio on a date (migration 0010: the numbers of
    ``stress_test_results`` without its per-row JSON, which the view rebuilds from the tables below)."""

    __tablename__ = "stress_test_pnl"
    # no foreign key (migrations 0004, 0009): a trigger on portfolios cascades deletes; scenario ids are
    # checked per write (REFERENCES)
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    scenario_id: Mapped[str] = mapped_column(String(64), nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    direct_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    correlated_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    correlation_effect: Mapped[float] = mapped_column(Float, nullable=False)
    loss_capped: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # date first: a night's rows append at the right end of the key, retention deletes a range at its left
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", "scenario_id",
                                           name="stress_test_pnl_pkey"),)


class StressExposure(Base):
    """The dollar exposures the stress model applied to a portfolio on a date: market beta, the six styles
    and rates, style and rates net of the market (:func:`shared.analytics.stress.stress_exposures_dates`);
    the ``exposure`` of every ``factor_impacts`` entry of the portfolio's scenarios that date."""

    __tablename__ = "stress_exposures"
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    market: Mapped[float] = mapped_column(Float, nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    growth: Mapped[float] = mapped_column(Float, nullable=False)
    momentum: Mapped[float] = mapped_column(Float, nullable=False)
    quality: Mapped[float] = mapped_column(Float, nullable=False)
    size: Mapped[float] = mapped_column(Float, nullable=False)
    low_volatility: Mapped[float] = mapped_column(Float, nullable=False)
    rates: Mapped[float] = mapped_column(Float, nullable=False)
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", name="stress_exposures_pkey"),)


class StressScenarioSession(Base):
    """What a scenario was on a calculation date, the same for every portfolio: its shocks as run, the
    factor moves they imply under that date's EWMA covariance, and how that covariance was made."""

    __tablename__ = "stress_scenario_sessions"
    calculation_date: Mapped[date] = mapped_column(Date, primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scenario_name: Mapped[str] = mapped_column(String(255), nullable=False)
    category: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(64), nullable=False)
    data_days: Mapped[int] = mapped_column(Integer, nullable=False)
    covariance: Mapped[bool] = mapped_column(Boolean, nullable=False)
    tlt_duration: Mapped[float] = mapped_column(Float, nullable=False)
    shocks: Mapped[dict] = mapped_column(JSON, nullable=False)
    implied_moves: Mapped[dict] = mapped_column(JSON, nullable=False)


class StressTestSummary(Base):
    __tablename__ = "stress_test_summaries"
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    worst_pnl: Mapped[float | None] = mapped_column(Float)
    best_pnl: Mapped[float | None] = mapped_column(Float)
    mean_pnl: Mapped[float | None] = mapped_column(Float)
    median_pnl: Mapped[float | None] = mapped_column(Float)
    std_pnl: Mapped[float | None] = mapped_column(Float)
    mean_correlation_effect: Mapped[float | None] = mapped_column(Float)
    negative_scenarios: Mapped[int | None] = mapped_column(Integer)
    positive_scenarios: Mapped[int | None] = mapped_column(Integer)
    # date first (migration 0012): a chunk's rows append at the right end of the key; readers ask by date
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", name="stress_test_summaries_pkey"),)


class CorrelationCalculation(Base):
    __tablename__ = "correlation_calculations"
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False)
    duration_days: Mapped[int] = mapped_column(Integer, nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    overall_correlation: Mapped[float | None] = mapped_column(Float)
    correlation_concentration_score: Mapped[float | None] = mapped_column(Float)
    effective_positions: Mapped[float | None] = mapped_column(Float)
    data_quality: Mapped[str | None] = mapped_column(String(20))
    min_position_value: Mapped[float | None] = mapped_column(Float)
    min_portfolio_weight: Mapped[float | None] = mapped_column(Float)
    filter_mode: Mapped[str | None] = mapped_column(String(10))
    correlation_threshold: Mapped[float | None] = mapped_column(Float)
    positions_included: Mapped[int | None] = mapped_column(Integer)
    positions_excluded: Mapped[int | None] = mapped_column(Integer)
    # date first (migration 0012)
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", "duration_days",
                                           name="correlation_calculations_pkey"),)


class PairwiseCorrelation(Base):
    __tablename__ = "pairwise_correlations"
    # no foreign key (migration 0003): ~1.6 M rows a night, a per-row check cost 2/3 of the write; a
    # trigger on portfolios still deletes a deleted portfolio's rows. The key starts with the date
    # (migration 0008): a night's rows append at the right end of the index, the retention delete
    # (shared.retention) is a range at its left end.
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    duration_days: Mapped[int] = mapped_column(Integer, nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    symbol_1: Mapped[str] = mapped_column(String(32), nullable=False)
    symbol_2: Mapped[str] = mapped_column(String(32), nullable=False)
    correlation_value: Mapped[float] = mapped_column(Float, nullable=False)
    data_points: Mapped[int | None] = mapped_column(Integer)
    statistical_significance: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", "duration_days", "symbol_1",
                                           "symbol_2", name="pairwise_correlations_pkey"),)


class CorrelationCluster(Base):
    __tablename__ = "correlation_clusters"
    portfolio_id: Mapped[str] = mapped_column(ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False)
    duration_days: Mapped[int] = mapped_column(Integer, nullable=False)
    calculation_date: Mapped[date] = mapped_column(Date, nullable=False)
    cluster_number: Mapped[int] = mapped_column(Integer, nullable=False)
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    avg_correlation: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float | None] = mapped_column(Float)
    # date first (migration 0012)
    __table_args__ = (PrimaryKeyConstraint("calculation_date", "portfolio_id", "duration_days", "cluster_number",
                                           "symbol", name="correlation_clusters_pkey"),)


# --- batch bookkeeping --------------------------------------------------------------------------

class BatchRunHistory(Base):
    __tablename__ = "batch_run_history"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    triggered_by: Mapped[str] = mapped_column(String(20), nullable=False)
    workflow_name: Mapped[str | None] = mapped_column(String(128))
    portfolio_id: Mapped[str | None] = mapped_column(String(64))
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    sessions: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_summary: Mapped[dict | list | None] = mapped_column(JSON)
    data_coverage: Mapped[dict | None] = mapped_column(JSON)
    abandoned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    abandoned_by: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (Index("ix_batch_run_history_started", "started_at"), Index("ix_batch_run_history_status", "status"))


class BatchPhaseRun(Base):
    __tablename__ = "batch_phase_runs"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phase: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    rows_written: Mapped[dict | None] = mapped_column(JSON)
    details: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class BatchLock(Base):
    """The batch lock: one row per lock name, owned by a run (``run_id``; empty = free) until released or
    its lease expires. ``generation`` counts the times it changed hands (the fencing token)."""

    __tablename__ = "batch_locks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    holder: Mapped[str | None] = mapped_column(String(255))
    generation: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


#: Columns that refer to a small reference table without a foreign key (migration 0009: the per-row check
#: cost ≈ 40 % of a bulk write of millions of rows): model -> {column: (reference model, its key column)}.
#: :func:`shared.storage.repository.insert` and ``upsert`` check the distinct ids of every write against
#: the reference table, in one query, before writing anything.
REFERENCES: dict[type[Base], dict[str, tuple[type[Base], str]]] = {
    SymbolFactorExposure: {"factor_id": (FactorDefinitionRow, "id")},
    FactorExposure: {"factor_id": (FactorDefinitionRow, "id")},
    StressTestPnl: {"scenario_id": (StressTestScenario, "scenario_id")},
    StressScenarioSession: {"scenario_id": (StressTestScenario, "scenario_id")},
}


# --- views: per-position rows of per-symbol facts (migration 0007) --------------------------------

class ViewBase(DeclarativeBase):
    """Database views, mapped for reading. Their own metadata, so ``Base.metadata.create_all`` (and
    Alembic's autogenerate) never makes tables of them; migration 0007 defines them in SQL. The primary keys are the views' logical keys (the ORM needs one)."""


#: What a view reads: table -> columns (the positions held on a date, in a portfolio with a snapshot on it)
_HELD_ON = {"positions": ("id", "portfolio_id", "symbol", "underlying_symbol", "investment_class", "entry_date",
                         "exit_date", "deleted_at"), "portfolio_snapshots": ("portfolio_id", "snapshot_date")}


class PositionMarketBeta(ViewBase):
    """The 90-session market beta of each PUBLIC position held on ``calc_date`` (the symbol's row of
    ``symbol_factor_exposures``)."""

    __tablename__ = "position_market_betas"
    __table_args__ = {"info": {"view_of": {**_HELD_ON, "symbol_factor_exposures": (), "factor_definitions": ()}}}
    position_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calc_date: Mapped[date] = mapped_column(Date, primary_key=True)
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    beta: Mapped[float] = mapped_column(Float, nullable=False)
    alpha: Mapped[float | None] = mapped_column(Float)
    r_squared: Mapped[float | None] = mapped_column(Float)
    std_error: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int | None] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer, nullable=False)
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    market_index: Mapped[str] = mapped_column(String(10), nullable=False)


class PositionInterestRateBeta(ViewBase):
    """The interest-rate beta of each PUBLIC position held on ``calculation_date`` (its symbol's)."""

    __tablename__ = "position_interest_rate_betas"
    __table_args__ = {"info": {"view_of": {**_HELD_ON, "symbol_factor_exposures": (), "factor_definitions": ()}}}
    position_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calculation_date: Mapped[date] = mapped_column(Date, primary_key=True)
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ir_beta: Mapped[float] = mapped_column(Float, nullable=False)
    r_squared: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int | None] = mapped_column(Integer)


class PositionVolatility(ViewBase):
    """The volatility of each position held on ``calculation_date``: its symbol's (an option's
    underlying's) row of ``symbol_volatility``."""

    __tablename__ = "position_volatility"
    __table_args__ = {"info": {"view_of": {**_HELD_ON, "symbol_volatility": ()}}}
    position_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calculation_date: Mapped[date] = mapped_column(Date, primary_key=True)
    portfolio_id: Mapped[str] = mapped_column(String(64), nullable=False)
    realized_vol_21d: Mapped[float | None] = mapped_column(Float)
    realized_vol_63d: Mapped[float | None] = mapped_column(Float)
    vol_daily: Mapped[float | None] = mapped_column(Float)
    vol_weekly: Mapped[float | None] = mapped_column(Float)
    vol_monthly: Mapped[float | None] = mapped_column(Float)
    expected_vol_21d: Mapped[float | None] = mapped_column(Float)
    vol_trend: Mapped[str | None] = mapped_column(String(20))
    vol_trend_strength: Mapped[float | None] = mapped_column(Float)
    vol_percentile: Mapped[float | None] = mapped_column(Float)
    observations: Mapped[int | None] = mapped_column(Integer)
    model_r_squared: Mapped[float | None] = mapped_column(Float)


def relations() -> dict:
    """Every table and view by name (tables first): what a reader can select from."""
    return {**Base.metadata.tables, **ViewBase.metadata.tables}


class StressTestResult(ViewBase):
    """Every stress result with its ``factor_impacts`` and ``calculation_metadata`` as the batch wrote them
    until migration 0010, rebuilt from ``stress_test_pnl`` (the numbers), ``stress_exposures`` (the
    portfolio's exposures) and ``stress_scenario_sessions`` (the scenario on the date): per-portfolio rows
    of per-scenario facts are stored once."""

    __tablename__ = "stress_test_results"
    __table_args__ = {"info": {"view_of": {"stress_test_pnl": (), "stress_exposures": (),
                                           "stress_scenario_sessions": ()}}}
    portfolio_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    calculation_date: Mapped[date] = mapped_column(Date, primary_key=True)
    direct_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    correlated_pnl: Mapped[float] = mapped_column(Float, nullable=False)
    correlation_effect: Mapped[float] = mapped_column(Float, nullable=False)
    factor_impacts: Mapped[dict | None] = mapped_column(JSON)
    calculation_metadata: Mapped[dict | None] = mapped_column(JSON)
