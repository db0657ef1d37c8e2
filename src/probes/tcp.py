"""TCP heartbeat: a connection to the guard-validated address opens within the timeout."""

from __future__ import annotations

import asyncio

from probes.attempt import Attempt
from probes.classify import explain
from probes.connect import close_quietly, open_pinned
from probes.endpoint import parse_endpoint
from probes.result import ProbeResult
from probes.target import ProbeContext, ProbeTarget
from store.domain import ProbeKind


async def probe_tcp(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
    """Connect and close; every failure of the target becomes a result."""
    spec = target.spec
    endpoint = parse_endpoint(spec.url, ProbeKind.TCP)
    attempt = Attempt(target)
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            addresses = await context.guard.resolve(endpoint.host, endpoint.port)
            _, writer = await open_pinned(addresses, endpoint.port)
            await close_quietly(writer)
    except Exception as exc:  # a probe reports the target's faults, it never raises for them
        reason, message = explain(exc, endpoint.host, endpoint.port, spec.timeout_seconds)
        return attempt.failed(reason, message)
    return attempt.succeeded()
