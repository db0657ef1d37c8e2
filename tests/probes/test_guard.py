"""The outbound-address guard on its own: literals, names, the allowlist, save-time checks.

No test here opens a connection: resolving a literal or a special-use name does no I/O.
"""

from __future__ import annotations

import socket

import pytest

from probes import AddressGuard, BlockedAddressError, ProbeConfigError
from probes.guard import literal_address, refusal
from tests.probes.conftest import NetworkLog

REFUSED_LITERALS = [
    ("127.0.0.1", "127.0.0.1", "a loopback address"),
    ("::1", "::1", "a loopback address"),
    ("10.0.0.1", "10.0.0.1", "a private address"),
    ("172.16.5.4", "172.16.5.4", "a private address"),
    ("192.168.1.1", "192.168.1.1", "a private address"),
    ("169.254.169.254", "169.254.169.254", "the cloud metadata address (link-local)"),
    ("169.254.1.1", "169.254.1.1", "a link-local address"),
    ("fe80::1", "fe80::1", "a link-local address"),
    ("100.64.0.1", "100.64.0.1", "a carrier-grade NAT address"),
    ("224.0.0.1", "224.0.0.1", "a multicast address"),
    ("ff02::1", "ff02::1", "a multicast address"),
    ("240.0.0.1", "240.0.0.1", "a private address"),
    ("fc00::1", "fc00::1", "a private address"),
    ("fd12:3456::1", "fd12:3456::1", "a private address"),
    ("fec0::1", "fec0::1", "a site-local address"),
    ("0.0.0.0", "0.0.0.0", "the unspecified address"),
    ("::", "::", "the unspecified address"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1", "a loopback address, embedded in IPv6"),
    (
        "::ffff:169.254.169.254",
        "::ffff:169.254.169.254",
        "the cloud metadata address (link-local), embedded in IPv6",
    ),
    ("2002:7f00:1::1", "2002:7f00:1::1", "a loopback address, embedded in IPv6"),
    ("64:ff9b::a00:1", "64:ff9b::a00:1", "a private address, embedded in IPv6"),
    # Legacy IPv4 spellings that getaddrinfo/inet_aton read as loopback.
    ("2130706433", "127.0.0.1", "a loopback address"),
    ("0x7f000001", "127.0.0.1", "a loopback address"),
    ("0177.0.0.1", "127.0.0.1", "a loopback address"),
    ("127.1", "127.0.0.1", "a loopback address"),
    ("0", "0.0.0.0", "the unspecified address"),
    ("[::1]", "::1", "a loopback address"),
]


@pytest.mark.parametrize(("host", "address", "why"), REFUSED_LITERALS)
async def test_resolve_refuses_non_public_literals_without_any_io(
    host: str, address: str, why: str, network_log: NetworkLog
) -> None:
    guard = AddressGuard()
    with pytest.raises(BlockedAddressError) as caught:
        await guard.resolve(host, 80)
    error = caught.value
    assert (error.host, error.address, error.why) == (host, address, why)
    assert "add it to HEALTHGRAPH_ALLOW_TARGETS" in error.fix
    assert "HEALTHGRAPH_ALLOW_TARGETS" in str(error)
    assert network_log.connects == []
    assert network_log.lookups == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [("93.184.215.14", ["93.184.215.14"]), ("2606:4700::1111", ["2606:4700::1111"])],
)
async def test_resolve_returns_public_literals_as_they_are(
    host: str, expected: list[str], network_log: NetworkLog
) -> None:
    assert await AddressGuard().resolve(host, 443) == expected
    assert network_log.lookups == []


async def test_localhost_is_loopback_by_definition_and_refused() -> None:
    with pytest.raises(BlockedAddressError) as caught:
        await AddressGuard().resolve("LocalHost.", 80)
    assert (caught.value.host, caught.value.address) == ("LocalHost.", "127.0.0.1")
    assert str(caught.value) == (
        "refused LocalHost. (it resolves to 127.0.0.1, a loopback address); "
        "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS"
    )


async def test_a_subdomain_of_localhost_is_refused_too() -> None:
    with pytest.raises(BlockedAddressError):
        await AddressGuard().resolve("app.localhost", 80)


async def test_invalid_names_fail_as_dns_without_a_lookup(network_log: NetworkLog) -> None:
    with pytest.raises(socket.gaierror):
        await AddressGuard().resolve("heartbeat.invalid", 80)
    assert network_log.lookups == []


async def test_allow_by_cidr_admits_addresses_inside_it_only() -> None:
    guard = AddressGuard(["10.0.0.0/8", "::1/128"])
    assert await guard.resolve("10.20.30.40", 80) == ["10.20.30.40"]
    assert await guard.resolve("::1", 80) == ["::1"]
    with pytest.raises(BlockedAddressError):
        await guard.resolve("192.168.0.1", 80)
    with pytest.raises(BlockedAddressError):
        await guard.resolve("127.0.0.1", 80)


async def test_allowing_an_ipv4_address_admits_its_ipv4_mapped_form() -> None:
    guard = AddressGuard(["127.0.0.1"])
    assert await guard.resolve("::ffff:127.0.0.1", 80) == ["::ffff:7f00:1"]
    with pytest.raises(BlockedAddressError):
        await guard.resolve("::ffff:127.0.0.2", 80)


async def test_allow_by_exact_host_name() -> None:
    guard = AddressGuard(["localhost"])
    assert await guard.resolve("localhost", 80) == ["127.0.0.1", "::1"]
    with pytest.raises(BlockedAddressError):
        await guard.resolve("app.localhost", 80)
    with pytest.raises(BlockedAddressError):
        await guard.resolve("127.0.0.1", 80)  # the name is allowed, not its address


async def test_allow_by_wildcard_admits_subdomains_not_the_parent() -> None:
    guard = AddressGuard(["*.svc.localhost"])
    assert await guard.resolve("a.svc.localhost", 80) == ["127.0.0.1", "::1"]
    assert await guard.resolve("b.a.SVC.localhost.", 80) == ["127.0.0.1", "::1"]
    with pytest.raises(BlockedAddressError):
        await guard.resolve("svc.localhost", 80)
    with pytest.raises(BlockedAddressError):
        await guard.resolve("evilsvc.localhost", 80)  # a suffix only on a label boundary


@pytest.mark.parametrize("entry", ["http://10.0.0.1/", "10.0.0.0/33", "*.", "a b", "-bad-.example"])
def test_an_allow_entry_that_is_neither_address_nor_name_is_a_config_error(entry: str) -> None:
    with pytest.raises(ProbeConfigError) as caught:
        AddressGuard([entry])
    assert str(caught.value) == (
        f"HEALTHGRAPH_ALLOW_TARGETS entry {entry!r} is neither an address, a CIDR nor a host "
        "name (api.example.com or *.example.com)"
    )


async def test_allow_by_internationalized_name_matches_its_idna_form() -> None:
    guard = AddressGuard(["*.bücher.localhost"])
    assert await guard.resolve("shop.xn--bcher-kva.localhost", 80) == ["127.0.0.1", "::1"]
    assert await guard.resolve("shop.BÜCHER.localhost", 80) == ["127.0.0.1", "::1"]


async def test_a_name_idna_cannot_encode_does_not_resolve(network_log: NetworkLog) -> None:
    with pytest.raises(socket.gaierror):
        await AddressGuard().resolve("x" * 70 + "é.example", 80)  # label too long for IDNA
    assert network_log.lookups == []


def test_blank_allow_entries_are_ignored() -> None:
    AddressGuard(["", "  ", "10.0.0.0/8"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://[::1]:8443/health",
        "tcp://10.0.0.1:5432",
        "tls://169.254.169.254:443",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:8080/",
        "http://localhost:8000/",
        "http://user:pw@10.1.2.3/",
    ],
)
async def test_check_url_refuses_non_public_targets_at_save_time(
    url: str, network_log: NetworkLog
) -> None:
    with pytest.raises(BlockedAddressError):
        await AddressGuard().check_url(url)
    assert network_log.connects == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://example.com/",
            "ftp://example.com/ is not a valid target; the scheme must be http or https or tcp or tls",
        ),
        (
            "file:///etc/passwd",
            "file:///etc/passwd is not a valid target; the scheme must be http or https or tcp or tls",
        ),
        (
            "gopher://127.0.0.1:70/",
            "gopher://127.0.0.1:70/ is not a valid target; the scheme must be http or https or tcp or tls",
        ),
        ("tcp://db.example.com", "tcp://db.example.com needs a port"),
        ("http://", "http:// has no host"),
        ("http://example.com:99999/", "http://example.com/ has an invalid port"),
    ],
)
async def test_check_url_rejects_bad_schemes_and_urls_as_config_errors(
    url: str, message: str
) -> None:
    with pytest.raises(ProbeConfigError) as caught:
        await AddressGuard().check_url(url)
    assert str(caught.value) == message


async def test_check_url_config_error_does_not_echo_userinfo_or_query() -> None:
    with pytest.raises(ProbeConfigError) as caught:
        await AddressGuard().check_url("ftp://user:hunter2@example.com/x?key=hunter3")
    assert "hunter" not in str(caught.value)


async def test_check_url_passes_public_and_allowed_targets() -> None:
    await AddressGuard().check_url("https://93.184.215.14/health")
    await AddressGuard(["127.0.0.1/32"]).check_url("http://127.0.0.1:8000/health")
    await AddressGuard().check_url("http://name.invalid/")  # unresolvable: the probe says DNS


def test_literal_address_reads_only_what_is_an_address() -> None:
    assert str(literal_address("fe80::1%25eth0")) == "fe80::1%eth0"
    assert str(literal_address("123.456")) == "123.0.1.200"  # inet_aton's a.b form
    assert literal_address("api.example.com") is None
    assert literal_address("0x") is None
    assert literal_address("1e5") is None
    assert literal_address("99999999999") is None


def test_refusal_is_none_for_public_addresses_only() -> None:
    from ipaddress import ip_address

    assert refusal(ip_address("8.8.8.8")) is None
    assert refusal(ip_address("2001:4860:4860::8888")) is None
    assert refusal(ip_address("::ffff:8.8.8.8")) is None
    assert refusal(ip_address("2001:db8::1")) == "a private address"  # documentation range
