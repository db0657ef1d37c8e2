"""The open-files limit a worker needs: one socket per probe in flight, and its kept-alive ones.

Many systems start processes with a soft limit of 1,024 descriptors and a far higher hard
limit; a worker with hundreds of probes in flight and as many sockets kept alive would fail probes
with EMFILE ("too many open files") long before the hard limit. Like Go's runtime and nginx's
worker_rlimit_nofile, the worker raises its own soft limit (never the hard one, which needs
privileges); its probe processes inherit it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Beside the probes' sockets: the database pool, the API's clients, log files, pipes.
OTHER_FILES = 1024


def files_for(concurrency: int) -> int:
    """Descriptors a worker probing `concurrency` targets at once may hold: each probe's socket
    and as many kept alive for the next checks, and the rest of the process."""
    return 2 * concurrency + OTHER_FILES


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to `wanted` (within the hard limit); the soft limit now.

    Logs a warning when the hard limit is lower than `wanted`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
        log.warning(
            "open files: the hard limit is %d, below the %d this worker may need for its probes "
            "in flight; probes beyond it fail with 'too many open files' (raise the limit, "
            "e.g. ulimit -n or the service's LimitNOFILE, or lower --concurrency)",
            hard,
            wanted,
        )
    return new
