"""Validation of provider price frames before anything is stored (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared import calendar
from shared.errors import BadInputError


@dataclass(frozen=True)
class PriceCheck:
    prices: pd.DataFrame  # valid rows: date (datetime.date), symbol, close, volume, data_source
    dropped_non_sessions: int
    collapsed_duplicates: int


def validate_prices(frame: pd.DataFrame, source: str) -> PriceCheck:
    """Check a :data:`~shared.providers.base.PRICE_COLUMNS` frame.

    Raises :class:`BadInputError` (naming up to 10 offending rows) for NaN/inf, zero or negative closes
    and for duplicate (symbol, date) rows with different closes: a provider that returns such data is not
    trusted for the batch, and nothing of it is written. Rows on non-sessions are dropped (counted);
    identical duplicates are collapsed (counted).
    """
    if frame.empty:
        return PriceCheck(frame.assign(date=[]), 0, 0)
    df = frame.copy()
    df["symbol"] = df["symbol"].astype(str).str.strip().str.upper()
    df["date"] = pd.to_datetime(df["date"]).dt.normalize()
    df["close"] = pd.to_numeric(df["close"], errors="coerce")
    if "volume" not in df:
        df["volume"] = np.nan
    if "data_source" not in df:
        df["data_source"] = source
    df["data_source"] = df["data_source"].fillna(source)
    close = df["close"].to_numpy(dtype="float64")
    bad = ~np.isfinite(close) | (close <= 0)
    if bad.any():
        rows = df.loc[bad, ["symbol", "date", "close"]].head(10)
        listing = ", ".join(f"{r.symbol} {r.date.date()} close={r.close}" for r in rows.itertuples())
        raise BadInputError(
            f"provider {source} returned {int(bad.sum())} invalid close(s) (NaN, zero or negative): {listing}"
        )
    dup = df.duplicated(["symbol", "date"], keep=False)
    collapsed = 0
    if dup.any():
        conflicts = df[dup].groupby(["symbol", "date"])["close"].nunique()
        conflicts = conflicts[conflicts > 1]
        if not conflicts.empty:
            listing = ", ".join(f"{s} {d.date()}" for s, d in conflicts.index[:10])
            raise BadInputError(
                f"provider {source} returned conflicting duplicate rows for {len(conflicts)} (symbol, date): {listing}"
            )
        before = len(df)
        df = df.drop_duplicates(["symbol", "date"], keep="last")
        collapsed = before - len(df)
    sessions = calendar.session_index(df["date"].min().date(), df["date"].max().date())
    on_session = df["date"].isin(sessions)
    dropped = int((~on_session).sum())
    df = df[on_session]
    df["date"] = df["date"].dt.date
    return PriceCheck(df[["date", "symbol", "close", "volume", "data_source"]].reset_index(drop=True), dropped, collapsed)
