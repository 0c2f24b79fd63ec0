"""The rendered Argo objects follow workflows/dag.py and the operational rules of the issue."""

from __future__ import annotations

import json
import re

import pytest

from tests.workflows.manifest_graph import step_upstream
from workflows import argo, dag

LEAF_KEYS = ("container", "script")
#: The steps of the per-shard sub-DAG (issue 18), from dag.py.
CHAIN = {s.name for s in dag.shard_chain()}


def _templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def _tasks(doc: dict) -> dict[str, dict]:
    main = _templates(doc)[doc["spec"]["entrypoint"]]
    return {t["name"]: t for t in main["dag"]["tasks"]}


def _depends(task: dict) -> set[str]:
    return {n.strip() for n in task.get("depends", "").split("&&") if n.strip()}


@pytest.fixture(params=["workflowtemplate-nightly.yaml", "workflowtemplate-onboarding.yaml"])
def template_doc(request: pytest.FixtureRequest, rendered_docs: dict[str, dict]) -> dict:
    return rendered_docs[request.param]


def _inner(doc: dict) -> dict[str, dict]:
    """The tasks of the per-shard sub-DAG template."""
    return {t["name"]: t for t in _templates(doc)[argo.SHARD_DAG]["dag"]["tasks"]}


def _task_of(step: str) -> str:
    return argo.SHARD_DAG if step in CHAIN else step


def test_dag_edges_equal_dag_py(template_doc: dict) -> None:
    """The portfolio-fanned steps are one task (the sub-DAG over plan's shards) whose inner edges are dag.py's
    among them; the task waits for what they need outside; the other edges are dag.py's."""
    tasks, inner = _tasks(template_doc), _inner(template_doc)
    assert {"pnl-snapshots", "market-values", "sector-tags", "risk-exposures", "risk-volatility",
            "risk-correlations", "stress-tests"} == CHAIN
    assert set(tasks) == {s.name for s in dag.STEPS} - CHAIN | {argo.SHARD_DAG}
    assert set(inner) == CHAIN
    edges = dag.edges()
    assert {(u, name) for name, t in inner.items() for u in _depends(t)} == {
        (u, d) for u, d in edges if u in CHAIN and d in CHAIN}
    assert _depends(tasks[argo.SHARD_DAG]) == {u for u, d in edges if d in CHAIN and u not in CHAIN}
    assert {(u, name) for name, t in tasks.items() if name != argo.SHARD_DAG for u in _depends(t)} == {
        (_task_of(u), d) for u, d in edges if d not in CHAIN}
    assert all("dependencies" not in t for t in (*tasks.values(), *inner.values()))
    # step by step: every edge of dag.py holds; the only additions are the sub-DAG's outside needs
    upstream = step_upstream(template_doc)
    assert {(u, d) for d, ups in upstream.items() for u in ups} >= edges


def test_the_chain_comes_from_dag_py() -> None:
    """shard_chain follows the steps' fan_out/shard_by and refuses a step wedged between two of its steps."""
    import dataclasses

    by = dag.steps_by_name()
    steps = tuple(dataclasses.replace(s, fan_out=False) if s.name == "market-values" else s for s in dag.STEPS)
    assert "market-values" not in {s.name for s in dag.shard_chain(steps)}
    assert [s.name for s in dag.shard_chain()] == [s.name for s in dag.topological_order() if s.name in CHAIN]
    wedged = tuple(dataclasses.replace(s, upstream=(*s.upstream, "risk-volatility")) if s.name == "fundamentals"
                   else dataclasses.replace(s, upstream=(*s.upstream, "fundamentals")) if s.name == "stress-tests"
                   else s for s in dag.STEPS)
    with pytest.raises(ValueError, match="fundamentals"):
        dag.shard_chain(wedged)
    assert by["symbol-factors"].name not in CHAIN, "symbol shards stay withParam tasks of their own"


def _reachable(tasks: dict[str, dict], a: str, b: str) -> bool:
    children: dict[str, set[str]] = {}
    for name, t in tasks.items():
        for u in _depends(t):
            children.setdefault(u, set()).add(name)
    stack, seen = [a], set()
    while stack:
        for c in children.get(stack.pop(), ()):
            if c == b:
                return True
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return False


def test_symbol_factors_and_symbol_metrics_run_in_parallel(template_doc: dict) -> None:
    tasks = _tasks(template_doc)
    assert not _reachable(tasks, "symbol-factors", "symbol-metrics")
    assert not _reachable(tasks, "symbol-metrics", "symbol-factors")
    assert not dag.has_path("symbol-factors", "symbol-metrics") and not dag.has_path("symbol-metrics", "symbol-factors")


def test_one_container_template_per_step_running_python_m(template_doc: dict) -> None:
    templates = _templates(template_doc)
    for step in (*dag.STEPS, dag.EXIT_STEP):
        c = templates[step.name]["container"]
        assert c["command"] == ["python", "-m", step.module]
        # a literal the chart sets from its values: no submitter-chosen image with the database secret
        assert c["image"] == argo.DEFAULT_IMAGE
    leaves = {n for n, t in templates.items() if any(k in t for k in LEAF_KEYS)}
    assert leaves == {s.name for s in dag.STEPS} | {dag.EXIT_STEP.name}


def test_every_leaf_template_is_retried_and_hardened(template_doc: dict) -> None:
    spec = template_doc["spec"]
    assert "retryStrategy" not in spec, "a workflow-level retryStrategy re-runs the whole DAG"
    by_name = {s.name: s for s in (*dag.STEPS, dag.EXIT_STEP)}
    for name, t in _templates(template_doc).items():
        if not any(k in t for k in LEAF_KEYS):
            assert "retryStrategy" not in t and "activeDeadlineSeconds" not in t, name
            continue
        step = by_name[name]
        r = t["retryStrategy"]
        # Always: an Error node (S3 save/load in init/wait) is retried too; the expression spares 2, 5, 137
        assert r["limit"] == step.retry.limit and r["retryPolicy"] == "Always"
        assert r["backoff"] == {"duration": step.retry.backoff, "factor": step.retry.factor,
                                "maxDuration": f"{dag.retry_window_seconds(step)}s"}
        # every attempt may use its whole deadline and still be retried
        assert dag.duration_seconds(r["backoff"]["maxDuration"]) >= (step.retry.limit + 1) * t["activeDeadlineSeconds"]
        for code in (2, 5, 137):
            assert re.search(rf"\b{code}\b", r["expression"]), (name, r["expression"])
        assert not re.search(r"\b4\b", r["expression"]), "lock busy (4) must be retried"
        assert t["activeDeadlineSeconds"] == step.deadline_seconds
        assert isinstance(t["activeDeadlineSeconds"], int)
        c = t["container"]
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}
        limits = {"memory": step.resources.memory_limit}
        if step.resources.cpu_limit:
            limits["cpu"] = step.resources.cpu_limit
        assert c["resources"] == {"requests": {"cpu": step.resources.cpu_request,
                                               "memory": step.resources.memory_request}, "limits": limits}
        assert {"name": "scratch", "mountPath": "/scratch"} in c["volumeMounts"]
        assert {"name": "scratch", "emptyDir": {}} in t["volumes"]
        env = {e["name"]: e for e in c["env"]}
        # TMPDIR is a mount point of its own: it exists in the pod whatever the image has under /scratch
        assert env["TMPDIR"]["value"] == "/scratch/tmp"
        assert {"name": "tmp", "mountPath": "/scratch/tmp"} in c["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {}} in t["volumes"]
        assert {k: env[k]["value"] for k in argo.BLAS_THREADS} == argo.BLAS_THREADS
        assert env["SIGMABATCH_LOCK_TIMEOUT"]["value"] == str(step.lock_timeout_seconds)
        assert env["SIGMABATCH_LOCK_LEASE"]["value"] == str(dag.LOCK_LEASE_SECONDS)
        assert env["SIGMABATCH_LOG_FORMAT"]["value"] == "json"
        metrics = t["metrics"]["prometheus"]
        assert {m["name"] for m in metrics} == {"sigmabatch_phase_duration_seconds", "sigmabatch_phase_failures_total"}
        assert all(m["labels"] == [{"key": "phase", "value": name}] for m in metrics)
        assert all(re.fullmatch(r"[a-zA-Z0-9_]+", m["name"]) for m in metrics)


def test_plan_outlasts_the_lease_of_a_gone_workflow() -> None:
    plan = dag.steps_by_name()["plan"]
    assert plan.lock_timeout_seconds > dag.LOCK_LEASE_SECONDS
    assert plan.deadline_seconds > plan.lock_timeout_seconds


def test_retry_expression() -> None:
    assert argo.retry_expression((2,)) == "asInt(lastRetry.exitCode) not in [2]"
    assert argo.retry_expression((2, 4)) == "asInt(lastRetry.exitCode) not in [2, 4]"
    assert argo.retry_expression(()) == "true"


def test_workflow_level_settings(template_doc: dict) -> None:
    spec = template_doc["spec"]
    assert spec["onExit"] == dag.EXIT_STEP.name
    assert spec["serviceAccountName"] == argo.SERVICE_ACCOUNT
    assert spec["synchronization"] == {"mutexes": [{"name": argo.MUTEX}]}
    assert "{{" not in argo.MUTEX
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                       "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["artifactGC"]["strategy"] == "OnWorkflowDeletion" and spec["artifactGC"]["forceFinalizerRemoval"]
    assert spec["artifactRepositoryRef"] == {"configMap": argo.ARTIFACT_REPOSITORY_CONFIGMAP,
                                             "key": argo.ARTIFACT_REPOSITORY_KEY}
    assert spec["podGC"]["strategy"] and spec["ttlStrategy"]["secondsAfterSuccess"] > 0
    params = {p["name"]: p for p in spec["arguments"]["parameters"]}
    assert {"start-date", "end-date", "portfolio", "trigger", "force", "scheduled-time"} <= set(params)
    assert "image" not in params, "the image comes from the chart, not from whoever submits"
    assert params["trigger"]["enum"] == list(dag.TRIGGERS)
    patch = json.loads(spec["podSpecPatch"])
    assert patch["initContainers"] == [{"name": "init", "securityContext": argo.EXECUTOR_SECURITY_CONTEXT}]
    assert patch["containers"] == [{"name": "wait", "securityContext": argo.EXECUTOR_SECURITY_CONTEXT}]
    assert params["start-date"]["value"] == params["end-date"]["value"] == "" == params["scheduled-time"]["value"]


def test_nightly_and_onboarding_parameters(rendered_docs: dict[str, dict]) -> None:
    def params(name: str) -> dict[str, dict]:
        return {p["name"]: p for p in rendered_docs[name]["spec"]["arguments"]["parameters"]}

    nightly, onboarding = params("workflowtemplate-nightly.yaml"), params("workflowtemplate-onboarding.yaml")
    assert nightly["portfolio"]["value"] == "" and nightly["trigger"]["value"] == "manual"
    assert "value" not in onboarding["portfolio"], "onboarding must require a portfolio"
    assert onboarding["trigger"]["value"] == "onboarding"
    assert rendered_docs["workflowtemplate-onboarding.yaml"]["metadata"]["name"] == argo.ONBOARDING_TEMPLATE


def test_plan_outputs_feed_every_other_step(nightly: dict) -> None:
    templates, tasks = _templates(nightly), _tasks(nightly)
    plan = templates["plan"]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in plan["outputs"]["parameters"]}
    assert outputs == {"start-date": "/scratch/out/start-date", "end-date": "/scratch/out/end-date",
                       "has-work": "/scratch/out/has-work", "shards": "/scratch/out/shards"}
    args = plan["container"]["args"]
    assert args[args.index("--workflow-name") + 1] == "{{workflow.name}}"
    assert "when" not in tasks["plan"]
    assert args[args.index("--outputs-dir") + 1] == "/scratch/out"
    assert args[args.index("--scheduled-time") + 1] == "{{inputs.parameters.scheduled-time}}"
    plan_args = {p["name"]: p["value"] for p in tasks["plan"]["arguments"]["parameters"]}
    assert plan_args == {"start-date": "{{workflow.parameters.start-date}}",
                         "end-date": "{{workflow.parameters.end-date}}",
                         "scheduled-time": "{{workflow.parameters.scheduled-time}}"}
    for name, task in tasks.items():
        if name == "plan":
            continue
        # a quiet night: every task but plan is Skipped, and a Skipped upstream satisfies `depends`
        assert task["when"] == "{{tasks.plan.outputs.parameters.has-work}} == true"
        values = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
        fanned = name == argo.SHARD_DAG or dag.steps_by_name()[name].fan_out
        assert values == {"start-date": "{{tasks.plan.outputs.parameters.start-date}}",
                          "end-date": "{{tasks.plan.outputs.parameters.end-date}}",
                          **({"shard": "{{item}}"} if fanned else {})}
    # the sub-DAG passes its inputs on: {{item}} and tasks.plan are not in scope inside it
    sub = templates[argo.SHARD_DAG]
    assert [p["name"] for p in sub["inputs"]["parameters"]] == ["start-date", "end-date", "shard"]
    for name, task in _inner(nightly).items():
        assert "when" not in task and "withParam" not in task, name
        values = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
        assert values == {p: f"{{{{inputs.parameters.{p}}}}}" for p in ("start-date", "end-date", "shard")}
    assert "{{item}}" not in json.dumps(sub) and "{{tasks.plan" not in json.dumps(sub)
    for step in dag.STEPS:
        if step.name == "plan":
            continue
        args = templates[step.name]["container"]["args"]
        assert args[args.index("--start-date") + 1] == "{{inputs.parameters.start-date}}"
        assert args[args.index("--end-date") + 1] == "{{inputs.parameters.end-date}}"
        assert "{{tasks." not in json.dumps(templates[step.name]), "tasks.* is not in scope inside a template"


def test_scheduled_time_only_from_the_cron(rendered_docs: dict[str, dict]) -> None:
    for name, doc in rendered_docs.items():
        text = json.dumps(doc)
        if doc["kind"] == "CronWorkflow":
            args = {p["name"]: p["value"] for p in doc["spec"]["workflowSpec"]["arguments"]["parameters"]}
            assert args == {"trigger": "cron", "scheduled-time": "{{workflow.scheduledTime}}"}
        else:
            assert "workflow.scheduledTime" not in text, name


def test_price_cache_flows_as_an_artifact(nightly: dict) -> None:
    templates, tasks = _templates(nightly), _tasks(nightly)
    writer = next(s for s in dag.STEPS if s.writes_price_cache)
    out = {a["name"]: a for a in templates[writer.name]["outputs"]["artifacts"]}[dag.PRICE_CACHE]
    assert out["path"] == "/scratch/out/price_cache.parquet" and out["archive"] == {"none": {}}
    assert set(out["s3"]) == {"key"}, "key-only: bucket and credentials come from the artifact repository"
    assert out["s3"]["key"] == "sigmabatch/{{inputs.parameters.end-date}}/{{workflow.name}}/price_cache.parquet"
    args = templates[writer.name]["container"]["args"]
    assert args[args.index("--price-cache-out") + 1] == out["path"]
    from_writer = [{"name": dag.PRICE_CACHE, "from": f"{{{{tasks.{writer.name}.outputs.artifacts.price-cache}}}}"}]
    # the sub-DAG gets the price cache as an input artifact (no path: not a container) and passes it on
    assert tasks[argo.SHARD_DAG]["arguments"]["artifacts"] == from_writer
    assert templates[argo.SHARD_DAG]["inputs"]["artifacts"] == [{"name": dag.PRICE_CACHE}]
    inner = _inner(nightly)
    for step in dag.STEPS:
        arts = (inner if step.name in CHAIN else tasks)[step.name].get("arguments", {}).get("artifacts", [])
        inputs = templates[step.name].get("inputs", {}).get("artifacts", [])
        if step.reads_price_cache:
            assert arts == ([{"name": dag.PRICE_CACHE, "from": "{{inputs.artifacts.price-cache}}"}]
                            if step.name in CHAIN else from_writer)
            assert inputs == [{"name": dag.PRICE_CACHE, "path": "/scratch/in/price_cache.parquet"}]
            args = templates[step.name]["container"]["args"]
            assert args[args.index("--price-cache") + 1] == "/scratch/in/price_cache.parquet"
            assert dag.has_path(writer.name, step.name)
        else:
            assert arts == [] and inputs == []


def test_exit_handler_receives_the_workflow_outcome(nightly: dict) -> None:
    t = _templates(nightly)[dag.EXIT_STEP.name]
    args = t["container"]["args"]
    assert args == argo.exit_step_args()
    assert args[args.index("--workflow-status") + 1] == "{{workflow.status}}"
    assert args[args.index("--failures") + 1] == "{{workflow.failures}}"
    assert args[args.index("--run-id") + 1] == "{{workflow.name}}"
    assert dag.EXIT_STEP.name not in _tasks(nightly)


def test_secrets_only_by_reference(rendered_docs: dict[str, dict]) -> None:
    sensitive = {"SIGMABATCH_DATABASE_URL", "POLYGON_API_KEY", "FMP_API_KEY", "FRED_API_KEY"}
    for name, doc in rendered_docs.items():
        for t in doc["spec"].get("templates", []):
            if "container" not in t:
                continue
            env = {e["name"]: e for e in t["container"]["env"]}
            assert sensitive <= set(env), (name, t["name"])
            for var in sensitive:
                assert "value" not in env[var], f"{var} has a literal value in {name}/{t['name']}"
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == argo.SECRET_NAME
                assert ref.get("optional", False) is (var != "SIGMABATCH_DATABASE_URL")
            for e in env.values():
                if "value" in e:
                    assert not re.search(r"(?i)(://[^/{]*:[^@]*@|api[_-]?key|password|secret)", e["value"]), e
        text = json.dumps(doc)
        assert not re.search(r"postgres(ql)?(\+psycopg)?://", text)


def test_cron_workflow(rendered_docs: dict[str, dict]) -> None:
    cron = rendered_docs["cronworkflow-nightly.yaml"]["spec"]
    assert cron["schedules"] == ["30 18 * * 1-5"] and cron["timezone"] == "America/New_York"
    assert cron["concurrencyPolicy"] == "Forbid" and cron["startingDeadlineSeconds"] > 0
    assert cron["successfulJobsHistoryLimit"] > 0 and cron["failedJobsHistoryLimit"] > 0
    assert cron["suspend"] is False and "suspend" not in cron["workflowSpec"]
    assert cron["workflowSpec"]["workflowTemplateRef"] == {"name": argo.NIGHTLY_TEMPLATE}
    assert len(rendered_docs["cronworkflow-nightly.yaml"]["metadata"]["name"]) <= 52


def test_report_runs_last_and_is_an_html_artifact(nightly: dict) -> None:
    templates, tasks = _templates(nightly), _tasks(nightly)
    reporters = [s for s in dag.STEPS if s.writes_report]
    assert [s.name for s in reporters] == ["report"]
    report = reporters[0]
    assert all(dag.has_path(s.name, report.name) for s in dag.STEPS if s is not report), "report runs last"
    assert _depends(tasks[report.name]) == {_task_of(n) for n in dag.leaves(dag.STEPS[:-1])}
    out = {a["name"]: a for a in templates[report.name]["outputs"]["artifacts"]}[dag.REPORT]
    assert out["path"] == "/scratch/out/report.html" and out["archive"] == {"none": {}}
    assert out["s3"] == {"key": "sigmabatch/{{inputs.parameters.end-date}}/{{workflow.name}}/report.html"}
    args = templates[report.name]["container"]["args"]
    assert args[args.index("--out") + 1] == out["path"]
    assert all("--out" not in templates[s.name]["container"]["args"] for s in dag.STEPS if s is not report)


def test_triggers_are_the_run_records_triggers() -> None:
    from shared import runs

    assert dag.TRIGGERS == runs.TRIGGERS


def test_portfolio_steps_fan_out_over_plans_shards(nightly: dict) -> None:
    """Issue 18: the symbol steps are withParam tasks over plan's shards (--shard {{item}} per pod), the
    portfolio steps one withParam task running a sub-DAG per shard (--shard {{inputs.parameters.shard}} per
    pod), under the parallelism caps (the workflow's counts every pod); the other steps run once."""
    templates, tasks = _templates(nightly), _tasks(nightly)
    fanned = {s.name for s in dag.STEPS if s.fan_out}
    assert fanned == {"pnl-snapshots", "market-values", "sector-tags", "risk-exposures", "risk-volatility",
                      "risk-correlations", "stress-tests", "company-profiles", "fundamentals", "symbol-factors",
                      "symbol-metrics"}
    # the symbol steps split the symbols, over the same list of shards
    assert {s.name for s in dag.STEPS if s.fan_out and s.shard_by == dag.BY_SYMBOL} == {
        "company-profiles", "fundamentals", "symbol-factors", "symbol-metrics"}
    assert {n for n, t in tasks.items() if "withParam" in t} == fanned - CHAIN | {argo.SHARD_DAG}
    assert {s.name for s in dag.STEPS if s.fan_out and s.shard_by == dag.BY_PORTFOLIO} == CHAIN
    for name in fanned - CHAIN | {argo.SHARD_DAG}:
        assert tasks[name]["withParam"] == "{{tasks.plan.outputs.parameters.shards}}"
    for name in fanned:
        args = templates[name]["container"]["args"]
        assert args[args.index("--shard") + 1] == "{{inputs.parameters.shard}}"
        assert "shard" in {p["name"] for p in templates[name]["inputs"]["parameters"]}
    for s in dag.STEPS:
        if s.name not in fanned:
            assert "--shard" not in templates[s.name]["container"]["args"]
    assert templates[nightly["spec"]["entrypoint"]]["parallelism"] == dag.MAX_PARALLEL_PODS
    # the main DAG's parallelism counts a running sub-DAG once; the workflow's counts the pods inside it
    assert nightly["spec"]["parallelism"] == dag.MAX_PARALLEL_PODS
    assert "parallelism" not in templates[argo.SHARD_DAG]
