"""Per-request state: who is asking, one database session, and the DataLoaders over it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_schema.errors import ClientError, PermissionDeniedError
from graphql_schema.links import LinkSigner
from probes.guard import AddressGuard
from probes.scheduler import CheckObserver
from probes.target import ProbeContext
from probes.token_broker import TokenBroker
from store.crypto import KeyRing
from store.domain import TokenScope
from store.events import Broadcaster

if TYPE_CHECKING:
    from graphql_schema.loaders import Loaders

T = TypeVar("T")

_RANK = {TokenScope.READ: 0, TokenScope.WRITE: 1, TokenScope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: a token's scope, and the one consumer it is limited to, if any."""

    scope: TokenScope = TokenScope.READ
    consumer_id: int | None = None
    anonymous: bool = False

    def require(self, needed: TokenScope) -> None:
        if _RANK[self.scope] < _RANK[needed]:
            raise PermissionDeniedError(needed.value.lower())

    def consumers(self, requested: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        """The consumer restriction to apply: the request's, narrowed to the token's tenant."""
        if self.consumer_id is None:
            return requested
        if requested is None:
            return (self.consumer_id,)
        return tuple(c for c in requested if c == self.consumer_id)

    def sees_consumer(self, consumer_id: int) -> bool:
        return self.consumer_id is None or self.consumer_id == consumer_id


def _no_key_ring() -> KeyRing:
    raise ClientError("credentials cannot be stored: no credential key is configured")


@dataclass
class Services:
    """What the composition root lends the schema (filled in by `healthgraph.app`)."""

    # The outbound policy every heartbeat URL is saved under (the probes' address guard).
    guard: AddressGuard = field(default_factory=AddressGuard)
    key_ring: Callable[[], KeyRing] = _no_key_ring
    link_signer: LinkSigner | None = None
    public_url: str = ""
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    # Set while the app runs: what check-now probes with.
    probe_context: ProbeContext | None = None
    credentials_key_ring: KeyRing | None = None
    # Told of every checkConnectionNow probe, as the scheduler tells it of its own.
    check_observer: CheckObserver | None = None
    # Access tokens for OAuth2 connections checked now (set while the app runs).
    token_broker: TokenBroker | None = None


class GraphQLContext:
    """One per request. Resolvers read through `read()`, which serialises use of the session:
    an AsyncSession runs one statement at a time, while DataLoaders dispatch concurrently."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        viewer: Viewer,
        services: Services | None = None,
    ) -> None:
        from graphql_schema.loaders import Loaders

        self.sessions = sessions
        self.viewer = viewer
        self.services = services or Services()
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()
        self.loaders: Loaders = Loaders(self)

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._lock:
            if self._session is None:
                self._session = self.sessions()
            return await query(self._session)

    async def write(self, command: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `command` in its own transaction; later reads see what it wrote."""
        async with self._lock:
            await self._end_read()
            async with self.sessions.begin() as session:
                result = await command(session)
        self._forget_loaded()
        return result

    async def refresh(self) -> None:
        """Forget what this context has read: the next read sees the database as it is now.

        A subscription lives as long as its websocket; each event must not see a stale snapshot.
        """
        async with self._lock:
            await self._end_read()
        self._forget_loaded()

    async def close(self) -> None:
        """End the request's reads and let go of what its loaders hold."""
        async with self._lock:
            await self._end_read()
        self._forget_loaded()

    async def _end_read(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _forget_loaded(self) -> None:
        from graphql_schema.loaders import Loaders

        # The loaders' functions hold this context, which holds them: a cycle that only the
        # collector could free, with every record the request loaded in it. Replaced, they are
        # freed as soon as the request's result no longer needs them.
        self.loaders = Loaders(self)


Info = strawberry.Info[GraphQLContext, None]
"""What every resolver is handed: the request's `GraphQLContext` and no root value."""
