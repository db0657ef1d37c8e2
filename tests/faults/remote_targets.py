"""Targets in a process of their own, as real ones are on other machines, so that a test of
the scheduler's timing measures the scheduler and not the test's servers sharing its event loop.

    python -m tests.faults.remote_targets HOST [HOST ...]

Serves `GET /fast/{n}` (200 "ok" at once) on 127.0.0.1, and on each HOST a server that accepts,
reads until the client hangs up and never answers. Prints one JSON line, {"healthy": base URL,
"hanging": ["host:port", ...]}, and runs until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from aiohttp import web


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _fast(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _serve(hosts: Sequence[str]) -> None:
    app = web.Application()
    app.router.add_get("/fast/{n}", _fast)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    healthy_port = runner.addresses[0][1]
    hanging = [await asyncio.start_server(_never_answer, host, 0, backlog=1024) for host in hosts]
    print(
        json.dumps(
            {
                "healthy": f"http://127.0.0.1:{healthy_port}",
                "hanging": [
                    f"{host}:{server.sockets[0].getsockname()[1]}"
                    for host, server in zip(hosts, hanging, strict=True)
                ],
            }
        ),
        flush=True,
    )
    # Until the test closes our stdin (or dies, which closes it too).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in hanging:
        server.close()
    await runner.cleanup()


def main(argv: Sequence[str]) -> int:
    asyncio.run(_serve(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
