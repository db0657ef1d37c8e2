"""The headers every HTML page sends, and a wrapper that adds headers to any ASGI answer.

No page runs an inline script and none may be framed: `Content-Security-Policy` refuses
both, `X-Frame-Options` says the same to browsers older than `frame-ancestors`, and
`X-Content-Type-Options: nosniff` keeps a browser from running a file as what it is not.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_LOCKED_DOWN = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def style_hash(style: str) -> str:
    """The CSP source that admits exactly this inline <style> element's text."""
    digest = hashlib.sha256(style.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def page_headers(content_security_policy: str) -> dict[str, str]:
    """The headers of an HTML page under `content_security_policy`."""
    return {
        "Content-Security-Policy": content_security_policy,
        **NOSNIFF,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def policy(*directives: str) -> str:
    """A Content-Security-Policy: nothing allowed by default, then `directives`, then no
    <base>, no form submissions and no framing."""
    return "; ".join(("default-src 'none'", *directives, _LOCKED_DOWN))


class WithHeaders:
    """`app`, with `headers` added to every HTTP response it sends."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
