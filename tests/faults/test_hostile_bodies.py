"""Targets that answer badly on purpose: a 200 MB body, a gzip bomb, invalid and pathological
JSON, bytes trickled into the headers. The probe caps what it reads, times out, classifies the
failure, and its memory stays flat however big the answer claims to be.

tests/probes/test_http_probe.py covers a 50 MB body's time, HTML where JSON was expected and a
trickled body; these are the cases it does not.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes import ProbeContext, ProbeResult, ProbeTarget, probe_http
from store.domain import FailureReason, HeartbeatSpec, ProbeKind

LOOPBACK = ["127.0.0.1/32"]
MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)
PEAK_BOUND = 4 * MB  # Python allocations during one probe; the default cap is 64 KB


async def _stream(
    request: web.Request, size: int, chunk: bytes, **headers: str
) -> web.StreamResponse:
    """`size` bytes of `chunk`, streamed; stops quietly when the client hangs up."""
    response = web.StreamResponse(headers=headers)
    response.content_length = size
    await response.prepare(request)
    try:
        for _ in range(size // len(chunk)):
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        pass
    return response


async def _giant(request: web.Request) -> web.StreamResponse:
    return await _stream(request, 200 * MB, CHUNK, **{"Content-Type": "text/plain"})


async def _giant_json(request: web.Request) -> web.StreamResponse:
    # Valid JSON's opening, then 200 MB of one string: only a reader that reads it all could
    # find the end.
    return await _stream(
        request, 200 * MB, b'{"status": "' + CHUNK[12:], **{"Content-Type": "application/json"}
    )


_BOMB = gzip.compress(b"\0" * (200 * MB), compresslevel=9)  # ~200 KB on the wire


async def _gzip_bomb(request: web.Request) -> web.Response:
    return web.Response(
        body=_BOMB, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"}
    )


async def _truncated_json(request: web.Request) -> web.Response:
    return web.Response(
        body=b'{"status": {"state": "up", "checks": [1, 2', content_type="application/json"
    )


async def _deep_json(request: web.Request) -> web.Response:
    # 20,000 nested arrays: valid JSON, under the 64 KB cap, and far deeper than Python's
    # recursion limit (json.loads raises RecursionError on it).
    return web.Response(body=b"[" * 20_000 + b"]" * 20_000, content_type="application/json")


async def _not_utf8(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status": "\xff\xfe up"}', content_type="application/json")


@dataclass
class Hostile:
    server: TestServer
    trickle_port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    app = web.Application()
    app.router.add_get("/giant", _giant)
    app.router.add_get("/giant-json", _giant_json)
    app.router.add_get("/gzip-bomb", _gzip_bomb)
    app.router.add_get("/truncated-json", _truncated_json)
    app.router.add_get("/deep-json", _deep_json)
    app.router.add_get("/not-utf8", _not_utf8)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A status line, then one header byte every 50 ms, never the blank line."""
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            for byte in b"X-Slow: " + b"z" * 400:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    raw = await asyncio.start_server(trickle, "127.0.0.1", 0)
    yield Hostile(server, raw.sockets[0].getsockname()[1])
    raw.close()
    await server.close()


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    async with ProbeContext.create(allow=LOOPBACK) as probe_context:
        yield probe_context


def target(url: str, **spec: Any) -> ProbeTarget:
    spec.setdefault("timeout_seconds", 3.0)
    return ProbeTarget(HeartbeatSpec(kind=ProbeKind.HTTP, url=url, **spec))


def outcome(result: ProbeResult) -> tuple[bool, FailureReason | None, int | None, str | None]:
    return (result.success, result.failure_reason, result.http_status, result.error)


async def measured(
    url: str, context: ProbeContext, **spec: object
) -> tuple[ProbeResult, int, float]:
    """The result, the peak of Python allocations during the probe, and its seconds."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = await probe_http(target(url, **spec), context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, time.perf_counter() - started


async def test_a_200_mb_body_is_capped_and_memory_stays_flat(
    hostile: Hostile, context: ProbeContext
) -> None:
    result, peak, seconds = await measured(hostile.url("/giant"), context, body_regex="y")
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "body does not match /y/ (only the first part of the body was read)",
    )
    assert peak < PEAK_BOUND
    assert seconds < 2


async def test_a_200_mb_json_body_is_capped_and_reported_as_cut_short(
    hostile: Hostile, context: ProbeContext
) -> None:
    result, peak, seconds = await measured(
        hostile.url("/giant-json"), context, json_path="$.status"
    )
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "body is not valid JSON (only the first part of the body was read)",
    )
    assert peak < PEAK_BOUND
    assert seconds < 2


async def test_a_gzip_bomb_is_capped_after_decoding(
    hostile: Hostile, context: ProbeContext
) -> None:
    result, peak, seconds = await measured(hostile.url("/gzip-bomb"), context, body_regex="y")
    # 200 MB once inflated: the cap counts decoded bytes, not what crossed the wire.
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "body does not match /y/ (only the first part of the body was read)",
    )
    assert peak < PEAK_BOUND
    assert seconds < 2


async def test_truncated_json_is_assertion(hostile: Hostile, context: ProbeContext) -> None:
    result, _, _ = await measured(hostile.url("/truncated-json"), context, json_path="$.status")
    assert outcome(result) == (False, FailureReason.ASSERTION, 200, "body is not valid JSON")


async def test_json_nested_past_the_recursion_limit_is_assertion_not_a_crash(
    hostile: Hostile, context: ProbeContext
) -> None:
    result, _, _ = await measured(hostile.url("/deep-json"), context, json_path="$.status")
    assert outcome(result) == (False, FailureReason.ASSERTION, 200, "body is not valid JSON")


async def test_json_that_is_not_utf8_is_assertion(hostile: Hostile, context: ProbeContext) -> None:
    result, _, _ = await measured(hostile.url("/not-utf8"), context, json_path="$.status")
    assert outcome(result) == (False, FailureReason.ASSERTION, 200, "body is not valid JSON")


async def test_headers_trickled_past_the_timeout_are_timeout(
    hostile: Hostile, context: ProbeContext
) -> None:
    url = f"http://127.0.0.1:{hostile.trickle_port}/"
    result, _, seconds = await measured(url, context, timeout_seconds=0.5)
    assert outcome(result) == (
        False,
        FailureReason.TIMEOUT,
        None,
        f"no complete answer from 127.0.0.1:{hostile.trickle_port} within 0.5 s",
    )
    assert seconds < 1.5


async def test_fifty_hostile_answers_at_once_keep_memory_flat(
    hostile: Hostile, context: ProbeContext
) -> None:
    """25 giant bodies and 25 gzip bombs in flight together, three times over: bounded by 50
    caps, not by the 10 GB announced, and no round keeps anything the round before did not."""

    async def round_of_fifty() -> list[ProbeResult]:
        return await asyncio.gather(
            *(
                probe_http(target(hostile.url(path), body_regex="y"), context)
                for path in ["/giant", "/gzip-bomb"] * 25
            )
        )

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        retained = []
        for _ in range(3):
            results = await round_of_fifty()
            retained.append(tracemalloc.get_traced_memory()[0] - before)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert {outcome(result) for result in results} == {
        (
            False,
            FailureReason.ASSERTION,
            200,
            "body does not match /y/ (only the first part of the body was read)",
        )
    }
    # The bound is 50 caps plus the socket buffers of both sides (the servers run in this
    # process too): measured about 14 MB.
    assert peak - before < 32 * MB
    # The first round warms pools and caches (about 1.3 MB); later rounds add nothing to it.
    assert retained[2] - retained[0] < 256 * 1024, retained
