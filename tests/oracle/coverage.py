"""Which stored column the oracle checks (and by which test), or why it does not.

``python -m tests.oracle.coverage`` prints the table as Markdown (kept in ``docs/testing.md``);
``pytest -v tests/oracle`` prints it at the end of the run; ``test_coverage_lists_every_column`` fails when a
table the DAG writes (or a view over them) gains a column that is not listed here.
"""

from __future__ import annotations

T = "test_oracle.py::"
KEYS = "key (rows compared as a set)"
META = "run metadata (who wrote the row, when), not a number"
NOW = "provider's current figure / fetch time, not derived by the batch"

_SNAP_PNL = ["net_asset_value", "cash_value", "long_value", "short_value", "gross_exposure", "net_exposure",
             "daily_pnl", "daily_unrealized_pnl", "daily_realized_pnl", "daily_return", "daily_capital_flow",
             "cumulative_pnl", "cumulative_realized_pnl", "cumulative_capital_flow", "equity_balance",
             "num_positions", "num_long_positions", "num_short_positions", "positions_without_price"]

COVERAGE: dict[str, dict[str, str]] = {
    "market_data_cache": {"symbol": KEYS, "date": KEYS, "close": T + "test_prices_marks_and_sector_tags",
                          "volume": T + "test_prices_marks_and_sector_tags",
                          "data_source": T + "test_prices_marks_and_sector_tags", "updated_at": META},
    "symbol_factor_exposures": {
        "symbol": KEYS, "factor_id": KEYS, "calculation_date": KEYS,
        **{c: T + "test_symbol_factor_exposures" for c in (
            "beta_value", "alpha", "r_squared", "std_error", "p_value", "observations", "quality_flag",
            "calculation_method", "regularization_alpha", "regression_window_days")}},
    "symbol_daily_metrics": {
        "symbol": KEYS, "metrics_date": KEYS,
        **{c: T + "test_symbol_daily_metrics" for c in (
            "current_price", "return_1d", "return_mtd", "return_ytd", "return_1m", "return_3m", "return_1y",
            "sector", "industry", "company_name", "data_quality_score")},
        "market_cap": "not checked: null by design on dated rows (a provider's current figure, README)",
        "pe_ratio": "not checked: null by design on dated rows (a provider's current figure, README)"},
    "portfolio_snapshots": {
        "portfolio_id": KEYS, "snapshot_date": KEYS,
        **{c: T + "test_portfolio_snapshots_pnl (every session) + test_equity_chain_and_flows" for c in _SNAP_PNL},
        **{c: T + "test_volatility" for c in ("realized_volatility_21d", "realized_volatility_63d",
                                               "expected_volatility_21d", "volatility_trend", "volatility_percentile")},
        **{c: T + "test_factor_exposures_and_snapshot_betas" for c in (
            "beta_calculated_90d", "beta_calculated_90d_r_squared", "beta_calculated_90d_observations",
            "beta_provider_1y", "ir_beta")},
        "sector_exposure": T + "test_sector_exposure (every session; stored rounded to 6 places)",
        **{c: T + "test_concentration (every session)" for c in ("hhi", "effective_num_positions",
                                                                  "top_3_concentration", "top_10_concentration")},
        "run_id": META, "created_at": META},
    "factor_exposures": {"portfolio_id": KEYS, "factor_id": KEYS, "calculation_date": KEYS,
                         **{c: T + "test_factor_exposures_and_snapshot_betas + test_identities_between_stored_tables"
                            for c in ("exposure_value", "exposure_dollar", "coverage")}},
    "symbol_volatility": {"symbol": KEYS, "calculation_date": KEYS,
                          **{c: T + "test_volatility" for c in (
                              "realized_vol_21d", "realized_vol_63d", "vol_daily", "vol_weekly", "vol_monthly",
                              "expected_vol_21d", "vol_trend", "vol_trend_strength", "vol_percentile",
                              "observations", "model_r_squared")}},
    # views (migration 0007): a position's row is its symbol's, joined with the positions held on the date
    "position_market_betas": {"position_id": KEYS, "calc_date": KEYS,
                              **{c: T + "test_position_betas + test_identities_between_stored_tables" for c in (
                                  "portfolio_id", "beta", "alpha", "r_squared", "std_error", "p_value", "observations",
                                  "window_days", "method", "market_index")}},
    "position_interest_rate_betas": {"position_id": KEYS, "calculation_date": KEYS,
                                     **{c: T + "test_position_betas + test_identities_between_stored_tables"
                                        for c in ("portfolio_id", "ir_beta", "r_squared", "observations")}},
    "position_volatility": {"position_id": KEYS, "calculation_date": KEYS,
                            **{c: T + "test_volatility" for c in (
                                "portfolio_id", "realized_vol_21d", "realized_vol_63d", "vol_daily", "vol_weekly",
                                "vol_monthly", "expected_vol_21d", "vol_trend", "vol_trend_strength", "vol_percentile",
                                "observations", "model_r_squared")}},
    "correlation_calculations": {
        "portfolio_id": KEYS, "duration_days": KEYS, "calculation_date": KEYS,
        **{c: T + "test_correlations (every session)" for c in (
            "overall_correlation", "data_quality", "min_position_value", "min_portfolio_weight", "filter_mode",
            "correlation_threshold", "positions_included", "positions_excluded")},
        **{c: T + "test_correlations (every session; PSD repair by eigenvalue clipping, average-linkage "
                  "clusters)" for c in ("effective_positions", "correlation_concentration_score")}},
    "pairwise_correlations": {"portfolio_id": KEYS, "calculation_date": KEYS, "symbol_1": KEYS, "symbol_2": KEYS,
                              **{c: T + "test_correlations (the kept last session)" for c in (
                                  "duration_days", "correlation_value", "data_points", "statistical_significance")}},
    "correlation_clusters": {**{c: KEYS for c in ("portfolio_id", "duration_days", "calculation_date",
                                                  "cluster_number", "symbol")},
                             **{c: T + "test_correlations (every session)" for c in ("avg_correlation", "weight")}},
    "stress_test_results": {
        "portfolio_id": KEYS, "scenario_id": KEYS, "calculation_date": KEYS,
        **{c: T + "test_stress_tests + test_identities_between_stored_tables" for c in (
            "direct_pnl", "correlated_pnl", "correlation_effect")},
        "factor_impacts": T + "test_stress_tests (exposure per shocked factor)",
        "calculation_metadata": T + "test_stress_tests (implied_moves, loss_capped, data_days, covariance_date)"},
    "stress_test_pnl": {
        "portfolio_id": KEYS, "scenario_id": KEYS, "calculation_date": KEYS,
        **{c: T + "test_stress_tests (through the stress_test_results view)" for c in (
            "direct_pnl", "correlated_pnl", "correlation_effect", "loss_capped")}},
    "stress_exposures": {
        "portfolio_id": KEYS, "calculation_date": KEYS,
        **{c: T + "test_stress_tests (the exposures in the view's factor_impacts: every factor is shocked by a "
                  "scenario)" for c in (
            "market", "value", "growth", "momentum", "quality", "size", "low_volatility", "rates")}},
    "stress_scenario_sessions": {
        "calculation_date": KEYS, "scenario_id": KEYS,
        **{c: T + "test_stress_tests (calculation_metadata and factor_impacts of the view)" for c in (
            "scenario_name", "category", "model", "data_days", "covariance", "tlt_duration", "shocks",
            "implied_moves")}},
    "stress_test_summaries": {"portfolio_id": KEYS, "calculation_date": KEYS,
                              **{c: T + "test_stress_tests" for c in (
                                  "worst_pnl", "best_pnl", "mean_pnl", "median_pnl", "std_pnl",
                                  "mean_correlation_effect", "negative_scenarios", "positive_scenarios")}},
    "stress_test_scenarios": {c: "not checked: a copy of shared/data/stress_scenarios.yaml (the oracle reads the "
                                 "YAML itself)" for c in ("scenario_id", "name", "description", "category",
                                                          "severity", "shock_config", "active")},
    "positions": {
        **{c: T + "test_prices_marks_and_sector_tags" for c in (
            "last_price", "market_value", "unrealized_pnl", "market_value_date")},
        **{c: "input (imported, not computed)" for c in (
            "id", "portfolio_id", "symbol", "underlying_symbol", "position_type", "investment_class", "quantity",
            "entry_price", "entry_date", "exit_price", "exit_date", "strike_price", "expiration_date",
            "created_at", "deleted_at")}},
    "position_sector_tags": {"position_id": KEYS, **{c: T + "test_prices_marks_and_sector_tags"
                                                     for c in ("portfolio_id", "sector", "tagged_on")}},
    "company_profiles": {c: "not checked: the provider's profile copied as is" for c in (
        "symbol", "company_name", "sector", "industry", "exchange", "country", "market_cap", "beta", "pe_ratio",
        "forward_pe", "dividend_yield", "week_52_high", "week_52_low", "is_etf", "is_fund", "target_mean_price",
        "forward_eps", "revenue_growth", "earnings_growth", "profit_margin", "next_earnings_date", "data_source")}
    | {"fundamentals_last_fetched": NOW, "last_updated": NOW},
    "symbol_universe": {c: "not checked: bookkeeping of the symbols seen (no number a risk manager reads)" for c in (
        "symbol", "asset_type", "sector", "industry", "first_seen_date", "last_seen_date", "is_active")},
    "benchmarks_sector_weights": {c: "not checked: the provider's weights copied per session" for c in (
        "benchmark_code", "asof_date", "sector", "weight", "data_source")},
    "macro_series": {c: "not checked: the file provider serves no rates (empty in this book)" for c in (
        "series", "date", "value", "data_source")},
    "financial_statements": {c: "not checked: the file provider serves no statements (empty in this book)" for c in (
        "symbol", "statement", "period_date", "frequency", "item", "fiscal_year", "fiscal_quarter", "value")},
    "factor_definitions": {c: "not checked: constants seeded from the code" for c in (
        "id", "name", "description", "factor_type", "calculation_method", "etf_proxy", "display_order", "is_active")},
}


def markdown() -> str:
    lines = ["| table | column | checked by / why not |", "|---|---|---|"]
    for table in sorted(COVERAGE):
        for column, how in COVERAGE[table].items():
            lines.append(f"| {table} | {column} | {how} |")
    return "\n".join(lines)


def counts() -> tuple[int, int, int]:
    """(columns checked, keys, not checked)."""
    allc = [h for t in COVERAGE.values() for h in t.values()]
    checked = sum(h.startswith(T) for h in allc)
    keys = sum(h == KEYS for h in allc)
    return checked, keys, len(allc) - checked - keys


if __name__ == "__main__":
    print(markdown())
