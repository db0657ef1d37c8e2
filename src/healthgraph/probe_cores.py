"""How many probe processes a SQLite scheduler starts when HEALTHGRAPH_PROBE_PROCESSES is
`auto` (the default; on PostgreSQL `auto` is none, see healthgraph.worker): none for a small
catalog, one more core per share of the checks the catalog asks for, never more than the
cores the machine has beside the scheduler's own."""

from __future__ import annotations

import math
import os

# Below this many checks a second one process probes with room to spare, and a child process
# would only add the hand-off (measured on 2 cores: bench/serve_bench.py, bench/PROBES.md).
OWN_PROCESS_UP_TO = 400.0
# Checks a second one probe process takes on.
CHECKS_PER_PROCESS = 1500.0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container's limit sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def probe_processes_for(asked_checks_per_second: float, cores: int) -> int:
    """Probe processes for a catalog asking this many checks a second on `cores` cores."""
    spare = cores - 1  # the scheduler's own process claims, writes and serves
    if asked_checks_per_second < OWN_PROCESS_UP_TO or spare < 1:
        return 0
    return min(spare, math.ceil(asked_checks_per_second / CHECKS_PER_PROCESS))
