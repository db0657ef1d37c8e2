"""`/metrics` over HTTP: the store families and a registry, gzip when asked, optional auth.

`metrics_endpoint` returns a Starlette endpoint to mount in the app; `metrics_app` wraps it in
a one-route app for a port of its own (the worker's self-metrics).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from exporter.collector import StoreCollector
from exporter.exposition import CONTENT_TYPE
from exporter.stream import exposition, gzipped, streamed
from store.metrics import MetricsSnapshot

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def metrics_endpoint(
    *,
    store: StoreCollector | None = None,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
) -> Endpoint:
    """A Starlette endpoint serving `store`'s families, then `registry`'s.

    `token`: when set, a request must carry `Authorization: Bearer <token>`, or Basic auth
    whose password is the token (any user name); others get 401.
    """
    expected = token.encode() if token else None

    async def metrics(request: Request) -> Response:
        if expected is not None and not authorized(request.headers.get("authorization"), expected):
            return PlainTextResponse(
                "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        snapshot: MetricsSnapshot | None = None
        if store is not None:
            # Everything that can fail reading the store fails here, before the first byte,
            # while a 503 can still be sent: the whole snapshot is read (in blocks) first.
            try:
                snapshot = await store.shared_snapshot()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                # The reason stays in the log: SQL and addresses are not for scrapers.
                log.warning("metrics: cannot read the store (%s)", type(exc).__name__)
                return PlainTextResponse("the store cannot be read\n", status_code=503)
        headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
        gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        if gzip:
            headers["Content-Encoding"] = "gzip"
        if request.method == "HEAD":
            # The same status and headers as a GET, without rendering a body nobody reads.
            return StreamingResponse(_nothing(), media_type=CONTENT_TYPE, headers=headers)
        # Streamed (chunked, no Content-Length): the body is never whole in memory.
        pieces = exposition(snapshot, registry)
        body = streamed(gzipped(pieces) if gzip else pieces)
        return StreamingResponse(body, media_type=CONTENT_TYPE, headers=headers)

    return metrics


def metrics_app(
    *,
    store: StoreCollector | None = None,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
) -> Starlette:
    """A Starlette app with only `/metrics` (GET and HEAD)."""
    endpoint = metrics_endpoint(store=store, registry=registry, token=token)
    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


def authorized(header: str | None, token: bytes) -> bool:
    """`Bearer <token>`, or `Basic` with the token as password; compared in constant time."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.encode(), token)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return False
        _, colon, password = decoded.partition(b":")
        return bool(colon) and hmac.compare_digest(password, token)
    return False


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (by name or `*`, with q > 0)."""
    admitted = False
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding == "gzip":
            return quality > 0
        admitted = quality > 0
    return admitted
