"""Probe processes: one worker's checks spread over several cores.

One Python process uses one core, and probing is most of a check's CPU. A worker with probe
processes keeps claiming and writing in its own process (SQLite has exactly one writer, and
the claim is the worker's), and hands each claimed check to a child process that probes it
and sends the outcome back. Checks are routed by host, so each host's kept-alive connections
and its connection limit live in one child. Messages go over the child's stdin and stdout as
length-prefixed pickles, in batches: one write per event-loop turn, not one per check.

The child is `python -m probes.pool`: it reads its settings (allowlist, key ring, pool size)
as the first message, and exits when its stdin closes, so it never outlives its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from probes.check import check_connection
from probes.target import DEFAULT_BODY_CAP_BYTES, ProbeContext
from probes.token_broker import RefreshObserver, TokenBroker
from store.crypto import KeyRing
from store.domain import CheckOutcome, FailureReason
from store.engine import create_engine, session_factory
from store.scheduling import DueCheck

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
# Frames carry our own dataclasses between our own processes over a private pipe; nothing
# else can write to it, which is what makes unpickling safe here.
_PICKLE = pickle.HIGHEST_PROTOCOL


@dataclass(frozen=True, slots=True)
class ProbeProcessConfig:
    """What a child needs to probe: sent as its first message."""

    allow: tuple[str, ...]
    key_ring: KeyRing | None
    connections_per_origin: int
    body_cap_bytes: int = DEFAULT_BODY_CAP_BYTES
    # Where OAuth2 grants are (None: a connection with OAuth2 credentials fails to run).
    database_url: str | None = None


class _RefreshLog:
    """The child's refresh observer: what it refreshed, sent back with the next answers."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def refresh_finished(self, connector: str, result: str) -> None:
        self.pending.append((connector, result))

    def take(self) -> list[tuple[str, str]]:
        taken, self.pending = self.pending, []
        return taken


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        return pickle.loads(await reader.readexactly(_LENGTH.unpack(header)[0]))  # noqa: S301
    except asyncio.IncompleteReadError:
        return None


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=_PICKLE)
    return _LENGTH.pack(len(payload)) + payload


class _Batcher:
    """Collects messages and writes them as one frame at the end of the event-loop turn."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._items: list[Any] = []

    def add(self, item: Any) -> None:
        if not self._items:
            asyncio.get_running_loop().call_soon(self.flush)
        self._items.append(item)

    def flush(self) -> None:
        items, self._items = self._items, []
        if items and not self._writer.is_closing():
            self._writer.write(_frame(items))


def _host_of(due: DueCheck) -> str:
    url = due.heartbeat.get("url")
    try:
        return (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    except ValueError:
        return ""


class _Child:
    """One probe process and the checks it has not answered yet."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None
        assert process.stdout is not None
        self.outbox = _Batcher(process.stdin)
        self.reader = process.stdout
        self.waiting: dict[int, tuple[DueCheck, asyncio.Future[tuple[CheckOutcome, float]]]] = {}
        self.listener: asyncio.Task[None] | None = None


class ProbeProcesses:
    """Runs checks in `count` child processes; `check` has the shape of an in-process check.

    A child that dies fails the checks it held (CONNECT, "the probe process stopped") and is
    replaced, so the scheduler goes on; its log says so.
    """

    def __init__(
        self,
        count: int,
        config: ProbeProcessConfig,
        *,
        refresh_observer: RefreshObserver | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("probe processes must be at least 1")
        self._count = count
        self._config = config
        self._refresh_observer = refresh_observer
        self._children: list[_Child | None] = [None] * count
        self._next_id = 0
        self._closing = False

    async def start(self) -> None:
        for slot in range(self._count):
            self._children[slot] = await self._spawn(slot)

    async def check(self, due: DueCheck) -> tuple[CheckOutcome, float]:
        """Probe `due` in its host's child: (outcome, seconds the check took there)."""
        slot = zlib.crc32(_host_of(due).encode()) % self._count
        child = self._children[slot]
        if child is None or child.process.returncode is not None:
            child = self._children[slot] = await self._spawn(slot)
        self._next_id += 1
        future: asyncio.Future[tuple[CheckOutcome, float]] = (
            asyncio.get_running_loop().create_future()
        )
        child.waiting[self._next_id] = (due, future)
        child.outbox.add((self._next_id, due))
        return await future

    def _count_refreshes(self, refreshes: list[tuple[str, str]]) -> None:
        """The children's OAuth2 refreshes, counted where this process's metrics are."""
        if self._refresh_observer is None:
            return
        for connector, result in refreshes:
            try:
                self._refresh_observer.refresh_finished(connector, result)
            except Exception:  # metrics never stop a check
                log.exception("refresh observer failed")

    def pids(self) -> list[int]:
        """The running probe processes (for the worker's log and for tools)."""
        return [
            child.process.pid
            for child in self._children
            if child is not None and child.process.returncode is None
        ]

    async def aclose(self) -> list[int]:
        """Close every child's stdin (it finishes what it holds and exits) and wait for it;
        their exit codes (a code other than 0 is logged)."""
        self._closing = True
        children = [child for child in self._children if child is not None]
        for child in children:
            assert child.process.stdin is not None
            child.outbox.flush()
            child.process.stdin.close()
        for child in children:
            try:
                async with asyncio.timeout(10):
                    await child.process.wait()
            except TimeoutError:
                child.process.kill()
                await child.process.wait()
            if child.listener is not None:
                await child.listener
        self._children = [None] * self._count
        codes = []
        for child in children:
            code = child.process.returncode
            assert code is not None  # waited for above
            if code != 0:
                log.warning("probe process %d exited with %d", child.process.pid, code)
            codes.append(code)
        return codes

    async def __aenter__(self) -> ProbeProcesses:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _spawn(self, slot: int) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "probes.pool",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # The child's log lines go where the worker's go.
            stderr=None,
        )
        child = _Child(process)
        assert process.stdin is not None
        process.stdin.write(_frame(self._config))
        child.listener = asyncio.create_task(
            self._listen(slot, child), name=f"probe-process-{slot}"
        )
        return child

    async def _listen(self, slot: int, child: _Child) -> None:
        while (answers := await _read_frame(child.reader)) is not None:
            for request_id, outcome, seconds, refreshes in answers:
                self._count_refreshes(refreshes)
                entry = child.waiting.pop(request_id, None)
                if entry is not None and not entry[1].done():
                    entry[1].set_result((outcome, seconds))
        code = await child.process.wait()
        if child.waiting and not self._closing:
            log.error(
                "probe process %d (pid %d) stopped with status %s holding %d checks; "
                "they count as failed and a new process takes its place",
                slot,
                child.process.pid,
                code,
                len(child.waiting),
            )
        lost = CheckOutcome(
            success=False,
            checked_at=datetime.now(UTC),
            latency_ms=0.0,
            failure_reason=FailureReason.CONNECT,
            error="cannot run the check: the probe process stopped unexpectedly; "
            "see the worker log",
        )
        for _, future in child.waiting.values():
            if not future.done():
                future.set_result((lost, 0.0))
        child.waiting.clear()
        if self._children[slot] is child:
            self._children[slot] = None  # respawned on the next check routed here


# --- the child --------------------------------------------------------------------------------


async def _serve_checks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    config: ProbeProcessConfig | None = await _read_frame(reader)
    if config is None:
        return
    answers = _Batcher(writer)
    running: set[asyncio.Task[None]] = set()

    refreshes = _RefreshLog()

    async def run(
        request_id: int, due: DueCheck, context: ProbeContext, tokens: TokenBroker | None
    ) -> None:
        started = time.perf_counter()
        outcome = await check_connection(due, context, config.key_ring, tokens=tokens)
        answers.add((request_id, outcome, time.perf_counter() - started, refreshes.take()))

    async with (
        ProbeContext.create(
            allow=config.allow,
            connections_per_origin=config.connections_per_origin,
            body_cap_bytes=config.body_cap_bytes,
        ) as context,
        _token_broker(config, refreshes) as tokens,
    ):
        while (batch := await _read_frame(reader)) is not None:
            for request_id, due in batch:
                task = asyncio.create_task(run(request_id, due, context, tokens))
                running.add(task)
                task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(set(running))
    await asyncio.sleep(0)  # the last batch of answers is written at the end of a turn
    await writer.drain()


@contextlib.asynccontextmanager
async def _token_broker(
    config: ProbeProcessConfig, observer: _RefreshLog
) -> AsyncIterator[TokenBroker | None]:
    """The child's own way to the grants: its own engine (a process cannot share one)."""
    if config.database_url is None or config.key_ring is None:
        yield None
        return
    engine = create_engine(config.database_url, pool_size=2, max_overflow=8)
    try:
        yield TokenBroker(session_factory(engine), config.key_ring, observer=observer)
    finally:
        await engine.dispose()


async def _child_main(frames_out: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(frames_out, "wb")
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:
        await _serve_checks(reader, writer)
    finally:
        # Drain, then close: a write pipe's FlowControlMixin protocol has no close waiter,
        # so `wait_closed()` raises NotImplementedError on every stop.
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a probe process (started by `ProbeProcesses`, never by hand)."""
    # Frames get stdout to themselves: whatever else prints goes to stderr, not into a frame.
    frames_out = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        runner = asyncio.Runner()
    with runner:
        runner.run(_child_main(frames_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
