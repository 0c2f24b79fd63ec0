"""Render :mod:`workflows.dag` to Argo Workflows objects with Hera (WorkflowTemplates and a CronWorkflow).

Nothing is built at import: call :func:`build_workflow_template`, :func:`build_onboarding_template`,
:func:`build_cron_workflow`, or :func:`render_all` to write the YAML the Helm chart ships
(``charts/sigmabatch/files``). The CLI ``python -m workflows.argo render|check`` wraps the last one.

How the DAG becomes Argo:

1. One Container template per :data:`dag.STEPS` entry, all from one image (a literal the chart sets, not
   a parameter), each running ``python -m <step.module> <dag.step_args(...)>``; the DAG edges are
   ``step.upstream``.
2. ``plan`` receives the workflow parameters ``start-date``/``end-date`` (empty = detect) and
   ``scheduled-time``, and writes the resolved dates and ``has-work`` to ``<outputs-dir>/…``; those
   files are its output parameters. Every other task gets the dates as template *inputs* (``tasks.*`` is
   only in scope inside the DAG, so templates read ``{{inputs.parameters.*}}``) and runs only ``when``
   ``has-work`` is true: a night with nothing to do is Skipped nodes and a Succeeded workflow.
3. ``market-data`` writes the price cache as a key-only S3 artifact (bucket and credentials come from the
   artifact repository ConfigMap); each step with ``reads_price_cache`` receives it as an input artifact.
4. The step with ``writes_report`` (last in the DAG) writes the run's HTML report as a key-only S3 output
   artifact, unarchived, so the Argo UI can show it.
5. :data:`dag.EXIT_STEP` is the ``onExit`` handler and also receives ``--workflow-status`` and ``--failures``.
6. A step that fans out (``fan_out``, by portfolio or by symbol: the same list) runs one pod per shard of plan's
   ``shards`` output (a JSON list of ``K/N``) with ``--shard K/N``, each retried on its own, each receiving
   the same price-cache artifact. A symbol step is one task with ``withParam`` over that list (``{{item}}``);
   the steps after it wait for all of its shards. The portfolio steps (:func:`workflows.dag.shard_chain`) are
   one DAG template, ``portfolio-shard``, taking the dates, the shard and the price cache as inputs and
   holding their chain with its edges from ``dag.py``; one ``portfolio-shard`` task runs it ``withParam``
   over the shards once every step the chain needs outside it is done, so shard K's next step waits only
   for shard K's (a slow or failed shard holds no other). The workflow's ``parallelism``
   (:data:`workflows.dag.MAX_PARALLEL_PODS`) caps the pods running at once, the sub-DAGs' included
   (database connections: one or two per pod); the ``main`` DAG has the same cap on its own tasks.
7. ``workflow.scheduledTime`` exists only for cron-created runs (otherwise it stays a literal
   ``{{workflow.scheduledTime}}``), so the WorkflowTemplate has a ``scheduled-time`` parameter defaulting to
   "" and only the CronWorkflow sets it to ``{{workflow.scheduledTime}}``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from hera.workflows import (
    DAG,
    Artifact,
    Container,
    Counter,
    CronWorkflow,
    EmptyDirVolume,
    Env,
    Gauge,
    Label,
    NoneArchiveStrategy,
    Parameter,
    Resources,
    RetryPolicy,
    RetryStrategy,
    S3Artifact,
    SecretEnv,
    Task,
    WorkflowTemplate,
)
from hera.workflows import models as m

from workflows import dag

DEFAULT_IMAGE = "ghcr.io/sigmabatch/sigmabatch:0.1.0"
NAMESPACE = "sigmabatch"
NIGHTLY_TEMPLATE = "sigmabatch-nightly"
ONBOARDING_TEMPLATE = "sigmabatch-onboarding"
CRON_NAME = "sigmabatch-nightly"

SERVICE_ACCOUNT = "sigmabatch-workflow"
ARTIFACT_GC_SERVICE_ACCOUNT = "sigmabatch-artifact-gc"
SECRET_NAME = "sigmabatch-secrets"
ARTIFACT_REPOSITORY_CONFIGMAP = "artifact-repositories"
ARTIFACT_REPOSITORY_KEY = "sigmabatch-s3"
#: One fixed lock for every run of every template: two batches never overlap (a per-date name would let
#: a run with empty dates and a backfill of the same date run together).
MUTEX = "sigmabatch-batch"
DEFAULT_PROVIDER = "yfinance"

SCRATCH = "/scratch"
OUTPUTS_DIR = f"{SCRATCH}/out"
PRICE_CACHE_IN = f"{SCRATCH}/in/{dag.PRICE_CACHE_FILE}"
PRICE_CACHE_OUT = f"{OUTPUTS_DIR}/{dag.PRICE_CACHE_FILE}"
#: S3 key of the price cache, below the repository's bucket: scoped by business date and run.
PRICE_CACHE_KEY = f"sigmabatch/{{{{inputs.parameters.end-date}}}}/{{{{workflow.name}}}}/{dag.PRICE_CACHE_FILE}"
#: The run report (HTML): an output artifact of the report step, same scope; the Argo UI shows it.
REPORT_OUT = f"{OUTPUTS_DIR}/{dag.REPORT_FILE}"
REPORT_KEY = f"sigmabatch/{{{{inputs.parameters.end-date}}}}/{{{{workflow.name}}}}/{dag.REPORT_FILE}"
DATE_PARAMETERS = ("start-date", "end-date")
#: plan's third output parameter: "true" when the run has sessions to process, "false" on a quiet night
#: (a holiday, or a day a backfill already covered). Every other task runs only ``when`` it is "true":
#: a quiet night is a short, Succeeded workflow whose other nodes are Skipped.
HAS_WORK = "has-work"
#: plan's fourth output parameter: the run's shards (portfolio and symbol shards alike), a JSON list of "K/N" (``withParam`` of the
#: steps that fan out).
SHARDS = "shards"
#: The input parameter of a fanned-out step's template (and of the per-shard sub-DAG): one ``K/N``.
SHARD = "shard"
#: The DAG template (and the ``main`` task running it ``withParam`` over plan's shards) of the steps that fan
#: out by portfolio (:func:`workflows.dag.shard_chain`): one sub-DAG per shard.
SHARD_DAG = "portfolio-shard"

#: Environment variable -> key in the secret (only ever referenced, never a value).
SECRET_ENV = {"SIGMABATCH_DATABASE_URL": "database-url"}
OPTIONAL_SECRET_ENV = {
    "POLYGON_API_KEY": "polygon-api-key",
    "FMP_API_KEY": "fmp-api-key",
    "FRED_API_KEY": "fred-api-key",
}

#: Files written by :func:`render_all`, relative to its ``out_dir``.
RENDERED_FILES = ("workflowtemplate-nightly.yaml", "workflowtemplate-onboarding.yaml", "cronworkflow-nightly.yaml")
HEADER = "# Generated by `python -m workflows.argo render` from workflows/dag.py. Do not edit by hand.\n"


# ---- leaf templates ------------------------------------------------------------------------------


def retry_expression(no_retry_exit_codes: tuple[int, ...]) -> str:
    """Argo ``retryStrategy.expression``: retry unless the last attempt exited with one of these codes.

    ``lastRetry.exitCode`` is a string ("-1" when the pod never reported one, e.g. evicted), so the
    expression converts it; a false expression stops retrying whatever ``retryPolicy`` says.
    """
    if not no_retry_exit_codes:
        return "true"
    codes = ", ".join(str(c) for c in no_retry_exit_codes)
    return f"asInt(lastRetry.exitCode) not in [{codes}]"


def retry_strategy(step: dag.Step) -> RetryStrategy:
    """``Always`` + the exit-code expression: Failed and Error nodes are retried, hopeless codes are not;
    ``maxDuration`` covers every attempt's deadline (:func:`workflows.dag.retry_window_seconds`)."""
    retry = step.retry
    return RetryStrategy(
        limit=retry.limit,
        retry_policy=RetryPolicy(retry.policy),
        backoff=m.Backoff(duration=retry.backoff, factor=m.IntOrString(retry.factor),
                          max_duration=f"{dag.retry_window_seconds(step)}s"),
        expression=retry_expression(retry.no_retry_exit_codes),
    )


#: The restricted Pod Security Standard for Argo's own init and wait containers (the pod-level
#: securityContext already sets runAsNonRoot and the RuntimeDefault seccomp profile). Argo applies a
#: workflow's podSpecPatch after it has added them, so this works without the controller's
#: ``executor.securityContext`` (docs/argo.md shows that setting too).
EXECUTOR_SECURITY_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                             "runAsNonRoot": True}
EXECUTOR_POD_SPEC_PATCH = json.dumps({
    "initContainers": [{"name": "init", "securityContext": EXECUTOR_SECURITY_CONTEXT}],
    "containers": [{"name": "wait", "securityContext": EXECUTOR_SECURITY_CONTEXT}],
}, separators=(",", ":"))
#: One thread per BLAS/OpenMP pool in every step, as the local runner does: a pod's CPU request is its
#: share, and numpy would otherwise start one thread per core of the node.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: TMPDIR is its own emptyDir (a directory baked into the image under /scratch is hidden by the
#: /scratch emptyDir; a mount point always exists).
TMP = f"{SCRATCH}/tmp"


def _env(step: dag.Step) -> list:
    env: list = [
        SecretEnv(name=name, secret_name=SECRET_NAME, secret_key=key) for name, key in SECRET_ENV.items()
    ]
    env += [
        SecretEnv(name=name, secret_name=SECRET_NAME, secret_key=key, optional=True)
        for name, key in OPTIONAL_SECRET_ENV.items()
    ]
    env += [
        Env(name="SIGMABATCH_PROVIDER", value="{{workflow.parameters.provider}}"),
        Env(name="SIGMABATCH_LOG_FORMAT", value="json"),
        Env(name="SIGMABATCH_ARTIFACTS", value=f"{SCRATCH}/artifacts"),
        Env(name="TMPDIR", value=TMP),
        Env(name="XDG_CACHE_HOME", value=f"{SCRATCH}/cache"),
        Env(name="PYTHONUNBUFFERED", value="1"),
        Env(name="SIGMABATCH_LOCK_TIMEOUT", value=str(step.lock_timeout_seconds)),
        Env(name="SIGMABATCH_LOCK_LEASE", value=str(dag.LOCK_LEASE_SECONDS)),
    ]
    env += [Env(name=k, value=v) for k, v in BLAS_THREADS.items()]
    return env


def _metrics(step: dag.Step) -> list:
    phase = [Label(key="phase", value=step.name)]
    return [
        Gauge(
            name="sigmabatch_phase_duration_seconds",
            help="Duration of the last run of a sigmabatch phase, in seconds",
            labels=phase,
            realtime=False,
            value="{{duration}}",
        ),
        Counter(
            name="sigmabatch_phase_failures_total",
            help="Failed attempts of a sigmabatch phase (each attempt, before any retry)",
            labels=phase,
            when="{{status}} == Failed",
            value="1",
        ),
    ]


def _leaf(step: dag.Step, args: list[str], image: str, *, inputs: list | None = None,
          outputs: list | None = None) -> Container:
    """The Container template of one step: same image, ``python -m <module>``, hardened, with retries.

    The image is a literal (the chart sets it from its values), not a workflow parameter: a submitter
    cannot run another image with the database secret.
    """
    res = step.resources
    return Container(
        name=step.name,
        image=image,
        image_pull_policy="IfNotPresent",
        command=["python", "-m", step.module],
        args=args,
        env=_env(step),
        volumes=[EmptyDirVolume(name="scratch", mount_path=SCRATCH), EmptyDirVolume(name="tmp", mount_path=TMP)],
        resources=Resources(cpu_request=res.cpu_request, memory_request=res.memory_request,
                            memory_limit=res.memory_limit, cpu_limit=res.cpu_limit),
        security_context=m.SecurityContext(
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=m.Capabilities(drop=["ALL"]),
        ),
        retry_strategy=retry_strategy(step),
        active_deadline_seconds=step.deadline_seconds,
        inputs=inputs,
        outputs=outputs,
        metrics=_metrics(step),
    )


def _step_template(step: dag.Step, image: str) -> Container:
    inputs: list = [Parameter(name=p) for p in DATE_PARAMETERS]
    outputs: list = []
    if step.outputs_dates:
        inputs.append(Parameter(name="scheduled-time"))
        outputs += [Parameter(name=p, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{p}"))
                    for p in (*DATE_PARAMETERS, HAS_WORK, SHARDS)]
    if step.fan_out:
        inputs.append(Parameter(name=SHARD))
    if step.reads_price_cache:
        inputs.append(Artifact(name=dag.PRICE_CACHE, path=PRICE_CACHE_IN))
    if step.writes_price_cache:
        outputs.append(S3Artifact(name=dag.PRICE_CACHE, path=PRICE_CACHE_OUT, key=PRICE_CACHE_KEY,
                                  archive=NoneArchiveStrategy()))
    if step.writes_report:
        outputs.append(S3Artifact(name=dag.REPORT, path=REPORT_OUT, key=REPORT_KEY, archive=NoneArchiveStrategy()))
    args = dag.step_args(
        step,
        start_date="{{inputs.parameters.start-date}}",
        end_date="{{inputs.parameters.end-date}}",
        portfolio=dag.ARGO_VALUES["portfolio"],
        run_id=dag.ARGO_VALUES["run_id"],
        price_cache_in=PRICE_CACHE_IN,
        price_cache_out=PRICE_CACHE_OUT,
        outputs_dir=OUTPUTS_DIR,
        report_out=REPORT_OUT,
        trigger=dag.ARGO_VALUES["trigger"],
        scheduled_time="{{inputs.parameters.scheduled-time}}",
        force=dag.ARGO_VALUES["force"],
        workflow_name=dag.ARGO_VALUES["workflow_name"],
        shard="{{inputs.parameters.shard}}",
    )
    return _leaf(step, args, image, inputs=inputs or None, outputs=outputs or None)


def exit_step_args() -> list[str]:
    """Arguments of the onExit handler: the common ones plus the workflow's outcome.

    It runs outside the DAG, so the resolved dates are not in scope: it gets the requested ones
    (possibly empty) and looks the run up by ``--run-id`` (``plan`` recorded it).
    """
    args = dag.step_args(
        dag.EXIT_STEP,
        start_date="{{workflow.parameters.start-date}}",
        end_date="{{workflow.parameters.end-date}}",
        portfolio=dag.ARGO_VALUES["portfolio"],
        run_id=dag.ARGO_VALUES["run_id"],
        trigger=dag.ARGO_VALUES["trigger"],
    )
    return [*args, "--workflow-status", "{{workflow.status}}", "--failures", "{{workflow.failures}}"]


# ---- the DAG ---------------------------------------------------------------------------------------


def _shard_dag(templates: dict[str, Container], chain: tuple[dag.Step, ...]) -> DAG:
    """The ``portfolio-shard`` DAG template (inside a workflow context): the chain's steps for one shard.

    Its inputs are the dates, the shard (``K/N``) and the price cache; each inner task passes them on to its
    step's Container template (the same templates as the steps', each with its own retries and resources),
    with the edges among the chain's steps. ``{{item}}`` is not in scope here: the shard is an input.
    """
    names = {s.name for s in chain}
    inputs: list = [Parameter(name=p) for p in (*DATE_PARAMETERS, SHARD)]
    if any(s.reads_price_cache for s in chain):
        inputs.append(Artifact(name=dag.PRICE_CACHE))  # no path: a DAG template's input artifact
    with DAG(name=SHARD_DAG, inputs=inputs) as sub:
        for step in chain:
            arguments: list = [Parameter(name=p, value=f"{{{{inputs.parameters.{p}}}}}")
                               for p in (*DATE_PARAMETERS, SHARD)]
            if step.reads_price_cache:
                arguments.append(Artifact(name=dag.PRICE_CACHE, from_=f"{{{{inputs.artifacts.{dag.PRICE_CACHE}}}}}"))
            Task(name=step.name, template=templates[step.name], arguments=arguments,
                 depends=" && ".join(u for u in step.upstream if u in names) or None)
    return sub


def _dag(templates: dict[str, Container]) -> None:
    """The ``main`` DAG (inside a workflow context): one task per step, edges from ``step.upstream``; the
    portfolio-fanned steps (:func:`workflows.dag.shard_chain`) are one ``withParam`` task over plan's shards
    running the ``portfolio-shard`` sub-DAG, which waits for every step the chain needs outside it."""
    plan = [s for s in dag.STEPS if s.outputs_dates]
    writers = [s for s in dag.STEPS if s.writes_price_cache]
    if len(plan) != 1 or len(writers) != 1:
        raise ValueError("the DAG needs exactly one step with outputs_dates and one with writes_price_cache")
    plan_name, writer_name = plan[0].name, writers[0].name
    has_work = f"{{{{tasks.{plan_name}.outputs.parameters.{HAS_WORK}}}}} == true"
    shards = f"{{{{tasks.{plan_name}.outputs.parameters.{SHARDS}}}}}"
    price_cache = Artifact(name=dag.PRICE_CACHE, from_=f"{{{{tasks.{writer_name}.outputs.artifacts.{dag.PRICE_CACHE}}}}}")
    chain = dag.shard_chain()
    in_chain = {s.name for s in chain}
    sub = _shard_dag(templates, chain) if chain else None

    def task_of(name: str) -> str:
        return SHARD_DAG if name in in_chain else name

    def depends(upstream) -> str | None:
        return " && ".join(dict.fromkeys(task_of(u) for u in upstream)) or None

    with DAG(name="main", parallelism=dag.MAX_PARALLEL_PODS):
        for step in dag.topological_order():
            if step.name in in_chain:
                if step is not chain[0]:
                    continue
                arguments: list = [Parameter(name=p, value=f"{{{{tasks.{plan_name}.outputs.parameters.{p}}}}}")
                                   for p in DATE_PARAMETERS]
                arguments.append(Parameter(name=SHARD, value="{{item}}"))
                if any(s.reads_price_cache for s in chain):
                    arguments.append(price_cache)
                outside = [u for s in chain for u in s.upstream if u not in in_chain]
                Task(name=SHARD_DAG, template=sub, arguments=arguments, depends=depends(outside),
                     when=has_work, with_param=shards)
                continue
            if step.outputs_dates:
                arguments = [
                    Parameter(name="start-date", value="{{workflow.parameters.start-date}}"),
                    Parameter(name="end-date", value="{{workflow.parameters.end-date}}"),
                    Parameter(name="scheduled-time", value=dag.ARGO_VALUES["scheduled_time"]),
                ]
            else:
                arguments = [
                    Parameter(name=p, value=f"{{{{tasks.{plan_name}.outputs.parameters.{p}}}}}")
                    for p in DATE_PARAMETERS
                ]
            if step.fan_out:
                arguments.append(Parameter(name=SHARD, value="{{item}}"))
            if step.reads_price_cache:
                arguments.append(price_cache)
            Task(
                name=step.name,
                template=templates[step.name],
                arguments=arguments,
                depends=depends(step.upstream),
                when=None if step.outputs_dates else has_work,
                with_param=shards if step.fan_out else None,
            )


def _template(*, name: str, image: str, namespace: str, portfolio: str | None, trigger: str,
              description: str) -> WorkflowTemplate:
    portfolio_param = (
        Parameter(name="portfolio", description="Portfolio to onboard (required)")
        if portfolio is None
        else Parameter(name="portfolio", value=portfolio, description="Portfolio id; empty = all portfolios")
    )
    with WorkflowTemplate(
        name=name,
        namespace=namespace,
        annotations={"workflows.argoproj.io/description": description},
        labels={"app.kubernetes.io/name": "sigmabatch", "app.kubernetes.io/component": name},
        entrypoint="main",
        arguments=[
            Parameter(name="start-date", value="", description="First business date YYYY-MM-DD; empty = detect"),
            Parameter(name="end-date", value="", description="Last business date YYYY-MM-DD; empty = detect"),
            portfolio_param,
            Parameter(name="trigger", value=trigger, enum=list(dag.TRIGGERS),
                      description="What started the run (cron, backfill, onboarding, manual)"),
            Parameter(name="force", value="false", enum=["false", "true"],
                      description="Recompute even if results for the dates exist"),
            Parameter(name="provider", value=DEFAULT_PROVIDER, description="Market-data provider (SIGMABATCH_PROVIDER)"),
            Parameter(name="scheduled-time", value="",
                      description="RFC3339 scheduled time; set by the CronWorkflow, empty for manual runs"),
        ],
        on_exit=dag.EXIT_STEP.name,
        pod_spec_patch=EXECUTOR_POD_SPEC_PATCH,
        active_deadline_seconds=6 * 3600,
        service_account_name=SERVICE_ACCOUNT,
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=10001,
            run_as_group=10001,
            fs_group=10001,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        synchronization=m.Synchronization(mutexes=[m.Mutex(name=MUTEX)]),
        parallelism=dag.MAX_PARALLEL_PODS,  # every pod of the run, the sub-DAGs' included
        artifact_repository_ref=m.ArtifactRepositoryRef(config_map=ARTIFACT_REPOSITORY_CONFIGMAP,
                                                        key=ARTIFACT_REPOSITORY_KEY),
        artifact_gc=m.WorkflowLevelArtifactGC(
            strategy="OnWorkflowDeletion",  # not OnWorkflowCompletion: `argo retry` needs the price cache
            service_account_name=ARTIFACT_GC_SERVICE_ACCOUNT,
            force_finalizer_removal=True,
        ),
        pod_gc=m.PodGC(strategy="OnPodSuccess", delete_delay_duration="10m"),
        ttl_strategy=m.TTLStrategy(seconds_after_success=7 * 86400, seconds_after_failure=14 * 86400),
    ) as wt:
        templates = {s.name: _step_template(s, image) for s in dag.STEPS}
        _leaf(dag.EXIT_STEP, exit_step_args(), image)
        _dag(templates)
    return wt


def build_workflow_template(image: str = DEFAULT_IMAGE, namespace: str = NAMESPACE,
                            name: str = NIGHTLY_TEMPLATE) -> WorkflowTemplate:
    """The nightly batch over all portfolios (the CronWorkflow's target; also used for backfills)."""
    return _template(name=name, image=image, namespace=namespace, portfolio="", trigger="manual",
                     description="sigmabatch nightly batch: every phase for all (or one) portfolio(s)")


def build_onboarding_template(image: str = DEFAULT_IMAGE, namespace: str = NAMESPACE,
                              name: str = ONBOARDING_TEMPLATE) -> WorkflowTemplate:
    """The same DAG for one new portfolio: ``portfolio`` is required, ``trigger`` is ``onboarding``."""
    return _template(name=name, image=image, namespace=namespace, portfolio=None, trigger="onboarding",
                     description="sigmabatch onboarding: every phase for one new portfolio")


def build_cron_workflow(schedule: str = "30 18 * * 1-5", timezone: str = "America/New_York",
                        template_name: str = NIGHTLY_TEMPLATE, suspend: bool = False,
                        namespace: str = NAMESPACE, name: str = CRON_NAME) -> CronWorkflow:
    """Weekdays after the close; the run's business date comes from ``{{workflow.scheduledTime}}``."""
    return CronWorkflow(
        name=name,
        namespace=namespace,
        labels={"app.kubernetes.io/name": "sigmabatch", "app.kubernetes.io/component": name},
        schedules=[schedule],
        timezone=timezone,
        concurrency_policy="Forbid",
        starting_deadline_seconds=3600,
        successful_jobs_history_limit=5,
        failed_jobs_history_limit=10,
        cron_suspend=suspend,  # NOT suspend=: that suspends every created Workflow (hera#1121)
        workflow_template_ref=m.WorkflowTemplateRef(name=template_name),
        workflow_metadata=m.WorkflowMetadata(labels={"sigmabatch/trigger": "cron"}),
        arguments=[
            Parameter(name="trigger", value="cron"),
            Parameter(name="scheduled-time", value="{{workflow.scheduledTime}}"),
        ],
    )


# ---- rendering -------------------------------------------------------------------------------------


def rendered_documents() -> dict[str, str]:
    """File name -> YAML text, exactly what :func:`render_all` writes."""
    objs = {
        RENDERED_FILES[0]: build_workflow_template(),
        RENDERED_FILES[1]: build_onboarding_template(),
        RENDERED_FILES[2]: build_cron_workflow(),
    }
    return {fname: HEADER + obj.to_yaml() for fname, obj in objs.items()}


def render_all(out_dir: str | Path) -> list[Path]:
    """Write the WorkflowTemplates and the CronWorkflow as YAML files into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in rendered_documents().items():
        path = out / fname
        path.write_text(text)
        written.append(path)
    return written


def check(out_dir: str | Path) -> list[str]:
    """Unified diffs between the committed files in ``out_dir`` and a fresh render (empty = up to date)."""
    out = Path(out_dir)
    diffs = []
    for fname, text in rendered_documents().items():
        path = out / fname
        old = path.read_text() if path.exists() else ""
        if old != text:
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{path} (committed)", tofile=f"{path} (rendered)")) or f"{path}: missing\n")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflows.argo",
        description="Render the sigmabatch Argo WorkflowTemplates and CronWorkflow from workflows/dag.py.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd, text in (("render", "write the YAML files"),
                      ("check", "exit 1 with a diff when the committed files differ from a fresh render")):
        p = sub.add_parser(cmd, help=text, description=text)
        p.add_argument("--out", default="charts/sigmabatch/files", help="folder of the YAML files (%(default)s)")
    args = parser.parse_args(argv)
    if args.command == "render":
        for path in render_all(args.out):
            print(f"wrote {path}")
        return 0
    diffs = check(args.out)
    if diffs:
        sys.stdout.write("".join(diffs))
        print(f"\n{args.out} is out of date: run `python -m workflows.argo render --out {args.out}`",
              file=sys.stderr)
        return 1
    print(f"{args.out}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
