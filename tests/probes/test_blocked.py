"""Refused targets through every probe kind: BLOCKED, and not one connection attempted."""

from __future__ import annotations

import pytest

from probes import ProbeContext, run_probe
from store.domain import FailureReason, ProbeKind
from tests.probes.conftest import NetworkLog, http_target, kind_target, outcome

FIX = "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS"

BLOCKED_HTTP = [
    ("http://127.0.0.1:8000/health", "refused 127.0.0.1 (a loopback address)"),
    ("http://[::1]:8000/health", "refused ::1 (a loopback address)"),
    ("http://10.0.0.1/health", "refused 10.0.0.1 (a private address)"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "refused 169.254.169.254 (the cloud metadata address (link-local))",
    ),
    (
        "http://[::ffff:127.0.0.1]/",
        "refused ::ffff:127.0.0.1 (a loopback address, embedded in IPv6)",
    ),
    ("http://0.0.0.0:8000/", "refused 0.0.0.0 (the unspecified address)"),
    ("http://2130706433/", "refused 2130706433 (it resolves to 127.0.0.1, a loopback address)"),
    ("http://0x7f000001/", "refused 0x7f000001 (it resolves to 127.0.0.1, a loopback address)"),
    ("http://0177.0.0.1/", "refused 0177.0.0.1 (it resolves to 127.0.0.1, a loopback address)"),
    ("http://localhost:8000/", "refused localhost (it resolves to 127.0.0.1, a loopback address)"),
    ("https://[fd00::1]/", "refused fd00::1 (a private address)"),
    ("http://100.64.1.1/", "refused 100.64.1.1 (a carrier-grade NAT address)"),
]


@pytest.mark.parametrize(("url", "refusal"), BLOCKED_HTTP)
async def test_http_probe_refuses_non_public_targets_before_connecting(
    url: str, refusal: str, strict_context: ProbeContext, network_log: NetworkLog
) -> None:
    result = await run_probe(http_target(url), strict_context)
    assert outcome(result) == (False, FailureReason.BLOCKED, None, f"{refusal}; {FIX}")
    assert network_log.connects == []


@pytest.mark.parametrize(
    ("kind", "url", "refusal"),
    [
        (ProbeKind.TCP, "tcp://10.0.0.1:5432", "refused 10.0.0.1 (a private address)"),
        (
            ProbeKind.TCP,
            "tcp://169.254.169.254:80",
            "refused 169.254.169.254 (the cloud metadata address (link-local))",
        ),
        (ProbeKind.TLS, "tls://[::1]:443", "refused ::1 (a loopback address)"),
        (
            ProbeKind.TLS,
            "https://localhost",
            "refused localhost (it resolves to 127.0.0.1, a loopback address)",
        ),
    ],
)
async def test_tcp_and_tls_probes_refuse_non_public_targets_before_connecting(
    kind: ProbeKind,
    url: str,
    refusal: str,
    strict_context: ProbeContext,
    network_log: NetworkLog,
) -> None:
    result = await run_probe(kind_target(kind, url), strict_context)
    assert outcome(result) == (False, FailureReason.BLOCKED, None, f"{refusal}; {FIX}")
    assert result.tls_cert_expires_at is None
    assert network_log.connects == []


async def test_allowing_one_loopback_address_does_not_allow_another(
    network_log: NetworkLog,
) -> None:
    async with ProbeContext.create(allow=["127.0.0.1/32"]) as context:
        result = await run_probe(http_target("http://127.0.0.2:8000/"), context)
    assert outcome(result) == (
        False,
        FailureReason.BLOCKED,
        None,
        f"refused 127.0.0.2 (a loopback address); {FIX}",
    )
    assert network_log.connects == []
