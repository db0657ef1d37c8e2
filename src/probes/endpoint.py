"""Where a heartbeat URL points: scheme, host and port, checked against the probe kind."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from probes.errors import ProbeConfigError
from probes.redact import display_url
from store.domain import ProbeKind

SCHEMES_BY_KIND: dict[ProbeKind, tuple[str, ...]] = {
    ProbeKind.HTTP: ("http", "https"),
    ProbeKind.TCP: ("tcp",),
    ProbeKind.TLS: ("https", "tls"),
}
ALL_SCHEMES = ("http", "https", "tcp", "tls")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int


def parse_endpoint(url: str | None, kind: ProbeKind | None = None) -> Endpoint:
    """The endpoint of `url`; raises ProbeConfigError when it cannot be a target for `kind`."""
    if not url:
        raise ProbeConfigError("the heartbeat has no URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    schemes = SCHEMES_BY_KIND[kind] if kind else ALL_SCHEMES
    if scheme not in schemes:
        raise ProbeConfigError(
            f"{display_url(url)} is not a valid target; the scheme must be {' or '.join(schemes)}"
        )
    if not parts.hostname:
        raise ProbeConfigError(f"{display_url(url)} has no host")
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        raise ProbeConfigError(f"{display_url(url)} has an invalid port") from None
    if port is None:
        raise ProbeConfigError(f"{display_url(url)} needs a port")
    return Endpoint(scheme, parts.hostname, port)
