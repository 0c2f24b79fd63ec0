"""Argo manifests checked against the Argo API models Hera ships (installed with the ``deploy`` extra), with
unknown fields refused.

Hera's generated pydantic models (``hera.workflows.models``, from the Argo swagger) ignore unknown keys
(pydantic's default), so :func:`model_errors` walks the document next to the model: every key must be a
field (by its JSON name) of the model at that place, recursively through lists, maps and unions; then
``model_validate`` checks the types. Needs no file outside the repository: every ``make test`` runs it.
"""

from __future__ import annotations

import types
import typing

from pydantic import BaseModel, RootModel, ValidationError

KINDS = ("WorkflowTemplate", "CronWorkflow", "Workflow", "ClusterWorkflowTemplate")


def _members(annotation) -> list:
    """The concrete types an annotation allows (Optional/Union/Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(annotation) for t in _members(a) if t is not type(None)]
    return [annotation]


def _walk(annotation, value, path: str, errors: list[str]) -> None:
    for t in _members(annotation):
        origin = typing.get_origin(t)
        if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006 - both spellings occur
            (item,) = typing.get_args(t) or (typing.Any,)
            for i, v in enumerate(value):
                _walk(item, v, f"{path}/{i}", errors)
            return
        if origin in (dict, typing.Dict) and isinstance(value, dict):  # noqa: UP006
            args = typing.get_args(t)
            for k, v in value.items():
                _walk(args[1] if len(args) == 2 else typing.Any, v, f"{path}/{k}", errors)
            return
        if isinstance(t, type) and issubclass(t, RootModel):
            return _walk(t.model_fields["root"].annotation, value, path, errors)
        if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(value, dict):
            by_json = {(f.alias or name): f for name, f in t.model_fields.items()}
            for k, v in value.items():
                if k not in by_json:
                    errors.append(f"{path}/{k}: unknown field of {t.__name__}")
                else:
                    _walk(by_json[k].annotation, v, f"{path}/{k}", errors)
            return


def model_errors(doc: dict) -> list[str]:
    """``path: message`` for every unknown field and every type error (empty = the document is valid)."""
    from hera.workflows import models as m

    kind = doc.get("kind")
    if kind not in KINDS:
        return [f"not an Argo kind: {kind!r}"]
    model = getattr(m, kind)
    errors: list[str] = []
    _walk(model, doc, "", errors)
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        errors += [f"/{'/'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return errors
