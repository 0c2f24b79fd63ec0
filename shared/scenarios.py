"""Stress scenarios as data: read and validate the scenario YAML (the packaged file or a user's copy)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from shared.analytics.stress import KNOWN_SCENARIO_FACTORS, Scenario

DEFAULT_SCENARIO_FILE = Path(__file__).resolve().parent / "data" / "stress_scenarios.yaml"


def parse_scenarios(text: str, *, active_only: bool = False) -> list[Scenario]:
    """Parse the scenario YAML text (format of ``shared/data/stress_scenarios.yaml``).

    Raises ``ValueError`` for duplicate ids, unknown factor names (allowed: Market, the six style
    names Value, Growth, Momentum, Quality, Size, Low Volatility, and Interest_Rate: the factors of
    the stress model's covariance, :mod:`shared.analytics.stress`) or non-finite shocks.
    """
    doc = yaml.safe_load(text) or {}
    items = doc.get("scenarios", doc if isinstance(doc, list) else [])
    out: list[Scenario] = []
    seen: set[str] = set()
    for it in items:
        sid = str(it["id"])
        if sid in seen:
            raise ValueError(f"duplicate scenario id {sid!r}")
        seen.add(sid)
        shocks = {str(k): float(v) for k, v in (it.get("shocks") or {}).items()}
        for k, v in shocks.items():
            if k not in KNOWN_SCENARIO_FACTORS:
                raise ValueError(f"scenario {sid!r}: unknown factor {k!r} (allowed: "
                                 f"{', '.join(sorted(KNOWN_SCENARIO_FACTORS))})")
            if not math.isfinite(v):
                raise ValueError(f"scenario {sid!r}: non-finite shock for {k!r}")
        sc = Scenario(id=sid, name=str(it.get("name", sid)), category=str(it.get("category", "")),
                      severity=str(it.get("severity", "")), active=bool(it.get("active", True)),
                      shocks=shocks, source=str(it.get("source", "")))
        if sc.active or not active_only:
            out.append(sc)
    return out


def load_scenarios(path: str | os.PathLike[str] | None = None, *, active_only: bool = False) -> list[Scenario]:
    """Read scenarios from ``path`` (default: the packaged ``stress_scenarios.yaml``); see
    :func:`parse_scenarios`. Users can point at an extended copy of the file."""
    p = Path(path) if path is not None else DEFAULT_SCENARIO_FILE
    return parse_scenarios(p.read_text(encoding="utf-8"), active_only=active_only)
