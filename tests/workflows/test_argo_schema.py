"""Every rendered Argo document passes the v4.1.2 JSON schema in strict mode, and the check has teeth."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

Errors = Callable[[dict], list[str]]


def test_every_rendered_document_is_valid(rendered_docs: dict[str, dict], argo_errors: Errors) -> None:
    for name, doc in rendered_docs.items():
        assert argo_errors(doc) == [], name


def _first_leaf(doc: dict) -> dict:
    return next(t for t in doc["spec"]["templates"] if "container" in t)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda d: _first_leaf(d)["retryStrategy"].update(retrypolicy="Always"),
                     "'retrypolicy' was unexpected", id="typo-in-retryStrategy"),
        pytest.param(lambda d: d["spec"].update(bogusTopLevel=1), "'bogusTopLevel' was unexpected",
                     id="unknown-spec-field"),
        pytest.param(lambda d: _first_leaf(d)["container"].pop("image"), "'image' is a required property",
                     id="container-without-image"),
        pytest.param(lambda d: _first_leaf(d).update(activeDeadlineSeconds=[1]), "is not of type",
                     id="wrong-type"),
        pytest.param(lambda d: d["spec"]["synchronization"].update(mutex={"name": "x"}), "'mutex' was unexpected",
                     id="v3-singular-mutex"),
    ],
)
def test_typos_and_mistakes_are_caught(nightly: dict, argo_errors: Errors, mutate, expected: str) -> None:
    doc = copy.deepcopy(nightly)
    mutate(doc)
    errors = argo_errors(doc)
    assert any(expected in e for e in errors), errors


def test_v3_singular_cron_schedule_is_rejected(rendered_docs: dict[str, dict], argo_errors: Errors) -> None:
    cron = copy.deepcopy(rendered_docs["cronworkflow-nightly.yaml"])
    cron["spec"]["schedule"] = cron["spec"].pop("schedules")[0]
    errors = argo_errors(cron)
    assert any("'schedules' is a required property" in e for e in errors), errors


def test_int_or_string_fields_accept_integers(nightly: dict, argo_errors: Errors) -> None:
    # The raw schema declares IntOrString as string only; Hera emits ints (limit, factor).
    leaf = _first_leaf(nightly)
    assert isinstance(leaf["retryStrategy"]["limit"], int)
    assert argo_errors(nightly) == []
