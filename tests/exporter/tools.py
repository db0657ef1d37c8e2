"""The real Prometheus binaries for tests: found on PATH, or a skip (locally) / failure (CI).

In CI (CI=true) or with HEALTHGRAPH_REQUIRE_PROMETHEUS=1 a missing tool fails the test:
scripts/install-prometheus-tools.sh installs them, and `make test` runs it first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "healthgraph.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules" / "healthgraph.test.yml"
ALERTMANAGER_CONFIG = PROMETHEUS_DIR / "alertmanager.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
INSTALL_SCRIPT = ROOT / "scripts" / "install-prometheus-tools.sh"


def required() -> bool:
    return (
        os.environ.get("CI", "").lower() in ("true", "1")
        or os.environ.get("HEALTHGRAPH_REQUIRE_PROMETHEUS") == "1"
    )


def tool(*names: str) -> str:
    """Path of the first of `names` on PATH; otherwise skip, or fail when required."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = (
        f"{names[0]} is not installed; run {INSTALL_SCRIPT.relative_to(ROOT)} "
        "(Debian: apt-get install prometheus prometheus-alertmanager)"
    )
    if required():
        pytest.fail(f"{message} — required here (CI or HEALTHGRAPH_REQUIRE_PROMETHEUS=1)")
    pytest.skip(message)


def promtool() -> str:
    return tool("promtool")


def prometheus() -> str:
    return tool("prometheus")


def amtool() -> str:
    return tool("amtool")


def alertmanager() -> str:
    # Debian's package names the binary prometheus-alertmanager.
    return tool("prometheus-alertmanager", "alertmanager")


def run(command: Sequence[str], *, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion (60 s at most), its output as text."""
    completed = subprocess.run(
        list(command),
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )
