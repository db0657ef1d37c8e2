"""Which probe runs for which kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from probes.http import probe_http
from probes.result import ProbeResult
from probes.target import ProbeContext, ProbeTarget
from probes.tcp import probe_tcp
from probes.tls import probe_tls
from store.domain import ProbeKind

ProbeFunction = Callable[[ProbeTarget, ProbeContext], Awaitable[ProbeResult]]

PROBES: dict[ProbeKind, ProbeFunction] = {
    ProbeKind.HTTP: probe_http,
    ProbeKind.TCP: probe_tcp,
    ProbeKind.TLS: probe_tls,
}


async def run_probe(target: ProbeTarget, context: ProbeContext) -> ProbeResult:
    """Run the probe for the target's kind; never raises for the target's fault."""
    return await PROBES[target.spec.kind](target, context)
