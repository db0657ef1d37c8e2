"""Sending one webhook as the Standard Webhooks specification says, through the same guarded,
pinned HTTP session as the heartbeats (a webhook URL is an outbound target like any other).

Headers: `webhook-id` (the event's id, the same on every retry, for receivers to deduplicate),
`webhook-timestamp` (seconds, when this attempt was signed) and `webhook-signature`: `v1,` and
the base64 HMAC-SHA256, keyed by the secret's bytes, of `{id}.{timestamp}.{body}`; one per
secret in force, separated by spaces, while a rotation's previous secret still signs.

Never raises for the receiver's fault: any 2xx is delivered, anything else is a result that
says why it was not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

from yarl import URL

from probes.classify import explain
from probes.endpoint import parse_endpoint
from probes.errors import ProbeConfigError
from probes.redact import clip
from probes.target import ProbeContext

WEBHOOK_TIMEOUT_SECONDS = 10.0
USER_AGENT = "healthgraph-webhooks/0.1"
_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_ANSWER_BYTES = 1024  # what of a refusal's body is kept to show why


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` signature of `body` with a `whsec_` secret."""
    key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def webhook_headers(
    secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret, message_id, timestamp, body) for secret in secrets
        ),
    }


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    status: int | None = None
    error: str | None = None


async def send_webhook(
    context: ProbeContext,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_seconds: float = WEBHOOK_TIMEOUT_SECONDS,
) -> SendResult:
    """POST `body` to `url` within `timeout_seconds`, no redirects followed (a receiver that
    moved says so with its status, and a redirect could lead where the guard never looked)."""
    try:
        endpoint = parse_endpoint(url)
        if endpoint.scheme not in ("http", "https"):
            raise ProbeConfigError(f"the URL must be http or https, not {endpoint.scheme}")
    except ProbeConfigError as exc:
        return SendResult(False, error=f"cannot send: {exc}")
    try:
        async with asyncio.timeout(timeout_seconds):
            context.guard.check_literal(endpoint.host)
            response = await context.clients.session().post(
                URL(url),
                data=body,
                headers={**headers, "user-agent": USER_AGENT},
                allow_redirects=False,
            )
            try:
                status = response.status
                answer = b"" if 200 <= status < 300 else await response.content.read(_ANSWER_BYTES)
            finally:
                response.release()
    except Exception as exc:  # the receiver's fault: a result, never an exception
        _, message = explain(exc, endpoint.host, endpoint.port, timeout_seconds)
        return SendResult(False, error=clip(message))
    if 200 <= status < 300:
        return SendResult(True, status=status)
    return SendResult(False, status=status, error=clip(_refusal(status, answer)))


def _refusal(status: int, answer: bytes) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    said = answer.decode("utf-8", "replace").strip().replace("\n", " ")
    text = f"HTTP {status} {phrase}".rstrip()
    return f"{text}: {said}" if said else text
