"""Every rendered Argo document parses into Hera's generated Argo API models with no unknown field and no
type error (:mod:`tests.workflows.strict_models`), and the check has teeth. Unlike the JSON-schema test
(``test_argo_schema.py``, which needs the schema file beside the repository), this one needs only the
installed packages, so it runs in every clone."""

from __future__ import annotations

import copy

import pytest

from tests.workflows.strict_models import model_errors


def test_every_rendered_document_parses_strictly(rendered_docs: dict[str, dict]) -> None:
    for name, doc in rendered_docs.items():
        assert model_errors(doc) == [], name


def test_the_committed_files_parse_strictly(repo_root) -> None:
    import yaml

    files = sorted((repo_root / "charts" / "sigmabatch" / "files").glob("*.yaml"))
    assert files
    for path in files:
        assert model_errors(yaml.safe_load(path.read_text())) == [], path.name


def _first_leaf(doc: dict) -> dict:
    return next(t for t in doc["spec"]["templates"] if "container" in t)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda d: _first_leaf(d)["retryStrategy"].update(retrypolicy="Always"),
                     "/retryStrategy/retrypolicy: unknown field", id="typo-in-retryStrategy"),
        pytest.param(lambda d: d["spec"].update(bogusTopLevel=1), "/spec/bogusTopLevel: unknown field",
                     id="unknown-spec-field"),
        pytest.param(lambda d: _first_leaf(d)["container"]["env"][0].update(valeu="x"), "/valeu: unknown field",
                     id="typo-in-env"),
        pytest.param(lambda d: d["spec"]["synchronization"].update(mutex={"name": "x"}),
                     "/spec/synchronization/mutex: unknown field", id="v3-singular-mutex"),
        pytest.param(lambda d: _first_leaf(d).update(activeDeadlineSeconds=[1]), "activeDeadlineSeconds",
                     id="wrong-type"),
        pytest.param(lambda d: _first_leaf(d)["container"]["resources"]["limits"].update(memroy="1Gi"),
                     None, id="map-keys-are-free"),
    ],
)
def test_typos_and_mistakes_are_caught(nightly: dict, mutate, expected: str | None) -> None:
    doc = copy.deepcopy(nightly)
    mutate(doc)
    errors = model_errors(doc)
    if expected is None:
        assert errors == []  # resource names are a map: Kubernetes validates them, not the Argo model
    else:
        assert any(expected in e for e in errors), errors


def test_v3_singular_cron_schedule_is_rejected(rendered_docs: dict[str, dict]) -> None:
    cron = copy.deepcopy(rendered_docs["cronworkflow-nightly.yaml"])
    cron["spec"]["schedule"] = cron["spec"].pop("schedules")[0]
    assert any("/spec/schedule: unknown field" in e for e in model_errors(cron))
