"""The garbage collector, told what a long-running server's start-up leaves behind.

Start-up allocates a few hundred thousand objects that live as long as the process (the
schema, SQLAlchemy's metadata and compiled caches, imported modules). Every full collection
walks them all again, and one landing in a request is that request's p99: graphql_bench
measured the connections page at p99 189-201 ms with them in the young generations and
75 ms once frozen.

A request then allocates some 100k container objects that die with it. At the default
young-generation threshold (700) that is ~150 collections per request, and the page's
result tree, alive until the response is written, is promoted on and on until a full
collection walks it: 4 ms of collector time in the median request and up to 64 ms in the
slowest. With a threshold of 10,000 most of those objects are freed by reference counting
before any collection sees them (graphql_bench's connections page, 80 runs: collector time
p50 4.2 -> 0 ms, max 64 -> 30 ms; CPU p99 150 -> 125 ms).
"""

from __future__ import annotations

import gc

# (young, middle, old): see the module docstring; the older two are spaced as widely so a
# full collection stays rare.
SERVER_THRESHOLDS = (10_000, 20, 100)

_thresholds_before: tuple[int, int, int] | None = None


def freeze_startup_objects() -> None:
    """Collect once, then move every surviving object out of the collector's future scans,
    and space collections for a server's request-sized bursts of short-lived objects.

    Call when start-up is done; objects allocated later are collected as usual.
    """
    global _thresholds_before
    gc.collect()
    gc.freeze()
    if _thresholds_before is None:
        _thresholds_before = gc.get_threshold()
    gc.set_threshold(*SERVER_THRESHOLDS)


def thaw_startup_objects() -> None:
    """Undo `freeze_startup_objects` at shutdown (so a process that runs several apps in turn,
    like the test suite, can still collect what an earlier one left in cycles)."""
    global _thresholds_before
    gc.unfreeze()
    if _thresholds_before is not None:
        gc.set_threshold(*_thresholds_before)
        _thresholds_before = None
