"""The worker's open-files limit, in child interpreters: the test process keeps its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from healthgraph.open_files import OTHER_FILES, files_for


def run_with_limits(soft: int, hard: int, wanted: int) -> subprocess.CompletedProcess[str]:
    """Lower this child's limits to (soft, hard), ask for `wanted`; it prints the result and
    the soft and hard limits after."""
    script = textwrap.dedent(
        f"""
        import logging, resource
        from healthgraph.open_files import raise_open_files_limit
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
        now = raise_open_files_limit({wanted})
        print(now, *resource.getrlimit(resource.RLIMIT_NOFILE))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )


def test_files_for_counts_two_per_probe_and_the_rest_of_the_process() -> None:
    assert OTHER_FILES == 1024
    assert files_for(1000) == 3024
    assert files_for(1) == 1026


def test_the_soft_limit_is_raised_to_what_is_wanted() -> None:
    done = run_with_limits(256, 4096, 3024)
    assert done.stdout == "3024 3024 4096\n"
    assert done.stderr == ""


def test_a_soft_limit_already_high_enough_is_left_as_it_is() -> None:
    done = run_with_limits(4000, 4096, 3024)
    assert done.stdout == "4000 4000 4096\n"
    assert done.stderr == ""


def test_a_hard_limit_too_low_is_used_whole_and_named_in_a_warning() -> None:
    done = run_with_limits(256, 2000, 3024)
    assert done.stdout == "2000 2000 2000\n"
    assert done.stderr == (
        "WARNING open files: the hard limit is 2000, below the 3024 this worker may need for "
        "its probes in flight; probes beyond it fail with 'too many open files' (raise the "
        "limit, e.g. ulimit -n or the service's LimitNOFILE, or lower --concurrency)\n"
    )
