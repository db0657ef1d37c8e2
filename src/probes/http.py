"""HTTP heartbeat: one request (plus at most 5 redirects), status check, body assertions."""

from __future__ import annotations

import asyncio

import httpx

from probes.assertions import body_problem
from probes.attempt import Attempt
from probes.classify import classify_status, explain, status_message
from probes.endpoint import DEFAULT_PORTS, parse_endpoint
from probes.errors import ProbeConfigError
from probes.result import ProbeResult
from probes.target import ProbeContext, ProbeTarget
from store.domain import FailureReason, ProbeKind

MAX_REDIRECTS = 5


class _RedirectRefused(Exception):
    """A redirect to a scheme the policy does not follow (file:, ftp:, …)."""


class _HopFailed(Exception):
    """A redirect hop failed; carries the hop's URL so the message names the right host."""

    def __init__(self, url: httpx.URL) -> None:
        super().__init__(url.host)
        self.url = url


async def probe_http(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
    """Send the heartbeat request; every failure of the target becomes a result.

    Raises ProbeConfigError only for a spec that could never be probed (no or bad URL).
    """
    spec = target.spec
    endpoint = parse_endpoint(spec.url, ProbeKind.HTTP)
    attempt = Attempt(target)
    try:
        # One deadline for everything, so a server that trickles bytes cannot stretch it.
        async with asyncio.timeout(spec.timeout_seconds):
            # Before httpx parses the URL: it rejects some legacy IPv4 spellings (0177.0.0.1)
            # as invalid, and those must read as what they are, loopback.
            context.guard.check_literal(endpoint.host)
            return await _exchange(target, context, attempt)
    except ProbeConfigError:
        raise
    except _RedirectRefused as exc:
        return attempt.failed(FailureReason.BLOCKED, str(exc))
    except _HopFailed as exc:
        port = exc.url.port or DEFAULT_PORTS.get(exc.url.scheme, 0)
        reason, message = explain(exc, exc.url.host, port, spec.timeout_seconds)
        return attempt.failed(reason, message)
    except Exception as exc:  # a probe reports the target's faults, it never raises for them
        reason, message = explain(exc, endpoint.host, endpoint.port, spec.timeout_seconds)
        return attempt.failed(reason, message)


async def _exchange(target: ProbeTarget, context: ProbeContext, attempt: Attempt) -> ProbeResult:
    spec = target.spec
    credentials = target.credentials
    assert spec.url is not None
    try:
        url = httpx.URL(spec.url)
    except httpx.InvalidURL as exc:
        raise ProbeConfigError(f"the heartbeat URL is not valid ({exc})") from None
    if credentials is not None and credentials.params():
        # Merged by hand: httpx's params= would replace the URL's own query string.
        url = url.copy_merge_params(credentials.params())
    client = context.clients.client_for(url)
    request = client.build_request(
        spec.method,
        url,
        headers=credentials.headers() if credentials else None,
        timeout=httpx.Timeout(spec.timeout_seconds),
    )
    response = await _send_following(request, target, context)
    try:
        status = response.status_code
        reason = classify_status(status, spec.expected_status)
        if reason is not None:
            message = status_message(
                status, spec.expected_status, response.headers.get("retry-after")
            )
            if response.next_request is not None:
                message += f" (stopped after {MAX_REDIRECTS} redirects)"
            return attempt.failed(reason, message, http_status=status)
        if spec.body_regex is not None or spec.json_path is not None:
            body, truncated = await read_capped(response, context.body_cap_bytes)
            problem = body_problem(
                body, spec, encoding=response.encoding or "utf-8", truncated=truncated
            )
            if problem is not None:
                return attempt.failed(FailureReason.ASSERTION, problem, http_status=status)
        return attempt.succeeded(http_status=status)
    finally:
        await response.aclose()


async def _send_following(
    request: httpx.Request, target: ProbeTarget, context: ProbeContext
) -> httpx.Response:
    """Send, following redirects by hand: each hop goes through its own origin's pool (whose
    resolver checks the hop's address) and drops credentials when the origin changes.

    A redirect status the user listed in expected_status is the answer, not a hop.
    """
    origin = request.url
    for hops in range(MAX_REDIRECTS + 1):
        try:
            response = await context.clients.client_for(request.url).send(request, stream=True)
        except Exception as exc:
            if hops:
                raise _HopFailed(request.url) from exc
            raise
        hop = response.next_request
        if hop is None or response.status_code in target.spec.expected_status:
            return response
        if hops == MAX_REDIRECTS:
            return response  # judged as a status; the message says the redirects ran out
        await response.aclose()
        if hop.url.scheme not in ("http", "https"):
            raise _RedirectRefused(
                f"redirect to a {hop.url.scheme}: URL refused; only http and https are followed"
            )
        if not _keeps_credentials(origin, hop.url) and target.credentials is not None:
            # httpx already drops Authorization; a custom credential header must go too.
            for name in target.credentials.headers():
                hop.headers.pop(name, None)
        request = hop
    raise AssertionError("unreachable")  # pragma: no cover


def _keeps_credentials(origin: httpx.URL, url: httpx.URL) -> bool:
    """Same origin, or the plain http-to-https upgrade of it (the rule httpx applies)."""
    if (origin.scheme, origin.host, origin.port) == (url.scheme, url.host, url.port):
        return True
    return (
        (origin.scheme, url.scheme) == ("http", "https")
        and origin.host == url.host
        and origin.port in (None, 80)
        and url.port in (None, 443)
    )


async def read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the (decoded) body, and whether more was left unread."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = cap - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True
        body += chunk
    return bytes(body), False
