"""symbol_return_metrics on real NYSE sessions, with hand-picked reference dates; data_quality_score."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from shared.analytics.metrics import METRICS_COLUMNS, data_quality_score, symbol_return_metrics
from shared.calendar import session_index


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    idx = session_index(date(2024, 11, 1), date(2026, 1, 9))
    base = 100.0 + np.arange(len(idx), dtype=float)  # close = 100 + session number: easy to check
    px = pd.DataFrame({"AAA": base, "GAP": base * 2.0, "OLD": base, "HALT": base}, index=idx)
    px.loc[pd.Timestamp("2025-11-26"), "GAP"] = np.nan  # missing the session before Thanksgiving
    px.loc[pd.Timestamp("2025-12-12") :, "OLD"] = np.nan  # last close 2025-12-11: stale by 2026-01-02
    px.loc[pd.Timestamp("2025-12-29") : pd.Timestamp("2026-01-02"), "HALT"] = np.nan  # 4 sessions halted
    return px


def close(px: pd.DataFrame, sym: str, day: str) -> float:
    return float(px.loc[pd.Timestamp(day), sym])


def test_after_thanksgiving(prices):
    raw = symbol_return_metrics(prices, [date(2025, 11, 28)])
    assert list(raw.columns) == list(METRICS_COLUMNS)
    m = raw.set_index("symbol")
    a = m.loc["AAA"]
    assert a["metrics_date"] == date(2025, 11, 28)
    cur = close(prices, "AAA", "2025-11-28")
    assert a["current_price"] == cur
    expected = {
        "return_1d": "2025-11-26",  # Thanksgiving 11-27 is not a session
        "return_mtd": "2025-10-31",  # last day of the previous month (a Friday session)
        "return_ytd": "2024-12-31",
        "return_1m": "2025-10-28",
        "return_3m": "2025-08-28",
        "return_1y": "2024-11-27",  # 2024-11-28 was Thanksgiving: last close on or before it
    }
    for col, ref in expected.items():
        assert a[col] == pytest.approx(cur / close(prices, "AAA", ref) - 1.0, abs=1e-15), col
    # GAP has no close on 11-26: the 1d reference is the last close on or before it (11-25)
    g = m.loc["GAP"]
    assert g["return_1d"] == pytest.approx(close(prices, "GAP", "2025-11-28") / close(prices, "GAP", "2025-11-25") - 1)


def test_first_session_of_year(prices):
    m = symbol_return_metrics(prices, [date(2026, 1, 2)]).set_index("symbol")
    a = m.loc["AAA"]
    cur = close(prices, "AAA", "2026-01-02")
    y_end = cur / close(prices, "AAA", "2025-12-31") - 1.0
    assert a["return_1d"] == pytest.approx(y_end)
    assert a["return_ytd"] == pytest.approx(y_end)
    assert a["return_mtd"] == pytest.approx(y_end)  # previous month-end is the previous year-end
    assert a["return_1m"] == pytest.approx(cur / close(prices, "AAA", "2025-12-02") - 1.0)
    assert a["return_3m"] == pytest.approx(cur / close(prices, "AAA", "2025-10-02") - 1.0)
    assert a["return_1y"] == pytest.approx(cur / close(prices, "AAA", "2025-01-02") - 1.0)
    # OLD: last close 14 sessions ago -> no current price, no returns
    assert m.loc["OLD", ["current_price", "return_1d", "return_ytd"]].isna().all()
    # HALT: carried forward from 2025-12-26 (4 sessions); no close on 01-02 itself -> no 1-day return
    # (issue 15: the carried close used to give a fake 0.0)
    h = m.loc["HALT"]
    assert h["current_price"] == close(prices, "HALT", "2025-12-26")
    assert np.isnan(h["return_1d"])
    assert h["return_1y"] == pytest.approx(h["current_price"] / close(prices, "HALT", "2025-01-02") - 1.0)


def test_many_dates_and_missing_history(prices):
    dates = [d.date() for d in prices.index[-30:]]
    m = symbol_return_metrics(prices, dates)
    assert len(m) == 30 * prices.shape[1]
    early = symbol_return_metrics(prices, [date(2024, 11, 5)])
    assert early["return_1y"].isna().all() and early["return_ytd"].isna().all()
    assert early["return_1d"].notna().all()


def test_data_quality_score():
    s = data_quality_score(
        pd.Series([True, True, False, True], index=list("abcd")),
        [True, False, False, None],
        np.array([True, True, False, False]),
        [True, False, False, np.nan],
    )
    assert list(s.index) == list("abcd")
    assert s.tolist() == [100, 50, 0, 30]
    arr = data_quality_score([True], [True], [False], [True])
    assert isinstance(arr, np.ndarray) and arr.tolist() == [80]
