"""Per-stock parameters of the synthetic market, drawn in fixed chunks so stock ``i`` is the same for any N.

Chunk ``c`` (stocks ``c*CHUNK .. c*CHUNK+CHUNK-1``) is drawn from ``default_rng([seed, 4, c])`` and always
drawn whole, so a 40-stock market and a 10,000-stock market share their first 40 stocks exactly.
"""

from __future__ import annotations

import numpy as np

from shared.analytics.factors import FACTOR_ETFS
from shared.providers.symbols import SKIPPED_NAMES

CHUNK = 256

#: GICS sector, rough S&P 500 frequency, mean market exposure, mean TLT loading, idio vol range.
SECTORS: dict[str, tuple[float, float, float, tuple[float, float]]] = {
    "Information Technology": (0.14, 1.25, -0.05, (0.22, 0.42)),
    "Financials": (0.14, 1.05, -0.25, (0.15, 0.30)),
    "Health Care": (0.12, 0.85, 0.05, (0.18, 0.40)),
    "Consumer Discretionary": (0.10, 1.15, -0.05, (0.20, 0.40)),
    "Industrials": (0.14, 1.05, -0.05, (0.15, 0.30)),
    "Communication Services": (0.05, 1.0, 0.0, (0.18, 0.35)),
    "Consumer Staples": (0.07, 0.6, 0.10, (0.12, 0.22)),
    "Energy": (0.05, 1.0, -0.15, (0.20, 0.35)),
    "Utilities": (0.06, 0.5, 0.30, (0.12, 0.20)),
    "Real Estate": (0.06, 0.85, 0.25, (0.14, 0.25)),
    "Materials": (0.07, 1.05, -0.05, (0.16, 0.30)),
}
#: Yahoo-style labels some synthetic profiles use instead of the GICS name (exercise normalisation).
YAHOO_LABEL = {
    "Information Technology": "Technology", "Financials": "Financial Services", "Health Care": "Healthcare",
    "Consumer Discretionary": "Consumer Cyclical", "Consumer Staples": "Consumer Defensive",
    "Materials": "Basic Materials", "Communication Services": "Communication Services",
}
INDUSTRIES = {
    "Information Technology": ("Software—Application", "Semiconductors", "IT Services", "Software—Infrastructure"),
    "Financials": ("Banks—Regional", "Asset Management", "Insurance—Diversified", "Capital Markets"),
    "Health Care": ("Biotechnology", "Medical Devices", "Drug Manufacturers", "Healthcare Plans"),
    "Consumer Discretionary": ("Specialty Retail", "Auto Parts", "Restaurants", "Apparel Retail"),
    "Industrials": ("Aerospace & Defense", "Specialty Industrial Machinery", "Railroads", "Building Products"),
    "Communication Services": ("Internet Content & Information", "Telecom Services", "Entertainment"),
    "Consumer Staples": ("Packaged Foods", "Household & Personal Products", "Beverages—Non-Alcoholic"),
    "Energy": ("Oil & Gas E&P", "Oil & Gas Midstream", "Oil & Gas Equipment & Services"),
    "Utilities": ("Utilities—Regulated Electric", "Utilities—Diversified", "Utilities—Regulated Gas"),
    "Real Estate": ("REIT—Industrial", "REIT—Residential", "REIT—Retail", "REIT—Office"),
    "Materials": ("Specialty Chemicals", "Steel", "Building Materials", "Gold"),
}
_SYLLABLES = ("ar", "ben", "cor", "dal", "en", "fen", "gar", "hol", "ix", "jan", "kor", "lum", "mar", "nor",
              "ol", "per", "quin", "ros", "sil", "tor", "ul", "ver", "wex", "yor", "zen", "tri", "vel", "cas")
_SUFFIXES = (" Inc.", " Corp.", " Holdings Inc.", " Group", " Technologies Inc.", " Industries", " Co.",
             " Systems Inc.", " Partners", " Brands Inc.")
_COUNTRIES = ("United States",) * 17 + ("Canada", "United Kingdom", "Ireland")
_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
#: Tickers that CSV/YAML/pandas readers turn into NaN, None, inf or booleans: never generated.
RESERVED_TICKERS = frozenset({"NA", "NAN", "NULL", "NONE", "INF", "TRUE", "FALSE", "YES", "NO", "ON", "OFF"})


def _tickers(rng: np.random.Generator, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < CHUNK:
        lengths = rng.choice([2, 3, 4], size=2 * CHUNK, p=[0.08, 0.42, 0.50])
        letters = rng.integers(0, 26, size=(2 * CHUNK, 4))
        for n, row in zip(lengths, letters, strict=True):
            t = "".join(_LETTERS[row[:n]])
            if t not in taken and len(out) < CHUNK:
                taken.add(t)
                out.append(t)
    return out


def draw_chunk(seed: int, c: int, taken: set[str]) -> dict[str, np.ndarray]:
    """Parameters of stocks ``c*CHUNK ..`` (arrays of length CHUNK). ``taken`` is updated with tickers."""
    rng = np.random.default_rng([seed, 4, c])
    names = list(SECTORS)
    probs = np.array([SECTORS[s][0] for s in names])
    sector_idx = rng.choice(len(names), size=CHUNK, p=probs / probs.sum())
    mkt = np.array([SECTORS[s][1] for s in names])[sector_idx] + rng.normal(0, 0.2, CHUNK)
    mkt = np.clip(mkt, 0.3, 2.2)
    weights = rng.dirichlet(np.full(6, 0.7), size=CHUNK)
    style_betas = mkt[:, None] * weights + rng.normal(0, 0.1, (CHUNK, 6))
    tlt = np.array([SECTORS[s][2] for s in names])[sector_idx] + rng.normal(0, 0.1, CHUNK)
    lo = np.array([SECTORS[s][3][0] for s in names])[sector_idx]
    hi = np.array([SECTORS[s][3][1] for s in names])[sector_idx]
    idio_vol = rng.uniform(lo, hi) / np.sqrt(252)
    alpha = rng.normal(0.0, 0.02, CHUNK) / 252
    price = np.exp(rng.uniform(np.log(12), np.log(450), CHUNK))
    market_cap = np.exp(rng.uniform(np.log(4e8), np.log(4e11), CHUNK))
    turnover = rng.uniform(0.002, 0.015, CHUNK)
    yahoo = rng.random(CHUNK) < 0.5
    industry_pick = rng.integers(0, 1000, CHUNK)
    syl = rng.integers(0, len(_SYLLABLES), (CHUNK, 3))
    n_syl = rng.integers(2, 4, CHUNK)
    suffix = rng.integers(0, len(_SUFFIXES), CHUNK)
    country = rng.integers(0, len(_COUNTRIES), CHUNK)
    nasdaq = rng.random(CHUNK) < 0.45
    beta_noise = rng.normal(0, 0.08, CHUNK)
    div = np.where(rng.random(CHUNK) < 0.35, 0.0, rng.uniform(0.003, 0.045, CHUNK))
    fundamentals = {
        "ps_ratio": rng.uniform(0.8, 8.0, CHUNK),
        "gross_margin": rng.uniform(0.2, 0.75, CHUNK),
        "op_margin_frac": rng.uniform(0.15, 0.55, CHUNK),
        "net_margin_frac": rng.uniform(0.45, 0.85, CHUNK),
        "loss_maker": rng.random(CHUNK) < 0.1,
        "growth": rng.normal(0.06, 0.08, CHUNK),
        "asset_ratio": rng.uniform(0.8, 3.5, CHUNK),
        "equity_ratio": rng.uniform(0.25, 0.65, CHUNK),
        "capex_ratio": rng.uniform(0.02, 0.12, CHUNK),
        "earnings_lag": rng.integers(18, 50, CHUNK),
        "quarter_noise": rng.normal(0.0, 0.03, (CHUNK, 160)),
        "target_drift": rng.normal(0.08, 0.1, CHUNK),
    }
    company = []
    for i in range(CHUNK):
        base = "".join(_SYLLABLES[j] for j in syl[i, : n_syl[i]])
        company.append(base.capitalize() + _SUFFIXES[suffix[i]])
    sectors = [names[k] for k in sector_idx]
    label = [YAHOO_LABEL.get(s, s) if y else s for s, y in zip(sectors, yahoo, strict=True)]
    industry = [INDUSTRIES[s][p % len(INDUSTRIES[s])] for s, p in zip(sectors, industry_pick, strict=True)]
    return {
        "ticker": np.array(_tickers(rng, taken), dtype=object),
        "gics_sector": np.array(sectors, dtype=object),
        "sector_label": np.array(label, dtype=object),
        "industry": np.array(industry, dtype=object),
        "company_name": np.array(company, dtype=object),
        "exchange": np.where(nasdaq, "NASDAQ", "NYSE").astype(object),
        "country": np.array([_COUNTRIES[k] for k in country], dtype=object),
        "betas": np.column_stack([style_betas, tlt]),
        "idio_vol": idio_vol,
        "alpha": alpha,
        "anchor_price": price,
        "anchor_market_cap": market_cap,
        "turnover": turnover,
        "beta_noise": beta_noise,
        "dividend_yield": div,
        **fundamentals,
    }


def draw_stocks(seed: int, n: int) -> dict[str, np.ndarray]:
    """Parameters of the first ``n`` stocks (concatenated chunks, cut to ``n``)."""
    taken = set(FACTOR_ETFS) | set(SKIPPED_NAMES) | RESERVED_TICKERS
    chunks = [draw_chunk(seed, c, taken) for c in range(-(-n // CHUNK))]
    return {k: np.concatenate([ch[k] for ch in chunks])[:n] for k in chunks[0]}
