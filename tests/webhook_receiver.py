"""A webhook receiver as strict as a real one: every delivery is verified with the Standard
Webhooks reference library (`standardwebhooks` from PyPI, not our code), and it can misbehave
the ways real receivers do: answer 503 for a while, hang, close the socket."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    message_id: str
    type: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """`secret`: the whsec_ secret deliveries must be signed with. `failures`: how many
    requests to answer with `failure` first ("503", "hang" or "close")."""

    secret: str
    failures: int = 0
    failure: str = "503"
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests failed verification
    requests: int = 0
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hooks"))

    def counts(self) -> Counter[str]:
        """How many times each webhook-id was accepted."""
        return Counter(item.message_id for item in self.received)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        if self.failures > 0:
            self.failures -= 1
            if self.failure == "hang":
                await asyncio.sleep(5)  # past any timeout the tests give
            if self.failure == "close":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)  # never sent: the socket is gone
            return web.Response(status=503, text="down for maintenance")
        headers = dict(request.headers)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            self.refused.append(str(exc))
            return web.Response(status=401, text="bad signature")
        assert json.loads(body) == payload
        self.received.append(
            Received(request.headers["webhook-id"], payload["type"], payload, headers)
        )
        self.arrived.set()
        return web.Response(status=204)
