"""What to probe (`ProbeTarget`) and what probing needs (`ProbeContext`)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from probes.clients import DEFAULT_CONNECTIONS_PER_ORIGIN, ProbeClients
from probes.guard import AddressGuard
from probes.result import Credentials
from store.domain import HeartbeatSpec

DEFAULT_BODY_CAP_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    spec: HeartbeatSpec
    credentials: Credentials | None = None


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """Shared by every probe of a process: the guard, the pooled clients and the limits.

    `ssl_context` replaces the system trust store (tests trust a local CA with it); build
    with `create` so the clients use the same guard and trust store as the TCP/TLS probes.
    """

    guard: AddressGuard
    clients: ProbeClients
    body_cap_bytes: int = DEFAULT_BODY_CAP_BYTES
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def create(
        cls,
        allow: Sequence[str] = (),
        *,
        ssl_context: ssl.SSLContext | None = None,
        body_cap_bytes: int = DEFAULT_BODY_CAP_BYTES,
        connections_per_origin: int = DEFAULT_CONNECTIONS_PER_ORIGIN,
    ) -> ProbeContext:
        """`connections_per_origin`: the pool size per origin; give it the scheduler's
        per-host limit so no probe waits for a socket while it holds a global slot."""
        guard = AddressGuard(allow)
        clients = ProbeClients(
            guard, ssl_context=ssl_context, connections_per_origin=connections_per_origin
        )
        return cls(guard, clients, body_cap_bytes, ssl_context)

    async def aclose(self) -> None:
        await self.clients.aclose()

    async def __aenter__(self) -> ProbeContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
