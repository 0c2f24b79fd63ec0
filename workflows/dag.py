"""The one description of the nightly DAG: steps, their entrypoints, edges, artifacts and retries.

Plain data. :mod:`workflows.local` runs it on this machine and :mod:`workflows.argo` renders it to Argo
with Hera; neither keeps a second list of phases. Every step is ``python -m <module> <args>``, and
:func:`step_args` builds the same argument list for both runners (Argo passes template expressions,
the local runner passes values).

Edges follow the data: phase 1.5 (symbol factors) and 1.75 (symbol metrics) both need only prices and
profiles, so they run in parallel; 3 (P&L) and 4 (market values) start as soon as prices exist. Phase 6
is a small sub-DAG so each part can be retried on its own: exposures (after symbol betas and
snapshots), volatility and correlations (after snapshots), then stress tests (after exposures). The
report (7) comes after every other step and writes the run's HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Name of the price-cache snapshot artifact (Parquet), produced by market-data.
PRICE_CACHE = "price-cache"
PRICE_CACHE_FILE = "price_cache.parquet"
#: Name of the run report artifact (one self-contained HTML page), produced by the report step.
REPORT = "report"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Retry:
    """Retry policy of one step (Argo ``retryStrategy``; the local runner honours ``limit``).

    Every failure is retried (Argo ``retryPolicy: Always``: a ``Failed`` main container and an ``Error``
    node, e.g. an S3 save or load in the init/wait container), except these exit codes, which retrying
    cannot fix: 2 (bad input or usage), 5 (fenced out: the run lost the batch lock to another) and 137
    (killed for memory: the same limit would be hit again; raise the step's limit instead). Exit code 4
    (lock busy) is retried with backoff, so a run that collides with another waits for it.

    ``max_duration`` (Argo ``backoff.maxDuration``, the whole retry window from the first attempt) is
    derived from the step by :func:`retry_window_seconds` when it is ``None``: every attempt may use its
    full ``activeDeadlineSeconds`` plus the backoff between attempts, so a slow first failure is retried.
    """

    limit: int = 3
    policy: str = "Always"
    backoff: str = "30s"
    factor: int = 2
    max_duration: str | None = None
    no_retry_exit_codes: tuple[int, ...] = (2, 5, 137)


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    #: A CPU limit (None = none). Set where the step sizes a worker pool from its cgroup quota (report).
    cpu_limit: str | None = None


@dataclass(frozen=True)
class Step:
    """One node of the DAG.

    Attributes
    ----------
    name : Argo task/template name (DNS-1123, never starting with a digit).
    phase : The phase number of the system we replace ("1.5"), for humans.
    module : Python module run as ``python -m <module>``.
    upstream : Names of the steps that must succeed first.
    reads_price_cache / writes_price_cache : Whether the step consumes / produces the snapshot.
    writes_report : Whether the step writes the run's HTML report (an output artifact in Argo).
    reads / writes : The data the step reads and writes: table names, or a column group of a table that
        more than one step writes (:data:`COLUMN_GROUPS`, e.g. ``portfolio_snapshots.volatility``).
        ``"*"`` reads everything. ``tests/workflows/test_dag_data.py`` checks that every reader runs
        after every writer of what it reads, and that the declarations match the SQL a real run issues.
    reads_earlier_runs : What the step reads as earlier runs left it (plan's watermarks): every writer
        of it must run *after* the step, never beside it.
    """

    name: str
    phase: str
    title: str
    module: str
    upstream: tuple[str, ...] = ()
    reads_price_cache: bool = False
    writes_price_cache: bool = False
    outputs_dates: bool = False
    writes_report: bool = False
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    reads_earlier_runs: tuple[str, ...] = ()
    retry: Retry = field(default_factory=Retry)
    resources: Resources = field(default_factory=Resources)
    deadline_seconds: int = 3600
    #: Seconds the step waits for the batch lock before exiting 4 (SIGMABATCH_LOCK_TIMEOUT); only ``plan``
    #: takes the lock for a run, the other steps find it held by their run.
    lock_timeout_seconds: int = 0
    #: The step fans out over the run's shards (plan's ``shards`` output): one process (pod) per shard with
    #: ``--shard K/N``, each reading and writing only its shard's portfolios or symbols (``shard_by``).
    fan_out: bool = False
    #: What a fanned-out step's shard ``K/N`` holds: :data:`BY_PORTFOLIO` (the portfolios whose id hashes to
    #: K) or :data:`BY_SYMBOL` (the symbols whose string hashes to K; the same ``N``). A shard waits for the
    #: same shard of a fanned-out upstream step only when both split by the same key, else for all of them.
    shard_by: str = "portfolio"

    def __post_init__(self) -> None:
        if self.shard_by not in SHARD_KEYS:
            raise ValueError(f"{self.name}: shard_by {self.shard_by!r} is not one of {SHARD_KEYS}")


#: What the shards of a fanned-out step split (:attr:`Step.shard_by`).
BY_PORTFOLIO, BY_SYMBOL = "portfolio", "symbol"
SHARD_KEYS = (BY_PORTFOLIO, BY_SYMBOL)


def same_shards(a: Step, b: Step) -> bool:
    """Whether shard ``K/N`` of step ``b`` needs only shard ``K/N`` of ``a`` (both fan out, by the same key)."""
    return a.fan_out and b.fan_out and a.shard_by == b.shard_by


#: Columns of a table that another step writes than the one that writes its rows: ``table.group`` is then
#: its own unit of data. A step that reads a table's whole row (a loader's ``SELECT *``) reads its
#: rows' own columns, not these (the loaders' callers use none of them).
COLUMN_GROUPS: dict[str, tuple[str, ...]] = {
    "portfolio_snapshots.exposures": (
        "beta_calculated_90d", "beta_calculated_90d_r_squared", "beta_calculated_90d_observations",
        "beta_provider_1y", "ir_beta", "sector_exposure", "hhi", "effective_num_positions",
        "top_3_concentration", "top_10_concentration"),
    "portfolio_snapshots.volatility": (
        "realized_volatility_21d", "realized_volatility_63d", "expected_volatility_21d", "volatility_trend",
        "volatility_percentile"),
    "positions.marks": ("last_price", "market_value", "unrealized_pnl", "market_value_date"),
    "company_profiles.fundamentals": ("fundamentals_last_fetched",),
}
#: Reference data a step seeds from constants in the code when it needs it (idempotent upsert of the same
#: rows, whoever comes first): declared like any table, but no ordering follows from it.
REFERENCE_DATA: dict[str, str] = {
    "factor_definitions": "seeded from shared.analytics.factors.FACTOR_DEFINITIONS by each step that needs ids",
}
#: The price-cache snapshot as a unit of data (its writer and readers come from the price-cache flags).
PRICE_CACHE_DATA = "artifact:price-cache"

_BOOK = ("portfolios", "positions")

_WORK: tuple[Step, ...] = (
    # plan waits up to 20 minutes for the batch lock per attempt (longer than the lease of a run whose
    # workflow is gone, LOCK_LEASE_SECONDS), and is retried on exit 4 for about two hours in all (5 attempts,
    # backoff 1, 2, 4, 8 min), longer than a normal nightly run holds the lock.
    Step("plan", "-", "Plan the run: resolve the dates, record the run", "phases.plan",
         outputs_dates=True, reads=_BOOK, reads_earlier_runs=("portfolio_snapshots",),
         retry=Retry(limit=4, backoff="60s"),
         # 1,158 MiB at XL (2 M positions; docs/performance.md "Shards at M, L and XL"): the book's size
         resources=Resources("100m", "256Mi", "2Gi"), deadline_seconds=1800, lock_timeout_seconds=1200),
    Step("company-profiles", "0", "Company profiles", "phases.company_profiles", ("plan",),
         reads=(*_BOOK, "company_profiles", "symbol_universe"),
         writes=("company_profiles", "symbol_universe", "benchmarks_sector_weights", "macro_series"),
         # a symbol's profile and universe row per symbol shard; the benchmark weights and yields by shard 1
         fan_out=True, shard_by=BY_SYMBOL),
    Step("market-data", "1", "Market data and price-cache snapshot", "phases.market_data", ("plan",),
         writes_price_cache=True, reads=(*_BOOK, "market_data_cache"), writes=("market_data_cache",), resources=Resources("500m", "1Gi", "4Gi")),
    Step("symbol-factors", "1.5", "Symbol factor betas", "phases.symbol_factors",
         ("market-data", "company-profiles"), reads_price_cache=True, resources=Resources("1", "1Gi", "4Gi"),
         reads=("portfolios", "company_profiles", "factor_definitions"),
         writes=("factor_definitions", "symbol_factor_exposures"), fan_out=True, shard_by=BY_SYMBOL),
    Step("symbol-metrics", "1.75", "Symbol metrics", "phases.symbol_metrics",
         ("market-data", "company-profiles"), reads_price_cache=True, reads=("portfolios", "company_profiles"),
         writes=("symbol_daily_metrics",), fan_out=True, shard_by=BY_SYMBOL),
    Step("fundamentals", "2", "Fundamentals", "phases.fundamentals", ("company-profiles",),
         reads=(*_BOOK, "company_profiles"), writes=("financial_statements", "company_profiles.fundamentals"),
         fan_out=True, shard_by=BY_SYMBOL),
    Step("pnl-snapshots", "3", "P&L, equity roll-forward and snapshots", "phases.pnl_snapshots",
         ("market-data",), reads_price_cache=True, reads=(*_BOOK, "equity_changes", "portfolio_snapshots"),
         writes=("portfolio_snapshots",), fan_out=True),
    Step("market-values", "4", "Position market values", "phases.market_values", ("market-data",),
         reads_price_cache=True, reads=_BOOK, writes=("positions.marks",), fan_out=True),
    Step("sector-tags", "5", "Sector tags", "phases.sector_tags", ("company-profiles",),
         reads=(*_BOOK, "company_profiles", "position_sector_tags"), writes=("position_sector_tags",), fan_out=True),
    Step("risk-exposures", "6a", "Portfolio betas, factor exposures, sectors, concentration",
         "phases.risk_exposures", ("symbol-factors", "pnl-snapshots", "company-profiles"),
         reads_price_cache=True, resources=Resources("1", "2Gi", "6Gi"),
         reads=(*_BOOK, "portfolio_snapshots", "symbol_factor_exposures", "factor_definitions", "company_profiles",
                "benchmarks_sector_weights"),
         writes=("portfolio_snapshots.exposures", "factor_exposures", "factor_definitions"), fan_out=True),
    Step("risk-volatility", "6b", "Realized and HAR-forecast volatility", "phases.risk_volatility",
         ("pnl-snapshots",), reads_price_cache=True, resources=Resources("1", "2Gi", "6Gi"),
         reads=(*_BOOK, "portfolio_snapshots"), writes=("portfolio_snapshots.volatility", "symbol_volatility"), fan_out=True),
    Step("risk-correlations", "6c", "Position correlations and clusters", "phases.risk_correlations",
         ("pnl-snapshots",), reads_price_cache=True, resources=Resources("1", "2Gi", "6Gi"),
         reads=(*_BOOK, "portfolio_snapshots"),
         writes=("correlation_calculations", "correlation_clusters", "pairwise_correlations"), fan_out=True),
    # stress-tests holds a chunk's results with their per-row JSON (factor impacts): 1.8 GiB at L (10,000
    # portfolios, chunks of 2 sessions), whatever the range's length (docs/performance.md)
    Step("stress-tests", "6d", "Stress tests", "phases.stress_tests", ("risk-exposures",),
         reads_price_cache=True, resources=Resources("1", "2Gi", "4Gi"),
         reads=("portfolios", "portfolio_snapshots", "factor_exposures", "factor_definitions", "symbol_factor_exposures",
                "stress_test_scenarios"),
         writes=("stress_test_pnl", "stress_exposures", "stress_scenario_sessions", "stress_test_summaries",
                 "stress_test_scenarios"), fan_out=True),
)


def leaves(steps: tuple[Step, ...]) -> tuple[str, ...]:
    """Names of the steps no other step depends on, in declaration order."""
    used = {u for s in steps for u in s.upstream}
    return tuple(s.name for s in steps if s.name not in used)


#: The report runs after every other step (upstream = every leaf), so it sees the whole run. If a step
#: fails, Argo's DAG does not start it; ``sigmabatch report --run ID`` renders that run afterwards.
REPORT_STEP = Step("report", "7", "Run report (HTML with charts)", "phases.report", leaves(_WORK),
                   writes_report=True, reads=("*",), retry=Retry(limit=2, backoff="10s"),
                   # 1,065 MiB at XL (100,000 portfolios, docs/performance.md): 2Gi
                   resources=Resources("250m", "512Mi", "2Gi", cpu_limit="2"), deadline_seconds=900)

STEPS: tuple[Step, ...] = (*_WORK, REPORT_STEP)

#: The step that always runs last, whatever happened (Argo ``onExit``): records the run's outcome.
#: Its retention deletes old pairwise matrices of every portfolio (and, with SIGMABATCH_RETAIN_SESSIONS set,
#: old rows of the tables in shared.retention), after every other step.
EXIT_STEP = Step("record-run", "-", "Record the run's status", "phases.record_run",
                 writes=("pairwise_correlations",), retry=Retry(limit=3, backoff="10s"),
                 resources=Resources("100m", "256Mi", "512Mi"), deadline_seconds=600)

#: The batch lock's lease on Argo (SIGMABATCH_LOCK_LEASE of every step): no process holds the lock between
#: two steps, so the lease covers the longest wait for the next pod (scheduling, image pull, autoscaling);
#: a terminated workflow's lock is taken over this long after its last step stopped renewing it.
LOCK_LEASE_SECONDS = 900

#: Pods of a run running at once on Argo (the workflow's ``parallelism``; the ``main`` DAG's caps its tasks
#: alike), the shards of the fanned-out steps and the per-shard sub-DAGs' pods included: each holds one or
#: two database connections while it runs.
MAX_PARALLEL_PODS = 8

#: What may start a run (``--trigger``; the same list as :data:`shared.runs.TRIGGERS`).
TRIGGERS = ("cron", "backfill", "onboarding", "manual")

#: Argo-side placeholders: what each argument is in a WorkflowTemplate.
ARGO_VALUES = {
    "run_id": "{{workflow.name}}",
    "workflow_name": "{{workflow.name}}",
    "portfolio": "{{workflow.parameters.portfolio}}",
    "trigger": "{{workflow.parameters.trigger}}",
    # {{workflow.scheduledTime}} exists only in cron-created runs (elsewhere it stays unresolved), so the
    # WorkflowTemplate has a "scheduled-time" parameter (default "") that the CronWorkflow sets to it.
    "scheduled_time": "{{workflow.parameters.scheduled-time}}",
    "force": "{{workflow.parameters.force}}",
}


def price_history():
    """The price history the snapshot must hold before a run's first session: the union of the
    ``HISTORY`` every step that reads it declares in its phase module (:mod:`shared.history`).

    Read by market-data, which sizes the snapshot from it; a step that reads the snapshot without
    declaring its history is an error, not a silent default.
    """
    import importlib

    from shared.history import History

    needs = []
    for step in STEPS:
        if step.reads_price_cache:
            need = getattr(importlib.import_module(step.module), "HISTORY", None)
            if not isinstance(need, History):
                raise TypeError(f"{step.module} reads the price cache but declares no HISTORY")
            needs.append(need)
    return History.union(needs)


def duration_seconds(text: str) -> int:
    """Seconds of an Argo duration such as ``30s``, ``10m``, ``2h`` or ``1h30m``."""
    import re

    parts = re.findall(r"(\d+)([smh])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def retry_window_seconds(step: Step) -> int:
    """The retry window of a step: ``limit + 1`` attempts of up to ``deadline_seconds`` each, plus the
    backoff before each retry (``backoff * factor**i``). ``Retry.max_duration`` overrides it, but may not
    be shorter than one attempt (Argo would then never retry a slow first failure)."""
    r = step.retry
    window = (r.limit + 1) * step.deadline_seconds + sum(
        duration_seconds(r.backoff) * r.factor ** i for i in range(r.limit))
    if r.max_duration is None:
        return window
    explicit = duration_seconds(r.max_duration)
    if explicit < step.deadline_seconds:
        raise ValueError(f"{step.name}: maxDuration {r.max_duration} is shorter than its deadline")
    return explicit


def shard_chain(steps: tuple[Step, ...] = STEPS) -> tuple[Step, ...]:
    """The steps that fan out by portfolio, in topological order: on Argo each portfolio shard runs them as
    one sub-DAG (shard K's step waits only for shard K's steps it needs), started when the steps they need
    outside the chain are done. A step outside the chain that needs one of its steps and feeds another
    would make the sub-DAG wait for itself: a ValueError."""
    chain = [s for s in topological_order(steps) if s.fan_out and s.shard_by == BY_PORTFOLIO]
    names = {s.name for s in chain}
    upstream = {s.name: set(s.upstream) for s in steps}
    ancestors: dict[str, set[str]] = {}
    for s in topological_order(steps):
        ancestors[s.name] = set().union(*({u} | ancestors[u] for u in upstream[s.name])) if upstream[s.name] else set()
    for s in steps:
        if s.name in names:
            continue
        after = ancestors[s.name] & names
        before = {c for c in names if s.name in ancestors[c]}
        if after and before:
            raise ValueError(f"{s.name} runs after {sorted(after)} and before {sorted(before)}: "
                             "it would sit inside the per-shard chain")
    return tuple(chain)


def steps_by_name() -> dict[str, Step]:
    return {s.name: s for s in STEPS}


def edges() -> set[tuple[str, str]]:
    """All (upstream, downstream) pairs."""
    return {(u, s.name) for s in STEPS for u in s.upstream}


def topological_order(steps: tuple[Step, ...] = STEPS) -> list[Step]:
    """Steps sorted so every step comes after its upstream steps (stable in declaration order)."""
    by_name = {s.name: s for s in steps}
    done: set[str] = set()
    order: list[Step] = []
    pending = list(steps)
    while pending:
        ready = [s for s in pending if all(u in done for u in s.upstream)]
        if not ready:
            raise ValueError(f"cycle or unknown upstream among {[s.name for s in pending]}")
        for s in ready:
            missing = [u for u in s.upstream if u not in by_name]
            if missing:
                raise ValueError(f"{s.name}: unknown upstream {missing}")
            order.append(s)
            done.add(s.name)
            pending.remove(s)
    return order


def has_path(a: str, b: str) -> bool:
    """Whether ``b`` is reachable from ``a`` along the edges."""
    children: dict[str, list[str]] = {}
    for u, d in edges():
        children.setdefault(u, []).append(d)
    stack, seen = [a], set()
    while stack:
        n = stack.pop()
        for c in children.get(n, []):
            if c == b:
                return True
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return False


def step_args(
    step: Step,
    *,
    start_date: str,
    end_date: str,
    portfolio: str,
    run_id: str,
    price_cache_in: str | None = None,
    price_cache_out: str | None = None,
    outputs_dir: str | None = None,
    report_out: str | None = None,
    trigger: str | None = None,
    scheduled_time: str | None = None,
    force: str | None = None,
    workflow_name: str | None = None,
    shard: str | None = None,
) -> list[str]:
    """The argument list after ``python -m <module>``, identical for the local runner and Argo.
    ``shard`` (``K/N``) is passed to a step that fans out (:attr:`Step.fan_out`) only."""
    args = ["--run-id", run_id, "--start-date", start_date, "--end-date", end_date, "--portfolio", portfolio]
    if step.fan_out and shard is not None:
        args += ["--shard", shard]
    if step.reads_price_cache and price_cache_in is not None:
        args += ["--price-cache", price_cache_in]
    if step.writes_price_cache and price_cache_out is not None:
        args += ["--price-cache-out", price_cache_out]
    if step.writes_report and report_out is not None:
        args += ["--out", report_out]
    if step.outputs_dates and outputs_dir is not None:
        args += ["--outputs-dir", outputs_dir]
    if trigger is not None and step.name in ("plan", EXIT_STEP.name):
        args += ["--trigger", trigger]
    if scheduled_time is not None and step.name == "plan":
        args += ["--scheduled-time", scheduled_time]
    if workflow_name is not None and step.name == "plan":
        args += ["--workflow-name", workflow_name]
    if force is not None and step.name not in (EXIT_STEP.name,):
        args += ["--force", force]
    return args
