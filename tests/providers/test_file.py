"""FilePriceProvider: CSV/Parquet happy paths, side files, and every bad-input message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.errors import BadInputError
from shared.providers.base import PRICE_COLUMNS, PROFILE_COLUMNS, SECTOR_WEIGHT_COLUMNS, SPLIT_COLUMNS
from shared.providers.file import REJECTED_COLUMNS, FilePriceProvider

D0, D1 = date(2026, 1, 1), date(2026, 12, 31)
GOOD = """Date,SYMBOL,Close,Volume,Open
2026-01-02,aapl,190.5,1000,1
2026-01-05,AAPL,191.25,,2
2026-01-02,MSFT,400,2000,3
2026-01-05, msft ,401.5,2100,4
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error_of(provider: FilePriceProvider) -> str:
    with pytest.raises(BadInputError) as info:
        provider.fetch_prices(["AAPL"], D0, D1)
    return str(info.value)


def test_csv_happy_path(tmp_path):
    p = FilePriceProvider(write(tmp_path / "px.csv", GOOD))
    f = p.fetch_prices(["AAPL", "msft", "NOPE"], D0, D1)
    assert tuple(f.columns) == PRICE_COLUMNS
    assert f[["symbol", "date", "close"]].values.tolist() == [
        ["AAPL", date(2026, 1, 2), 190.5], ["AAPL", date(2026, 1, 5), 191.25],
        ["MSFT", date(2026, 1, 2), 400.0], ["MSFT", date(2026, 1, 5), 401.5]]
    assert np.isnan(f["volume"].iloc[1]) and f["volume"].iloc[0] == 1000
    assert (f["data_source"] == "file").all()
    assert p.fetch_prices(["AAPL"], date(2026, 1, 3), D1)["date"].tolist() == [date(2026, 1, 5)]
    assert p.fetch_prices(["NOPE"], D0, D1).empty
    assert p.rejected.empty and tuple(p.rejected.columns) == REJECTED_COLUMNS
    # no side files: everything else is empty
    assert tuple(p.fetch_profiles(["AAPL"]).columns) == PROFILE_COLUMNS and p.fetch_profiles(["AAPL"]).empty
    assert p.fetch_sector_weights("SP500", D1).empty
    assert tuple(p.fetch_splits(["AAPL"], D0, D1).columns) == SPLIT_COLUMNS


def test_volume_is_optional(tmp_path):
    p = FilePriceProvider(write(tmp_path / "px.csv", "symbol,date,close\nAAPL,2026-01-02,1.5\n"))
    f = p.fetch_prices(["AAPL"], D0, D1)
    assert f["close"].tolist() == [1.5] and f["volume"].isna().all()


def test_parquet_happy_path(tmp_path):
    frame = pd.DataFrame({"DATE": pd.to_datetime(["2026-01-02", "2026-01-05"]), "Symbol": ["spy", "SPY"],
                          "close": [590.0, 592.5], "extra": ["x", "y"]})
    frame.to_parquet(tmp_path / "px.parquet")
    f = FilePriceProvider(tmp_path / "px.parquet").fetch_prices(["SPY"], D0, D1)
    assert f["date"].tolist() == [date(2026, 1, 2), date(2026, 1, 5)]
    assert f["close"].tolist() == [590.0, 592.5] and f["volume"].isna().all()


def test_directory_with_side_files(tmp_path):
    pd.DataFrame({"date": ["2026-01-02"], "symbol": ["AAPL"], "close": [190.0], "volume": [5.0]}).to_parquet(
        tmp_path / "prices.parquet")
    write(tmp_path / "profiles.csv", "Symbol,Sector,Industry,Beta,Market_Cap,is_etf,next_earnings_date,unknown\n"
                                     "aapl,Technology,Consumer Electronics,1.2,3e12,false,2026-01-29,z\n"
                                     "SPY,,,1.0,,true,,\n")
    write(tmp_path / "sector_weights.csv", "sector,weight\nInformation Technology,0.6\nFinancials,0.4\n")
    write(tmp_path / "splits.csv", "symbol,date,ratio\nAAPL,2026-06-10,4\n")
    p = FilePriceProvider(tmp_path)
    assert p.fetch_prices(["AAPL"], D0, D1)["close"].tolist() == [190.0]
    prof = p.fetch_profiles(["AAPL", "SPY", "MSFT"]).set_index("symbol")
    assert tuple(prof.reset_index().columns) == PROFILE_COLUMNS
    assert prof.loc["AAPL", "sector"] == "Technology" and prof.loc["AAPL", "beta"] == 1.2
    assert prof.loc["AAPL", "market_cap"] == 3e12 and prof.loc["AAPL", "next_earnings_date"] == date(2026, 1, 29)
    assert bool(prof.loc["SPY", "is_etf"]) and not bool(prof.loc["AAPL", "is_fund"])
    assert pd.isna(prof.loc["SPY", "sector"]) and (prof["data_source"] == "file").all()
    w = p.fetch_sector_weights("sp500", D1)
    assert tuple(w.columns) == SECTOR_WEIGHT_COLUMNS and w["weight"].sum() == pytest.approx(1.0)
    assert p.fetch_splits(["AAPL"], D0, D1).to_dict("records") == [
        {"symbol": "AAPL", "date": date(2026, 6, 10), "ratio": 4.0}]
    assert p.fetch_splits(["AAPL"], D0, date(2026, 6, 9)).empty


def test_file_path_uses_sibling_profiles(tmp_path):
    write(tmp_path / "profiles.csv", "symbol,sector\nAAPL,Technology\n")
    p = FilePriceProvider(write(tmp_path / "anything.csv", GOOD))
    assert p.fetch_profiles(["AAPL"])["sector"].tolist() == ["Technology"]


def test_rejected_closes_are_dropped_and_recorded(tmp_path):
    text = "date,symbol,close\n2026-01-02,A,1\n2026-01-05,A,NaN\n2026-01-06,A,0\n2026-01-07,A,-3\n2026-01-08,A,\n"
    p = FilePriceProvider(write(tmp_path / "px.csv", text))
    assert p.fetch_prices(["A"], D0, D1)["close"].tolist() == [1.0]
    rej = p.rejected
    assert rej["line"].tolist() == [3, 4, 5, 6]
    assert rej["reason"].tolist() == ["close is missing or not finite", "close is zero", "close is negative",
                                      "close is missing or not finite"]
    assert rej["symbol"].tolist() == ["A"] * 4


def test_identical_duplicates_collapse(tmp_path):
    p = FilePriceProvider(write(tmp_path / "px.csv", GOOD + "2026-01-02,AAPL,190.5,1000,9\n"))
    assert len(p.fetch_prices(["AAPL"], D0, D1)) == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("", "file is empty"),
    ("date,ticker,close\n2026-01-02,A,1\n", "missing required column(s) symbol"),
    ("date,symbol,close\n2026-01-02,A,1\n02/01/2026,A,2\n", "line 3: field 'date' is not a date"),
    ("date,symbol,close\n2026-01-02,A,1\n2026-01-05,A,abc\n", "line 3: field 'close' is not a number: 'abc'"),
    ("date,symbol,close,volume\n2026-01-02,A,1,lots\n", "line 2: field 'volume' is not a number"),
    ("date,symbol,close\n2026-01-02,,1\n", "line 2: field 'symbol' is empty"),
    ("date,symbol,close\n2026-01-02,A,1\n2026-01-05,A", "line 3: expected 3 fields (date, symbol, close), found 2"),
    ("date,symbol,close\n2026-01-02,A,1,7\n", "line 2: expected 3 fields"),
    ('date,symbol,close\n2026-01-02,A,"1\n', "malformed CSV"),
    ("date,symbol,close\n2026-01-02,A,1\n2026-01-05,B,2\n2026-01-02,A,1.5\n",
     "duplicate rows for A on 2026-01-02 with different closes: line 2 (close 1.0) and line 4 (close 1.5)"),
])
def test_bad_csv(tmp_path, text, expected):
    path = write(tmp_path / "px.csv", text)
    message = error_of(FilePriceProvider(path))
    assert str(path) in message
    assert expected in message


def test_missing_file_and_folder(tmp_path):
    assert "file not found" in error_of(FilePriceProvider(tmp_path / "nope.csv"))
    assert "no prices.csv or prices.parquet" in error_of(FilePriceProvider(tmp_path))


def test_bad_parquet(tmp_path):
    pd.DataFrame({"date": ["2026-01-02", "2026-01-05"], "symbol": ["A", "A"], "close": ["1", "x"]}).to_parquet(
        tmp_path / "bad.parquet")
    assert "row 2: field 'close' is not a number: 'x'" in error_of(FilePriceProvider(tmp_path / "bad.parquet"))
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not really")
    assert "not a readable Parquet file" in error_of(FilePriceProvider(tmp_path / "corrupt.parquet"))
    pd.DataFrame({"date": ["2026-01-02"], "close": [1.0]}).to_parquet(tmp_path / "nocol.parquet")
    assert "missing required column(s) symbol" in error_of(FilePriceProvider(tmp_path / "nocol.parquet"))


def test_bad_profiles_and_weights(tmp_path):
    write(tmp_path / "prices.csv", GOOD)
    write(tmp_path / "profiles.csv", "symbol,beta,is_etf\nAAPL,1.1,false\nMSFT,high,false\n")
    p = FilePriceProvider(tmp_path)
    with pytest.raises(BadInputError, match=r"profiles.csv line 3: field 'beta' is not a number: 'high'"):
        p.fetch_profiles(["AAPL"])
    write(tmp_path / "profiles.csv", "symbol,is_etf\nAAPL,maybe\n")
    with pytest.raises(BadInputError, match=r"line 2: field 'is_etf' is not a boolean"):
        FilePriceProvider(tmp_path).fetch_profiles(["AAPL"])
    write(tmp_path / "sector_weights.csv", "sector,weight\nEnergy,-0.1\n")
    with pytest.raises(BadInputError, match=r"sector_weights.csv line 2: field 'weight' must be a number >= 0"):
        FilePriceProvider(tmp_path).fetch_sector_weights("SP500", D1)
