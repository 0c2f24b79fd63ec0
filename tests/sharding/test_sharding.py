"""shared.sharding: deterministic, stable and balanced portfolio shards."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from shared import sharding
from shared.sharding import Shard, jump_hash, parse_shard, shard_count, shard_of, shard_positions


def _ids(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def _reference_jump(key: int, buckets: int) -> int:
    """The published algorithm (Lamping & Veach 2014, fig. 1), written with Python big ints."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % 2**64
        j = (b + 1) * (2**31) // ((key >> 33) + 1)
    return b


def test_jump_hash_matches_the_published_algorithm():
    rng = np.random.default_rng(1)
    for key in rng.integers(0, 2**63, size=300, dtype=np.int64).tolist():
        for n in (1, 2, 3, 7, 64, 1000):
            assert jump_hash(key, n) == _reference_jump(key, n)


def test_deterministic_and_every_portfolio_in_exactly_one_shard():
    ids = _ids(500)
    first = sharding.assign(ids, 4)
    assert first == sharding.assign(list(reversed(ids)), 4)  # order and process do not matter
    members = [Shard(k, 4).select(ids) for k in range(1, 5)]
    assert sorted(p for m in members for p in m) == sorted(ids)
    assert sum(len(m) for m in members) == len(ids)
    assert all(first[p] == k for k, m in enumerate(members, start=1) for p in m)


def test_stable_when_portfolios_are_added_or_removed():
    ids = _ids(1000)
    before = sharding.assign(ids, 5)
    after = sharding.assign(ids[100:] + _ids(300, seed=9), 5)
    assert all(after[p] == before[p] for p in ids[100:])


def test_growing_the_count_moves_few_portfolios_and_only_to_the_new_shard():
    ids = _ids(4000)
    four, five = sharding.assign(ids, 4), sharding.assign(ids, 5)
    moved = [p for p in ids if four[p] != five[p]]
    assert all(five[p] == 5 for p in moved)
    assert abs(len(moved) / len(ids) - 1 / 5) < 0.03


def test_balanced_by_position_count():
    ids = _ids(2000, seed=3)
    rng = np.random.default_rng(4)
    positions = dict(zip(ids, rng.integers(5, 40, size=len(ids)).tolist(), strict=True))
    for n in (2, 4, 8):
        per = shard_positions(positions, n)
        mean = sum(per) / n
        assert sum(per) == sum(positions.values())
        assert max(per) <= 1.12 * mean and min(per) >= 0.88 * mean, (n, per)


def test_shard_count():
    assert shard_count(0, 250_000) == 1
    assert shard_count(200_000, 250_000) == 1
    assert shard_count(250_001, 250_000) == 2
    assert shard_count(2_000_000, 250_000) == 8
    assert shard_count(10, 250_000, fixed=4) == 4


def test_parse_and_whole_shard():
    assert parse_shard("") is None
    assert parse_shard("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    whole = parse_shard("1/1")
    assert whole.whole and whole.holds("anything")
    for bad in ("3", "0/2", "3/2", "a/b", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_of("p-1", 1) == 1
