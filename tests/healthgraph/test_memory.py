"""The collector's start-up freeze and server thresholds, undone at shutdown."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from healthgraph.memory import SERVER_THRESHOLDS, freeze_startup_objects, thaw_startup_objects


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
    freeze_startup_objects()
    assert gc.get_threshold() == SERVER_THRESHOLDS
    assert gc.get_freeze_count() > 0
    # A second app in the same process (the test suite) must not lose the first thresholds.
    freeze_startup_objects()
    thaw_startup_objects()
    assert gc.get_threshold() == collector_as_found
    assert gc.get_freeze_count() == 0
