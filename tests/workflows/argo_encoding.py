"""How Argo encodes values, reproduced for the tests (no cluster needed).

* ``json_marshal``: Go's ``encoding/json.Marshal`` (compact, HTML characters escaped as ``\\u003c`` etc.).
* ``go_quote``: Go's ``strconv.Quote`` for the strings Argo handles (JSON-compatible escapes).
* ``workflow_failures``: the value of ``{{workflow.failures}}``: the controller stores
  ``strconv.Quote(string(json.Marshal(failures)))`` (workflow/controller/operator.go), and the template
  substitution (util/template ``simpleReplace``) inserts ``strconv.Quote(value)[1:-1]`` into the template's
  JSON text, so after the template is decoded the container argument is the quoted JSON list.
"""

from __future__ import annotations

import json


def json_marshal(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def substitute_into_json(value: str) -> str:
    """What ``simpleReplace`` writes into the template's JSON text for ``value``."""
    return go_quote(value)[1:-1]


def workflow_failures(nodes: list[dict]) -> str:
    """The container argument ``{{workflow.failures}}`` becomes for these failed nodes."""
    stored = go_quote(json_marshal(nodes))  # the global parameter's value
    template_json = json.dumps({"args": ["--failures", "PLACEHOLDER"]}).replace(
        "PLACEHOLDER", substitute_into_json(stored))
    return json.loads(template_json)["args"][1]
