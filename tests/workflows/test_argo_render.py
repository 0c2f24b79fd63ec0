"""The committed YAML under charts/sigmabatch/files is exactly what workflows/argo.py renders.

The test only compares: it never writes the committed files (not even outside CI), so a change to the
rendering shows up as a diff to review. Regenerate them on purpose with ``make workflows``
(``python -m workflows.argo render --out charts/sigmabatch/files``) and commit the result.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workflows import argo

FILES_DIR = Path(__file__).resolve().parents[2] / "charts" / "sigmabatch" / "files"


def test_golden_files_match_render(rendered: dict[str, str]) -> None:
    # GIVEN the freshly rendered documents
    # WHEN compared with the committed files
    for name, text in rendered.items():
        committed = FILES_DIR / name
        assert committed.is_file(), f"{committed} missing: run python -m workflows.argo render"
        # THEN they are identical
        assert committed.read_text() == text, (
            f"{committed} is stale: run `make workflows`, review the diff and commit it"
        )


def test_no_stray_files_in_files_dir() -> None:
    assert sorted(p.name for p in FILES_DIR.glob("*.yaml")) == sorted(argo.RENDERED_FILES)


def test_render_is_deterministic() -> None:
    assert argo.rendered_documents() == argo.rendered_documents()


def test_render_all_writes_every_file(tmp_path: Path) -> None:
    written = argo.render_all(tmp_path / "out")
    assert [p.name for p in written] == list(argo.RENDERED_FILES)
    assert all(p.read_text().startswith(argo.HEADER) for p in written)


def test_check_reports_a_diff_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argo.render_all(tmp_path)
    assert argo.main(["check", "--out", str(tmp_path)]) == 0
    target = tmp_path / "cronworkflow-nightly.yaml"
    target.write_text(target.read_text().replace("30 18 * * 1-5", "0 1 * * *"))
    assert argo.main(["check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "-  - 0 1 * * *" in out and "+  - 30 18 * * 1-5" in out


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    assert argo.check(tmp_path) and argo.main(["check", "--out", str(tmp_path)]) == 1


def test_cli_help_and_check_on_committed_files(repo_root: Path) -> None:
    run = [sys.executable, "-m", "workflows.argo"]
    helptext = subprocess.run([*run, "--help"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert "render" in helptext and "check" in helptext
    result = subprocess.run([*run, "check", "--out", "charts/sigmabatch/files"], cwd=repo_root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_builders_take_their_parameters() -> None:
    wt = argo.build_workflow_template(image="example.org/x:1", namespace="ns", name="wt").to_dict()
    assert wt["metadata"] == wt["metadata"] | {"name": "wt", "namespace": "ns"}
    assert {t["container"]["image"] for t in wt["spec"]["templates"] if "container" in t} == {"example.org/x:1"}
    cron = argo.build_cron_workflow(schedule="0 19 * * 1-5", timezone="UTC", template_name="wt",
                                    suspend=True).to_dict()["spec"]
    assert cron["schedules"] == ["0 19 * * 1-5"] and cron["timezone"] == "UTC"
    assert cron["suspend"] is True and "suspend" not in cron["workflowSpec"]
    assert cron["workflowSpec"]["workflowTemplateRef"] == {"name": "wt"}
