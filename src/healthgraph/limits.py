"""Request limits at the edge, checked before any work is done for the request.

`BodySizeLimit` refuses a body larger than allowed with 413: at once when Content-Length says
so (before authentication touches the database), and as soon as a streamed body passes the
limit otherwise. `JsonObjectBody` makes sure a GraphQL POST is a JSON object in UTF-8 before
the GraphQL server sees it, so a malformed request gets a clear 4xx, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_GRAPHQL_BODY_BYTES = 1_048_576
"""Far above any legitimate document: 2000 tokens and the largest inputs fit in a few kB."""
MAX_PUSH_BODY_BYTES = 16_384

ErrorBody = Callable[[str], dict[str, Any]]


def graphql_errors(message: str) -> dict[str, Any]:
    """The shape GraphQL clients read: `{"errors": [{"message": ...}]}`."""
    return {"errors": [{"message": message}]}


def push_error(message: str) -> dict[str, Any]:
    """The shape the push endpoints answer with: `{"error": ...}`."""
    return {"error": message}


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Let at most `max_bytes` of request body through to `app`; refuse more with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, render: ErrorBody = graphql_errors) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render

    def _refusal(self) -> JSONResponse:
        return JSONResponse(
            self.render(f"request body: larger than {self.max_bytes} bytes"), status_code=413
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if (
            declared is not None
            and declared.strip().isascii()
            and declared.strip().isdigit()
            and int(declared) > self.max_bytes
        ):
            await self._refusal()(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:  # pragma: no cover - apps here read the whole body before answering
                raise
            await self._refusal()(scope, receive, send)


class JsonObjectBody:
    """A POST to `app` must carry `Content-Type: application/json` and a UTF-8 JSON object.

    Everything else is refused here with a message that says what is wrong (415 or 400); the
    body, read once, is handed on to `app` unchanged.
    """

    def __init__(self, app: ASGIApp, render: ErrorBody = graphql_errors) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = Headers(scope=scope).get("content-type", "")
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type != "application/json":
            shown = repr(content_type) if content_type else "none"
            refusal = f"Content-Type: expected application/json, got {shown}"
            await JSONResponse(self.render(refusal), status_code=415)(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _object_problem(body)
        if problem is not None:
            await JSONResponse(self.render(problem), status_code=400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _object_problem(body: bytes) -> str | None:
    """What is wrong with `body` as a GraphQL request, or None when it is a JSON object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"request body: not valid UTF-8 (byte {exc.start})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"request body: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except ValueError:  # e.g. an integer literal longer than Python converts
        return "request body: not valid JSON (a number too long)"
    except RecursionError:
        return "request body: nested too deeply"
    if isinstance(value, list):
        return "request body: a JSON array (a batch); send one operation as a JSON object"
    if not isinstance(value, dict):
        return f'request body: expected a JSON object {{"query": ...}}, got {_json_type(value)}'
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string"
