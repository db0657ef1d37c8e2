"""HTTP clients pinned to guard-validated addresses, pooled per target host, with no cookies.

httpx drives the exchange; aiohttp (through httpx-aiohttp) owns the sockets. aiohttp asks a
resolver for the addresses of every new connection, so a resolver that calls the guard makes
the guard's answer the only place a connection can go: no second lookup that DNS could
rebind, and every redirect hop is checked when its connection opens. aiohttp skips the
resolver for address literals, so a request hook checks those on every hop instead.
"""

from __future__ import annotations

import functools
import socket
import ssl
from http.client import HTTPResponse
from http.cookiejar import Cookie, CookieJar
from urllib.request import Request

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from probes.endpoint import DEFAULT_PORTS
from probes.guard import AddressGuard

USER_AGENT = "healthgraph-probe/0.1"
CONNECTIONS_PER_HOST = 10
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


class NullCookieJar(CookieJar):
    """Keeps nothing, so a cookie set for one connection never rides along with another."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: HTTPResponse, request: Request) -> None:
        return None


ClientKey = tuple[str, str, int]


class ProbeClients:
    """One httpx client (one connection pool) per (scheme, host, port), shared by all probes.

    Only connections are shared: there are no cookies, and credentials travel per request.
    """

    def __init__(self, guard: AddressGuard, ssl_context: ssl.SSLContext | None = None) -> None:
        self._guard = guard
        self._ssl_context = ssl_context or default_ssl_context()
        self._clients: dict[ClientKey, httpx.AsyncClient] = {}

    @staticmethod
    def key(url: httpx.URL) -> ClientKey:
        """(scheme, host, port) with the default port filled in."""
        return (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 0))

    def client_for(self, url: httpx.URL) -> httpx.AsyncClient:
        """The pooled client for the origin of `url`, created on first use."""
        key = self.key(url)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._new_client()
        return client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardResolver(self._guard),
            # The guard must see every new connection; a DNS cache would answer for it.
            use_dns_cache=False,
            ssl=self._ssl_context,
            limit=CONNECTIONS_PER_HOST,
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    def _new_client(self) -> httpx.AsyncClient:
        transport = AiohttpTransport(
            verify=self._ssl_context, client=self._new_session, trust_env=False
        )
        return httpx.AsyncClient(
            transport=transport,
            # No proxies from the environment: a proxy would connect where the guard never looked.
            trust_env=False,
            follow_redirects=False,
            cookies=NullCookieJar(),
            headers={"User-Agent": USER_AGENT},
            event_hooks={"request": [self._check_hop]},
        )

    async def _check_hop(self, request: httpx.Request) -> None:
        self._guard.check_literal(request.url.host)
