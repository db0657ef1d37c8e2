"""/metrics streamed: the same bytes as the whole rendering, gzip included, on both backends,
over a real HTTP server; a store that cannot be read is still a 503 (nothing was sent yet);
block boundaries lose and repeat nothing."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import metrics_app, serving
from exporter.collector import StoreCollector
from exporter.exposition import render_store
from exporter.stream import PIECE_BYTES, exposition, streamed
from healthgraph.database import Database, connect
from store.metrics import BLOCK_ROWS, metrics_snapshot
from tests.exporter.bulk import many_connections
from tests.exporter.graph import NOW, known_graph
from tests.servers import free_port

# More than two blocks of connections, and several pieces of text.
MANY = 2 * BLOCK_ROWS + 100


async def scrape(db: Database, encoding: str) -> tuple[httpx.Response, bytes]:
    """One GET /metrics (store families only) over HTTP on a real server; the raw body."""
    port = free_port()
    app = metrics_app(store=StoreCollector(db.sessions, clock=lambda: NOW))
    async with serving(app, "127.0.0.1", port), httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{port}/metrics"
        headers = {"Accept-Encoding": encoding}
        async with client.stream("GET", url, headers=headers) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, raw


async def whole_rendering(db: Database) -> bytes:
    """The exposition rendered whole, from a snapshot read in one block."""
    async with db.sessions() as session:
        return render_store(await metrics_snapshot(session, NOW, block_rows=10**9))


async def test_streamed_body_is_the_whole_rendering_byte_for_byte(db: Database) -> None:
    await known_graph(db)
    await many_connections_after_the_graph(db)
    response, raw = await scrape(db, "identity")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    expected = await whole_rendering(db)
    assert len(expected) > 4 * PIECE_BYTES  # several pieces
    assert raw == expected


async def test_streamed_gzip_decompresses_to_the_same_bytes(db: Database) -> None:
    await many_connections(db, MANY)
    response, raw = await scrape(db, "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["transfer-encoding"] == "chunked"
    expected = await whole_rendering(db)
    assert len(raw) < len(expected) / 3
    assert gzip.decompress(raw) == expected


@pytest.mark.parametrize("count", [0, 1, BLOCK_ROWS, BLOCK_ROWS + 1])
async def test_block_boundaries_lose_and_repeat_nothing(db: Database, count: int) -> None:
    await many_connections(db, count)
    _, raw = await scrape(db, "identity")
    parsed = {family.name: family for family in text_string_to_metric_families(raw.decode())}
    everyone = list(range(1, count + 1))

    def ids(family: str, label: str) -> list[int]:
        return [int(sample.labels[label]) for sample in parsed[family].samples]

    # Families with a sample for every connection (or use), in id order.
    for family in (
        "healthgraph_connection_check_interval_seconds",
        "healthgraph_connection_consecutive_failures",
        "healthgraph_connection_info",
        "healthgraph_connection_last_success_timestamp_seconds",
    ):
        assert ids(family, "connection_id") == everyone, family
    assert ids("healthgraph_use_up", "use_id") == everyone
    # And those with gaps: exactly the rows that have a value.
    checked = [i for i in everyone if i % 4]
    assert ids("healthgraph_connection_last_checked_timestamp_seconds", "connection_id") == checked
    assert parsed["healthgraph_consumers"].samples[0].value == -(-count // 3)


async def test_an_unreadable_store_is_a_503_before_any_byte(tmp_path: Path) -> None:
    # A real SQLite file without the schema: the first statement fails.
    database = connect(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        response, raw = await scrape(database, "gzip")
    finally:
        await database.close()
    assert response.status_code == 503
    assert raw == b"the store cannot be read\n"


async def test_snapshot_read_in_blocks_equals_one_read_whole(db: Database) -> None:
    await known_graph(db)
    await many_connections_after_the_graph(db)
    async with db.sessions() as session:
        blocks = await metrics_snapshot(session, NOW)
    async with db.sessions() as session:
        whole = await metrics_snapshot(session, NOW, block_rows=10**9)
    assert len(blocks.connections.blocks) == -(-len(whole.connections) // BLOCK_ROWS) > 2
    assert list(blocks.connections) == list(whole.connections)
    assert list(blocks.uses) == list(whole.uses)
    assert blocks.consumers == whole.consumers


async def many_connections_after_the_graph(db: Database) -> None:
    """MANY more connections, beside the known graph's (hostile names and all)."""
    await many_connections(db, MANY, offset=1000)


# --- the stream itself ---------------------------------------------------------------------------


async def test_pieces_are_bounded_and_join_to_the_rendering(db: Database) -> None:
    await many_connections(db, MANY)
    async with db.sessions() as session:
        snapshot = await metrics_snapshot(session, NOW)
    pieces = [piece async for piece in streamed(exposition(snapshot, None))]
    assert b"".join(pieces) == render_store(snapshot)
    assert len(pieces) > 4
    # At least PIECE_BYTES each but the last; at most that plus one block's family text.
    assert all(len(piece) >= PIECE_BYTES for piece in pieces[:-1])
    assert max(len(piece) for piece in pieces) < PIECE_BYTES + 1_000_000


async def test_a_consumer_hanging_up_closes_the_pieces_on_the_render_thread() -> None:
    closed = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def pieces() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 10
        finally:
            loop.call_soon_threadsafe(closed.set_result, True)

    stream = streamed(pieces())
    assert await anext(stream) == b"x" * 10
    await stream.aclose()
    assert await asyncio.wait_for(closed, 5)


async def test_a_failure_while_rendering_ends_the_body_early() -> None:
    # After the first byte no status can change: the body stops short (a truncated scrape,
    # which Prometheus counts as failed), and the error propagates to the server.
    def pieces() -> Iterator[bytes]:
        yield b"first\n"
        raise KeyError("a connector that is not there")

    stream = streamed(pieces())
    assert await anext(stream) == b"first\n"
    with pytest.raises(KeyError):
        await anext(stream)
