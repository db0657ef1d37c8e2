"""Async engines and sessions from the URLs users write."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from store.errors import DatabaseUrlError

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> URL:
    """Turn `sqlite:///x.db` or `postgresql://…` (as users write them) into an async-driver URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(url, "not a URL") from exc
    # Split the name ourselves: asking SQLAlchemy for the driver would import the dialect.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise DatabaseUrlError(url, f"unsupported database {backend!r}")
    if backend == "sqlite" and driver not in ("", "pysqlite", "aiosqlite"):
        raise DatabaseUrlError(url, f"unsupported SQLite driver {driver!r}")
    if backend == "sqlite" and not parsed.database:
        raise DatabaseUrlError(url, "an in-memory SQLite database is not shared; name a file")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def is_sqlite(url: str) -> bool:
    return async_url(url).drivername.startswith("sqlite")


# SQLite's own lower() folds ASCII letters only ('É' stays 'É'); searches with other letters
# fold through this one (store.queries), as PostgreSQL's lower() does.
UNICODE_LOWER = "unicode_lower"


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.create_function(UNICODE_LOWER, 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API, exporter) run while the scheduler writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# SQLAlchemy's own defaults for a QueuePool, written out: the pool's capacity is ours to know
# (`pool_slots`), not something to read back from the pool's private state.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10

_pool_capacity: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def _capacity(options: dict[str, Any]) -> int:
    """Connections a pool built from `options` holds at most; 0 for a pool that keeps none or
    shares one (NullPool, StaticPool, ...)."""
    poolclass = options.get("poolclass")
    if poolclass is not None and not issubclass(poolclass, QueuePool):
        return 0
    options.setdefault("pool_size", DEFAULT_POOL_SIZE)
    options.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
    # Unbounded overflow (-1) counts as the kept size: nothing beyond it is promised.
    return int(options["pool_size"]) + max(int(options["max_overflow"]), 0)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for `url`; SQLite files get WAL and foreign keys, their folder is created."""
    target = async_url(url)
    capacity = _capacity(options)
    if target.get_backend_name() == "sqlite":
        assert target.database is not None
        Path(target.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(target, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _pool_capacity[engine.sync_engine] = capacity
        return engine
    options.setdefault("pool_pre_ping", True)
    # JIT compiles the overview's correlated subplans for ~200 ms each time, more than they
    # run; and prepared statements' generic plans made the CSV batches 5x slower than custom
    # ones (measured in bench/graphql_bench.py).
    options.setdefault(
        "connect_args",
        {"server_settings": {"jit": "off", "plan_cache_mode": "force_custom_plan"}},
    )
    engine = create_async_engine(target, **options)
    _pool_capacity[engine.sync_engine] = capacity
    return engine


_slots: weakref.WeakKeyDictionary[Engine, dict[int, threading.BoundedSemaphore]] = (
    weakref.WeakKeyDictionary()
)
_slots_lock = threading.Lock()


def pool_slots(bind: object, connections_each: int) -> threading.BoundedSemaphore:
    """Slots for work that holds `connections_each` pooled connections at once, on the engine
    of `bind` (an AsyncEngine or AsyncSession.bind).

    slots x connections_each <= the pool's capacity, so holders of slots together can hold
    every connection they need at once and none waits for a connection another holds; every
    other reader holds one connection and needs no second one to release it, so no wait can
    close a cycle. An engine not built by `create_engine` gets no slot. A threading semaphore:
    callers only ever try to acquire without blocking, from any event loop.
    """
    engine = bind.sync_engine if isinstance(bind, AsyncEngine) else None
    capacity = _pool_capacity.get(engine, 0) if engine is not None else 0
    with _slots_lock:
        per_size = _slots.setdefault(engine, {}) if engine is not None else {}
        slots = per_size.get(connections_each)
        if slots is None:
            slots = per_size[connections_each] = threading.BoundedSemaphore(
                capacity // connections_each
            )
        return slots


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_TAKE_WRITE_LOCK = text("UPDATE connections SET id = id WHERE 1 = 0")


async def begin_writing(session: AsyncSession) -> AsyncConnection:
    """The session's connection, in a transaction that holds SQLite's write lock from here to
    the commit (PostgreSQL: the connection as it is).

    pysqlite opens a transaction only at the first INSERT, UPDATE or DELETE. Before that, reads
    see whatever was committed last, and a SAVEPOINT opens a transaction of its own, which its
    RELEASE then commits: several commands in one session would each commit alone, and a
    refusal after the first could not undo it. An UPDATE that matches nothing opens the real
    transaction (waiting up to busy_timeout for the lock) so that what follows is one.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.execute(_TAKE_WRITE_LOCK)
    return connection
