"""The runtime tuning: the collector's start-up freeze and server thresholds, undone at
shutdown; the switch interval while the scheduler thread runs; all of it off by setting."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from healthgraph.runtime import (
    SCHEDULER_SWITCH_INTERVAL_SECONDS,
    SERVER_THRESHOLDS,
    RuntimeTuning,
)


@pytest.fixture
def collector_as_found() -> Iterator[tuple[int, int, int]]:
    found = gc.get_threshold()
    yield found
    gc.unfreeze()
    gc.set_threshold(*found)


def test_freeze_spaces_collections_and_thaw_restores_them(
    collector_as_found: tuple[int, int, int],
) -> None:
    assert collector_as_found != SERVER_THRESHOLDS
    tuning = RuntimeTuning()
    tuning.started()
    assert gc.get_threshold() == SERVER_THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    # Started twice (a second app in the same process), the first thresholds are not lost.
    tuning.started()
    tuning.stopped()
    assert gc.get_threshold() == collector_as_found
    assert gc.get_freeze_count() == 0


def test_tuning_turned_off_changes_nothing(collector_as_found: tuple[int, int, int]) -> None:
    interval = sys.getswitchinterval()
    tuning = RuntimeTuning(enabled=False)
    tuning.started()
    with tuning.scheduler_thread():
        assert sys.getswitchinterval() == interval
        assert gc.get_threshold() == collector_as_found
        assert gc.get_freeze_count() == 0
    tuning.stopped()
    assert gc.get_threshold() == collector_as_found


def test_the_switch_interval_is_short_while_the_scheduler_thread_runs() -> None:
    interval = sys.getswitchinterval()
    assert interval != SCHEDULER_SWITCH_INTERVAL_SECONDS
    seen = []

    def start_the_scheduler() -> None:
        with RuntimeTuning().scheduler_thread():
            seen.append(sys.getswitchinterval())
            raise RuntimeError("the scheduler failed to start")

    with pytest.raises(RuntimeError):
        start_the_scheduler()
    assert seen == [SCHEDULER_SWITCH_INTERVAL_SECONDS]
    assert sys.getswitchinterval() == interval
