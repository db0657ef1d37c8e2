"""HTTP heartbeat: one request (plus at most 5 redirects), status check, body assertions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from yarl import URL

from probes.assertions import body_problem, failed_rule
from probes.attempt import Attempt
from probes.classify import classify_status, explain, status_message
from probes.clients import origin_of
from probes.endpoint import DEFAULT_PORTS, parse_endpoint
from probes.errors import ProbeConfigError
from probes.result import ProbeResult
from probes.target import ProbeContext, ProbeTarget
from store.domain import FailureReason, ProbeKind

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class _RedirectRefused(Exception):
    """A redirect to a scheme the policy does not follow (file:, ftp:, …)."""


class _HopFailed(Exception):
    """A redirect hop failed; carries the hop's URL so the message names the right host."""

    def __init__(self, url: URL) -> None:
        super().__init__(url.host)
        self.url = url


@dataclass(slots=True)
class _Answer:
    response: aiohttp.ClientResponse
    redirects_ran_out: bool


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
            # Before the URL is parsed again: legacy IPv4 spellings (0177.0.0.1) must read as
            # what they are, loopback, whatever a URL library makes of them.
            context.guard.check_literal(endpoint.host)
            return await _exchange(target, context, attempt)
    except ProbeConfigError:
        raise
    except _RedirectRefused as exc:
        return attempt.failed(FailureReason.BLOCKED, str(exc))
    except _HopFailed as exc:
        port = exc.url.port or DEFAULT_PORTS.get(exc.url.scheme, 0)
        reason, message = explain(exc, exc.url.host or "", port, spec.timeout_seconds)
        return attempt.failed(reason, message)
    except Exception as exc:  # a probe reports the target's faults, it never raises for them
        reason, message = explain(exc, endpoint.host, endpoint.port, spec.timeout_seconds)
        return attempt.failed(reason, message)


async def _exchange(target: ProbeTarget, context: ProbeContext, attempt: Attempt) -> ProbeResult:
    spec = target.spec
    credentials = target.credentials
    assert spec.url is not None
    try:
        url = URL(spec.url)
    except (ValueError, TypeError) as exc:
        raise ProbeConfigError(f"the heartbeat URL is not valid ({exc})") from None
    headers = dict(spec.headers)
    if spec.body_is_json:
        headers.setdefault("Content-Type", "application/json")
    secret_headers: dict[str, str] = {}
    if credentials is not None:
        secret_headers = credentials.headers()
        if credentials.params():
            # Added to the URL's own query string, never in place of it.
            url = url.update_query(credentials.params())
    request = _Request(
        spec.method,
        url,
        headers,
        secret_headers,
        spec.body.encode() if spec.body is not None else None,
    )
    answer = await _send_following(request, target, context)
    response = answer.response
    try:
        status = response.status
        if spec.failure_when:
            body, _ = await read_capped(response, context.body_cap_bytes)
            failed = failed_rule(
                body, spec.failure_when, status, encoding=response.charset or "utf-8"
            )
            if failed is not None:
                rule, why = failed
                return attempt.failed(rule.reason, f"HTTP {status}: {why}", http_status=status)
        reason = classify_status(status, spec.expected_status)
        if reason is not None:
            message = status_message(
                status, spec.expected_status, response.headers.get("Retry-After")
            )
            if answer.redirects_ran_out:
                message += f" (stopped after {MAX_REDIRECTS} redirects)"
            return attempt.failed(reason, message, http_status=status)
        if spec.body_regex is not None or spec.json_path is not None:
            body, truncated = await read_capped(response, context.body_cap_bytes)
            problem = body_problem(
                body, spec, encoding=response.charset or "utf-8", truncated=truncated
            )
            if problem is not None:
                return attempt.failed(FailureReason.ASSERTION, problem, http_status=status)
        return attempt.succeeded(http_status=status)
    finally:
        # Back to the pool when the body is in; closed when it is not (never read for nothing).
        response.release()


@dataclass(slots=True)
class _Request:
    method: str
    url: URL
    headers: dict[str, str]  # the heartbeat's own: sent on every hop
    secret_headers: dict[str, str]  # the credentials': only to the origin they were meant for
    body: bytes | None


async def _send_following(request: _Request, target: ProbeTarget, context: ProbeContext) -> _Answer:
    """Send, following redirects by hand: each hop goes through its own origin's pool (whose
    resolver checks the hop's address) and drops the credentials when the origin changes.

    A redirect status the user listed in expected_status is the answer, not a hop.
    """
    origin = request.url
    method, url, body = request.method, request.url, request.body
    secret_headers = request.secret_headers
    for hops in range(MAX_REDIRECTS + 1):
        try:
            # aiohttp skips the resolver (and so the guard) for address literals.
            context.guard.check_literal(url.host or "")
            response = await context.clients.session().request(
                method,
                url,
                headers={**request.headers, **secret_headers},
                data=body,
                allow_redirects=False,
            )
        except Exception as exc:
            if hops:
                raise _HopFailed(url) from exc
            raise
        hop = _redirect_target(response)
        if hop is None or response.status in target.spec.expected_status:
            return _Answer(response, redirects_ran_out=False)
        if hops == MAX_REDIRECTS:
            return _Answer(response, redirects_ran_out=True)
        response.release()
        if hop.scheme not in ("http", "https"):
            raise _RedirectRefused(
                f"redirect to a {hop.scheme}: URL refused; only http and https are followed"
            )
        if not _keeps_credentials(origin, hop):
            secret_headers = {}
        next_method = _redirect_method(method, response.status)
        if next_method != method:
            body = None  # a POST turned into a GET sends no body
        method, url = next_method, hop
    raise AssertionError("unreachable")  # pragma: no cover


def _redirect_target(response: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect points, resolved against the request; None if it is not one."""
    if response.status not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get("Location")
    if not location:
        return None
    try:
        return response.url.join(URL(location))
    except (ValueError, TypeError):
        return None  # an unusable Location: the redirect status itself is the answer


def _redirect_method(method: str, status: int) -> str:
    """The method browsers (and httpx) use for the next hop: 303, and 302 for all but HEAD,
    and 301 for POST turn into GET."""
    if status in (302, 303) and method != "HEAD":
        return "GET"
    if status == 301 and method == "POST":
        return "GET"
    return method


def _keeps_credentials(origin: URL, url: URL) -> bool:
    """Same origin, or the plain http-to-https upgrade of it (the rule httpx applies)."""
    first, then = origin_of(origin), origin_of(url)
    return first == then or (first == ("http", then[1], 80) and then == ("https", first[1], 443))


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the (decoded) body, and whether more was left unread."""
    body = bytearray()
    while len(body) < cap:
        chunk = await response.content.read(cap - len(body))
        if not chunk:
            return bytes(body), False
        body += chunk
    return bytes(body), bool(await response.content.read(1))
