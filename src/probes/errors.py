"""Errors the probes package raises on purpose.

A probe never raises for a target's fault (that becomes a `ProbeResult`); these are for
configuration that can never work and for the outbound-address policy at save time.
"""

from __future__ import annotations

ALLOW_TARGETS_SETTING = "HEALTHGRAPH_ALLOW_TARGETS"


class ProbeError(Exception):
    """Base class of the errors below."""


class ProbeConfigError(ProbeError, ValueError):
    """A heartbeat URL, credential or allowlist entry that can never work; reject it when saved."""


class BlockedAddressError(ProbeError):
    """The outbound-address policy refuses `address` (what `host` denotes or resolves to).

    `why` is a noun phrase ("a loopback address"); `fix` says how to admit it on purpose.
    """

    def __init__(self, host: str, address: str, why: str) -> None:
        self.host = host
        self.address = address
        self.why = why
        self.fix = f"if it is a trusted internal target, add it to {ALLOW_TARGETS_SETTING}"
        where = f"({why})" if host == address else f"(it resolves to {address}, {why})"
        super().__init__(f"refused {host} {where}; {self.fix}")
