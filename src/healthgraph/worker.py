"""The worker role: the heartbeat scheduler against the configured database, until stopped.

`healthgraph worker` runs this; so can `python -m healthgraph.worker` (settings from the
environment, scheduler knobs as options, stops cleanly on SIGTERM or SIGINT).

SQLite has a single writer, so it gets exactly one worker: an exclusive `flock` on
`<database file>.worker.lock`, held for the worker's life and released by the kernel if the
process dies, refuses a second one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError

from graphql_schema.links import LinkSigner
from healthgraph.database import Database, open_database
from healthgraph.errors import HealthgraphError
from healthgraph.logs import configure_logging
from healthgraph.open_files import files_for, raise_open_files_limit
from healthgraph.probe_cores import probe_processes_for, usable_cores
from healthgraph.settings import Settings, load_settings
from healthgraph.webhook_payload import payload_renderer
from probes.pool import ProbeProcessConfig, ProbeProcesses
from probes.scheduler import CheckObserver, CheckRunner, OnChanges, Scheduler, SchedulerConfig
from probes.scheduler_config import PROBES_IN_FLIGHT_PER_PROCESS
from probes.target import ProbeContext
from probes.token_broker import RefreshObserver, TokenBroker
from probes.webhook_worker import DeliveryObserver, WebhookWorker
from store.demand import asked_checks_per_second
from store.engine import async_url
from store.errors import StoreError
from store.scheduling import MAX_WORKER_ID_LENGTH, release_stale_claims

log = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerObserver(CheckObserver, RefreshObserver, DeliveryObserver, Protocol):
    """Told of every check, OAuth2 refresh and webhook delivery (exporter.self_metrics)."""


class WorkerLockedError(HealthgraphError):
    """Another worker already runs against this SQLite file."""

    def __init__(self, database: Path) -> None:
        self.database = database
        super().__init__(
            f"another healthgraph worker already uses {database}; SQLite supports exactly one "
            "worker — use PostgreSQL for more"
        )


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop where it is installed: the probe path is CPU-bound."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def worker_id() -> str:
    """hostname:pid — stable for the process, distinct across processes and hosts."""
    pid = f":{os.getpid()}"
    return socket.gethostname()[: MAX_WORKER_ID_LENGTH - len(pid)] + pid


def sqlite_path(settings: Settings) -> Path | None:
    """The SQLite file the settings name, resolved; None for PostgreSQL."""
    if not settings.is_sqlite:
        return None
    database = async_url(settings.database_url).database
    assert database is not None  # async_url refuses an in-memory SQLite
    return Path(database).expanduser().resolve()


@contextmanager
def sqlite_worker_lock(database: Path) -> Iterator[None]:
    """Hold `<database>.worker.lock` exclusively, or raise WorkerLockedError at once."""
    lock_path = database.with_name(database.name + ".worker.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkerLockedError(database) from None
        # The file stays: deleting it would let a second worker lock a new inode.
        yield
    finally:
        os.close(descriptor)  # releases the lock


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_changes: OnChanges | None = None,
    config: SchedulerConfig | None = None,
    observer: WorkerObserver | None = None,
    alongside: AbstractAsyncContextManager[object] | None = None,
) -> None:
    """Run the scheduler, and the webhook worker beside it, until `stop` is set.

    `alongside` (e.g. the self-metrics server) is entered once this process is sure to be the
    worker, so a refused second worker says why instead of tripping over a port.

    Raises WorkerLockedError if another worker holds this SQLite file, SettingsError for a
    missing key ring (PostgreSQL needs HEALTHGRAPH_SECRET_KEYS), SchemaOutOfDateError if
    PostgreSQL needs `healthgraph db upgrade`.
    """
    database_file = sqlite_path(settings)
    with sqlite_worker_lock(database_file) if database_file else _no_lock():
        async with alongside or contextlib.nullcontext():
            await _run_scheduler(settings, stop, on_changes, config, observer, database_file)


async def _run_scheduler(
    settings: Settings,
    stop: asyncio.Event,
    on_changes: OnChanges | None,
    config: SchedulerConfig | None,
    observer: WorkerObserver | None,
    database_file: Path | None,
) -> None:
    key_ring = settings.key_ring()
    database = await open_database(settings.database_url)
    try:
        if database_file is not None:
            # We hold the SQLite worker lock: any claim left is a dead worker's (kill -9).
            async with database.sessions.begin() as session:
                released = await release_stale_claims(session)
            if released:
                log.info("released %d claims of a worker that stopped without releasing", released)
        probe_processes = await _probe_processes(settings, database, database_file)
        config = config or SchedulerConfig()
        if config.concurrency is None:  # no --concurrency: the setting, or auto
            config = replace(config, concurrency=settings.probes_in_flight)
        config = config.sized_for(probe_processes)
        # Raised before the probe processes start: they inherit it.
        raise_open_files_limit(files_for(config.probes_in_flight))
        async with contextlib.AsyncExitStack() as stack:
            context = await stack.enter_async_context(
                ProbeContext.create(
                    allow=settings.allow_targets,
                    connections_per_origin=config.per_host_concurrency,
                )
            )
            run_check: CheckRunner | None = None
            if probe_processes:
                processes = ProbeProcesses(
                    probe_processes,
                    ProbeProcessConfig(
                        allow=settings.allow_targets,
                        key_ring=key_ring,
                        connections_per_origin=config.per_host_concurrency,
                        database_url=settings.database_url,
                    ),
                    refresh_observer=observer,
                )
                run_check = (await stack.enter_async_context(processes)).check
            scheduler = Scheduler(
                database.sessions,
                context,
                worker_id=worker_id(),
                key_ring=key_ring,
                config=config,
                on_changes=on_changes,
                observer=observer,
                run_check=run_check,
                tokens=TokenBroker(database.sessions, key_ring, observer=observer),
            )
            webhooks = WebhookWorker(
                database.sessions,
                context,
                key_ring,
                worker_id=scheduler.worker_id,
                render=payload_renderer(
                    LinkSigner(key_ring.derive("consumer-links")), settings.base_url
                ),
                rules=settings.outage_rules,
                observer=observer,
            )
            log.info(
                "healthgraph worker %s started on %s, probing in %s",
                scheduler.worker_id,
                "SQLite" if database_file else "PostgreSQL",
                f"{probe_processes} processes" if probe_processes else "this process",
            )
            # Side by side, never in each other's way: a webhook never delays a check.
            await asyncio.gather(scheduler.run(stop), webhooks.run(stop))
    finally:
        await database.close()


async def _probe_processes(
    settings: Settings, database: Database, database_file: Path | None
) -> int:
    if settings.probe_processes is not None:
        return settings.probe_processes
    if database_file is None:
        # On PostgreSQL several workers share the catalog, often on one machine, and each
        # would count all of it: three workers on two cores each starting a probe process
        # refreshed 1,550-2,411 OAuth2 tokens in 20 s where they refreshed over 2,500 with
        # none (tests/faults/test_oauth_rotation.py, a busy machine). They scale by running
        # more workers.
        log.info(
            "HEALTHGRAPH_PROBE_PROCESSES=auto on PostgreSQL: probing in this process (run more "
            "workers, or set HEALTHGRAPH_PROBE_PROCESSES, for more cores)"
        )
        return 0
    async with database.sessions() as session:
        asked = await asked_checks_per_second(session)
    cores = usable_cores()
    chosen = probe_processes_for(asked, cores)
    log.info(
        "HEALTHGRAPH_PROBE_PROCESSES=auto: the catalog asks for %.0f checks/s on %d cores: "
        "%d probe processes",
        asked,
        cores,
        chosen,
    )
    return chosen


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m healthgraph.worker",
        description="Run the heartbeat scheduler (settings from HEALTHGRAPH_* variables).",
    )
    defaults = SchedulerConfig()
    parser.add_argument(
        "--concurrency",
        type=int,
        help="probes in flight (default: HEALTHGRAPH_PROBES_IN_FLIGHT, by default "
        f"{PROBES_IN_FLIGHT_PER_PROCESS} for this process and as many per probe process)",
    )
    parser.add_argument("--per-host-concurrency", type=int, default=defaults.per_host_concurrency)
    parser.add_argument("--claim-batch", type=int, default=defaults.claim_batch)
    parser.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds)
    return parser


def config_from_args(args: argparse.Namespace) -> SchedulerConfig:
    names = {f.name for f in fields(SchedulerConfig)}
    return SchedulerConfig(**{k: v for k, v in vars(args).items() if k in names})


async def run_until_signalled(
    settings: Settings,
    *,
    config: SchedulerConfig | None = None,
    on_changes: OnChanges | None = None,
    observer: WorkerObserver | None = None,
    alongside: AbstractAsyncContextManager[object] | None = None,
) -> None:
    """`run_worker` until SIGTERM or SIGINT, then stop cleanly (for `healthgraph worker`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_worker(
            settings,
            stop,
            config=config,
            on_changes=on_changes,
            observer=observer,
            alongside=alongside,
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status as the CLI's: 0 stopped cleanly, 2 invalid settings or refused, 1 else."""
    args = _parser().parse_args(argv)
    try:
        config = config_from_args(args)
        settings = load_settings()
    except (HealthgraphError, ValueError) as exc:
        print(f"healthgraph: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        run_event_loop(run_until_signalled(settings, config=config))
    except (HealthgraphError, StoreError) as exc:
        print(f"healthgraph: {exc}", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as exc:
        # No SQL and no stack trace: the driver's first line says enough.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] or type(exc).__name__
        print(f"healthgraph: cannot reach the database: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
