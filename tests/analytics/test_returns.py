"""Session-grid returns: no multi-day return across a gap, non-positive prices unusable."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.analytics.returns import log_returns, simple_returns


def test_simple_and_log_returns():
    idx = pd.DatetimeIndex(["2025-11-25", "2025-11-26", "2025-11-28", "2025-12-01", "2025-12-02"])
    px = pd.DataFrame({"A": [10.0, 11.0, np.nan, 12.0, 12.6], "B": [5.0, 0.0, 5.0, 5.5, -1.0]}, index=idx)
    r = simple_returns(px)
    assert r.index.equals(idx) and list(r.columns) == ["A", "B"]
    np.testing.assert_allclose(r["A"].to_numpy(), [np.nan, 0.1, np.nan, np.nan, 0.05], equal_nan=True)
    np.testing.assert_allclose(r["B"].to_numpy(), [np.nan, np.nan, np.nan, 0.1, np.nan], equal_nan=True)
    lr = log_returns(px)
    np.testing.assert_allclose(lr.to_numpy(), np.log1p(r.to_numpy()), equal_nan=True)
