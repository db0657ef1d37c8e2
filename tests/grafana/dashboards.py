"""The generated dashboards for tests: grafana/generate.py loaded by path, and panel walking."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
GENERATOR = GRAFANA / "generate.py"
PROVISIONED_DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVISIONED_DASHBOARDS = GRAFANA / "provisioning" / "dashboards" / "healthgraph.yml"
REFRESH = ".venv/bin/python grafana/generate.py"


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthgraph_grafana_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON under grafana/dashboards, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included; rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target
