"""End-to-end tests: real Prometheus and Alertmanager processes on loopback (marker `e2e`).

Run only these: `pytest -m e2e`; skip them: `pytest -m "not e2e"`.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end to end with the real prometheus and alertmanager binaries"
    )
