"""Prices (and optional profiles, splits, benchmark weights) from local CSV or Parquet files.

``--provider file:PATH``:

* PATH is a **directory**: ``prices.parquet`` or ``prices.csv`` (required), and optionally ``profiles.csv``,
  ``splits.csv`` and ``sector_weights.csv`` next to it.
* PATH is a **file** (``.csv`` or ``.parquet``): the prices; the optional files are looked up beside it.

Prices need the columns ``date, symbol, close`` and may have ``volume``; headers are case-insensitive and
extra columns are ignored. Problems raise :class:`~shared.errors.BadInputError` naming the file, the line
(CSV; the header is line 1) or row (Parquet, 1-based) and the field: a missing file or column, an
unparsable date/close/volume, an empty symbol, a truncated or malformed CSV row, or two rows for the same
(symbol, date) with different closes (both lines named; identical duplicates are collapsed).

Rows whose close is missing/NaN, zero or negative are **not** served: they are dropped and kept in
:attr:`FilePriceProvider.rejected` (``line, symbol, date, close, reason``) so phase 1 can report them.
Files are read once, on first use.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from shared.errors import BadInputError
from shared.providers.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    SECTOR_WEIGHT_COLUMNS,
    SPLIT_COLUMNS,
    empty_frame,
)
from shared.providers.symbols import normalize_symbol

DATA_SOURCE = "file"
_NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
_NUMERIC_PROFILE = ("market_cap", "beta", "pe_ratio", "forward_pe", "dividend_yield", "week_52_high",
                    "week_52_low", "target_mean_price", "forward_eps", "revenue_growth", "earnings_growth",
                    "profit_margin")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", ""})
REJECTED_COLUMNS = ("line", "symbol", "date", "close", "reason")


class _Table:
    """Raw string columns of one file plus the line/row number of each record."""

    def __init__(self, path: Path, columns: dict[str, list[str]], numbers: list[int], unit: str) -> None:
        self.path, self.columns, self.numbers, self.unit = path, columns, np.asarray(numbers), unit

    def where(self, i: int) -> str:
        return f"{self.path} {self.unit} {self.numbers[i]}"

    def fail(self, i: int, field: str, value: object, problem: str) -> BadInputError:
        return BadInputError(f"{self.where(i)}: field {field!r} {problem}: {value!r}")

    def dates(self, field: str, *, required: bool = True) -> np.ndarray:
        raw = pd.Series(self.columns[field], dtype=object)
        text = raw.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
        parsed = pd.to_datetime(text.where(text != "", None), format="ISO8601", errors="coerce")
        bad = parsed.isna() & ((text != "") | required)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise self.fail(i, field, raw.iloc[i], "is not a date (expected YYYY-MM-DD)")
        return np.array([None if pd.isna(x) else x.date() for x in parsed], dtype=object)

    def numbers_of(self, field: str) -> np.ndarray:
        """Floats; NA tokens become NaN, anything else unparsable raises."""
        raw = pd.Series(self.columns[field], dtype=object)
        text = raw.map(lambda v: "nan" if v is None else str(v).strip())
        values = pd.to_numeric(text.where(~text.str.lower().isin(_NA_TOKENS), "nan"), errors="coerce")
        bad = values.isna() & ~text.str.lower().isin(_NA_TOKENS)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise self.fail(i, field, raw.iloc[i], "is not a number")
        return values.to_numpy(dtype=float)


def _read_csv(path: Path, required: Sequence[str]) -> _Table:
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInputError(f"{path}: file not found") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise BadInputError(f"{path}: file is empty (expected a header with {', '.join(required)})")
            names = [h.strip().lower() for h in header]
            _check_columns(path, names, required)
            wanted = {n: k for k, n in enumerate(names) if n}
            columns: dict[str, list[str]] = {n: [] for n in wanted}
            numbers: list[int] = []
            for record in reader:
                if not any(f.strip() for f in record):
                    continue  # blank line
                if len(record) != len(names):
                    raise BadInputError(
                        f"{path} line {reader.line_num}: expected {len(names)} fields ({', '.join(names)}), "
                        f"found {len(record)}: truncated or malformed row")
                for n, k in wanted.items():
                    columns[n].append(record[k])
                numbers.append(reader.line_num)
        except csv.Error as exc:
            raise BadInputError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return _Table(path, columns, numbers, "line")


def _read_parquet(path: Path, required: Sequence[str]) -> _Table:
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadInputError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    names = [str(c).strip().lower() for c in frame.columns]
    _check_columns(path, names, required)
    columns = {}
    for name, col in zip(names, frame.columns, strict=True):
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            s = s.dt.strftime("%Y-%m-%d")
        columns[name] = s.astype(object).where(s.notna(), None).tolist()
    return _Table(path, columns, list(range(1, len(frame) + 1)), "row")


def _check_columns(path: Path, names: list[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise BadInputError(f"{path}: missing required column(s) {', '.join(missing)} "
                            f"(found {', '.join(n for n in names if n) or 'none'})")


def _read(path: Path, required: Sequence[str]) -> _Table:
    return _read_parquet(path, required) if path.suffix.lower() in (".parquet", ".pq") else _read_csv(path, required)


class FilePriceProvider:
    """Price, profile, split and benchmark provider over local files (see the module docstring)."""

    name = DATA_SOURCE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            parquet, csv_file = self.path / "prices.parquet", self.path / "prices.csv"
            self.prices_path = parquet if parquet.exists() else csv_file
            folder = self.path
        else:
            self.prices_path = self.path
            folder = self.path.parent
        self.profiles_path = folder / "profiles.csv"
        self.splits_path = folder / "splits.csv"
        self.sector_weights_path = folder / "sector_weights.csv"
        self._prices: pd.DataFrame | None = None
        self._rejected: pd.DataFrame | None = None
        self._profiles: pd.DataFrame | None = None
        self._splits: pd.DataFrame | None = None
        self._weights: pd.DataFrame | None = None

    # --- prices ---------------------------------------------------------------------------------

    def _load_prices(self) -> pd.DataFrame:
        if self._prices is not None:
            return self._prices
        if self.path.is_dir() and not self.prices_path.exists():
            raise BadInputError(f"{self.path}: no prices.csv or prices.parquet in this folder")
        table = _read(self.prices_path, ("date", "symbol", "close"))
        symbols = np.array([normalize_symbol(s) for s in table.columns["symbol"]], dtype=object)
        empty = np.flatnonzero(symbols == "")
        if empty.size:
            raise table.fail(int(empty[0]), "symbol", table.columns["symbol"][empty[0]], "is empty")
        frame = pd.DataFrame({
            "line": table.numbers,
            "date": table.dates("date"),
            "symbol": symbols,
            "close": table.numbers_of("close"),
            "volume": table.numbers_of("volume") if "volume" in table.columns else np.nan,
        })
        frame = self._dedupe(frame, table)
        close = frame["close"].to_numpy()
        reason = np.select([~np.isfinite(close), close == 0, close < 0],
                           ["close is missing or not finite", "close is zero", "close is negative"], "")
        bad = reason != ""
        self._rejected = frame.loc[bad, ["line", "symbol", "date", "close"]].assign(reason=reason[bad])
        self._rejected = self._rejected.reset_index(drop=True)
        self._prices = (frame.loc[~bad, ["date", "symbol", "close", "volume"]]
                        .assign(data_source=DATA_SOURCE)
                        .sort_values(["symbol", "date"], ignore_index=True))
        return self._prices

    @staticmethod
    def _dedupe(frame: pd.DataFrame, table: _Table) -> pd.DataFrame:
        dup = frame.duplicated(["symbol", "date"], keep=False)
        if not dup.any():
            return frame
        groups = frame[dup].groupby(["symbol", "date"], sort=False)
        for (symbol, day), g in groups:
            closes = g["close"].to_numpy()
            same = np.all((closes == closes[0]) | (np.isnan(closes) & np.isnan(closes[0])))
            if not same:
                k = int(np.flatnonzero(~((closes == closes[0]) | (np.isnan(closes) & np.isnan(closes[0]))))[0])
                first, other = g.iloc[0], g.iloc[k]
                raise BadInputError(
                    f"{table.path}: duplicate rows for {symbol} on {day} with different closes: "
                    f"{table.unit} {first['line']} (close {first['close']}) and "
                    f"{table.unit} {other['line']} (close {other['close']})")
        return frame.drop_duplicates(["symbol", "date"], keep="first")

    @property
    def rejected(self) -> pd.DataFrame:
        """Rows dropped for a missing/NaN, zero or negative close (columns ``line, symbol, date, close, reason``)."""
        self._load_prices()
        assert self._rejected is not None
        return self._rejected

    def fetch_prices(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        prices = self._load_prices()
        wanted = {normalize_symbol(s) for s in symbols}
        keep = prices["symbol"].isin(wanted) & (prices["date"] >= start) & (prices["date"] <= end)
        out = prices.loc[keep].reset_index(drop=True)
        return out.reindex(columns=list(PRICE_COLUMNS)) if len(out) else empty_frame(PRICE_COLUMNS)

    def fetch_splits(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Splits from the optional ``splits.csv`` (``symbol, date, ratio``); empty without it."""
        if self._splits is None:
            if not self.splits_path.exists():
                self._splits = empty_frame(SPLIT_COLUMNS)
            else:
                table = _read_csv(self.splits_path, SPLIT_COLUMNS)
                ratio = table.numbers_of("ratio")
                bad = np.flatnonzero(~(ratio > 0))
                if bad.size:
                    raise table.fail(int(bad[0]), "ratio", table.columns["ratio"][bad[0]], "must be > 0")
                self._splits = pd.DataFrame({
                    "symbol": [normalize_symbol(s) for s in table.columns["symbol"]],
                    "date": table.dates("date"), "ratio": ratio})
        s = self._splits
        wanted = {normalize_symbol(x) for x in symbols}
        if s.empty:
            return s.copy()
        keep = s["symbol"].isin(wanted) & (s["date"] >= start) & (s["date"] <= end)
        return s.loc[keep].reset_index(drop=True)

    # --- profiles and benchmark ---------------------------------------------------------------------

    def _load_profiles(self) -> pd.DataFrame:
        if self._profiles is not None:
            return self._profiles
        if not self.profiles_path.exists():
            self._profiles = empty_frame(PROFILE_COLUMNS)
            return self._profiles
        table = _read_csv(self.profiles_path, ("symbol",))
        data: dict[str, object] = {"symbol": [normalize_symbol(s) for s in table.columns["symbol"]]}
        for col in PROFILE_COLUMNS[1:]:
            if col not in table.columns:
                continue
            if col in _NUMERIC_PROFILE:
                data[col] = table.numbers_of(col)
            elif col in ("is_etf", "is_fund"):
                data[col] = [self._bool(table, i, col, v) for i, v in enumerate(table.columns[col])]
            elif col == "next_earnings_date":
                data[col] = table.dates(col, required=False)
            else:
                data[col] = [v.strip() or None for v in table.columns[col]]
        n = len(table.numbers)
        for col in ("is_etf", "is_fund"):
            data.setdefault(col, [False] * n)
        data["data_source"] = [v or DATA_SOURCE for v in data.get("data_source", [None] * n)]  # type: ignore[union-attr]
        frame = pd.DataFrame(data).reindex(columns=list(PROFILE_COLUMNS))
        self._profiles = frame.drop_duplicates("symbol", keep="last").reset_index(drop=True)
        return self._profiles

    @staticmethod
    def _bool(table: _Table, i: int, col: str, value: str) -> bool:
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise table.fail(i, col, value, "is not a boolean (true/false)")

    def fetch_profiles(self, symbols: Sequence[str]) -> pd.DataFrame:
        """Rows of the optional ``profiles.csv`` (``symbol`` plus any PROFILE_COLUMNS); empty without it."""
        profiles = self._load_profiles()
        if profiles.empty:
            return empty_frame(PROFILE_COLUMNS)
        wanted = {normalize_symbol(s) for s in symbols}
        return profiles[profiles["symbol"].isin(wanted)].reset_index(drop=True)

    def fetch_sector_weights(self, benchmark_code: str, as_of: date) -> pd.DataFrame:
        """Rows of the optional ``sector_weights.csv`` (``[benchmark_code,] sector, weight``; code defaults
        to SP500). Weights are served as given (not renormalised); empty without the file."""
        if self._weights is None:
            if not self.sector_weights_path.exists():
                self._weights = empty_frame(SECTOR_WEIGHT_COLUMNS)
            else:
                table = _read_csv(self.sector_weights_path, ("sector", "weight"))
                weight = table.numbers_of("weight")
                bad = np.flatnonzero(~(weight >= 0))
                if bad.size:
                    raise table.fail(int(bad[0]), "weight", table.columns["weight"][bad[0]],
                                     "must be a number >= 0")
                codes = table.columns.get("benchmark_code") or ["SP500"] * len(weight)
                self._weights = pd.DataFrame({
                    "benchmark_code": [normalize_symbol(c) or "SP500" for c in codes],
                    "sector": [s.strip() for s in table.columns["sector"]], "weight": weight})
        w = self._weights
        if w.empty:
            return w.copy()
        return w[w["benchmark_code"] == normalize_symbol(benchmark_code)].reset_index(drop=True)
