"""An OAuth2 token endpoint, asked for an access token (RFC 6749 §6 refresh, §4.4 client
credentials), through the same guarded, pinned HTTP session as the heartbeats.

Never raises for the endpoint's fault: every answer becomes a `TokenAnswer` or a
`TokenRefusal` with a failure reason. Token endpoints echo what they were sent, so every text
taken from an answer is scrubbed of the tokens and the client secret first.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from yarl import URL

from probes.classify import explain
from probes.endpoint import parse_endpoint
from probes.errors import ProbeConfigError
from probes.redact import Redactor, clip
from probes.target import ProbeContext
from store.domain import FailureReason

TOKEN_TIMEOUT_SECONDS = 10.0
# What the provider says when the grant itself is gone (RFC 6749 §5.2): the consumer has to
# connect again. Anything else (a timeout, a 5xx, a 429) says nothing about the grant.
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The connector's app as a token request needs it. repr shows no secret."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_method: str = "client_secret_basic"
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    access_token: str = field(repr=False)
    expires_in: float | None
    refresh_token: str | None = field(repr=False)  # None: the provider does not rotate
    refresh_token_expires_in: float | None


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    reason: FailureReason
    message: str  # scrubbed, one line
    dead_grant: bool = False  # the provider refused the grant itself


def _basic(client: OAuthClient) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded before it is joined and encoded.
    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _form(
    client: OAuthClient, grant_type: str, refresh_token: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    headers = {"Accept": "application/json"}
    form = {"grant_type": grant_type}
    if grant_type == "refresh_token":
        assert refresh_token is not None
        form["refresh_token"] = refresh_token
    elif client.scopes:
        form["scope"] = " ".join(client.scopes)
    if client.auth_method == "client_secret_post":
        form["client_id"] = client.client_id
        form["client_secret"] = client.client_secret
    else:
        headers["Authorization"] = _basic(client)
    return headers, form


async def request_token(
    context: ProbeContext,
    client: OAuthClient,
    *,
    grant_type: str,
    refresh_token: str | None = None,
    timeout_seconds: float = TOKEN_TIMEOUT_SECONDS,
) -> TokenAnswer | TokenRefusal:
    """Ask `client.token_url` for an access token with the refresh token or the client's own
    credentials, within `timeout_seconds`."""
    secrets = [client.client_secret, _basic(client).removeprefix("Basic ")]
    if refresh_token:
        secrets.append(refresh_token)
    scrub = Redactor(secrets)
    try:
        endpoint = parse_endpoint(client.token_url)
        if endpoint.scheme not in ("http", "https"):
            raise ProbeConfigError(f"the token URL must be http or https, not {endpoint.scheme}")
    except ProbeConfigError as exc:
        return TokenRefusal(FailureReason.CONNECT, f"cannot ask for a token: {exc}")
    host = urlsplit(client.token_url).hostname or endpoint.host
    headers, form = _form(client, grant_type, refresh_token)
    try:
        async with asyncio.timeout(timeout_seconds):
            context.guard.check_literal(endpoint.host)
            response = await context.clients.session().post(
                URL(client.token_url), headers=headers, data=form, allow_redirects=False
            )
            try:
                body = await response.content.read(_MAX_ANSWER_BYTES)
                status = response.status
            finally:
                response.release()
    except Exception as exc:  # the endpoint's fault: a result, never an exception
        reason, message = explain(exc, endpoint.host, endpoint.port, timeout_seconds)
        return TokenRefusal(reason, clip(scrub(f"token endpoint: {message}")))
    return _answer(status, body, host, scrub)


def _answer(status: int, body: bytes, host: str, scrub: Redactor) -> TokenAnswer | TokenRefusal:
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    if status == 200:
        access_token = document.get("access_token") if isinstance(document, dict) else None
        if isinstance(access_token, str) and access_token:
            return TokenAnswer(
                access_token=access_token,
                expires_in=_seconds(document.get("expires_in")),
                refresh_token=document.get("refresh_token") or None,
                refresh_token_expires_in=_seconds(
                    document.get("refresh_token_expires_in")
                    or document.get("x_refresh_token_expires_in")
                ),
            )
        return TokenRefusal(
            FailureReason.HTTP_STATUS,
            f"token endpoint {host}: HTTP 200 without an access_token",
        )
    error = document.get("error") if isinstance(document, dict) else None
    description = document.get("error_description") if isinstance(document, dict) else None
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    said = f"{error}" if isinstance(error, str) else f"HTTP {status} {phrase}".rstrip()
    if isinstance(description, str) and description:
        said += f" ({description})"
    message = clip(scrub(f"token endpoint {host}: {said}"))
    if isinstance(error, str) and error in DEAD_GRANT_ERRORS and status in (400, 401):
        return TokenRefusal(FailureReason.AUTH, message, dead_grant=True)
    if status == 429:
        return TokenRefusal(FailureReason.RATE_LIMITED, message)
    return TokenRefusal(FailureReason.HTTP_STATUS, message)


def _seconds(value: object) -> float | None:
    """expires_in as a number of seconds (some providers send a string)."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds < 10 * 365 * 86400 else None
