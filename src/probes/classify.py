"""Failure classification into the closed `FailureReason` set, and the message for each."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Collection, Iterator
from http import HTTPStatus

import aiohttp

from probes.errors import BlockedAddressError
from store.domain import FailureReason

_STATUS_REASONS = {
    401: FailureReason.AUTH,
    403: FailureReason.PERMISSION,
    429: FailureReason.RATE_LIMITED,
}


def classify_status(status: int, expected: Collection[int]) -> FailureReason | None:
    """None when `status` is expected (even 401, if the user listed it), else its reason."""
    if status in expected:
        return None
    return _STATUS_REASONS.get(status, FailureReason.HTTP_STATUS)


def status_message(status: int, expected: Collection[int], retry_after: str | None = None) -> str:
    """E.g. HTTP 429 Too Many Requests (Retry-After: 30); expected 200."""
    # The standard phrase, not the server's: a server may put anything in its reason phrase.
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".rstrip()
    if retry_after:
        text += f" (Retry-After: {retry_after[:40]})"
    return f"{text}; expected {', '.join(str(s) for s in sorted(expected))}"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it, outermost first (aiohttp wraps OSError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__


def classify_exception(exc: BaseException) -> FailureReason:
    """The reason for a failed exchange, judged by the original errors under any wrapping.

    Wrappers name errors loosely (aiohttp calls any resolver failure a DNS error, and our
    resolver also refuses blocked addresses), so the chain's root causes decide.
    """
    if isinstance(exc, TimeoutError):
        return FailureReason.TIMEOUT  # a probe's own deadline, whatever it interrupted
    chain = list(exception_chain(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(BlockedAddressError):
        return FailureReason.BLOCKED
    if has(ssl.SSLError, aiohttp.ClientSSLError):
        return FailureReason.TLS
    if has(socket.gaierror, aiohttp.ClientConnectorDNSError):
        return FailureReason.DNS
    # aiohttp's own timeouts subclass the builtin TimeoutError.
    if has(TimeoutError):
        return FailureReason.TIMEOUT
    return FailureReason.CONNECT


def root_detail(exc: BaseException) -> str:
    """The innermost error in a few words ("Connection refused", "self-signed certificate")."""
    root = list(exception_chain(exc))[-1]
    if isinstance(root, ssl.SSLCertVerificationError) and root.verify_message:
        return str(root.verify_message)
    if isinstance(root, ssl.SSLError) and root.reason:
        return str(root.reason).replace("_", " ").lower()
    if isinstance(root, OSError) and root.errno and not isinstance(root, socket.gaierror):
        return os.strerror(root.errno)  # asyncio's strerror also quotes the address
    if isinstance(root, OSError) and root.strerror:
        return str(root.strerror)
    return str(root) or type(root).__name__


def explain(
    exc: BaseException, host: str, port: int, timeout_seconds: float
) -> tuple[FailureReason, str]:
    """The reason for `exc` and a message for a person (names host and port, never the URL)."""
    reason = classify_exception(exc)
    return reason, failure_message(reason, exc, host, port, timeout_seconds)


def failure_message(
    reason: FailureReason, exc: BaseException, host: str, port: int, timeout_seconds: float
) -> str:
    """The message for `reason`; BLOCKED repeats the guard's refusal and its fix."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    match reason:
        case FailureReason.BLOCKED:
            blocked = next(e for e in exception_chain(exc) if isinstance(e, BlockedAddressError))
            return str(blocked)
        case FailureReason.TIMEOUT:
            return f"no complete answer from {where} within {timeout_seconds:g} s"
        case FailureReason.DNS:
            return f"cannot resolve {host}: {root_detail(exc)}"
        case FailureReason.TLS:
            return f"TLS handshake with {where} failed: {root_detail(exc)}"
        case _:
            return f"connection to {where} failed: {root_detail(exc)}"
