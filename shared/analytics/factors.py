"""Factor universe constants (domain spec §3.1, §5.1, §9.6): which ETFs proxy which factor.

Pure data; the seeded ``factor_definitions`` rows come from :data:`FACTOR_DEFINITIONS`.
"""

from __future__ import annotations

from typing import NamedTuple

#: The 17 factor/benchmark ETFs phase 1 always fetches.
FACTOR_ETFS: tuple[str, ...] = (
    "SPY", "QQQ", "IWM", "VTI", "TLT", "IEF", "SHY", "HYG", "LQD",
    "VTV", "VUG", "MTUM", "QUAL", "USMV", "DJP", "VNQ", "GLD",
)

MARKET_ETF = "SPY"
RATES_ETF = "TLT"

#: Ridge regressors, in this order (factor name -> ETF).
STYLE_FACTORS: dict[str, str] = {
    "Value": "VTV",
    "Growth": "VUG",
    "Momentum": "MTUM",
    "Quality": "QUAL",
    "Size": "IWM",
    "Low Volatility": "USMV",
}

#: Spread factors: name -> (long ETF, short ETF).
SPREAD_FACTORS: dict[str, tuple[str, str]] = {
    "Growth-Value Spread": ("VUG", "VTV"),
    "Momentum Spread": ("MTUM", "SPY"),
    "Size Spread": ("IWM", "SPY"),
    "Quality Spread": ("QUAL", "SPY"),
}


class FactorDefinition(NamedTuple):
    name: str
    factor_type: str
    etf_proxy: str
    display_order: int
    calculation_method: str
    description: str


FACTOR_DEFINITIONS: tuple[FactorDefinition, ...] = (
    FactorDefinition("Market Beta (90D)", "market", "SPY", 0, "ols_market", "OLS beta vs SPY, 90 sessions"),
    FactorDefinition("Provider Beta (1Y)", "market", "SPY", 1, "provider", "Beta reported by the data provider"),
    FactorDefinition("IR Beta", "macro", "TLT", 2, "ols_ir", "OLS beta vs TLT, 90 sessions"),
    FactorDefinition("Momentum", "style", "MTUM", 3, "ridge_regression", "Ridge loading on MTUM"),
    FactorDefinition("Value", "style", "VTV", 4, "ridge_regression", "Ridge loading on VTV"),
    FactorDefinition("Growth", "style", "VUG", 5, "ridge_regression", "Ridge loading on VUG"),
    FactorDefinition("Size", "style", "IWM", 6, "ridge_regression", "Ridge loading on IWM"),
    FactorDefinition("Quality", "style", "QUAL", 7, "ridge_regression", "Ridge loading on QUAL"),
    FactorDefinition("Low Volatility", "style", "USMV", 8, "ridge_regression", "Ridge loading on USMV"),
    FactorDefinition("Growth-Value Spread", "style", "VUG", 9, "spread_regression", "OLS on VUG - VTV, 180 sessions"),
    FactorDefinition("Momentum Spread", "style", "MTUM", 10, "spread_regression", "OLS on MTUM - SPY, 180 sessions"),
    FactorDefinition("Size Spread", "style", "IWM", 11, "spread_regression", "OLS on IWM - SPY, 180 sessions"),
    FactorDefinition("Quality Spread", "style", "QUAL", 12, "spread_regression", "OLS on QUAL - SPY, 180 sessions"),
)

#: Sector names normalised to GICS (domain spec §9.3).
GICS_SECTOR_MAP: dict[str, str] = {
    "Financial Services": "Financials",
    "Consumer Cyclical": "Consumer Discretionary",
    "Consumer Defensive": "Consumer Staples",
    "Basic Materials": "Materials",
    "Technology": "Information Technology",
    "Healthcare": "Health Care",
    "Communication": "Communication Services",
}

OPTION_TYPES = frozenset({"LC", "LP", "SC", "SP"})
POSITION_TYPES = frozenset({"LONG", "SHORT"}) | OPTION_TYPES
OPTION_MULTIPLIER = 100.0


def normalize_sector(sector: str | None) -> str | None:
    """GICS name for a provider's sector label (``Financial Services`` -> ``Financials``)."""
    if sector is None or (isinstance(sector, float)) or not str(sector).strip():
        return None
    s = str(sector).strip()
    return GICS_SECTOR_MAP.get(s, s)
