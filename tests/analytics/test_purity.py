"""shared/analytics stays pure: numerical libraries, the stdlib and shared.analytics only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ANALYTICS = Path(__file__).resolve().parents[2] / "shared" / "analytics"
ALLOWED_THIRD_PARTY = {"numpy", "pandas", "scipy", "statsmodels", "arch"}
FORBIDDEN_STDLIB = {"os", "io", "pathlib", "socket", "subprocess", "time", "datetime.datetime", "random", "logging"}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append("shared.analytics")
            else:
                names.append(node.module or "")
    return names


@pytest.mark.parametrize("path", sorted(ANALYTICS.glob("*.py")), ids=lambda p: p.name)
def test_analytics_imports_are_pure(path):
    for name in _imports(path):
        top = name.split(".")[0]
        if name == "shared.analytics" or name.startswith("shared.analytics."):
            continue
        assert top != "shared", f"{path.name} imports {name}"
        assert top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names, f"{path.name} imports {name}"
        assert top not in FORBIDDEN_STDLIB, f"{path.name} imports {name} (I/O or clock)"
