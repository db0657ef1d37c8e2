"""The outbound-address guard (SSRF): a probe reaches only public addresses, or allowed ones.

Every address a target denotes or resolves to must be globally routable unless an entry of
HEALTHGRAPH_ALLOW_TARGETS admits it by address/CIDR or by host name. The guard hands the
validated addresses to the caller, who connects to exactly those (no second lookup to rebind).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Sequence

from probes.endpoint import parse_endpoint
from probes.errors import ALLOW_TARGETS_SETTING, BlockedAddressError, ProbeConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = ipaddress.IPv4Address("169.254.169.254")
# The spellings inet_aton (and so getaddrinfo, curl, browsers) reads as IPv4: 2130706433,
# 0x7f000001, 0177.0.0.1, 127.1. ipaddress refuses them, so they need their own path.
_LEGACY_IPV4 = re.compile(r"(?i)(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")
_HOST_LABEL = re.compile(r"(?i)^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# RFC 6761: these names never go to DNS; .localhost is loopback, .invalid never resolves.
_LOOPBACK_NAMES = ("127.0.0.1", "::1")


# Cached: every probe asks twice for its host, and ip_address() raises for every name.
@functools.lru_cache(maxsize=8192)
def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells without DNS (brackets, zones and legacy IPv4 forms), or None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.replace("%25", "%")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    text = text.rstrip(".")
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def display_address(address: IPAddress) -> str:
    """`address` as people write it: IPv4-mapped IPv6 keeps its dotted quad."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public target ("a loopback address"), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by it: ::ffff:127.0.0.1 is loopback.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            why = refusal(embedded)
            return f"{why}, embedded in IPv6" if why else None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address == _METADATA:
        return "the cloud metadata address (link-local)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _normalize_name(host: str) -> str:
    """Lower case, no trailing dot, IDNA-encoded; ValueError for a name IDNA cannot encode."""
    name = host.strip().lower().rstrip(".")
    if not name.isascii():
        name = name.encode("idna").decode("ascii")  # UnicodeError is a ValueError
    return name


def _is_host_name(name: str) -> bool:
    return bool(name) and all(_HOST_LABEL.match(label) for label in name.split("."))


class AddressGuard:
    """Decides which addresses a probe may connect to; see the module docstring."""

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self._networks: list[IPNetwork] = []
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        for raw in allow:
            entry = raw.strip()
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            wildcard = entry.startswith("*.")
            try:
                name = _normalize_name(entry[2:] if wildcard else entry)
            except ValueError:
                name = ""
            if not _is_host_name(name):
                raise ProbeConfigError(
                    f"{ALLOW_TARGETS_SETTING} entry {entry!r} is neither an address, a CIDR nor "
                    "a host name (api.example.com or *.example.com)"
                )
            if wildcard:
                self._suffixes.append("." + name)
            else:
                self._names.add(name)

    def _name_allowed(self, host: str) -> bool:
        try:
            name = _normalize_name(host)
        except ValueError:
            return False
        return name in self._names or name.endswith(tuple(self._suffixes))

    def _address_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return any(a in network for a in candidates for network in self._networks)

    def check(self, host: str, address: IPAddress) -> str:
        """`address` as a string if the policy admits it for `host`; else BlockedAddressError."""
        if self._name_allowed(host) or self._address_allowed(address):
            return str(address)
        why = refusal(address)
        if why is not None:
            raise BlockedAddressError(host, display_address(address), why)
        return str(address)

    def check_literal(self, host: str) -> str | None:
        """Validate `host` if it spells an address (no DNS); None when it is a name."""
        address = literal_address(host)
        return None if address is None else self.check(host, address)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, every one validated.

        Raises BlockedAddressError if any address is refused (a name that mixes public and
        private answers is refused whole), socket.gaierror if the name does not resolve.
        """
        literal = self.check_literal(host)
        if literal is not None:
            return [literal]
        try:
            name = _normalize_name(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "not a valid host name") from None
        if name == "invalid" or name.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if name == "localhost" or name.endswith(".localhost"):
            found = list(_LOOPBACK_NAMES)
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                name, port, type=socket.SOCK_STREAM
            )
            found = [str(info[4][0]) for info in infos]
        addresses: list[str] = []
        for text in found:
            address = literal_address(text)
            if address is None:  # pragma: no cover - getaddrinfo returns numeric addresses
                raise socket.gaierror(socket.EAI_NONAME, f"unexpected address {text!r}")
            checked = self.check(host, address)
            if checked not in addresses:
                addresses.append(checked)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return addresses

    async def check_url(self, url: str) -> None:
        """Save-time check: ProbeConfigError for a bad URL, BlockedAddressError for a refused one.

        A name that does not resolve today passes: the probe will report DNS, and the
        connect-time check still applies when it does resolve.
        """
        endpoint = parse_endpoint(url)
        try:
            await self.resolve(endpoint.host, endpoint.port)
        except socket.gaierror:
            return

    async def refusal(self, url: str) -> str | None:
        """`store.outbound.OutboundPolicy`: why `url` may not be a target, or None.

        What the store's commands ask before they save a heartbeat or webhook URL.
        """
        try:
            await self.check_url(url)
        except (BlockedAddressError, ProbeConfigError) as exc:
            return str(exc)
        return None
