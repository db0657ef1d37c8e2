"""Probes: HTTP, TCP and TLS heartbeats, failure classification and the outbound-address guard.

A probe never raises for a target's fault; every failure is a `ProbeResult` with a
`failure_reason` from the closed set in `store.domain.FailureReason`.
"""

from probes.clients import ProbeClients
from probes.errors import BlockedAddressError, ProbeConfigError, ProbeError
from probes.guard import AddressGuard
from probes.http import probe_http
from probes.registry import PROBES, ProbeFunction, run_probe
from probes.result import Credentials, ProbeResult
from probes.target import DEFAULT_BODY_CAP_BYTES, ProbeContext, ProbeTarget
from probes.tcp import probe_tcp
from probes.tls import probe_tls

__all__ = [
    "DEFAULT_BODY_CAP_BYTES",
    "PROBES",
    "AddressGuard",
    "BlockedAddressError",
    "Credentials",
    "ProbeClients",
    "ProbeConfigError",
    "ProbeContext",
    "ProbeError",
    "ProbeFunction",
    "ProbeResult",
    "ProbeTarget",
    "probe_http",
    "probe_tcp",
    "probe_tls",
    "run_probe",
]
