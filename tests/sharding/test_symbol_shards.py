"""Symbol shards (issue 18): the symbol steps split the symbols by the same jump hash and the same ``N`` as the
portfolio steps split the portfolios; the local runner's per-shard sub-DAG chains a shard only to the same
shard of an upstream step split by the same key.

That a symbol-sharded run writes the unsharded run's tables (and that a re-run of one shard changes nothing)
is ``tests/workflows/test_sharded_run.py``.
"""

from __future__ import annotations

import argparse
import logging

from phases._runtime import PhaseContext
from shared.sharding import Shard, shard_of
from workflows import dag
from workflows.local import LocalRunner, StepOutcome

SYMBOLS = ["AAPL", "MSFT", "SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV", "BRK.B", "XOM"]


def _ctx(step: str, shard: Shard | None, shard_by: str) -> PhaseContext:
    return PhaseContext(step, None, None, "r", None, None, False, argparse.Namespace(), logging.getLogger("t"),
                        shard=shard, shard_by=shard_by)


def test_symbol_scope_partitions_the_symbols_by_their_own_hash():
    parts = [_ctx("symbol-factors", Shard(k, 3), dag.BY_SYMBOL).symbol_scope(SYMBOLS) for k in (1, 2, 3)]
    assert sorted(s for p in parts for s in p) == sorted(SYMBOLS)  # every symbol in exactly one shard
    for k, part in enumerate(parts, start=1):
        assert part == sorted(s for s in SYMBOLS if shard_of(s, 3) == k)
    # no shard, the whole book, or a portfolio shard: every symbol
    assert _ctx("symbol-factors", None, dag.BY_SYMBOL).symbol_scope(SYMBOLS) == sorted(SYMBOLS)
    assert _ctx("symbol-factors", Shard(1, 1), dag.BY_SYMBOL).symbol_scope(SYMBOLS) == sorted(SYMBOLS)
    assert _ctx("pnl-snapshots", Shard(2, 3), dag.BY_PORTFOLIO).symbol_scope(SYMBOLS) == sorted(SYMBOLS)


def test_a_symbol_shard_keeps_every_portfolio():
    assert _ctx("symbol-metrics", Shard(2, 3), dag.BY_SYMBOL).portfolio_scope is None


def test_the_symbol_steps_fan_out_by_symbol():
    by = {s.name: s.shard_by for s in dag.STEPS if s.fan_out}
    assert by["symbol-factors"] == by["symbol-metrics"] == dag.BY_SYMBOL
    assert by["company-profiles"] == by["fundamentals"] == dag.BY_SYMBOL
    assert by["pnl-snapshots"] == by["risk-exposures"] == by["stress-tests"] == by["sector-tags"] == dag.BY_PORTFOLIO
    # every step that grows with the book fans out; plan, market-data and the report run once (fan-in)
    assert {s.name for s in dag.STEPS if not s.fan_out} == {"plan", "market-data", "report"}


def test_a_portfolio_shard_waits_for_every_symbol_shard():
    """risk-exposures[K] reads the factor betas of its portfolios' symbols, which hash to any symbol shard:
    it waits for all of symbol-factors, but only for its own shard of pnl-snapshots. A symbol shard waits for
    the same symbol shard of company-profiles (its symbols' profiles), a portfolio shard for all of them."""
    shards = ["1/3", "2/3", "3/3"]
    steps = {s.name: StepOutcome(s.name) for s in dag.STEPS}
    tasks = {key: ups for key, _s, _shard, ups in LocalRunner._tasks(None, steps, shards)}
    every_profile_shard = {f"company-profiles[{j}]" for j in shards}
    for k in shards:
        assert set(tasks[f"symbol-factors[{k}]"]) == {"market-data", f"company-profiles[{k}]"}
        assert set(tasks[f"fundamentals[{k}]"]) == {f"company-profiles[{k}]"}
        assert set(tasks[f"company-profiles[{k}]"]) == {"plan"}
        assert set(tasks[f"sector-tags[{k}]"]) == every_profile_shard
        ups = set(tasks[f"risk-exposures[{k}]"])
        assert {f"symbol-factors[{j}]" for j in shards} | every_profile_shard <= ups
        assert f"pnl-snapshots[{k}]" in ups and not ups & {f"pnl-snapshots[{j}]" for j in shards if j != k}
    assert sorted(steps["symbol-metrics"].shards) == shards


def test_the_mean_data_quality_is_over_every_symbol_shard():
    """symbol-metrics' shards record integer sums; folded, the report's mean is over all symbols, not the
    first shard's."""
    from shared.report.findings import mean_quality
    from shared.runs import _merge_details

    shard1 = {"mean_quality_last_session": 100.0, "quality_points_last_session": 300, "symbols_last_session": 3}
    shard2 = {"mean_quality_last_session": 50.0, "quality_points_last_session": 50, "symbols_last_session": 1}
    assert mean_quality(_merge_details([shard1, shard2])) == 87.5  # (300 + 50) / 4, not 100
    assert mean_quality({"mean_quality_last_session": 90.0}) == 90.0  # a record from before the sums


def test_missing_profiles_are_counted_over_every_symbol_shard():
    """company-profiles' shards each list (some of) their own symbols without a profile, and count them all:
    folded, the report counts every shard's, not the first shard's list."""
    from shared.report.findings import _names, missing_profiles
    from shared.runs import _merge_details

    shard1 = {"symbols": 10, "without_profile": ["AAA"], "without_profile_count": 1, "max_age_days": 3}
    shard2 = {"symbols": 12, "without_profile": ["BBB", "CCC"], "without_profile_count": 2}
    folded = _merge_details([shard1, shard2])
    assert missing_profiles(folded) == 3 and folded["symbols"] == 22
    assert folded["max_age_days"] == 3  # a run-wide detail: written by the lead shard only, never summed
    assert _names(folded["without_profile"], total=missing_profiles(folded)) == "AAA and 2 more"
    assert missing_profiles({"without_profile": ["AAA", "BBB"]}) == 2  # a record from before the count


def test_the_lead_shard_writes_the_run_wide_rows():
    assert _ctx("company-profiles", None, dag.BY_SYMBOL).lead_shard
    assert _ctx("company-profiles", Shard(1, 1), dag.BY_SYMBOL).lead_shard
    assert [_ctx("company-profiles", Shard(k, 3), dag.BY_SYMBOL).lead_shard for k in (1, 2, 3)] == [True, False, False]
