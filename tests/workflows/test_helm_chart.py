"""The Helm chart renders and lints offline (helm-python-sdk), its plain Kubernetes objects pass
kubernetes-validate --strict, and the Argo objects it renders pass the strict Argo schema.

helm-python-sdk (the ``chart`` extra, ~244 MB) and kubernetes-validate (the ``dev`` extra) are optional:
the tests that need them skip with a reason when they are not installed.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "sigmabatch"
KUBE_VERSION = "1.32"
NAMESPACE = "batch-prod"


def _optional(module: str, reason: str):
    """Import ``module`` or skip the test with ``reason`` (also when its native library fails to load)."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:
        pytest.skip(f"{reason} ({type(exc).__name__}: {exc})")


def _helm():
    return _optional("helm_python",
                     "helm-python-sdk is not installed (pip install -e '.[chart]'): chart render/lint skipped")


def _render(values: dict | None = None) -> list[dict]:
    helm = _helm()
    manifests = helm.Chart.load(CHART_DIR).render(values or {}, name="sigmabatch", namespace=NAMESPACE,
                                                   is_install=True)
    return [d for path, text in manifests.items() if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


# ---- values.schema.json (no Helm needed) -----------------------------------------------------------


def test_values_yaml_matches_values_schema() -> None:
    from jsonschema import Draft7Validator

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert list(Draft7Validator(schema).iter_errors(values)) == []
    bad = copy.deepcopy(values)
    bad["cron"]["suspend"] = "yes"
    bad["image"]["repo"] = "typo"
    messages = [e.message for e in Draft7Validator(schema).iter_errors(bad)]
    assert any("'yes' is not of type 'boolean'" in m for m in messages), messages
    assert any("'repo' was unexpected" in m for m in messages), messages


def test_values_schema_knows_the_step_names() -> None:
    # A resources override for a step that does not exist (a typo, a renamed step) is an error.
    from jsonschema import Draft7Validator

    from workflows import dag

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["definitions"]["stepName"]["enum"] == [s.name for s in (*dag.STEPS, dag.EXIT_STEP)]
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    values["resources"] = {"risk-analytics": {"limits": {"memory": "8Gi"}}}
    messages = [e.message for e in Draft7Validator(schema).iter_errors(values)]
    assert any("'risk-analytics' is not one of" in m for m in messages), messages
    values["resources"] = {"risk-exposures": {"limits": {"memory": "8Gi"}}}
    assert list(Draft7Validator(schema).iter_errors(values)) == []


def test_notes_txt_exists() -> None:
    text = (CHART_DIR / "templates" / "NOTES.txt").read_text()
    assert "sigmabatch-nightly" in text and ".Values.secrets.name" in text


def test_chart_templates_never_contain_argo_expressions() -> None:
    # Argo's {{workflow.*}} in a Helm template is evaluated by Helm and fails; it must come from files/.
    for path in (CHART_DIR / "templates").iterdir():
        text = path.read_text()
        for var in ("{{workflow.", "{{inputs.", "{{tasks.", "{{pod.", "{{ workflow."):
            assert var not in text, f"{path.name} contains {var}"


# ---- Helm render and lint --------------------------------------------------------------------------


def test_chart_lints_strictly() -> None:
    helm = _helm()
    report = helm.lint(CHART_DIR, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] > 1] == [], report["messages"]


def test_default_render_keeps_the_generated_argo_objects(rendered_docs: dict[str, dict]) -> None:
    docs = _render()
    argo_docs = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["apiVersion"].startswith("argoproj.io/")}
    assert len(argo_docs) == len(rendered_docs)
    for generated in rendered_docs.values():
        from_chart = argo_docs[(generated["kind"], generated["metadata"]["name"])]
        # Helm owns namespace and labels; with default values everything else is the generated file.
        assert from_chart["metadata"]["namespace"] == NAMESPACE
        assert generated["metadata"]["labels"].items() <= from_chart["metadata"]["labels"].items()
        assert from_chart["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert from_chart["spec"] == generated["spec"]


def test_argo_objects_in_the_chart_pass_the_schema(argo_errors: Callable[[dict], list[str]]) -> None:
    values = {"image": {"tag": "1.2.3"}, "cron": {"schedule": "0 19 * * 1-5", "suspend": True},
              "resources": {"risk-exposures": {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}}}}
    for doc in _render(values):
        if doc["apiVersion"].startswith("argoproj.io/"):
            assert argo_errors(doc) == [], doc["metadata"]["name"]


def test_argo_objects_in_the_chart_parse_into_the_argo_models() -> None:
    # Needs only installed packages (no schema file beside the repository): runs in every clone.
    from tests.workflows.strict_models import model_errors

    values = {"image": {"tag": "1.2.3"}, "imagePullSecrets": [{"name": "regcred"}], "nodeSelector": {"a": "b"},
              "tolerations": [{"key": "k", "operator": "Exists"}],
              "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                  "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In",
                                                               "values": ["batch"]}]}]}}},
              "resources": {"risk-exposures": {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}}}}
    argo_docs = [d for d in _render(values) if d["apiVersion"].startswith("argoproj.io/")]
    assert len(argo_docs) == 3
    for doc in argo_docs:
        assert model_errors(doc) == [], doc["metadata"]["name"]


def test_plain_objects_pass_kubernetes_validate_strict() -> None:
    kv = _optional("kubernetes_validate", "kubernetes-validate is not installed (pip install -e '.[dev]')")
    plain = [d for d in _render() if not d["apiVersion"].startswith("argoproj.io/")]
    assert {d["kind"] for d in plain} == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"}
    for doc in plain:
        kv.validate(doc, KUBE_VERSION, strict=True)
    broken = copy.deepcopy(_by_kind(plain, "Role")[0])
    broken["rules"][0]["resource"] = broken["rules"][0].pop("resources")
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBE_VERSION, strict=True)


def test_values_are_applied() -> None:
    docs = _render({
        "image": {"repository": "registry.example.org/sb", "tag": "9.9.9"},
        "cron": {"schedule": "0 19 * * 1-5", "timezone": "UTC", "suspend": True},
        "provider": "polygon",
        "secrets": {"name": "prod-secrets"},
        "serviceAccount": {"name": "sb-runner", "create": True},
        "resources": {"risk-exposures": {"limits": {"memory": "8Gi"}}},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    })
    cron = _by_kind(docs, "CronWorkflow")[0]["spec"]
    assert cron["schedules"] == ["0 19 * * 1-5"] and cron["timezone"] == "UTC" and cron["suspend"] is True
    for wt in _by_kind(docs, "WorkflowTemplate"):
        spec = wt["spec"]
        params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
        assert "image" not in params and params["provider"] == "polygon"
        assert {t["container"]["image"] for t in spec["templates"] if "container" in t} == {
            "registry.example.org/sb:9.9.9"}
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        assert spec["nodeSelector"] == {"pool": "batch"}
        assert spec["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
        assert "affinity" not in spec
        assert spec["serviceAccountName"] == "sb-runner"
        templates = {t["name"]: t for t in spec["templates"]}
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for t in templates.values() if "container" in t
                for e in t["container"]["env"] if "valueFrom" in e}
        assert refs == {"prod-secrets"}
        risk = templates["risk-exposures"]["container"]["resources"]
        assert risk["limits"]["memory"] == "8Gi" and risk["requests"]["memory"] == "2Gi"
        assert templates["market-data"]["container"]["resources"]["limits"]["memory"] == "4Gi"
        # Argo's own expressions reach the cluster untouched.
        assert templates["plan"]["container"]["args"][1] == "{{workflow.name}}"
    assert {d["metadata"]["name"] for d in _by_kind(docs, "ServiceAccount")} == {"sb-runner", "sigmabatch-artifact-gc"}


def test_bad_values_are_rejected_by_the_schema() -> None:
    helm = _helm()
    with pytest.raises(helm.HelmError, match="suspend"):
        _render({"cron": {"suspend": "yes"}})


def test_rbac_is_least_privilege() -> None:
    docs = _render()
    roles = {r["metadata"]["name"]: r["rules"] for r in _by_kind(docs, "Role")}
    assert roles == {
        "sigmabatch-workflow-executor": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}],
        "sigmabatch-artifact-gc": [
            {"apiGroups": ["argoproj.io"], "resources": ["workflowartifactgctasks"], "verbs": ["list", "watch"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowartifactgctasks/status"], "verbs": ["patch"]}],
    }
    bindings = {b["metadata"]["name"]: b for b in _by_kind(docs, "RoleBinding")}
    for name, binding in bindings.items():
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_artifact_repository_configmap() -> None:
    cm = _by_kind(_render(), "ConfigMap")[0]
    assert cm["metadata"]["name"] == "artifact-repositories"
    assert cm["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] == "sigmabatch-s3"
    repo = yaml.safe_load(cm["data"]["sigmabatch-s3"])
    assert repo["s3"]["bucket"] == "sigmabatch-artifacts" and repo["s3"]["useSDKCreds"] is True
    assert repo["s3"]["keyFormat"] == "sigmabatch/logs/{{workflow.name}}/{{pod.name}}"
    assert "accessKeySecret" not in repo["s3"]
