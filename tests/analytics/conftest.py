from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def make_returns(rng: np.random.Generator) -> Callable[[int, int], np.ndarray]:
    """Daily decimal returns with slowly varying volatility (so HAR has something to fit)."""

    def _make(T: int, S: int) -> np.ndarray:
        log_vol = np.log(0.012) + np.cumsum(rng.normal(0.0, 0.06, (T, S)), axis=0)
        return rng.standard_t(6, (T, S)) * np.exp(log_vol) / np.sqrt(1.5)

    return _make
