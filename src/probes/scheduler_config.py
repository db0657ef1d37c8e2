"""The scheduler's knobs and what its parts share: which errors mean "the database is down",
and how such an error is told in a log line."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from store.scheduling import Jitter

DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


# Probes in flight per process a check passes through. 200 keeps one process's event loop
# busy; a check handed to a probe process holds its slot through two loops that work in
# batches, each while the other waits, and with 200 `serve` used 1.2 of 2 cores (ratio to
# blackbox_exporter at 6,000 connections a second: median 0.89 over 8 rounds), with 400 1.5
# (median 1.08 over 16; bench/serve_bench.py, bench/README.md). 600 did no better than 400.
PROBES_IN_FLIGHT_PER_PROCESS = 200


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    # Probes in flight at once, per worker; None: `PROBES_IN_FLIGHT_PER_PROCESS` for the
    # worker's own process and as many for each probe process (`sized_for`).
    concurrency: int | None = None
    per_host_concurrency: int = 20  # of which at most this many to one host
    claim_batch: int = 200  # rows per claim transaction
    lease_seconds: float = 60.0  # how long a claim keeps other workers off a row
    flush_size: int = 500  # write when this many results wait...
    flush_interval_seconds: float = 0.5  # ...or this long after the last write
    idle_poll_seconds: float = 0.5  # how soon to look again when nothing is due
    # Claim rows due within this long; each check then waits in memory for its own due time.
    # Longer than `idle_poll_seconds`, so a check due between two looks starts on time rather
    # than at the next look (at a 1 s interval that cost 7-12 % of the checks asked for).
    claim_ahead_seconds: float = 1.0
    error_pause_seconds: float = 2.0  # after a database error
    jitter_ratio: float = 0.1  # next due time: interval ± this share of it
    retention: timedelta = timedelta(days=7)
    keep_latest: int = 100  # checks kept per connection whatever their age
    prune_interval_seconds: float = 300.0
    sweep_interval_seconds: float = 1.0  # inbound deadlines
    sweep_batch: int = 1000
    shutdown_grace_seconds: float = 5.0  # probes in flight get this long to finish on stop
    # Checks claimed and waiting for a busy host's slot, at most this many per worker: they
    # do not count against `concurrency`, so one hanging host cannot stop every other.
    max_waiting: int = 4000

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for name in (
            "per_host_concurrency",
            "claim_batch",
            "flush_size",
            "max_waiting",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if not 0 <= self.claim_ahead_seconds < self.lease_seconds:
            raise ValueError("claim_ahead_seconds must be in [0, lease_seconds)")
        if not 0 <= self.jitter_ratio < 1:
            raise ValueError("jitter_ratio must be in [0, 1)")

    @property
    def probes_in_flight(self) -> int:
        """The global budget: `concurrency`, or the default for probing in this process."""
        return self.concurrency or PROBES_IN_FLIGHT_PER_PROCESS

    def sized_for(self, probe_processes: int) -> SchedulerConfig:
        """This config for a worker handing its checks to `probe_processes` processes: the
        default budget grows by `PROBES_IN_FLIGHT_PER_PROCESS` for each; a set one stays."""
        if self.concurrency is not None:
            return self
        return replace(self, concurrency=PROBES_IN_FLIGHT_PER_PROCESS * (1 + probe_processes))


def random_jitter(ratio: float, rng: random.Random | None = None) -> Jitter:
    """± `ratio` of the interval, uniformly: connections created together drift apart."""
    source = rng or random.Random()  # not for secrets: spreading load only

    def jitter(interval: int) -> float:
        return source.uniform(-ratio, ratio) * interval

    return jitter


def describe(exc: BaseException) -> str:
    """An error in one line, without SQL or parameters (they may hold ciphertexts)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__
