"""TLS heartbeat: a verified handshake, and the certificate's expiry either way."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from probes.attempt import Attempt
from probes.classify import explain
from probes.clients import default_ssl_context
from probes.connect import close_quietly, open_pinned
from probes.endpoint import parse_endpoint
from probes.guard import literal_address
from probes.result import ProbeResult
from probes.target import ProbeContext, ProbeTarget
from store.domain import ProbeKind


async def probe_tls(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
    """Handshake with verification; on a verification failure, still report when the
    certificate expires (read over a second, unverified handshake to the same address)."""
    spec = target.spec
    endpoint = parse_endpoint(spec.url, ProbeKind.TLS)
    attempt = Attempt(target)
    literal = literal_address(endpoint.host)
    server_name = str(literal) if literal is not None else endpoint.host
    verified = context.ssl_context or default_ssl_context()
    expires_at: datetime | None = None
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            addresses = await context.guard.resolve(endpoint.host, endpoint.port)
            try:
                _, writer = await open_pinned(
                    addresses, endpoint.port, ssl_context=verified, server_hostname=server_name
                )
            except ssl.SSLCertVerificationError:
                expires_at = await _peek_expiry(addresses, endpoint.port, server_name)
                raise
            expires_at = certificate_expiry(writer)
            await close_quietly(writer)
    except Exception as exc:  # a probe reports the target's faults, it never raises for them
        reason, message = explain(exc, endpoint.host, endpoint.port, spec.timeout_seconds)
        return attempt.failed(reason, message, tls_cert_expires_at=expires_at)
    return attempt.succeeded(tls_cert_expires_at=expires_at)


def certificate_expiry(writer: asyncio.StreamWriter) -> datetime | None:
    """notAfter of the peer's certificate (aware UTC), or None if there is none."""
    ssl_object = writer.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


async def _peek_expiry(addresses: Sequence[str], port: int, server_name: str) -> datetime | None:
    # Unverified on purpose and only to read the date: nothing is sent over this connection.
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await open_pinned(
            addresses, port, ssl_context=unverified, server_hostname=server_name
        )
    except OSError:
        return None
    try:
        return certificate_expiry(writer)
    except ValueError:  # a certificate cryptography cannot parse
        return None
    finally:
        await close_quietly(writer)
