"""Issue 20: the DAG's edges follow its data. Each step declares what it reads and writes
(``workflows.dag.Step.reads`` / ``writes``); every reader must run after every writer of what it reads
(transitively along the edges), in ``dag.py`` and in the committed Argo YAML; and the declarations must be
what the steps really do: a small real run (the DAG in this process, SQLite) records the SQL of each step
(:mod:`tests.workflows.sqlobserve`), and the tables/column groups it reads and writes must equal the
declared ones.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from shared.storage import models as m
from tests.dagrun import run_dag
from tests.workflows.manifest_graph import step_upstream
from tests.workflows.sqlobserve import BOOKKEEPING, VIEWS, Observer, item_of
from tests.workflows.sqlobserve import TABLES as COLUMNS
from workflows import dag

FILES = Path(__file__).resolve().parents[2] / "charts" / "sigmabatch" / "files"
TABLES = set(m.Base.metadata.tables) - BOOKKEEPING
ITEMS = TABLES | set(dag.COLUMN_GROUPS) | {dag.PRICE_CACHE_DATA}


def _data(step: dag.Step) -> tuple[set[str], set[str]]:
    """(reads, writes) of a step, the price-cache artifact included; ``*`` expanded to every item."""
    reads = ITEMS if "*" in step.reads else set(step.reads)
    writes = set(step.writes)
    if step.reads_price_cache:
        reads = reads | {dag.PRICE_CACHE_DATA}
    if step.writes_price_cache:
        writes = writes | {dag.PRICE_CACHE_DATA}
    return reads, writes


def _ancestors(upstream: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(name: str) -> set[str]:
        if name not in out:
            out[name] = set()
            for u in upstream.get(name, ()):
                out[name] |= {u} | walk(u)
        return out[name]

    for name in upstream:
        walk(name)
    return out


def violations(steps: tuple[dag.Step, ...], upstream: dict[str, set[str]]) -> list[str]:
    """Every (reader, item, writer) where the writer is not an ancestor of the reader (or, for what a step
    reads as earlier runs left it, where the writer is not a descendant)."""
    ancestors = _ancestors(upstream)
    writers: dict[str, set[str]] = {}
    for s in steps:
        for item in _data(s)[1]:
            writers.setdefault(item, set()).add(s.name)
    out = []
    for s in steps:
        for item in sorted(_data(s)[0] - set(dag.REFERENCE_DATA)):
            for w in sorted(writers.get(item, set()) - {s.name}):
                if w not in ancestors[s.name]:
                    out.append(f"{s.name} reads {item}, which {w} writes, but does not run after {w}")
        for item in sorted(s.reads_earlier_runs):
            for w in sorted(writers.get(item, set()) - {s.name}):
                if s.name not in ancestors[w]:
                    out.append(f"{s.name} reads {item} as earlier runs left it, but {w} does not run after it")
    return out


def _upstream_of(steps: tuple[dag.Step, ...]) -> dict[str, set[str]]:
    return {s.name: set(s.upstream) for s in steps}


def test_declared_items_exist() -> None:
    for s in (*dag.STEPS, dag.EXIT_STEP):
        unknown = (set(s.reads) - {"*"} | set(s.writes) | set(s.reads_earlier_runs)) - ITEMS
        assert not unknown, f"{s.name} declares unknown tables/groups {unknown}"
    for group, cols in dag.COLUMN_GROUPS.items():
        table = group.split(".")[0]
        assert set(cols) <= {c.name for c in m.Base.metadata.tables[table].columns}, group


def test_a_view_read_is_a_read_of_what_it_joins() -> None:
    """The per-position views (migration 0007) are not data of their own: a step reading one reads the
    positions held, the snapshots' dates and the symbol table, and must run after their writers."""
    for view, sources in VIEWS.items():
        for table, cols in sources.items():
            assert set(cols) <= set(COLUMNS[table]), (view, table)
    obs = Observer()
    obs.statements["reader"] = ["SELECT position_volatility.position_id, position_volatility.vol_trend "
                                "FROM position_volatility WHERE position_volatility.calculation_date = ?"]
    reads, writes = obs.touched("reader")
    assert not writes
    assert {t for t, _ in reads} == {"positions", "portfolio_snapshots", "symbol_volatility"}
    assert ("symbol_volatility", "") in reads and ("positions", "underlying_symbol") in reads
    assert {item_of(t, c, dag.COLUMN_GROUPS) for t, c in reads} == {"positions", "portfolio_snapshots",
                                                                    "symbol_volatility"}


def test_every_reader_runs_after_every_writer() -> None:
    assert violations(dag.STEPS, _upstream_of(dag.STEPS)) == []


@pytest.mark.parametrize("name", ["workflowtemplate-nightly.yaml", "workflowtemplate-onboarding.yaml"])
def test_committed_argo_yaml_respects_the_data(name: str) -> None:
    """The committed manifests (what Helm ships), not a fresh render: their task ``depends`` (the per-shard
    sub-DAG's inner ones included) give every reader its writers upstream."""
    doc = yaml.safe_load((FILES / name).read_text())
    upstream = step_upstream(doc)
    assert set(upstream) == {s.name for s in dag.STEPS}
    assert violations(dag.STEPS, upstream) == []


def test_a_dropped_edge_is_caught() -> None:
    """Dropping symbol-factors -> risk-exposures (the issue's example) is a violation."""
    steps = tuple(dataclasses.replace(s, upstream=tuple(u for u in s.upstream if u != "symbol-factors"))
                  if s.name == "risk-exposures" else s for s in dag.STEPS)
    found = violations(steps, _upstream_of(steps))
    assert "risk-exposures reads symbol_factor_exposures, which symbol-factors writes, but does not run after " \
           "symbol-factors" in found


def test_a_step_beside_a_writer_is_caught() -> None:
    """risk-volatility made to read the exposures' snapshot columns (written by risk-exposures beside it)."""
    steps = tuple(dataclasses.replace(s, reads=(*s.reads, "portfolio_snapshots.exposures"))
                  if s.name == "risk-volatility" else s for s in dag.STEPS)
    assert violations(steps, _upstream_of(steps)) == [
        "risk-volatility reads portfolio_snapshots.exposures, which risk-exposures writes, but does not run after "
        "risk-exposures"]


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[str, tuple[set[str], set[str]]]:
    """A small real run (demo books, 12 synthetic symbols, 3 sessions): step -> (items read, written)."""
    from shared.demo import seed_demo
    from shared.settings import Settings
    from shared.storage.db import get_engine, migrate, transaction

    tmp = tmp_path_factory.mktemp("dagdata")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"SIGMABATCH_DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite'}", "SIGMABATCH_ARTIFACTS": str(tmp / "art"),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_SYNTHETIC_SYMBOLS": "12",
                "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00", "SIGMABATCH_DEFAULT_SESSIONS": "3"})
    engine = get_engine(env["SIGMABATCH_DATABASE_URL"])
    migrate(engine)
    with transaction(engine) as s:
        seed_demo(s, Settings.from_env({k: v for k, v in env.items() if k.startswith("SIGMABATCH_")}))
    engine.dispose()
    obs = Observer()
    with obs.listening():
        start, end = run_dag(env, tmp, around=obs.step)
    assert start and end
    out = {}
    for step in (*dag.STEPS, dag.EXIT_STEP):
        reads, writes = obs.touched(step.name)
        out[step.name] = ({item_of(t, c, dag.COLUMN_GROUPS) if c else t for t, c in reads},
                          {item_of(t, c, dag.COLUMN_GROUPS) for t, c in writes})
    return out


@pytest.mark.parametrize("step", [s for s in (*dag.STEPS, dag.EXIT_STEP) if s is not dag.REPORT_STEP],
                         ids=lambda s: s.name)
def test_declarations_match_a_real_run(step: dag.Step, observed) -> None:
    reads, writes = observed[step.name]
    assert writes == set(step.writes), f"{step.name} writes {sorted(writes)}, declares {sorted(step.writes)}"
    declared = set(step.reads) | set(step.reads_earlier_runs)
    assert reads == declared, f"{step.name} reads {sorted(reads)}, declares {sorted(declared)}"
