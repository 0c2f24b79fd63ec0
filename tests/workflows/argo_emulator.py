"""A small interpreter of the *rendered* Argo manifests (charts/sigmabatch/files/*.yaml), for tests.

It reads the WorkflowTemplate YAML, never :mod:`workflows.dag`, and follows the rules of the Argo
v3.7 controller that the pipeline relies on (workflow/controller/dag.go, operator.go, util/template):

* **Submit**: the template's ``spec.arguments.parameters`` merged with ``-p`` values; a parameter without a
  value is required, a value outside ``enum`` is refused (``argo submit`` validates both). A CronWorkflow
  tick substitutes ``{{workflow.scheduledTime}}`` into its ``workflowSpec.arguments`` first.
* **Substitution**: ``{{...}}`` tags in the JSON text of a task or template, each value inserted as
  ``strconv.Quote(value)[1:-1]``; unknown tags stay (``allowUnresolved``). Scopes: ``workflow.*`` globals,
  ``tasks.<ancestor>.outputs.parameters.*`` in a task, ``inputs.parameters.*`` in its template,
  ``workflow.status`` and ``workflow.failures`` (``strconv.Quote`` of the JSON list) in the exit handler.
* **DAG**: ``depends`` (a bare name means ``name.Succeeded || name.Skipped || name.Daemoned``; false ->
  ``Omitted``), then parameters are resolved and ``when`` evaluated (false -> ``Skipped``; still holding a
  ``{{`` -> ``Error``); artifact arguments are resolved only for tasks that run (missing -> ``Error``).
  Tasks run in waves (all ready tasks, then the next); failFast: after a wave with a Failed or Error node
  no new task starts and the DAG fails. (Argo may still start tasks that became ready in the same
  reconciliation; this emulator starts none — it does not change which tables a retry completes.)
* **Pods**: ``python -m <module> <args>`` is the phase's ``main(argv)`` called in this process with the
  container's ``env`` (secrets from ``secrets``), every ``/scratch`` path mapped to a fresh folder per
  attempt in which only the template's ``volumeMounts`` exist (``TMPDIR`` must be one of them or below
  one). Exit code != 0 -> ``Failed``. Then the wait container: every output parameter file and every
  non-optional output artifact must exist, else ``Error``.
* **withParam** (a fanned-out task): after ``depends``, ``withParam`` is resolved in the task's scope and
  must be a JSON list (else ``Error``); an empty list -> ``Skipped``. One child node per item, named
  ``task(i:item)``, with ``{{item}}`` substituted into its ``when`` and arguments, each retried on its own.
  The task node (a TaskGroup) is ``Succeeded`` when every child succeeded or was skipped, ``Skipped`` when
  all were skipped, else ``Failed``; its children run one after another (Argo runs them side by side up
  to the DAG's ``parallelism``). ``argo retry`` keeps the Succeeded children of a failed group.
* **Retries** (``retryStrategy``): ``limit`` retries after the first attempt; ``retryPolicy`` Always /
  OnFailure (Failed only) / OnError (Error only) / OnTransientError; then ``expression`` over
  ``lastRetry.exitCode`` (a string) and ``lastRetry.status``. No time passes (backoff is not slept).
* **Exit handler** (``onExit``): runs after the DAG with ``workflow.status`` Succeeded / Failed / Error.
* **argo terminate** / **argo stop** (``terminate_after=`` / ``stop_after=<task>``): once that task's node
  is done no new task starts and the workflow is ``Failed``; after a stop the exit handler runs, after a
  terminate it does **not**.
* **argo retry**: task nodes that are not Succeeded or Skipped are deleted (their outputs with them), the
  exit-handler node too, and the DAG runs again; succeeded nodes keep their outputs and artifacts.

Not modelled: time (deadlines, backoff), memory, parallelism (checked to be a positive integer), the mutex
(runs are sequential here).
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


@dataclass
class Attempt:
    exit_code: int | None
    phase: str
    message: str = ""
    args: list[str] = field(default_factory=list)


@dataclass
class Node:
    """One DAG task (a Retry node with its pod attempts), or the exit handler."""

    name: str
    template: str
    phase: str
    message: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> key in the artifact store
    #: The children of a ``withParam`` task (item -> node); empty for a plain task.
    children: dict[str, Node] = field(default_factory=dict)


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
    #: ``argo retry``: Succeeded children of failed ``withParam`` groups (task -> item -> node), not re-run.
    kept_children: dict[str, dict[str, Node]] = field(default_factory=dict)

    def phases(self) -> dict[str, str]:
        """Task name -> phase, for every task of the DAG (``-`` when Argo never created its node)."""
        return {t["name"]: self.nodes[t["name"]].phase if t["name"] in self.nodes else "-"
                for t in _dag(self.doc)["tasks"]}

    def failures(self) -> list[dict]:
        """The nodes ``{{workflow.failures}}`` lists: the DAG node, failed task nodes and their attempts."""
        out = []
        for node in self.nodes.values():
            if node.phase not in ("Failed", "Error"):
                continue
            out.append({"displayName": node.name, "message": node.message, "templateName": node.template,
                        "phase": node.phase, "podName": f"{self.name}-{node.template}",
                        "finishedAt": "2026-01-01T00:00:00Z"})
            for i, a in enumerate(node.attempts):
                if a.phase in ("Failed", "Error"):
                    out.append({"displayName": f"{node.name}({i})", "message": a.message,
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
        """``argo retry``: keep Succeeded/Skipped task nodes (and the Succeeded children of a failed
        ``withParam`` group), run the rest and the exit handler again."""
        for n in wf.nodes.values():
            if n.phase not in ("Succeeded", "Skipped") and n.children:
                wf.kept_children[n.name] = {i: c for i, c in n.children.items() if c.phase in ("Succeeded", "Skipped")}
        wf.nodes = {k: n for k, n in wf.nodes.items() if n.phase in ("Succeeded", "Skipped")}
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
        main = next(t for t in wf.doc["spec"]["templates"] if t["name"] == wf.doc["spec"]["entrypoint"])
        if "parallelism" in main and not (isinstance(main["parallelism"], int) and main["parallelism"] > 0):
            raise ValueError(f"parallelism must be a positive integer, got {main['parallelism']!r}")
        tasks = {t["name"]: t for t in _dag(wf.doc)["tasks"]}
        while True:
            self._omit(wf, tasks)
            if any(n.phase in ("Failed", "Error") for n in wf.nodes.values()):
                break
            ready = [t for name, t in tasks.items() if name not in wf.nodes and all(
                d in wf.nodes and wf.nodes[d].phase in FULFILLED for d in _depends_names(t.get("depends")))]
            if not ready:
                break
            for task in ready:  # one wave: what Argo starts together
                wf.nodes[task["name"]] = self._task(wf, task, tasks)
            if wf.terminate_after and wf.terminate_after in wf.nodes:
                wf.phase, wf.message = "Failed", "Stopped with strategy 'Terminate'"
                return wf  # no exit handler
            if wf.stop_after and wf.stop_after in wf.nodes:
                wf.phase, wf.message = "Failed", "Stopped with strategy 'Stop'"
                self._exit_handler(wf)
                return wf
        failed = [n for n in wf.nodes.values() if n.phase in ("Failed", "Error")]
        complete = len(wf.nodes) == len(tasks)
        wf.phase = ("Error" if failed and all(n.phase == "Error" for n in failed) else "Failed") if failed else (
            "Succeeded" if complete else "Failed")
        self._exit_handler(wf)
        return wf

    def _omit(self, wf: Workflow, tasks: dict[str, dict]) -> None:
        changed = True
        while changed:
            changed = False
            for name, t in tasks.items():
                deps = _depends_names(t.get("depends"))
                if name in wf.nodes or not deps or not all(
                        d in wf.nodes and wf.nodes[d].phase in FULFILLED for d in deps):
                    continue
                if not evaluate_depends(t["depends"], {d: wf.nodes[d].phase for d in deps}):
                    wf.nodes[name] = Node(name, t["template"], "Omitted", "omitted: depends condition not met")
                    changed = True

    def _ancestors(self, tasks: dict[str, dict], name: str) -> set[str]:
        out, stack = set(), list(_depends_names(tasks[name].get("depends")))
        while stack:
            d = stack.pop()
            if d not in out:
                out.add(d)
                stack += _depends_names(tasks[d].get("depends"))
        return out

    def _task(self, wf: Workflow, task: dict, tasks: dict[str, dict]) -> Node:
        scope = self._globals(wf)
        for anc in self._ancestors(tasks, task["name"]):
            node = wf.nodes[anc]
            scope.update({f"tasks.{anc}.outputs.parameters.{k}": v for k, v in node.parameters.items()})
        if "withParam" in task:
            return self._group(wf, task, scope)
        return self._one(wf, task, scope, task["name"])

    def _group(self, wf: Workflow, task: dict, scope: dict[str, str]) -> Node:
        """A ``withParam`` task: one child per item of the resolved JSON list."""
        group = Node(task["name"], task["template"], "Running")
        raw = substitute(task["withParam"], scope)
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
        kept = wf.kept_children.pop(task["name"], {})
        body = {k: v for k, v in task.items() if k != "withParam"}
        for i, item in enumerate(items):
            value = item if isinstance(item, str) else json.dumps(item)
            name = f"{task['name']}({i}:{value})"
            child = kept.get(value) or self._one(wf, body, {**scope, "item": value}, name)
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

    def _one(self, wf: Workflow, task: dict, scope: dict[str, str], name: str) -> Node:
        arts = task.get("arguments", {}).get("artifacts", [])
        resolved = substitute({k: v for k, v in task.items() if k != "arguments"} | {
            "arguments": {"parameters": task.get("arguments", {}).get("parameters", [])}}, scope)
        node = Node(name, task["template"], "Running")
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
            m = re.fullmatch(r"{{tasks\.([a-z0-9-]+)\.outputs\.artifacts\.([a-z0-9-]+)}}", art["from"])
            key = wf.nodes[m.group(1)].artifacts.get(m.group(2)) if m and m.group(1) in wf.nodes else None
            if key is None:
                node.phase, node.message = "Error", f"Unable to resolve: {art['from']}"
                return node
            inputs_art[art["name"]] = key
        params = {p["name"]: p["value"] for p in resolved["arguments"]["parameters"]}
        self._execute(wf, node, _templates(wf.doc)[task["template"]], params, inputs_art, scope)
        return node

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
        declared = {p["name"]: p for p in template.get("inputs", {}).get("parameters", [])}
        inputs = {}
        for pname, p in declared.items():
            if pname in params:
                inputs[pname] = params[pname]
            elif "value" in p or "default" in p:
                inputs[pname] = p.get("value", p.get("default"))
            else:
                node.phase, node.message = "Error", f"inputs.parameters.{pname} was not supplied"
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
