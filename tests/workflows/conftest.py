"""Fixtures for the Argo tests: the repository root, the rendered documents, and a strict Argo validator.

The Argo JSON schema (argoproj/argo-workflows api/jsonschema/schema.json, v4.1.2) is not part of the
project: it is read from ``../shared/argo/schema-v4.1.2.json`` next to the repository (see :func:`schema_path`). Two patches make it
useful: ``IntOrString`` accepts integers (the schema says string only, Kubernetes accepts both), and every
object definition with ``properties`` gets ``additionalProperties: false`` so that typos are errors.
With ``CI=true`` a missing schema fails the tests; elsewhere they are skipped with a message. That schema is
an extra check: the manifests' validity is checked in every clone by ``test_argo_models.py`` (Hera's
generated Argo API models, unknown fields refused) and by ``test_helm_chart.py`` (kubernetes-validate).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_RELATIVE = Path("shared") / "argo" / "schema-v4.1.2.json"
CHART_DIR = REPO_ROOT / "charts" / "sigmabatch"
FILES_DIR = CHART_DIR / "files"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
ARGO_KINDS = ("WorkflowTemplate", "CronWorkflow", "Workflow", "ClusterWorkflowTemplate")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def schema_path() -> Path:
    """``$SIGMABATCH_ARGO_SCHEMA``, else ``<repo>/../shared/argo/schema-v4.1.2.json``; a git worktree
    (``<root>/wt/<name>``) falls back to the first ancestor that has ``shared/argo/schema-v4.1.2.json``."""
    override = os.environ.get("SIGMABATCH_ARGO_SCHEMA", "").strip()
    if override:
        return Path(override)
    documented = REPO_ROOT.parent / SCHEMA_RELATIVE
    if documented.is_file():
        return documented
    return next((p / SCHEMA_RELATIVE for p in REPO_ROOT.parents if (p / SCHEMA_RELATIVE).is_file()), documented)


def strict_argo_schema(raw: dict) -> dict:
    """The schema with IntOrString patched to integer|string and unknown properties forbidden."""
    schema = copy.deepcopy(raw)
    defs = schema["definitions"]
    defs[INT_OR_STRING] = {"type": ["integer", "string"]}
    for definition in defs.values():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return schema


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def argo_schema() -> dict:
    path = schema_path()
    if not path.is_file():
        message = f"Argo JSON schema not found at {path}"
        if in_ci():
            pytest.fail(message + " (required when CI is set)")
        pytest.skip(message)
    return strict_argo_schema(json.loads(path.read_text()))


@pytest.fixture(scope="session")
def argo_errors(argo_schema: dict) -> Callable[[dict], list[str]]:
    """A function: Argo manifest -> list of "path: message" schema errors (empty = valid)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    base = argo_schema.get("$id", "urn:argo-schema")
    registry = Registry().with_resource(base, Resource.from_contents(argo_schema, default_specification=DRAFT202012))
    validators = {
        kind: Draft202012Validator({"$ref": f"{base}#/definitions/io.argoproj.workflow.v1alpha1.{kind}"},
                                   registry=registry)
        for kind in ARGO_KINDS
    }

    def errors(doc: dict) -> list[str]:
        kind = doc.get("kind")
        if kind not in validators:
            return [f"not an Argo kind: {kind!r}"]
        return [
            f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
            for e in sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path))
        ]

    return errors


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """File name -> YAML text as :func:`workflows.argo.render_all` writes it."""
    from workflows import argo

    return argo.rendered_documents()


@pytest.fixture(scope="session")
def rendered_docs(rendered: dict[str, str]) -> dict[str, dict]:
    return {name: yaml.safe_load(text) for name, text in rendered.items()}


@pytest.fixture(scope="session")
def nightly(rendered_docs: dict[str, dict]) -> dict:
    return rendered_docs["workflowtemplate-nightly.yaml"]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, worker_id):
    """The clean reference run of the fault and concurrency tests (a whole ``sigmabatch run``, minutes under
    load): built once per test session and shared; tests copy its folder, never change it. Under
    ``pytest -n`` the workers share one build: the first takes a lock on the session's common temporary
    folder and builds it, the others wait and read its tables."""
    import fcntl

    from tests.workflows.test_fault_tolerance import build_reference, dump

    if worker_id == "master":
        return build_reference(tmp_path_factory.mktemp("reference"))
    root = tmp_path_factory.getbasetemp().parent
    folder, done = root / "reference-run", root / "reference-run.done"
    with open(root / "reference-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                folder.mkdir(exist_ok=True)
                result = build_reference(folder)
                done.touch()
                return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder, dump(folder)


@pytest.fixture
def reference(reference_run):
    return reference_run[1]
