"""TCP and TLS probes against real local servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from probes import ProbeContext, probe_http, probe_tcp, probe_tls, run_probe
from store.domain import FailureReason, ProbeKind
from tests.probes.conftest import (
    LOOPBACK,
    Certificates,
    HttpServer,
    NetworkLog,
    http_target,
    kind_target,
    outcome,
)


@pytest.fixture
async def trusting_context(certificates: Certificates) -> AsyncIterator[ProbeContext]:
    """Loopback allowed, and our test CA trusted instead of the system store."""
    async with ProbeContext.create(
        allow=LOOPBACK, ssl_context=certificates.client_context()
    ) as context:
        yield context


# --- TCP ---------------------------------------------------------------------------------------


async def test_tcp_connect_to_a_listening_port_is_success(
    http_server: HttpServer, loopback_context: ProbeContext, network_log: NetworkLog
) -> None:
    target = kind_target(ProbeKind.TCP, f"tcp://127.0.0.1:{http_server.port}")
    result = await probe_tcp(target, loopback_context)
    assert outcome(result) == (True, None, None, None)
    assert network_log.connects == [("127.0.0.1", http_server.port)]


async def test_tcp_connects_to_the_address_the_guard_validated(
    http_server: HttpServer, network_log: NetworkLog
) -> None:
    async with ProbeContext.create(allow=["localhost"]) as context:
        target = kind_target(ProbeKind.TCP, f"tcp://localhost:{http_server.port}")
        result = await probe_tcp(target, context)
    assert outcome(result) == (True, None, None, None)
    # No lookup of its own: the guard's answer (127.0.0.1 first) is what was dialled.
    assert network_log.lookups == []
    assert network_log.connects == [("127.0.0.1", http_server.port)]


async def test_tcp_to_a_closed_port_is_connect(
    closed_port: int, loopback_context: ProbeContext
) -> None:
    result = await probe_tcp(
        kind_target(ProbeKind.TCP, f"tcp://127.0.0.1:{closed_port}"), loopback_context
    )
    assert outcome(result) == (
        False,
        FailureReason.CONNECT,
        None,
        f"connection to 127.0.0.1:{closed_port} failed: Connection refused",
    )


async def test_tcp_to_a_name_that_does_not_resolve_is_dns(
    loopback_context: ProbeContext,
) -> None:
    result = await probe_tcp(kind_target(ProbeKind.TCP, "tcp://db.invalid:5432"), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.DNS,
        None,
        "cannot resolve db.invalid: Name or service not known",
    )


# --- TLS -----------------------------------------------------------------------------------------


async def test_tls_handshake_with_a_trusted_certificate_is_success_with_its_expiry(
    tls_port: int, certificates: Certificates, trusting_context: ProbeContext
) -> None:
    result = await probe_tls(
        kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{tls_port}"), trusting_context
    )
    assert outcome(result) == (True, None, None, None)
    assert result.tls_cert_expires_at == certificates.leaf_expires_at


async def test_tls_accepts_an_https_url_too(
    tls_port: int, certificates: Certificates, trusting_context: ProbeContext
) -> None:
    result = await run_probe(
        kind_target(ProbeKind.TLS, f"https://localhost:{tls_port}"), trusting_context
    )
    assert outcome(result) == (True, None, None, None)
    assert result.tls_cert_expires_at == certificates.leaf_expires_at


async def test_a_self_signed_certificate_is_tls_and_its_expiry_is_still_recorded(
    self_signed_tls_port: int, certificates: Certificates, trusting_context: ProbeContext
) -> None:
    target = kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{self_signed_tls_port}")
    result = await probe_tls(target, trusting_context)
    assert outcome(result) == (
        False,
        FailureReason.TLS,
        None,
        f"TLS handshake with 127.0.0.1:{self_signed_tls_port} failed: self-signed certificate",
    )
    assert result.tls_cert_expires_at == certificates.self_signed_expires_at


async def test_a_certificate_from_an_untrusted_ca_is_tls_with_expiry(
    tls_port: int, certificates: Certificates, loopback_context: ProbeContext
) -> None:
    # loopback_context uses the system trust store, which does not know our test CA.
    result = await probe_tls(
        kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{tls_port}"), loopback_context
    )
    assert outcome(result) == (
        False,
        FailureReason.TLS,
        None,
        f"TLS handshake with 127.0.0.1:{tls_port} failed: unable to get local issuer certificate",
    )
    assert result.tls_cert_expires_at == certificates.leaf_expires_at


async def test_a_certificate_for_another_name_is_tls_with_expiry(
    tls_port: int, certificates: Certificates
) -> None:
    async with ProbeContext.create(
        allow=["*.svc.localhost"], ssl_context=certificates.client_context()
    ) as context:
        target = kind_target(ProbeKind.TLS, f"tls://db.svc.localhost:{tls_port}")
        result = await probe_tls(target, context)
    assert outcome(result) == (
        False,
        FailureReason.TLS,
        None,
        f"TLS handshake with db.svc.localhost:{tls_port} failed: "
        "Hostname mismatch, certificate is not valid for 'db.svc.localhost'.",
    )
    assert result.tls_cert_expires_at == certificates.leaf_expires_at


async def test_tls_against_a_plain_http_server_is_tls_without_expiry(
    http_server: HttpServer, trusting_context: ProbeContext
) -> None:
    target = kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{http_server.port}")
    result = await probe_tls(target, trusting_context)
    assert result.failure_reason == FailureReason.TLS
    assert result.tls_cert_expires_at is None
    assert result.error is not None
    assert result.error.startswith(f"TLS handshake with 127.0.0.1:{http_server.port} failed: ")


async def test_tls_against_a_server_that_never_answers_is_timeout(
    silent_port: int, trusting_context: ProbeContext
) -> None:
    target = kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{silent_port}", timeout_seconds=0.5)
    result = await probe_tls(target, trusting_context)
    assert outcome(result) == (
        False,
        FailureReason.TIMEOUT,
        None,
        f"no complete answer from 127.0.0.1:{silent_port} within 0.5 s",
    )


async def test_tls_to_a_closed_port_is_connect(
    closed_port: int, trusting_context: ProbeContext
) -> None:
    result = await probe_tls(
        kind_target(ProbeKind.TLS, f"tls://127.0.0.1:{closed_port}"), trusting_context
    )
    assert outcome(result) == (
        False,
        FailureReason.CONNECT,
        None,
        f"connection to 127.0.0.1:{closed_port} failed: Connection refused",
    )


# --- HTTPS through the HTTP probe -----------------------------------------------------------------


async def test_https_probe_with_a_trusted_certificate_is_success(
    https_server: HttpServer, trusting_context: ProbeContext
) -> None:
    result = await probe_http(http_target(https_server.url("/echo")), trusting_context)
    assert outcome(result) == (True, None, 200, None)


async def test_https_probe_with_an_untrusted_certificate_is_tls(
    https_server: HttpServer, loopback_context: ProbeContext
) -> None:
    result = await probe_http(http_target(https_server.url("/echo")), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.TLS,
        None,
        f"TLS handshake with 127.0.0.1:{https_server.port} failed: "
        "unable to get local issuer certificate",
    )
    assert https_server.seen == []
