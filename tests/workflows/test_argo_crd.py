"""Extra check: the rendered Argo documents against the openAPIV3Schema of Argo's *full* CRDs (what the API
server enforces with ``crds.full``), unknown fields refused, plus a few of the CRDs' CEL rules re-done in
Python. The CRD files are not part of the project: they are read from ``../shared/argo/crds/`` beside the
repository; with ``CI=true`` a missing file fails, elsewhere the tests are skipped with a message (the
manifests' validity is checked in every clone by ``test_argo_models.py``)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from tests.workflows.conftest import REPO_ROOT, in_ci

CRDS = {"WorkflowTemplate": "argoproj.io_workflowtemplates.yaml", "CronWorkflow": "argoproj.io_cronworkflows.yaml"}
RELATIVE = Path("shared") / "argo" / "crds"


def _crd_dir() -> Path:
    for parent in REPO_ROOT.parents:
        if (parent / RELATIVE).is_dir():
            return parent / RELATIVE
    return REPO_ROOT.parent / RELATIVE


def _prepare(node, strict: bool):
    """int-or-string as anyOf (jsonschema does not know the extension); unknown properties refused."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string") and "type" not in node and "anyOf" not in node:
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if (strict and node.get("type") == "object" and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node):
            node["additionalProperties"] = False
        for v in node.values():
            _prepare(v, strict)
    elif isinstance(node, list):
        for v in node:
            _prepare(v, strict)
    return node


@pytest.fixture(scope="module")
def crd_validators():
    from jsonschema import Draft4Validator

    folder = _crd_dir()
    missing = [name for name in CRDS.values() if not (folder / name).is_file()]
    if missing:
        message = f"Argo CRDs not found in {folder}: {missing}"
        if in_ci():
            pytest.fail(message + " (required when CI is set)")
        pytest.skip(message)
    out = {}
    for kind, name in CRDS.items():
        crd = yaml.load((folder / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out[kind] = Draft4Validator(_prepare(schema, strict=True))
    return out


def cel_errors(doc: dict) -> list[str]:
    """A few of the CRDs' x-kubernetes-validations, which jsonschema does not evaluate."""
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    errors = []
    for t in spec.get("templates", []):
        leaf = any(k in t for k in ("container", "script", "containerSet", "resource", "data", "http", "plugin"))
        if not leaf and ("activeDeadlineSeconds" in t or "timeout" in t):
            errors.append(f"{t['name']}: activeDeadlineSeconds/timeout only valid for leaf templates")
        for task in t.get("dag", {}).get("tasks", []):
            if "depends" in task and "dependencies" in task:
                errors.append(f"{task['name']}: cannot use both 'depends' and 'dependencies'")
            if "depends" in task and re.match(r"\d", task["name"]):
                errors.append(f"{task['name']}: task name cannot begin with a digit when using depends")
        for art in t.get("outputs", {}).get("artifacts", []) + t.get("inputs", {}).get("artifacts", []):
            locations = {"s3", "gcs", "git", "http", "artifactory", "hdfs", "raw", "oss", "azure", "plugin"}
            if len(locations & set(art)) > 1:
                errors.append(f"{t['name']}/{art['name']}: at most one artifact location")
    return errors


def test_rendered_documents_pass_the_crd_schemas(rendered_docs: dict[str, dict], crd_validators) -> None:
    for name, doc in rendered_docs.items():
        errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                  for e in crd_validators[doc["kind"]].iter_errors(doc)]
        assert errors == [], name
        assert cel_errors(doc) == [], name


def test_the_crd_check_has_teeth(nightly: dict, crd_validators) -> None:
    doc = copy.deepcopy(nightly)
    leaf = next(t for t in doc["spec"]["templates"] if "container" in t)
    leaf["retryStrategy"]["retrypolicy"] = "Always"
    messages = [e.message for e in crd_validators["WorkflowTemplate"].iter_errors(doc)]
    assert any("'retrypolicy' was unexpected" in m for m in messages), messages
    main = next(t for t in doc["spec"]["templates"] if "dag" in t)
    main["activeDeadlineSeconds"] = 60
    assert any("leaf templates" in e for e in cel_errors(doc))
