"""Targets for the demo's heartbeats: healthy, failing, slow, flapping and auth-failing."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SLOW_SECONDS = 2.0
FLAP_PERIOD_SECONDS = 60


async def healthy(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "account": request.path_params.get("account")})


async def failing(request: Request) -> JSONResponse:
    return JSONResponse({"error": "internal error"}, status_code=500)


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(SLOW_SECONDS)
    return JSONResponse({"status": "ok", "slow": True})


async def flapping(request: Request) -> JSONResponse:
    # Up one minute, down the next: the same answer for every caller in a given minute.
    if int(time.time() // FLAP_PERIOD_SECONDS) % 2 == 0:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"error": "service unavailable"}, status_code=503)


async def unauthorized(request: Request) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_token"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def demo_routes() -> list[Route]:
    routes = []
    for name, endpoint in (
        ("healthy", healthy),
        ("failing", failing),
        ("slow", slow),
        ("flapping", flapping),
        ("unauthorized", unauthorized),
    ):
        routes.append(Route(f"/demo/{name}", endpoint, methods=["GET", "HEAD"]))
        routes.append(Route(f"/demo/{name}/{{account}}", endpoint, methods=["GET", "HEAD"]))
    return routes
