"""Live updates: which connections changed, fanned out to every subscriber of every API process.

In one process (SQLite) a change is handed to local subscribers directly. On PostgreSQL it goes
through NOTIFY, so a change written by a worker reaches every API replica that LISTENs; no
home-made cluster protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any

from sqlalchemy.engine import make_url

from store.engine import async_url

log = logging.getLogger(__name__)

CHANNEL = "healthgraph_connection_changed"
QUEUE_LIMIT = 10_000
_PAYLOAD_LIMIT = 7000  # NOTIFY payloads must stay under 8000 bytes
_RECONNECT_SECONDS = 2.0


class Broadcaster:
    """Fan-out to the subscribers of this process."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[int]] = set()
        self._joined = asyncio.Event()

    @property
    def subscribers(self) -> int:
        """How many subscribers of this process listen now."""
        return len(self._queues)

    async def wait_for_subscribers(self, count: int) -> None:
        """Return once at least `count` subscribers listen: a barrier for whoever must not
        publish before a subscription is in place (tests, tools)."""
        while len(self._queues) < count:
            self._joined.clear()
            await self._joined.wait()

    async def start(self) -> None:
        """Begin receiving changes published elsewhere (nothing to do in one process)."""

    async def stop(self) -> None:
        """Stop receiving."""

    async def publish(self, connection_ids: Iterable[int]) -> None:
        """Tell every subscriber (of every process sharing the database) these changed."""
        self._deliver(connection_ids)

    def _deliver(self, connection_ids: Iterable[int]) -> None:
        ids = list(connection_ids)
        for queue in self._queues:
            for connection_id in ids:
                with suppress(asyncio.QueueFull):
                    # A subscriber that stopped reading loses events, not the whole process.
                    queue.put_nowait(connection_id)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[int]]:
        queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.add(queue)
        self._joined.set()
        try:
            yield queue
        finally:
            self._queues.discard(queue)


class PostgresBroadcaster(Broadcaster):
    """NOTIFY on publish, LISTEN for everything published by any process."""

    def __init__(self, url: str, *, listen: bool = True) -> None:
        super().__init__()
        target = async_url(url).set(drivername="postgresql")
        self._dsn = target.render_as_string(hide_password=False)
        self._listen = listen
        self._connection: Any = None
        self._lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        await self._connect()
        if self._listen:
            self._keeper = asyncio.create_task(self._keep_listening())

    async def _connect(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._dsn)
        if self._listen:
            await connection.add_listener(CHANNEL, self._on_notify)
        self._connection = connection

    async def _keep_listening(self) -> None:
        # A restarted PostgreSQL drops the LISTEN; come back by ourselves.
        while not self._stopping:
            await asyncio.sleep(_RECONNECT_SECONDS)
            if self._connection is None or self._connection.is_closed():
                try:
                    await self._connect()
                    log.info("listening for connection changes again")
                except Exception as exc:
                    log.warning("cannot listen for connection changes yet: %s", type(exc).__name__)

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._deliver(int(part) for part in payload.split(",") if part.isdigit())

    async def stop(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            self._keeper.cancel()
            with suppress(asyncio.CancelledError):
                await self._keeper
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
        self._connection = None

    async def publish(self, connection_ids: Iterable[int]) -> None:
        ids = [str(i) for i in connection_ids]
        chunks: list[str] = []
        current = ""
        for part in ids:
            if current and len(current) + len(part) + 1 > _PAYLOAD_LIMIT:
                chunks.append(current)
                current = ""
            current = f"{current},{part}" if current else part
        if current:
            chunks.append(current)
        async with self._lock:
            if self._connection is None or self._connection.is_closed():
                await self._connect()
            for chunk in chunks:
                await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, chunk)


def broadcaster_for(url: str, *, listen: bool = True) -> Broadcaster:
    """The broadcaster that fits the database: PostgreSQL fans out across processes."""
    if make_url(str(async_url(url))).get_backend_name() == "postgresql":
        return PostgresBroadcaster(url, listen=listen)
    return Broadcaster()
