"""A seeded, offline market: prices, profiles, fundamentals, rates and benchmark weights with planted betas.

How a close is made (all daily *log* returns, on NYSE sessions from :data:`ORIGIN`):

1. The 17 factor ETFs come from the latent-factor model in :mod:`._synthetic_model`, simulated once for the
   whole horizon (origin .. end of the calendar) from ``default_rng([seed, 0])``.
2. Stock ``i`` (parameters from :mod:`._synthetic_stocks`, stable for any N) has::

       r_i[t] = alpha_i + sum_k B_ik * r_k[t] + b_i * r_TLT[t] + e_i[t]

   over the six style ETFs (``STYLE_FACTORS`` order) and TLT (:attr:`SyntheticMarket.planted_betas`), with
   Student-t (df=5) idiosyncratic noise scaled to the stock's idio vol.
3. The noise is generated in blocks of :data:`BLOCK` sessions and chunks of 256 stocks, each from
   ``default_rng([seed, 1, block, chunk])``. The *sum* of each block's noise is drawn up front for every
   block (``default_rng([seed, 2, chunk])``, Gaussian) and the block's draws are re-centred on it (a
   Brownian-bridge-style construction), so the level at any block start is known without generating the
   earlier blocks. A close therefore depends only on (seed, symbol, session), never on the requested range,
   and a request costs time proportional to its own length.
4. Levels are calibrated so each series is at its anchor price on the session before the block containing
   :data:`ANCHOR` (early 2026), i.e. prices are plausible around 2025-2027 and back-solved before that.

Closes are split-adjusted (like yfinance ``Close``); the one split stock only shows up in
:meth:`SyntheticMarket.fetch_splits`. About 1% of stock sessions have no row; ETFs are complete.
Planted betas are loadings of log returns; OLS on simple returns recovers them up to second-order terms.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from shared.analytics.factors import FACTOR_ETFS, MARKET_ETF, RATES_ETF, STYLE_FACTORS
from shared.calendar import session_index
from shared.providers import _synthetic_model as model
from shared.providers._synthetic_fundamentals import statements_frame, stock_profiles
from shared.providers._synthetic_stocks import CHUNK, draw_stocks
from shared.providers.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    RATE_COLUMNS,
    SECTOR_WEIGHT_COLUMNS,
    SPLIT_COLUMNS,
    STATEMENT_COLUMNS,
    empty_frame,
)
from shared.providers.symbols import normalize_symbol

ORIGIN = date(2015, 1, 2)
HORIZON_END = date(2045, 12, 29)
ANCHOR = date(2026, 1, 2)
BLOCK = 128
MISSING_RATE = 0.01
T_DF = 5
DATA_SOURCE = "synthetic"
_CACHE_ENTRIES = 256

#: Regressors of the planted stock model, in this order.
BETA_COLUMNS: tuple[str, ...] = (*STYLE_FACTORS.values(), RATES_ETF)
RATE_SERIES: tuple[str, ...] = ("DGS10", "DGS2", "DGS3MO")

#: Approximate S&P 500 GICS sector weights (2025), summing to 1.
SP500_SECTOR_WEIGHTS: dict[str, float] = {
    "Information Technology": 0.325, "Financials": 0.135, "Health Care": 0.095,
    "Consumer Discretionary": 0.105, "Communication Services": 0.095, "Industrials": 0.085,
    "Consumer Staples": 0.055, "Energy": 0.032, "Utilities": 0.026, "Real Estate": 0.022, "Materials": 0.025,
}

_ETF_NAMES = {
    "SPY": "SPDR S&P 500 ETF Trust", "QQQ": "Invesco QQQ Trust", "IWM": "iShares Russell 2000 ETF",
    "VTI": "Vanguard Total Stock Market ETF", "TLT": "iShares 20+ Year Treasury Bond ETF",
    "IEF": "iShares 7-10 Year Treasury Bond ETF", "SHY": "iShares 1-3 Year Treasury Bond ETF",
    "HYG": "iShares iBoxx $ High Yield Corporate Bond ETF", "LQD": "iShares iBoxx $ Investment Grade Corporate Bond ETF",
    "VTV": "Vanguard Value ETF", "VUG": "Vanguard Growth ETF", "MTUM": "iShares MSCI USA Momentum Factor ETF",
    "QUAL": "iShares MSCI USA Quality Factor ETF", "USMV": "iShares MSCI USA Min Vol Factor ETF",
    "DJP": "iPath Bloomberg Commodity Index Total Return ETN", "VNQ": "Vanguard Real Estate ETF",
    "GLD": "SPDR Gold Shares",
}
_ETF_YIELD = {"SPY": 0.012, "QQQ": 0.006, "IWM": 0.011, "VTI": 0.013, "TLT": 0.043, "IEF": 0.037,
              "SHY": 0.039, "HYG": 0.058, "LQD": 0.045, "VTV": 0.022, "VUG": 0.005, "MTUM": 0.008,
              "QUAL": 0.01, "USMV": 0.016, "DJP": 0.0, "VNQ": 0.039, "GLD": 0.0}
_ETF_VOLUME = {"SPY": 6e7, "QQQ": 4e7, "IWM": 3e7, "VTI": 3.5e6, "TLT": 3e7, "IEF": 7e6, "SHY": 4e6,
               "HYG": 3.5e7, "LQD": 2.5e7, "VTV": 3e6, "VUG": 1.1e6, "MTUM": 1e6, "QUAL": 1.5e6,
               "USMV": 2e6, "DJP": 2e5, "VNQ": 4e6, "GLD": 8e6}


class SyntheticMarket:
    """Price, profile, fundamentals, rates and benchmark provider in one deterministic object.

    Attributes
    ----------
    stock_symbols : list[str]       synthetic stock tickers (stable prefix: stock ``i`` is the same for any N)
    symbols : list[str]             FACTOR_ETFS followed by stock_symbols
    planted_betas : DataFrame       stocks x BETA_COLUMNS (6 style ETFs in STYLE_FACTORS order, then TLT)
    planted_market_beta : Series    closed-form beta of each stock's log return on SPY's
    etf_market_beta : Series        closed-form beta of each ETF on SPY
    etf_covariance : DataFrame      exact daily covariance of the ETF log returns (FACTOR_ETFS order)
    sectors : Series                GICS sector of each stock (profiles may show the Yahoo label)
    late_listed, delisted, split_symbol : str | None   stocks 1, 2 and 3 (None when N is too small)
    late_listing, delisting : date  first / last date with a row for those two stocks
    split_date, split_ratio         the split reported by :meth:`fetch_splits`
    """

    name = DATA_SOURCE

    def __init__(self, n_stocks: int = 40, seed: int = 7, *, late_listing: date = date(2026, 3, 2),
                 delisting: date = date(2026, 9, 15), split: tuple[date, float] = (date(2026, 7, 15), 2.0),
                 as_of: date | None = None) -> None:
        if n_stocks < 1:
            raise ValueError("n_stocks must be >= 1")
        self.n_stocks = int(n_stocks)
        self.seed = int(seed)
        self.as_of = as_of
        self.late_listing, self.delisting = late_listing, delisting
        self.split_date, self.split_ratio = split
        idx = session_index(ORIGIN, HORIZON_END)
        self._sessions = idx.to_numpy(dtype="datetime64[D]")
        self._dates = np.array([d.date() for d in idx], dtype=object)
        n_t = len(self._sessions)
        self._n_blocks = -(-n_t // BLOCK)
        anchor_block = int(np.searchsorted(self._sessions, np.datetime64(ANCHOR, "D"))) // BLOCK
        self._t_ref = anchor_block * BLOCK - 1
        self._anchor_block = anchor_block

        etf_ret, self._yields = model.simulate_factors(self.seed, n_t)
        self._etf_cum = np.cumsum(etf_ret, axis=0)
        anchor = np.log([model.ETF_ANCHOR_PRICE[e] for e in FACTOR_ETFS])
        self._etf_close = np.exp(anchor + self._etf_cum - self._etf_cum[self._t_ref])
        vol_rng = np.random.default_rng([self.seed, 8])
        base = np.array([_ETF_VOLUME[e] for e in FACTOR_ETFS])
        self._etf_volume = np.round(base * vol_rng.lognormal(-0.08, 0.4, (n_t, len(FACTOR_ETFS))))
        self._etf_pos = {e: k for k, e in enumerate(FACTOR_ETFS)}
        self._beta_cols = np.array([self._etf_pos[e] for e in BETA_COLUMNS])

        p = draw_stocks(self.seed, self.n_stocks)
        self._p = p
        self.stock_symbols: list[str] = [str(t) for t in p["ticker"]]
        self.symbols: list[str] = [*FACTOR_ETFS, *self.stock_symbols]
        self._stock_pos = {s: i for i, s in enumerate(self.stock_symbols)}
        self.planted_betas = pd.DataFrame(p["betas"], index=pd.Index(self.stock_symbols, name="symbol"),
                                          columns=list(BETA_COLUMNS))
        cov = model.etf_covariance()
        spy = self._etf_pos[MARKET_ETF]
        self.etf_covariance = pd.DataFrame(cov, index=list(FACTOR_ETFS), columns=list(FACTOR_ETFS))
        self.etf_market_beta = pd.Series(cov[:, spy] / cov[spy, spy], index=list(FACTOR_ETFS), name="beta")
        self.planted_market_beta = pd.Series(p["betas"] @ cov[self._beta_cols, spy] / cov[spy, spy],
                                             index=self.planted_betas.index, name="beta")
        self.sectors = pd.Series(p["gics_sector"], index=self.planted_betas.index, name="sector")

        # Block sums of the idiosyncratic noise (see module docstring, step 3).
        sums = [np.random.default_rng([self.seed, 2, c]).standard_normal((CHUNK, self._n_blocks))
                for c in range(-(-self.n_stocks // CHUNK))]
        self._block_sum = np.concatenate(sums)[: self.n_stocks] * (p["idio_vol"] * np.sqrt(BLOCK))[:, None]
        self._before = np.cumsum(self._block_sum, axis=1) - self._block_sum  # sum of blocks < b
        self._shares = p["anchor_market_cap"] / p["anchor_price"]
        self._avg_volume = self._shares * p["turnover"]
        self._cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()

        specials = self.stock_symbols[1:4] + [None] * 3
        self.late_listed: str | None = specials[0]
        self.delisted: str | None = specials[1]
        self.split_symbol: str | None = specials[2]

    # --- prices ---------------------------------------------------------------------------------

    def _range(self, start: date, end: date) -> tuple[int, int]:
        lo = int(np.searchsorted(self._sessions, np.datetime64(start, "D"), side="left"))
        hi = int(np.searchsorted(self._sessions, np.datetime64(end, "D"), side="right"))
        return lo, hi

    def _block(self, b: int, c: int, k: int) -> dict[str, np.ndarray]:
        """Noise of block ``b`` for the first ``k`` stocks of chunk ``c`` (cached, LRU)."""
        hit = self._cache.get((b, c))
        if hit is not None and hit["cum"].shape[0] >= k:
            self._cache.move_to_end((b, c))
            return hit
        first = c * CHUNK
        vol = self._p["idio_vol"][first: first + k, None]
        e = np.random.default_rng([self.seed, 1, b, c]).standard_t(T_DF, size=(k, BLOCK))
        e *= np.sqrt((T_DF - 2) / T_DF) * vol
        e += self._block_sum[first: first + k, b, None] / BLOCK - e.mean(axis=1, keepdims=True)
        missing = np.random.default_rng([self.seed, 5, b, c]).random((k, BLOCK)) < MISSING_RATE
        vnoise = np.random.default_rng([self.seed, 6, b, c]).standard_normal((k, BLOCK))
        vmult = np.exp(0.35 * vnoise - 0.06) * (0.6 + 0.5 * np.abs(e) / vol)
        entry = {"cum": np.cumsum(e, axis=1), "missing": missing, "vmult": vmult}
        self._cache[(b, c)] = entry
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return entry

    def _stock_matrix(self, idx: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, ...]:
        """Closes, volumes and row-present mask (len(idx) x (hi - lo)) for stock positions ``idx``."""
        n, width = len(idx), hi - lo
        idio = np.empty((n, width))
        missing = np.empty((n, width), dtype=bool)
        vmult = np.empty((n, width))
        chunk_of = idx // CHUNK
        for c in np.unique(chunk_of):
            rows = np.flatnonzero(chunk_of == c)
            local = idx[rows] % CHUNK
            k = int(local.max()) + 1
            for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
                t0, t1 = max(lo, b * BLOCK), min(hi, (b + 1) * BLOCK)
                blk = self._block(b, int(c), k)
                sl = slice(t0 - b * BLOCK, t1 - b * BLOCK)
                out = slice(t0 - lo, t1 - lo)
                idio[rows, out] = self._before[idx[rows], b, None] + blk["cum"][local, sl]
                missing[rows, out] = blk["missing"][local, sl]
                vmult[rows, out] = blk["vmult"][local, sl]
        ref = self._t_ref
        idio -= self._before[idx, self._anchor_block, None]  # idio level at t_ref
        factors = self._etf_cum[lo:hi][:, self._beta_cols] - self._etf_cum[ref, self._beta_cols]
        steps = np.arange(lo, hi) - ref
        log_p = (np.log(self._p["anchor_price"][idx])[:, None] + self._p["alpha"][idx, None] * steps
                 + self._p["betas"][idx] @ factors.T + idio)
        volume = np.round(self._avg_volume[idx, None] * vmult)
        present = ~missing
        days = self._sessions[lo:hi]
        for sym, attr, keep in ((self.late_listed, "late_listing", np.greater_equal),
                                (self.delisted, "delisting", np.less_equal)):
            if sym is not None:
                rows = np.flatnonzero(idx == self._stock_pos[sym])
                present[rows] &= keep(days, np.datetime64(getattr(self, attr), "D"))
        return np.exp(log_p), volume, present

    def _matrix(self, syms: list[str], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        close = np.empty((len(syms), hi - lo))
        volume = np.empty_like(close)
        present = np.ones(close.shape, dtype=bool)
        etf_rows = [(r, self._etf_pos[s]) for r, s in enumerate(syms) if s in self._etf_pos]
        if etf_rows:
            rows, cols = map(np.array, zip(*etf_rows, strict=True))
            close[rows] = self._etf_close[lo:hi, cols].T
            volume[rows] = self._etf_volume[lo:hi, cols].T
        stock_rows = [(r, self._stock_pos[s]) for r, s in enumerate(syms) if s in self._stock_pos]
        if stock_rows:
            rows, idx = map(np.array, zip(*stock_rows, strict=True))
            close[rows], volume[rows], present[rows] = self._stock_matrix(idx, lo, hi)
        return close, volume, present

    def _known(self, symbols: Sequence[str]) -> list[str]:
        wanted = {normalize_symbol(s) for s in symbols}
        return sorted(s for s in wanted if s in self._etf_pos or s in self._stock_pos)

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        syms = self._known(symbols)
        lo, hi = self._range(start, end)
        if not syms or hi <= lo:
            return empty_frame(PRICE_COLUMNS)
        close, volume, present = self._matrix(syms, lo, hi)
        r, t = np.nonzero(present)
        return pd.DataFrame({
            "date": self._dates[lo:hi][t],
            "symbol": pd.array(syms, dtype="str").take(r),  # take on a str array: fast for millions of rows
            "close": np.round(close[r, t], 4),
            "volume": volume[r, t],
            "data_source": pd.array([DATA_SOURCE], dtype="str").take(np.zeros(len(r), dtype=np.intp)),
        })

    def close_matrix(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Wide closes (sessions x known symbols, NaN where a row is missing): handy for tests/benchmarks."""
        syms = self._known(symbols)
        lo, hi = self._range(start, end)
        close, _, present = self._matrix(syms, lo, hi)
        idx = pd.DatetimeIndex(self._sessions[lo:hi].astype("datetime64[ns]"), name="date")
        return pd.DataFrame(np.where(present, close, np.nan).T, index=idx, columns=syms)

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Splits (``ratio`` = new shares per old share) with a date in ``[start, end]``."""
        if self.split_symbol is None or self.split_symbol not in self._known(symbols) \
                or not start <= self.split_date <= end:
            return empty_frame(SPLIT_COLUMNS)
        return pd.DataFrame({"symbol": [self.split_symbol], "date": [self.split_date],
                             "ratio": [float(self.split_ratio)]})

    # --- profiles and fundamentals ----------------------------------------------------------------

    def _as_of(self, as_of: date | None) -> date:
        return as_of or self.as_of or date.today()

    def fetch_profiles(self, symbols: Sequence[str], as_of: date | None = None) -> pd.DataFrame:
        """Profiles as seen on ``as_of`` (default: the constructor's ``as_of``, else today).

        ``dividend_yield`` is a fraction (0.012 = 1.2%); ``market_cap`` uses the last close on or before
        ``as_of``; ``next_earnings_date`` follows a quarterly cadence (quarter end + a per-stock lag).
        """
        syms = self._known(symbols)
        if not syms:
            return empty_frame(PROFILE_COLUMNS)
        requested = self._as_of(as_of)
        day = min(requested, HORIZON_END)
        lo, hi = self._range(day - timedelta(days=366), day)
        if hi > lo:
            close, _, present = self._matrix(syms, lo, hi)
            close = np.where(present, close, np.nan)
            high, low = np.fmax.reduce(close, axis=1), np.fmin.reduce(close, axis=1)  # NaN-skipping, no warning
            last = pd.DataFrame(close.T).ffill().to_numpy()[-1]
        else:  # as_of before the synthetic history starts
            high = low = last = np.full(len(syms), np.nan)
        frames = []
        etfs = [i for i, s in enumerate(syms) if s in self._etf_pos]
        if etfs:
            frames.append(pd.DataFrame({
                "symbol": [syms[i] for i in etfs], "company_name": [_ETF_NAMES[syms[i]] for i in etfs],
                "sector": None, "industry": None,
                "exchange": ["NASDAQ" if syms[i] in ("QQQ", "MTUM", "QUAL", "USMV") else "NYSE Arca" for i in etfs],
                "country": "United States", "market_cap": np.nan,
                "beta": [round(float(self.etf_market_beta[syms[i]]), 4) for i in etfs],
                "pe_ratio": np.nan, "forward_pe": np.nan,
                "dividend_yield": [_ETF_YIELD[syms[i]] for i in etfs],
                "week_52_high": high[etfs], "week_52_low": low[etfs], "is_etf": True, "is_fund": True,
                "next_earnings_date": None,
            }))
        stocks = [i for i, s in enumerate(syms) if s in self._stock_pos]
        if stocks:
            idx = np.array([self._stock_pos[syms[i]] for i in stocks])
            prof = stock_profiles(self._p, idx, requested, last[stocks], self._shares[idx])
            prof.insert(0, "symbol", [syms[i] for i in stocks])
            prof["beta"] = np.round(self.planted_market_beta.to_numpy()[idx] + self._p["beta_noise"][idx], 4)
            prof["week_52_high"], prof["week_52_low"] = high[stocks], low[stocks]
            prof["is_etf"] = False
            prof["is_fund"] = False
            frames.append(prof)
        out = pd.concat(frames, ignore_index=True)
        for col in ("week_52_high", "week_52_low"):
            out[col] = out[col].round(4)
        out["data_source"] = DATA_SOURCE
        return out.reindex(columns=list(PROFILE_COLUMNS)).sort_values("symbol", ignore_index=True)

    def fetch_statements(self, symbols: Sequence[str], as_of: date | None = None) -> pd.DataFrame:
        """The last 8 quarterly and 4 annual income/balance/cashflow statements reported by ``as_of``."""
        syms = [s for s in self._known(symbols) if s in self._stock_pos]
        if not syms:
            return empty_frame(STATEMENT_COLUMNS)
        idx = np.array([self._stock_pos[s] for s in syms])
        return statements_frame(self._p, idx, syms, self._as_of(as_of))

    # --- rates and benchmark ------------------------------------------------------------------------

    def fetch_rates(self, series: Sequence[str], start: date, end: date) -> pd.DataFrame:
        wanted = [s for s in RATE_SERIES if s in {normalize_symbol(x) for x in series}]
        lo, hi = self._range(start, end)
        if not wanted or hi <= lo:
            return empty_frame(RATE_COLUMNS)
        return pd.DataFrame({
            "series": np.repeat(np.array(wanted, dtype=object), hi - lo),
            "date": np.tile(self._dates[lo:hi], len(wanted)),
            "value": np.concatenate([np.round(self._yields[s][lo:hi], 2) for s in wanted]),
        })

    def fetch_sector_weights(self, benchmark_code: str, as_of: date) -> pd.DataFrame:
        if normalize_symbol(benchmark_code) != "SP500":
            return empty_frame(SECTOR_WEIGHT_COLUMNS)
        w = np.array(list(SP500_SECTOR_WEIGHTS.values()))
        return pd.DataFrame({"benchmark_code": "SP500", "sector": list(SP500_SECTOR_WEIGHTS),
                             "weight": w / w.sum()})
