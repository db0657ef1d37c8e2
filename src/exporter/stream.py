"""A scrape's body as a stream: pieces rendered on one thread, joined to ~256 KiB, gzipped.

A 100k-connection exposition is ~100 MB of text. Built whole it lived in several copies (the
lines, the joined family, the joined body, the compressed body), and the allocator kept that
peak for good: RSS climbed scrape after scrape while the Python heap stayed small. Streamed,
a scrape holds its snapshot and one piece at a time.

One render thread for the process, not a worker per piece: each thread that allocates gets a
malloc arena of its own, and arenas are not given back; one thread also runs a stream's
pieces strictly in order, which `_close_in_render_thread` relies on.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest

from exporter.exposition import render_pieces
from store.metrics import MetricsSnapshot

PIECE_BYTES = 256 * 1024
"""Text joined per piece sent: large enough that the per-piece costs (a thread hand-off, an
ASGI message, a socket write) stay negligible, small enough to be nothing in RSS."""

GZIP_LEVEL = 1
"""Exposition text is repetitive: level 1 already shrinks it ~10x, at several times level 6's
speed (100k connections are ~100 MB of text)."""

T = TypeVar("T")


def _malloc_trim() -> Callable[[], object]:
    """glibc's malloc_trim(0), or nothing where the C library has none (musl, macOS).

    After a scrape the allocator keeps what it freed: glibc raises its mmap threshold when a
    large block is freed, so later pieces come from the heap, whose free pages stay resident.
    Trimming once per scrape gives them back (a few ms, on the render thread). Measured at
    100k connections on SQLite (bench/exporter_bench.py child, 12 scrapes): without it RSS
    went 101 -> 112-114 MiB (+11-13 %), with it 84 -> 87-90 MiB (+4-8 %)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


give_back_memory = _malloc_trim()

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _render_thread() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-render")
        return _executor


async def in_render_thread(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` on the render thread: rendering 100k connections is a good part of a
    second of pure Python; meanwhile the event loop (API, scheduler) keeps getting GIL slices."""
    return await asyncio.get_running_loop().run_in_executor(_render_thread(), function, *args)


def exposition(
    snapshot: MetricsSnapshot | None, registry: CollectorRegistry | None
) -> Iterator[bytes]:
    """The body of a scrape: `snapshot`'s families, then `registry`'s, in ~PIECE_BYTES pieces."""
    if snapshot is not None:
        yield from joined(render_pieces(snapshot))
    if registry is not None:
        # Collected when the stream gets here, on the render thread: the process metrics are
        # those of the end of the scrape (the registry locks itself).
        yield generate_latest(registry)


def joined(texts: Iterable[str], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """`texts` joined into UTF-8 pieces of at least `size` characters (the last may be less)."""
    held: list[str] = []
    length = 0
    for text in texts:
        held.append(text)
        length += len(text)
        if length >= size:
            yield "".join(held).encode()
            held.clear()
            length = 0
    if held:
        yield "".join(held).encode()


def gzipped(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """One gzip member over `pieces`, compressed as they come (empty outputs skipped)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for piece in pieces:
        if out := compressor.compress(piece):
            yield out
    yield compressor.flush()


AHEAD = 4
"""Pieces queued on the render thread ahead of the one being sent: the thread goes on
rendering while the event loop wakes up to send, instead of waiting for each wake-up (on a
busy machine a wake-up can take a scheduler time slice, and a scrape is ~400 pieces)."""


async def streamed(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`pieces` produced on the render thread, up to AHEAD pieces ahead of the consumer.

    Each piece is its own task on the one render thread, so the tasks of one stream run in
    order and concurrent streams take turns. If the consumer stops early (the scraper hung
    up), the iterator is closed on the render thread after the tasks already queued: a
    generator cannot be closed while another thread runs it.

    An exception while rendering ends the body early: the response is already started (200),
    so the scraper sees a truncated body (no final chunk), which Prometheus counts as a failed
    scrape. Only rendering can fail here: the store was read before the first byte.
    """
    loop = asyncio.get_running_loop()
    executor = _render_thread()
    queued = deque(loop.run_in_executor(executor, next, pieces, None) for _ in range(AHEAD))
    finished = False
    try:
        while (piece := await queued.popleft()) is not None:
            queued.append(loop.run_in_executor(executor, next, pieces, None))
            yield piece
        finished = True
    finally:
        if not finished:
            _close_in_render_thread(executor, pieces)
            executor.submit(give_back_memory)
    # The finished generator has let go of the snapshot: what it freed is given back before
    # the body ends, so a scrape leaves RSS as it found it. (The tasks still queued find the
    # generator exhausted and return None.)
    await loop.run_in_executor(executor, give_back_memory)


def _close_in_render_thread(executor: ThreadPoolExecutor, pieces: Iterator[bytes]) -> None:
    close = getattr(pieces, "close", None)
    if close is not None:
        # Queued behind the piece in progress (one worker, first in first out).
        executor.submit(close)
