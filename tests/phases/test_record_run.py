"""record-run decodes Argo's ``{{workflow.failures}}`` as the controller really encodes it (issue 17 item 6)."""

from __future__ import annotations

import json

from phases.record_run import parse_failures
from tests.workflows.argo_encoding import workflow_failures

NODES = [
    {"displayName": "risk-exposures(2)", "message": "Error (exit code 1): <boom> & \"quoted\"\nline 2",
     "templateName": "risk-exposures", "phase": "Failed", "podName": "sigmabatch-nightly-x-risk-exposures-1",
     "finishedAt": "2026-11-25T23:59:00Z"},
    {"displayName": "sigmabatch-nightly-x", "message": "child 'risk-exposures' failed", "templateName": "main",
     "phase": "Failed", "podName": "sigmabatch-nightly-x", "finishedAt": "2026-11-25T23:59:01Z"},
]


def test_the_argument_is_a_quoted_json_list() -> None:
    arg = workflow_failures(NODES)
    assert arg.startswith('"[{') and isinstance(json.loads(arg), str)  # encoded twice


def test_every_failed_node_keeps_its_details() -> None:
    got = parse_failures(workflow_failures(NODES))
    assert got == [
        {"node": "risk-exposures(2)", "template": "risk-exposures", "phase": "Failed",
         "message": "Error (exit code 1): <boom> & \"quoted\"\nline 2"},
        {"node": "sigmabatch-nightly-x", "template": "main", "phase": "Failed",
         "message": "child 'risk-exposures' failed"},
    ]


def test_plain_json_unresolved_and_empty() -> None:
    assert parse_failures(json.dumps(NODES[:1]))[0]["node"] == "risk-exposures(2)"
    assert parse_failures(workflow_failures([])) == []
    assert parse_failures("{{workflow.failures}}") == []
    assert parse_failures("") == [] and parse_failures("null") == []
    assert parse_failures("not json") == [{"message": "not json"}]
