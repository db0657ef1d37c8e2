"""The outbound policies tests save heartbeats under: the real address guard, as deployed."""

from __future__ import annotations

from probes.guard import AddressGuard

# What a default deployment admits: public addresses only (the tests' *.example names do not
# resolve, which the guard lets through to be reported as DNS by the probe).
OUTBOUND = AddressGuard()
# A deployment that allowed this machine's loopback (HEALTHGRAPH_ALLOW_TARGETS), for tests
# whose heartbeats reach local servers.
LOOPBACK_OUTBOUND = AddressGuard(["127.0.0.0/8", "::1/128"])
