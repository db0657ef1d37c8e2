"""Real local servers for the probe tests: HTTP (aiohttp), TLS, silent TCP, a closed port.

Everything listens on loopback. An audit hook records every socket connect and DNS lookup
the process makes, so tests can prove a refused target was never contacted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

from probes import Credentials, ProbeContext, ProbeResult, ProbeTarget
from store.domain import FailureReason, HeartbeatSpec, ProbeKind

LOOPBACK = ["127.0.0.1/32", "::1/128"]
CANARY = "CANARY-7f3c1e-s3cr3t"


# --- network audit -------------------------------------------------------------------------


@dataclass
class NetworkLog:
    connects: list[Any] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    recording: bool = False

    def connected_hosts(self) -> list[str]:
        return [str(address[0]) for address in self.connects if isinstance(address, tuple)]


_LOG = NetworkLog()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _LOG.recording:
        return
    if event == "socket.connect":
        _LOG.connects.append(args[1])
    elif event == "socket.getaddrinfo":
        _LOG.lookups.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed; it is a no-op unless a test records


@pytest.fixture
def network_log() -> Iterator[NetworkLog]:
    _LOG.connects.clear()
    _LOG.lookups.clear()
    _LOG.recording = True
    try:
        yield _LOG
    finally:
        _LOG.recording = False


@pytest.fixture(autouse=True)
def only_loopback_traffic() -> Iterator[None]:
    """Every probe test: no socket may connect anywhere but loopback."""
    _LOG.connects.clear()
    was, _LOG.recording = _LOG.recording, True
    yield
    _LOG.recording = was
    for host in _LOG.connected_hosts():
        assert ipaddress.ip_address(host.split("%")[0]).is_loopback, f"connected to {host}"


def outcome(result: ProbeResult) -> tuple[bool, FailureReason | None, int | None, str | None]:
    """The parts of a result a test pins exactly (time and latency vary)."""
    assert result.checked_at.tzinfo is UTC
    assert abs((datetime.now(UTC) - result.checked_at).total_seconds()) < 30
    assert result.latency_ms >= 0
    return (result.success, result.failure_reason, result.http_status, result.error)


# --- targets and contexts --------------------------------------------------------------------


def http_target(url: str, credentials: Credentials | None = None, **spec: Any) -> ProbeTarget:
    spec.setdefault("timeout_seconds", 3.0)
    return ProbeTarget(HeartbeatSpec(kind=ProbeKind.HTTP, url=url, **spec), credentials)


def kind_target(kind: ProbeKind, url: str, timeout_seconds: float = 3.0) -> ProbeTarget:
    return ProbeTarget(HeartbeatSpec(kind=kind, url=url, timeout_seconds=timeout_seconds))


@pytest.fixture
async def loopback_context() -> AsyncIterator[ProbeContext]:
    async with ProbeContext.create(allow=LOOPBACK) as context:
        yield context


@pytest.fixture
async def strict_context() -> AsyncIterator[ProbeContext]:
    """The default policy: public addresses only."""
    async with ProbeContext.create() as context:
        yield context


# --- HTTP server ------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]
    query: dict[str, str]
    peer_port: int


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    headers = {"Retry-After": "30"} if code == 429 else {}
    return web.Response(status=code, text=f"status {code}", headers=headers)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _json(request: web.Request) -> web.Response:
    return web.json_response({"status": {"state": "up", "checks": [1, 2]}, "version": 3})


async def _echo_auth_json(request: web.Request) -> web.Response:
    # A server that echoes what it received (some do, in error bodies): must stay masked.
    return web.json_response({"seen": request.headers.get("Authorization", "")})


async def _not_json(request: web.Request) -> web.Response:
    return web.Response(text="<html>maintenance</html>", content_type="text/html")


async def _cookie(request: web.Request) -> web.Response:
    response = web.Response(text="ok")
    response.set_cookie("session", "from-first-request")
    return response


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


async def _redirect_loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/redirect-loop")


async def _huge(request: web.Request) -> web.StreamResponse:
    """50 MB, streamed; stops quietly when the client hangs up."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.content_length = 50 * 1024 * 1024
    await response.prepare(request)
    chunk = b"x" * (64 * 1024)
    try:
        for _ in range(800):
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        pass
    return response


async def _trickle(request: web.Request) -> web.StreamResponse:
    """Headers at once, then one byte every 50 ms for ten seconds."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    try:
        for _ in range(200):
            await response.write(b"x")
            await asyncio.sleep(0.05)
    except (ConnectionError, RuntimeError):
        pass
    return response


async def _echo_body(request: web.Request) -> web.Response:
    """What the request sent: its content type and body."""
    return web.json_response(
        {"content_type": request.headers.get("Content-Type"), "body": await request.text()}
    )


async def _slack(request: web.Request) -> web.Response:
    """Slack's auth.test: 200 whatever happened, the outcome in the body (`?error=` picks it)."""
    error = request.query.get("error")
    if error:
        return web.json_response({"ok": False, "error": error})
    return web.json_response({"ok": True, "team": "Acme"})


def make_app(seen: list[Seen]) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append(
            Seen(
                method=request.method,
                path=request.path,
                headers=CIMultiDict(request.headers),
                query=dict(request.query),
                peer_port=int(peer[1]) if peer else 0,
            )
        )
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/status/{code}", _status)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/json", _json)
    app.router.add_get("/echo-auth-json", _echo_auth_json)
    app.router.add_get("/not-json", _not_json)
    app.router.add_get("/cookie", _cookie)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/redirect-loop", _redirect_loop)
    app.router.add_get("/huge", _huge)
    app.router.add_get("/trickle", _trickle)
    app.router.add_route("*", "/echo-body", _echo_body)
    app.router.add_get("/slack", _slack)
    return app


@dataclass
class HttpServer:
    server: TestServer
    seen: list[Seen]

    def url(self, path_and_query: str) -> str:
        return f"{self.server.scheme}://{self.server.host}:{self.port}{path_and_query}"

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


async def start_http_server(
    host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> HttpServer:
    seen: list[Seen] = []
    server = TestServer(make_app(seen), host=host)
    await server.start_server(ssl=ssl_context)
    return HttpServer(server, seen)


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    server = await start_http_server()
    yield server
    await server.server.close()


@pytest.fixture
async def other_http_server() -> AsyncIterator[HttpServer]:
    server = await start_http_server()
    yield server
    await server.server.close()


@pytest.fixture
async def http_server_on_127_0_0_2() -> AsyncIterator[HttpServer]:
    """A live server on another loopback address, which an allowlist of 127.0.0.1 excludes."""
    server = await start_http_server(host="127.0.0.2")
    yield server
    await server.server.close()


@pytest.fixture
async def https_server(certificates: Certificates) -> AsyncIterator[HttpServer]:
    server = await start_http_server(
        ssl_context=certificates.server_context(certificates.leaf_chain)
    )
    yield server
    await server.server.close()


# --- raw TCP servers -------------------------------------------------------------------------


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never says a word."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client hangs up
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca_pem: bytes
    leaf_chain: tuple[Path, Path]  # signed by the CA, for 127.0.0.1 and localhost
    leaf_expires_at: datetime
    self_signed: tuple[Path, Path]
    self_signed_expires_at: datetime

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        return context

    def server_context(self, which: tuple[Path, Path]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*which)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("certs")
    now = datetime.now(UTC).replace(microsecond=0)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("healthgraph test CA"))
        .issuer_name(_name("healthgraph test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_expires_at = now + timedelta(days=90)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(leaf_expires_at)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    own_key = ec.generate_private_key(ec.SECP256R1())
    self_signed_expires_at = now + timedelta(days=30)
    own = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(_name("localhost"))
        .public_key(own_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(self_signed_expires_at)
        .add_extension(san, critical=False)
        .sign(own_key, hashes.SHA256())
    )
    return Certificates(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        leaf_chain=_write(directory, "leaf", leaf, leaf_key),
        leaf_expires_at=leaf_expires_at,
        self_signed=_write(directory, "self-signed", own, own_key),
        self_signed_expires_at=self_signed_expires_at,
    )


async def start_tls_server(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    """Completes handshakes, then waits for the client to leave."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def tls_port(certificates: Certificates) -> AsyncIterator[int]:
    """A TLS server whose certificate our test CA signed."""
    server, port = await start_tls_server(certificates.server_context(certificates.leaf_chain))
    yield port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def self_signed_tls_port(certificates: Certificates) -> AsyncIterator[int]:
    server, port = await start_tls_server(certificates.server_context(certificates.self_signed))
    yield port
    server.close()
    await server.wait_closed()
