"""The HTTP session: pinned to guard-validated addresses, pooled per origin, with no cookies.

aiohttp drives the exchange and owns the sockets. It asks a resolver for the addresses of
every new connection, so a resolver that calls the guard makes the guard's answer the only
place a connection can go: no second lookup that DNS could rebind, and every redirect hop is
checked when its connection opens. aiohttp skips the resolver for address literals, so the
HTTP probe checks those itself on every hop.

Why aiohttp directly and not httpx on top of it: httpx's request and response objects cost
more CPU per check than the whole aiohttp exchange (bench/PROBES.md measured +65 % checks per
CPU-second without them), and the probe uses none of what they add.
"""

from __future__ import annotations

import functools
import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from probes.endpoint import DEFAULT_PORTS
from probes.guard import AddressGuard

USER_AGENT = "healthgraph-probe/0.1"
DEFAULT_CONNECTIONS_PER_ORIGIN = 20
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The system trust store, loaded once."""
    return ssl.create_default_context()


class GuardResolver(AbstractResolver):
    """aiohttp resolver that answers only with addresses the guard validated."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in await self._guard.resolve(host, port):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=_NUMERIC_FLAGS,
                )
            )
        if not results:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "no address of the requested family")
        return results

    async def close(self) -> None:
        return None


Origin = tuple[str, str, int]


def origin_of(url: URL) -> Origin:
    """(scheme, host, port) with the default port filled in."""
    scheme = url.scheme.lower()
    return (scheme, (url.host or "").lower(), url.port or DEFAULT_PORTS.get(scheme, 0))


class ProbeClients:
    """One aiohttp session for every probe of the process.

    Its connector keeps a pool of kept-alive connections per (host, port, TLS), at most
    `connections_per_origin` each (the scheduler passes its per-host limit, so no probe waits
    for a socket while it holds a global slot), and closes idle ones after aiohttp's
    keep-alive timeout: 100k distinct hosts cost sockets only while they are used. Only
    connections are shared: the cookie jar keeps nothing, and credentials travel per request.
    """

    def __init__(
        self,
        guard: AddressGuard,
        ssl_context: ssl.SSLContext | None = None,
        *,
        connections_per_origin: int = DEFAULT_CONNECTIONS_PER_ORIGIN,
    ) -> None:
        if connections_per_origin < 1:
            raise ValueError("connections_per_origin must be at least 1")
        self._guard = guard
        self._ssl_context = ssl_context or default_ssl_context()
        self._connections_per_origin = connections_per_origin
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use (inside the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = self._new_session()
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardResolver(self._guard),
            # The guard must see every new connection; a DNS cache would answer for it.
            use_dns_cache=False,
            ssl=self._ssl_context,
            limit=0,  # the scheduler bounds probes in flight; this bounds each origin
            limit_per_host=self._connections_per_origin,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # No proxies from the environment: a proxy would connect where the guard never looked.
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            # The probe's own deadline (asyncio.timeout) rules the whole exchange.
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
        )
