"""Serving an ASGI app on a port of its own inside a running event loop (the worker's metrics).

uvicorn's `Server.serve` takes over SIGINT and SIGTERM while it runs; the worker already
handles those itself (healthgraph.worker.run_until_signalled), so this server leaves them be.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_SECONDS = 10.0


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the process's own signal handlers stay in charge


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[uvicorn.Server]:
    """Serve `app` on host:port until the block ends; raises OSError if it cannot bind."""
    # Bound here, not by uvicorn: uvicorn answers a bind error with sys.exit().
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"metrics-server-{port}")
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()  # e.g. the port is taken: raise that here
                    raise OSError(f"the metrics server on {host}:{port} stopped while starting")
                await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
