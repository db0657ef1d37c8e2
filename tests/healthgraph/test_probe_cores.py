"""HEALTHGRAPH_PROBE_PROCESSES=auto: the rule, case by case."""

from __future__ import annotations

import pytest

from healthgraph.probe_cores import probe_processes_for


@pytest.mark.parametrize(
    ("asked", "cores", "expected"),
    [
        (0.0, 8, 0),  # nothing to check
        (399.0, 8, 0),  # a small catalog stays in one process
        (400.0, 8, 1),
        (1500.0, 8, 1),
        (1501.0, 8, 2),
        (3000.0, 2, 1),  # never more than the cores beside the scheduler's own
        (3000.0, 1, 0),
        (100_000.0, 4, 3),
    ],
)
def test_probe_processes_follow_the_checks_asked_within_the_spare_cores(
    asked: float, cores: int, expected: int
) -> None:
    assert probe_processes_for(asked, cores) == expected
