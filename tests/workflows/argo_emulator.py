"""A small interpreter of the *rendered* Argo manifests (charts/sigmabatch/files/*.yaml), for tests.

It reads the WorkflowTemplate YAML, never :mod:`workflows.dag`, and follows the rules of the Argo
v3.7/v4 controller that the pipeline relies on (workflow/controller/dag.go, operator.go, util/template;
``argo retry``: workflow/util/util.go):

* **Submit**: the template's ``spec.arguments.parameters`` merged with ``-p`` values; a parameter without a
  value is required, a value outside ``enum`` is refused (``argo submit`` validates both). A CronWorkflow
  tick substitutes ``{{workflow.scheduledTime}}`` into its ``workflowSpec.arguments`` first.
* **Substitution**: ``{{...}}`` tags in the JSON text of a task or template, each value inserted as
  ``strconv.Quote(value)[1:-1]``; unknown tags stay (``allowUnresolved``). Scopes: ``workflow.*`` globals,
  ``tasks.<ancestor>.outputs.parameters.*`` / ``.artifacts.*`` in a task (ancestors in its own DAG only),
  ``inputs.parameters.*`` in its template, ``workflow.status`` and ``workflow.failures`` (``strconv.Quote``
  of the JSON list) in the exit handler.
* **DAG**: ``depends`` (a bare name means ``name.Succeeded || name.Skipped || name.Daemoned``; false ->
  ``Omitted``), then parameters are resolved and ``when`` evaluated (false -> ``Skipped``; still holding a
  ``{{`` -> ``Error``); artifact arguments are resolved only for tasks that run (missing -> ``Error``).
  Tasks run in waves (all ready tasks, then the next); failFast: after a wave with a Failed or Error node
  no new task of that DAG starts and the DAG fails (its tasks that depend on the failed one are
  ``Omitted``). (Argo fails a DAG once the branch of one of its target tasks has failed and may start
  other ready tasks until then; this emulator starts none — it does not change which tables a retry
  completes.) A DAG is Succeeded when every task has a node and none Failed or Errored.
* **Nested DAG** (a task whose template is a ``dag`` template, e.g. the per-shard sub-DAG invoked by a
  ``withParam`` task): the template's ``inputs.parameters`` come from the task's arguments (or defaults;
  else ``Error``), its ``inputs.artifacts`` (no ``path``: only a container/script may have one) from the
  task's artifact arguments (missing -> ``Error``); its tasks see ``inputs.parameters.*``,
  ``inputs.artifacts.*`` (``from: "{{inputs.artifacts.x}}"``) and ``tasks.*`` of their own DAG only — not
  the caller's ``{{item}}`` nor its ``tasks.*``. Inner nodes are named ``<dag node>.<task>`` (Argo's names
  without the leading ``<workflow>.``: ``portfolio-shard(1:2/3).risk-exposures``; displayName is the task
  name), each retried per its own template. failFast and ``depends`` apply inside it as above; a failing
  inner task fails its DAG node only, not its siblings in the ``withParam`` group.
* **Pods**: ``python -m <module> <args>`` is the phase's ``main(argv)`` called in this process with the
  container's ``env`` (secrets from ``secrets``), every ``/scratch`` path mapped to a fresh folder per
  attempt in which only the template's ``volumeMounts`` exist (``TMPDIR`` must be one of them or below
  one). Exit code != 0 -> ``Failed``. Then the wait container: every output parameter file and every
  non-optional output artifact must exist, else ``Error``.
* **withParam** (a fanned-out task): after ``depends``, ``withParam`` is resolved in the task's scope and
  must be a JSON list (else ``Error``); an empty list -> ``Skipped``. One child node per item, named
  ``task(i:item)``, with ``{{item}}`` substituted into its ``when`` and arguments, each retried on its own
  (a pod) or run as a nested DAG. Every child runs whatever its siblings do (Argo's DAG failFast fails a
  DAG from its target tasks, which wait for the whole group). The task node (a TaskGroup) is ``Succeeded``
  when every child succeeded or was skipped, ``Skipped`` when all were skipped, else ``Failed``; its
  children run one after another (Argo runs them side by side up to the ``parallelism`` limits).
* **Retries** (``retryStrategy``): ``limit`` retries after the first attempt; ``retryPolicy`` Always /
  OnFailure (Failed only) / OnError (Error only) / OnTransientError; then ``expression`` over
  ``lastRetry.exitCode`` (a string) and ``lastRetry.status``. No time passes (backoff is not slept).
* **Exit handler** (``onExit``): runs after the DAG with ``workflow.status`` Succeeded / Failed / Error.
* **argo terminate** / **argo stop** (``terminate_after=`` / ``stop_after=<task>``, a task of the main DAG):
  once that task's node is done no new task starts and the workflow is ``Failed``; after a stop the exit
  handler runs, after a terminate it does **not**.
* **argo retry**: nodes that are not Succeeded or Skipped are deleted (their outputs with them), at any
  depth, and the nodes above them (a group, a sub-DAG) run again: a failed group keeps its Succeeded
  children, a failed sub-DAG its Succeeded tasks; the exit-handler node is deleted too, and the DAG runs
  again; succeeded nodes keep their outputs and artifacts.

Not modelled: time (deadlines, backoff), memory, parallelism (``spec.parallelism`` and the main DAG's are
checked to be positive integers), the mutex (runs are sequential here).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
from collections.abc import Callable, Mapping
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import yaml

from tests.dagrun import environment
from tests.workflows.argo_encoding import go_quote, json_marshal

SCRATCH = "/scratch"
TAG = re.compile(r"{{\s*([^{}]+?)\s*}}")
FULFILLED = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
#: What ``argo retry`` keeps (every other node is deleted and runs again).
KEPT = ("Succeeded", "Skipped")


@dataclass
class Attempt:
    exit_code: int | None
    phase: str
    message: str = ""
    args: list[str] = field(default_factory=list)


@dataclass
class Node:
    """One node: a DAG task (a Retry node with its pod attempts), a ``withParam`` group, a sub-DAG, or the
    exit handler. ``name`` is Argo's node name without the workflow's (``plan``,
    ``portfolio-shard(1:2/3)``, ``portfolio-shard(1:2/3).risk-exposures``), ``display`` its displayName."""

    name: str
    template: str
    phase: str
    message: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> key in the artifact store
    #: The children of a ``withParam`` task (item -> node); empty for a plain task.
    children: dict[str, Node] = field(default_factory=dict)
    #: The task nodes of a DAG template's node (inner task name -> node); empty for a pod.
    tasks: dict[str, Node] = field(default_factory=dict)
    display: str = ""

    def __post_init__(self) -> None:
        self.display = self.display or self.name

    def walk(self):
        """This node and every node below it (group children, a sub-DAG's tasks), depth first."""
        yield self
        for child in (*self.children.values(), *self.tasks.values()):
            yield from child.walk()

    @property
    def runs_pods(self) -> bool:
        """Whether the node ran (or would have run) a pod template itself: not a group, not a DAG."""
        return not self.children and not self.tasks


@dataclass
class Workflow:
    name: str
    doc: dict
    parameters: dict[str, str]
    scheduled_time: str | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    exit_node: Node | None = None
    phase: str = "Pending"
    terminate_after: str | None = None
    stop_after: str | None = None
    message: str = ""
    #: ``argo retry``: the failed run's nodes that are not kept as they are (task -> node): a failed group's
    #: Succeeded children and a failed sub-DAG's Succeeded tasks are kept from them, the rest runs again.
    previous: dict[str, Node] = field(default_factory=dict)

    def phases(self) -> dict[str, str]:
        """Task name -> phase, for every task of the main DAG (``-`` when Argo never created its node)."""
        return {t["name"]: self.nodes[t["name"]].phase if t["name"] in self.nodes else "-"
                for t in _dag(self.doc)["tasks"]}

    def all_nodes(self) -> dict[str, Node]:
        """Node name -> node, every node of the DAG at any depth (not the exit handler)."""
        return {n.name: n for top in self.nodes.values() for n in top.walk()}

    def step_nodes(self, template: str) -> list[Node]:
        """The nodes that ran pods of a template (one per shard of a fanned-out step), in run order."""
        return [n for n in self.all_nodes().values() if n.template == template and n.runs_pods]

    def failures(self) -> list[dict]:
        """The nodes ``{{workflow.failures}}`` lists: the DAG node, failed nodes at any depth (groups,
        sub-DAGs, tasks) and the failed attempts of the tasks."""
        out = []
        for node in self.all_nodes().values():
            if node.phase not in ("Failed", "Error"):
                continue
            out.append({"displayName": node.display, "message": node.message, "templateName": node.template,
                        "phase": node.phase, "podName": f"{self.name}-{node.template}",
                        "finishedAt": "2026-01-01T00:00:00Z"})
            for i, a in enumerate(node.attempts if node.runs_pods else ()):
                if a.phase in ("Failed", "Error"):
                    out.append({"displayName": f"{node.display}({i})", "message": a.message,
                                "templateName": node.template, "phase": a.phase,
                                "podName": f"{self.name}-{node.template}-{i}",
                                "finishedAt": "2026-01-01T00:00:00Z"})
        if out or self.phase in ("Failed", "Error"):
            message = f"child '{out[0]['displayName']}' failed" if out else self.message
            out.insert(0, {"displayName": self.name, "message": message,
                           "templateName": self.doc["spec"]["entrypoint"], "phase": "Failed",
                           "podName": self.name, "finishedAt": "2026-01-01T00:00:00Z"})
        return out


class SubmitError(ValueError):
    """``argo submit`` refused the workflow (missing or invalid parameter)."""


def _dag(doc: dict) -> dict:
    spec = doc["spec"]
    return next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])["dag"]


def _templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


@dataclass
class _Scope:
    """What a task of one DAG sees: parameter tags, artifact tags (-> store key), its node-name prefix."""

    scope: dict[str, str]
    artifacts: dict[str, str]
    prefix: str


def _dag_phase(nodes: Mapping[str, Node], dag: dict) -> str:
    """A finished DAG's phase: Error if every failed task errored, Failed if any failed or one never ran
    (failFast, terminate, stop), else Succeeded."""
    failed = [n for n in nodes.values() if n.phase in ("Failed", "Error")]
    if failed:
        return "Error" if all(n.phase == "Error" for n in failed) else "Failed"
    return "Succeeded" if len(nodes) == len(dag["tasks"]) else "Failed"


def substitute(obj, values: Mapping[str, str]):
    """Argo's simple template replacement over the JSON text of ``obj``."""
    def one(match: re.Match) -> str:
        tag = match.group(1)
        if tag not in values:
            return match.group(0)
        return go_quote(values[tag])[1:-1]

    return json.loads(TAG.sub(one, json.dumps(obj)))


def evaluate_when(expr: str) -> bool:
    """govaluate on the substituted ``when`` (the forms the manifests use: ``a == b``, ``a != b``)."""
    if "{{" in expr:
        raise ValueError(f"invalid 'when' expression {expr!r}: unresolved variable")
    for op, fn in (("!=", lambda a, b: a != b), ("==", lambda a, b: a == b)):
        if op in expr:
            a, b = (s.strip().strip("'\"") for s in expr.split(op, 1))
            return fn(a, b)
    return expr.strip().lower() == "true"


def evaluate_depends(logic: str, phases: Mapping[str, str]) -> bool:
    """Argo's ``depends``: task names with optional ``.Succeeded``/``.Failed``/…, ``&&``, ``||``, ``!``."""
    def result(match: re.Match) -> str:
        name, attr = match.group(1), match.group(2)
        phase = phases[name]
        if attr is None:
            return str(phase in ("Succeeded", "Skipped"))
        wanted = {"Succeeded": "Succeeded", "Failed": "Failed", "Errored": "Error", "Skipped": "Skipped",
                  "Omitted": "Omitted", "Daemoned": "Daemoned"}[attr]
        return str(phase == wanted)

    py = re.sub(r"([a-z][a-z0-9-]*)(?:\.(Succeeded|Failed|Errored|Skipped|Omitted|Daemoned))?", result, logic)
    py = py.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    return bool(eval(py, {"__builtins__": {}}, {"True": True, "False": False}))  # a test helper over the manifest's own expressions


def evaluate_retry_expression(expr: str, exit_code: int | None, status: str) -> bool:
    """The expr-lang retry ``expression`` over ``lastRetry`` (``exitCode`` is a string, "-1" if unknown)."""
    code = "-1" if exit_code is None else str(exit_code)
    py = (expr.replace("lastRetry.exitCode", repr(code)).replace("lastRetry.status", repr(status))
          .replace("asInt(", "int(").replace("&&", " and ").replace("||", " or ")
          .replace("true", "True").replace("false", "False"))
    return bool(eval(py, {"__builtins__": {}}, {"int": int}))  # a test helper over the manifest's own expressions


def _depends_names(logic: str) -> list[str]:
    return re.findall(r"([a-z][a-z0-9-]*)(?:\.[A-Z][a-z]+)?", logic or "")


_environ = environment  # os.environ replaced for an in-process step (tests/dagrun.py)


def run_module(module: str, args: list[str]) -> int:
    """The container's ``python -m <module> <args>``, in this process."""
    try:
        code = importlib.import_module(module).main(args)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    return int(code or 0)


#: A fault: (template name, attempt number from 0) -> an exit code to die with instead of running, "Error"
#: (the step runs fine but its outputs cannot be saved: an Error node), or None (run normally).
Fault = Callable[[str, int], "int | str | None"]


class Emulator:
    """Runs rendered manifests. ``files`` is the chart's ``files/`` folder; ``base_env`` is the environment
    the pods inherit (the image's), ``secrets`` the keys of the secret they reference."""

    def __init__(self, files: Path, workdir: Path, *, base_env: Mapping[str, str], secrets: Mapping[str, str],
                 modules: Mapping[str, Callable[[list[str]], int]] | None = None) -> None:
        self.files = Path(files)
        self.workdir = Path(workdir)
        self.base_env = dict(base_env)
        self.secrets = dict(secrets)
        self.modules = dict(modules or {})
        self.store = self.workdir / "s3"
        self.fault: Fault | None = None
        #: A fault by node name (``portfolio-shard(1:2/3).risk-exposures``, attempt): one shard's step only.
        self.node_fault: Fault | None = None
        self.logs: list[str] = []
        self._pods = 0
        self.docs = {}
        for path in sorted(self.files.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            self.docs[(doc["kind"], doc["metadata"]["name"])] = doc

    def set_default(self, name: str, value: str) -> None:
        """Set a workflow parameter's default in every WorkflowTemplate, as the chart does (``provider``)."""
        for (kind, _), doc in self.docs.items():
            if kind == "WorkflowTemplate":
                next(p for p in doc["spec"]["arguments"]["parameters"] if p["name"] == name)["value"] = value

    # ---- submit ---------------------------------------------------------------------------------

    def submit(self, template: str, parameters: Mapping[str, str] | None = None, *, name: str | None = None,
               scheduled_time: str | None = None, terminate_after: str | None = None,
               stop_after: str | None = None) -> Workflow:
        doc = self.docs[("WorkflowTemplate", template)]
        given = dict(parameters or {})
        declared = {p["name"]: p for p in doc["spec"]["arguments"]["parameters"]}
        unknown = set(given) - set(declared)
        if unknown:
            raise SubmitError(f"unknown parameters {sorted(unknown)}")
        values = {}
        for pname, p in declared.items():
            if pname in given:
                values[pname] = given[pname]
            elif "value" in p:
                values[pname] = p["value"]
            else:
                raise SubmitError(f"parameter {pname!r} is required")
            if "enum" in p and values[pname] not in p["enum"]:
                raise SubmitError(f"{pname}={values[pname]!r} is not one of {p['enum']}")
        self._pods += 1
        wf = Workflow(name or f"{template}-{self._pods:05d}", doc, values, scheduled_time,
                      terminate_after=terminate_after, stop_after=stop_after)
        return self._run(wf)

    def cron_tick(self, cron: str, scheduled_time: str, *, terminate_after: str | None = None) -> Workflow:
        """One CronWorkflow tick at ``scheduled_time`` (RFC 3339), named like the controller names it."""
        doc = self.docs[("CronWorkflow", cron)]
        spec = doc["spec"]["workflowSpec"]
        args = {p["name"]: p["value"] for p in spec.get("arguments", {}).get("parameters", [])}
        args = substitute(args, {"workflow.scheduledTime": scheduled_time})
        from datetime import datetime

        stamp = int(datetime.fromisoformat(scheduled_time.replace("Z", "+00:00")).timestamp())
        return self.submit(spec["workflowTemplateRef"]["name"], args, name=f"{cron}-{stamp}",
                           scheduled_time=scheduled_time, terminate_after=terminate_after)

    def retry(self, wf: Workflow) -> Workflow:
        """``argo retry``: keep Succeeded/Skipped nodes at any depth (a failed group's Succeeded children, a
        failed sub-DAG's Succeeded tasks), delete the others, run what is missing and the exit handler."""
        wf.previous = {k: n for k, n in wf.nodes.items() if n.phase not in KEPT}
        wf.nodes = {k: n for k, n in wf.nodes.items() if n.phase in KEPT}
        wf.exit_node = None
        return self._run(wf)

    # ---- execution ------------------------------------------------------------------------------

    def _globals(self, wf: Workflow) -> dict[str, str]:
        g = {"workflow.name": wf.name, "workflow.namespace": wf.doc["metadata"].get("namespace", "default")}
        g.update({f"workflow.parameters.{k}": v for k, v in wf.parameters.items()})
        if wf.scheduled_time:
            g["workflow.scheduledTime"] = wf.scheduled_time
        return g

    def _run(self, wf: Workflow) -> Workflow:
        wf.phase = "Running"
        spec = wf.doc["spec"]
        for where, holder in (("spec", spec), ("main", _templates(wf.doc)[spec["entrypoint"]])):
            if "parallelism" in holder and not (isinstance(holder["parallelism"], int) and holder["parallelism"] > 0):
                raise ValueError(f"{where}.parallelism must be a positive integer, got {holder['parallelism']!r}")
        previous, wf.previous = wf.previous, {}
        ctx = _Scope(self._globals(wf), {}, "")
        stopped = self._run_dag(wf, _dag(wf.doc), wf.nodes, ctx, previous, top=True)
        if stopped == "Terminate":
            return wf  # no exit handler
        if stopped == "Stop":
            self._exit_handler(wf)
            return wf
        wf.phase = _dag_phase(wf.nodes, _dag(wf.doc))
        self._exit_handler(wf)
        return wf

    def _run_dag(self, wf: Workflow, dag: dict, nodes: dict[str, Node], ctx: _Scope, previous: dict[str, Node],
                 *, top: bool = False) -> str | None:
        """Run a DAG's tasks into ``nodes`` (which may hold kept nodes) in waves; failFast: a wave with a
        Failed or Error node ends it. The main DAG (``top``) honours terminate/stop and says which it was."""
        tasks = {t["name"]: t for t in dag["tasks"]}
        while True:
            self._omit(nodes, tasks, ctx.prefix)
            if any(n.phase in ("Failed", "Error") for n in nodes.values()):
                return None
            ready = [t for name, t in tasks.items() if name not in nodes and all(
                d in nodes and nodes[d].phase in FULFILLED for d in _depends_names(t.get("depends")))]
            if not ready:
                return None
            for task in ready:  # one wave: what Argo starts together
                nodes[task["name"]] = self._task(wf, task, tasks, nodes, ctx, previous.get(task["name"]))
            if top and wf.terminate_after and wf.terminate_after in nodes:
                wf.phase, wf.message = "Failed", "Stopped with strategy 'Terminate'"
                return "Terminate"
            if top and wf.stop_after and wf.stop_after in nodes:
                wf.phase, wf.message = "Failed", "Stopped with strategy 'Stop'"
                return "Stop"

    def _omit(self, nodes: dict[str, Node], tasks: dict[str, dict], prefix: str) -> None:
        changed = True
        while changed:
            changed = False
            for name, t in tasks.items():
                deps = _depends_names(t.get("depends"))
                if name in nodes or not deps or not all(d in nodes and nodes[d].phase in FULFILLED for d in deps):
                    continue
                if not evaluate_depends(t["depends"], {d: nodes[d].phase for d in deps}):
                    nodes[name] = Node(prefix + name, t["template"], "Omitted", "omitted: depends condition not met",
                                       display=name)
                    changed = True

    def _ancestors(self, tasks: dict[str, dict], name: str) -> set[str]:
        out, stack = set(), list(_depends_names(tasks[name].get("depends")))
        while stack:
            d = stack.pop()
            if d not in out:
                out.add(d)
                stack += _depends_names(tasks[d].get("depends"))
        return out

    def _task(self, wf: Workflow, task: dict, tasks: dict[str, dict], nodes: dict[str, Node], ctx: _Scope,
              previous: Node | None) -> Node:
        """A task of a DAG, in the scope of that DAG: its template's inputs (``ctx``) and its ancestors'
        outputs (``tasks.<ancestor>.outputs.parameters.*`` / ``.artifacts.*``)."""
        scope, artifacts = dict(ctx.scope), dict(ctx.artifacts)
        for anc in self._ancestors(tasks, task["name"]):
            node = nodes[anc]
            scope.update({f"tasks.{anc}.outputs.parameters.{k}": v for k, v in node.parameters.items()})
            artifacts.update({f"tasks.{anc}.outputs.artifacts.{k}": v for k, v in node.artifacts.items()})
        here = _Scope(scope, artifacts, ctx.prefix)
        if "withParam" in task:
            return self._group(wf, task, here, previous)
        return self._one(wf, task, here, ctx.prefix + task["name"], task["name"], previous)

    def _group(self, wf: Workflow, task: dict, ctx: _Scope, previous: Node | None) -> Node:
        """A ``withParam`` task: one child per item of the resolved JSON list. Every child runs, whatever
        its siblings do (a failed child fails the group once all have run)."""
        group = Node(ctx.prefix + task["name"], task["template"], "Running", display=task["name"])
        raw = substitute(task["withParam"], ctx.scope)
        try:
            items = json.loads(raw)
            if not isinstance(items, list):
                raise ValueError(raw)
        except ValueError:
            group.phase, group.message = "Error", f"withParam value could not be parsed as a JSON list: {raw}"
            return group
        if not items:
            group.phase, group.message = "Skipped", "Skipped, empty params"
            return group
        before = previous.children if previous else {}
        body = {k: v for k, v in task.items() if k != "withParam"}
        for i, item in enumerate(items):
            value = item if isinstance(item, str) else json.dumps(item)
            display = f"{task['name']}({i}:{value})"
            old = before.get(value)
            child = old if old is not None and old.phase in KEPT else self._one(
                wf, body, _Scope({**ctx.scope, "item": value}, ctx.artifacts, ctx.prefix), ctx.prefix + display,
                display, old)
            group.children[value] = child
            group.attempts += child.attempts
        phases = {c.phase for c in group.children.values()}
        if phases <= {"Skipped"}:
            group.phase, group.message = "Skipped", next(iter(group.children.values())).message
        elif phases <= {"Succeeded", "Skipped"}:
            group.phase = "Succeeded"
        else:
            bad = next(c for c in group.children.values() if c.phase not in ("Succeeded", "Skipped"))
            group.phase, group.message = "Failed", f"child '{bad.name}' failed: {bad.message}"
        return group

    def _one(self, wf: Workflow, task: dict, ctx: _Scope, name: str, display: str, previous: Node | None) -> Node:
        arts = task.get("arguments", {}).get("artifacts", [])
        resolved = substitute({k: v for k, v in task.items() if k != "arguments"} | {
            "arguments": {"parameters": task.get("arguments", {}).get("parameters", [])}}, ctx.scope)
        node = Node(name, task["template"], "Running", display=display)
        if "when" in resolved:
            try:
                if not evaluate_when(resolved["when"]):
                    node.phase, node.message = "Skipped", f"when '{resolved['when']}' evaluated false"
                    return node
            except ValueError as exc:
                node.phase, node.message = "Error", str(exc)
                return node
        inputs_art = {}
        for art in arts:
            m = re.fullmatch(r"{{((?:tasks\.[a-z0-9-]+\.outputs|inputs)\.artifacts\.[a-z0-9-]+)}}", art["from"])
            key = ctx.artifacts.get(m.group(1)) if m else None
            if key is None:
                node.phase, node.message = "Error", f"Unable to resolve: {art['from']}"
                return node
            inputs_art[art["name"]] = key
        params = {p["name"]: p["value"] for p in resolved["arguments"]["parameters"]}
        template = _templates(wf.doc)[task["template"]]
        if "dag" in template:
            self._execute_dag(wf, node, template, params, inputs_art, previous)
        else:
            self._execute(wf, node, template, params, inputs_art, ctx.scope)
        return node

    def _inputs(self, node: Node, template: dict, params: dict[str, str]) -> dict[str, str] | None:
        """The template's input parameters from the task's arguments or their defaults (None: Error)."""
        inputs = {}
        for pname, p in ((p["name"], p) for p in template.get("inputs", {}).get("parameters", [])):
            if pname in params:
                inputs[pname] = params[pname]
            elif "value" in p or "default" in p:
                inputs[pname] = p.get("value", p.get("default"))
            else:
                node.phase, node.message = "Error", f"inputs.parameters.{pname} was not supplied"
                return None
        return inputs

    def _execute_dag(self, wf: Workflow, node: Node, template: dict, params: dict[str, str],
                     artifacts: dict[str, str], previous: Node | None) -> None:
        """A DAG template invoked by a task: its tasks run in the scope of its inputs (``inputs.parameters.*``,
        ``inputs.artifacts.*``; the caller's ``item`` and ``tasks.*`` are not in it), named
        ``<node>.<task>``; on ``argo retry`` its Succeeded/Skipped tasks are kept."""
        inputs = self._inputs(node, template, params)
        if inputs is None:
            return
        arts = {}
        for art in template.get("inputs", {}).get("artifacts", []):
            if "path" in art:
                node.phase, node.message = "Error", f"templates.{template['name']}.inputs.artifacts.{art['name']}" \
                                                    ".path only valid in container/script templates"
                return
            if art["name"] not in artifacts and not art.get("optional"):
                node.phase, node.message = "Error", f"inputs.artifacts.{art['name']} was not supplied"
                return
            if art["name"] in artifacts:
                arts[f"inputs.artifacts.{art['name']}"] = artifacts[art["name"]]
        scope = self._globals(wf) | {f"inputs.parameters.{k}": v for k, v in inputs.items()}
        before = previous.tasks if previous else {}
        node.tasks = {k: n for k, n in before.items() if n.phase in KEPT}
        self._run_dag(wf, template["dag"], node.tasks, _Scope(scope, arts, node.name + "."),
                      {k: n for k, n in before.items() if n.phase not in KEPT})
        node.phase = _dag_phase(node.tasks, template["dag"])
        bad = next((n for n in node.tasks.values() if n.phase in ("Failed", "Error")), None)
        node.message = f"child '{bad.name}' failed" if bad else ""

    def _exit_handler(self, wf: Workflow) -> None:
        name = wf.doc["spec"].get("onExit")
        if not name:
            return
        scope = self._globals(wf)
        scope["workflow.status"] = wf.phase
        # Go marshals the nil slice of a run without failures as `null`
        scope["workflow.failures"] = go_quote(json_marshal(wf.failures() or None))
        node = Node(f"{wf.name}.onExit", name, "Running")
        self._execute(wf, node, _templates(wf.doc)[name], {}, {}, scope)
        wf.exit_node = node

    def _execute(self, wf: Workflow, node: Node, template: dict, params: dict[str, str],
                 artifacts: dict[str, str], scope: dict[str, str]) -> None:
        inputs = self._inputs(node, template, params)
        if inputs is None:
            return
        strategy = template.get("retryStrategy") or {}
        limit = int(strategy.get("limit", 0))
        policy = strategy.get("retryPolicy", "OnFailure")
        expression = strategy.get("expression")
        for attempt in range(limit + 1):
            local = dict(scope)
            local.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
            local["retries"] = str(attempt)
            resolved = substitute({k: v for k, v in template.items() if k not in ("metrics",)}, local)
            result = self._pod(wf, node, resolved, artifacts, attempt)
            node.attempts.append(result)
            node.phase, node.message = result.phase, result.message
            if result.phase == "Succeeded" or attempt == limit:
                break
            retry = {"Always": True, "OnFailure": result.phase == "Failed", "OnError": result.phase == "Error",
                     "OnTransientError": False}[policy]
            if retry and expression:
                retry = evaluate_retry_expression(expression, result.exit_code, result.phase)
            if not retry:
                break

    def _pod(self, wf: Workflow, node: Node, tmpl: dict, artifacts: dict[str, str], attempt: int) -> Attempt:
        self._pods += 1
        pod = self.workdir / "pods" / f"{self._pods:05d}-{node.name.replace('/', '-of-')}"
        c = tmpl["container"]
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        for mount in mounts:
            (pod / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)

        def path(p: str) -> str:
            return str(pod / p.lstrip("/")) if p.startswith(SCRATCH) else p

        env = dict(self.base_env)
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = path(e["value"])
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                if ref["key"] in self.secrets:
                    env[e["name"]] = self.secrets[ref["key"]]
                elif not ref.get("optional"):
                    return Attempt(None, "Error", f"secret key {ref['key']} not found")
        tmp = env.get("TMPDIR", "")
        if tmp and not Path(tmp).is_dir():
            return Attempt(None, "Error", f"TMPDIR {tmp} does not exist in the pod (not a mounted volume)")
        for art in tmpl.get("inputs", {}).get("artifacts", []):
            target = Path(path(art["path"]))
            source = self.store / artifacts[art["name"]]
            if not source.exists():
                return Attempt(None, "Error", f"failed to load artifact {art['name']}: key not found")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        args = [path(a) for a in c.get("args", [])]
        assert c["command"][:2] == ["python", "-m"], c["command"]
        module = c["command"][2]
        code = self.fault(node.template, attempt) if self.fault else None
        if code is None and self.node_fault:
            code = self.node_fault(node.name, attempt)
        if code == "Error":  # the main container succeeded, the wait container could not save (S3 down)
            return Attempt(0, "Error", "failed to save outputs: S3 unavailable", args)
        if code is None:
            runner = self.modules.get(module)
            with _environ(env), redirect_stdout(StringIO()) as out:
                code = runner(args) if runner else run_module(module, args)
            self.logs.append(f"{node.name}({attempt}) exit {code}\n{out.getvalue()[-2000:]}")
        if code != 0:
            return Attempt(code, "Failed", f"Error (exit code {code})", args)
        outputs = tmpl.get("outputs", {})
        values = {}
        for p in outputs.get("parameters", []):
            f = Path(path(p["valueFrom"]["path"]))
            if not f.exists():
                return Attempt(code, "Error", f"failed to save outputs: open {p['valueFrom']['path']}: "
                               "no such file or directory", args)
            values[p["name"]] = f.read_text()
        keys = {}
        for art in outputs.get("artifacts", []):
            f = Path(path(art["path"]))
            if not f.exists():
                if art.get("optional"):
                    continue
                return Attempt(code, "Error", f"failed to save outputs: open {art['path']}: "
                               "no such file or directory", args)
            key = art["s3"]["key"]
            (self.store / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, self.store / key)
            keys[art["name"]] = key
        node.parameters, node.artifacts = values, keys
        return Attempt(code, "Succeeded", "", args)
