"""Portfolio shards: which portfolios a fanned-out step of the run processes (pure, no I/O).

A run over a large book splits its portfolio-level steps (P&L, market values, the risk steps, stress) into
``N`` shards that run as separate processes or pods. A portfolio's shard is a function of its id and ``N``
only (:func:`shard_of`, Lamping & Veach's *jump consistent hash* of a 64-bit BLAKE2b digest of the id):

* **deterministic**: every process of a run computes the same membership from the ids alone, without
  asking ``plan`` for a list (10,000s of ids do not fit an Argo parameter) and whatever the positions do
  while the run is under way;
* **stable from night to night**: a portfolio keeps its shard while ``N`` is unchanged, whatever
  portfolios are added or removed; when ``N`` grows to ``N + 1`` only about ``1 / (N + 1)`` of the
  portfolios move (to the new shard), none between old shards;
* **balanced in expectation**: every portfolio lands in each shard with probability ``1 / N``, so the
  position count of a shard is close to ``positions / N`` when a shard holds many portfolios (the
  relative spread is about ``1 / sqrt(portfolios per shard)``). A portfolio is never split: a shard is at
  least its largest portfolio.

``N`` comes from the book: ``ceil(positions / SIGMABATCH_SHARD_POSITIONS)`` (:func:`shard_count`), unless
``SIGMABATCH_SHARDS`` sets it. A shard is written ``K/N`` with ``1 <= K <= N`` (``--shard 2/4``); the
shard ``1/1`` is the whole book (no restriction at all).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_MASK = (1 << 64) - 1


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 <= K <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        """Whether this shard is the whole book (``1/1``)."""
        return self.count == 1

    def holds(self, portfolio_id: str) -> bool:
        return self.whole or shard_of(portfolio_id, self.count) == self.index

    def select(self, portfolio_ids: Iterable[str]) -> list[str]:
        """The ids of ``portfolio_ids`` in this shard, sorted."""
        return sorted(p for p in portfolio_ids if self.holds(p))


def parse_shard(text: str) -> Shard | None:
    """``"K/N"`` → :class:`Shard`; ``""`` → None (no shard). Raises ValueError on anything else."""
    text = (text or "").strip()
    if not text:
        return None
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 2/4")
    return Shard(int(k), int(n))


def _key(portfolio_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(str(portfolio_id).encode(), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash: a bucket in ``[0, buckets)`` for a 64-bit ``key``.

    Going from ``n`` to ``n + 1`` buckets moves a key only to the new bucket ``n``, with probability
    ``1 / (n + 1)``.
    """
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    b, j = -1, 0
    key &= _MASK
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(portfolio_id: str, count: int) -> int:
    """The 1-based shard of a portfolio among ``count`` shards."""
    return jump_hash(_key(portfolio_id), count) + 1


def shard_count(positions: int, per_shard: int, fixed: int = 0) -> int:
    """Shards for a book of ``positions`` positions: ``fixed`` when > 0, else ``ceil(positions /
    per_shard)`` (at least 1)."""
    if fixed > 0:
        return fixed
    if per_shard < 1:
        raise ValueError("per_shard must be >= 1")
    return max(1, math.ceil(positions / per_shard))


def shards(count: int) -> list[Shard]:
    """Every shard of a run with ``count`` shards, in order."""
    return [Shard(k, count) for k in range(1, count + 1)]


def assign(portfolio_ids: Iterable[str], count: int) -> dict[str, int]:
    """Portfolio id → its 1-based shard."""
    return {p: shard_of(p, count) for p in portfolio_ids}


def shard_positions(positions_by_portfolio: Mapping[str, int], count: int) -> list[int]:
    """Positions per shard (index 0 = shard 1) for ``{portfolio_id: positions}``."""
    out = [0] * count
    for p, n in positions_by_portfolio.items():
        out[shard_of(p, count) - 1] += int(n)
    return out


def phase_name(step: str, shard: Shard | None) -> str:
    """The ``batch_phase_runs.phase`` of a step's shard: ``pnl-snapshots[2/4]`` (the step name itself for
    no shard or the whole book)."""
    return step if shard is None or shard.whole else f"{step}[{shard}]"


def split_phase(phase: str) -> tuple[str, Shard | None]:
    """``pnl-snapshots[2/4]`` → ``("pnl-snapshots", Shard(2, 4))``; a plain step name → ``(name, None)``."""
    if phase.endswith("]") and "[" in phase:
        step, _, rest = phase.partition("[")
        try:
            return step, parse_shard(rest[:-1])
        except ValueError:
            return phase, None
    return phase, None
