"""Process-wide interpreter tuning for the long-running commands, all of it here.

`serve`, `api` and `worker` apply it (their start-up calls `RuntimeTuning.started`, their
shutdown `stopped`); `HEALTHGRAPH_RUNTIME_TUNING=false` leaves the interpreter as it is.

The garbage collector. Start-up allocates a few hundred thousand objects that live as long as
the process (the schema, SQLAlchemy's metadata and compiled caches, imported modules). Every
full collection walks them all again, and one landing in a request is that request's p99:
graphql_bench measured the connections page at p99 189-201 ms with them in the young
generations and 75 ms once frozen. A request then allocates some 100k container objects that
die with it; at the default young-generation threshold (700) that is ~150 collections per
request, and the page's result tree, alive until the response is written, is promoted on and
on until a full collection walks it. With a threshold of 10,000 most of those objects are
freed by reference counting before any collection sees them (graphql_bench's connections
page, 80 runs: collector time p50 4.2 -> 0 ms, max 64 -> 30 ms; CPU p99 150 -> 125 ms). A
/metrics scrape builds its 100k rows in bounded batches (exporter.collector), so it needs no
collector switch-off of its own: nothing here disables the collector, for any span.

The thread switch interval. `serve` runs the scheduler on its own thread and event loop beside
the API's. Every step of the scheduler (each await, each SQLite reply from its thread) waits
for the interpreter; at the default 5 ms a busy API made every claim and write crawl (lag p99
8 s at 10k connections, bench/load_bench.py). 0.5 ms gives the scheduler its turn.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# (young, middle, old): see the module docstring; the older two are spaced as widely so a full
# collection stays rare.
SERVER_THRESHOLDS = (10_000, 20, 100)
SCHEDULER_SWITCH_INTERVAL_SECONDS = 0.0005


class RuntimeTuning:
    """The tuning of one process's life: applied when start-up is done, undone at shutdown."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._thresholds_before: tuple[int, int, int] | None = None

    def started(self) -> None:
        """Collect once, move every surviving object out of the collector's future scans, and
        space collections for a server's request-sized bursts of short-lived objects.

        Call when start-up is done; objects allocated later are collected as usual.
        """
        if not self.enabled:
            return
        gc.collect()
        gc.freeze()
        if self._thresholds_before is None:
            self._thresholds_before = gc.get_threshold()
        gc.set_threshold(*SERVER_THRESHOLDS)

    def stopped(self) -> None:
        """Undo `started` (so a process that runs several apps in turn, like the test suite,
        can still collect what an earlier one left in cycles)."""
        if self._thresholds_before is None:
            return
        gc.unfreeze()
        gc.set_threshold(*self._thresholds_before)
        self._thresholds_before = None

    @contextmanager
    def scheduler_thread(self) -> Iterator[None]:
        """While the scheduler runs on a thread beside the API: give it the interpreter often."""
        if not self.enabled:
            yield
            return
        before = sys.getswitchinterval()
        sys.setswitchinterval(SCHEDULER_SWITCH_INTERVAL_SECONDS)
        try:
            yield
        finally:
            sys.setswitchinterval(before)
