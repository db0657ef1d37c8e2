"""What a probe returns, and the credentials it presents."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from probes.errors import ProbeConfigError
from probes.redact import MAX_ERROR_CHARS
from store.credentials import CredentialKind, validate_secret
from store.domain import FailureReason
from store.errors import ValidationError


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One heartbeat outcome. `error` is short, single-line and free of credentials."""

    success: bool
    checked_at: datetime
    latency_ms: float
    failure_reason: FailureReason | None
    error: str | None
    http_status: int | None = None
    tls_cert_expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.checked_at.utcoffset() != timedelta(0):
            raise ValueError("checked_at must be an aware UTC datetime")
        if self.success != (self.failure_reason is None):
            raise ValueError("a result has a failure_reason exactly when it is not a success")
        if self.error is not None and len(self.error) > MAX_ERROR_CHARS:
            raise ValueError(f"error must be at most {MAX_ERROR_CHARS} characters")


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """How a probe authenticates: bearer token, basic auth, a custom header or a query parameter.

    repr shows the kind and the header/parameter name, never a secret.
    """

    kind: CredentialKind
    token: str | None = None
    username: str | None = None
    password: str | None = None
    name: str | None = None
    value: str | None = None
    grant: str | None = None  # OAuth2: the token comes from the grant (probes.token_broker)

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> Credentials:
        """From the decrypted dict; ProbeConfigError names a bad field, never its value."""
        if secret.get("kind") == CredentialKind.OAUTH2:
            # Only the kind and the grant are kept with the connection; the tokens are not.
            return cls(kind=CredentialKind.OAUTH2, grant=str(secret.get("grant", "refresh_token")))
        try:
            fields = validate_secret(secret)
        except ValidationError as exc:
            raise ProbeConfigError(f"stored {exc}") from None
        kind = CredentialKind(fields.pop("kind"))
        return cls(kind=kind, **fields)

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never be shown, including the encoded Basic header."""
        values = [v for v in (self.token, self.password, self.value) if v]
        if self.kind is CredentialKind.BASIC:
            values.append(self.basic_token())
        return tuple(values)

    def basic_token(self) -> str:
        """base64("username:password"), as the Basic scheme sends it."""
        pair = f"{self.username or ''}:{self.password or ''}"
        return base64.b64encode(pair.encode()).decode("ascii")

    def headers(self) -> dict[str, str]:
        """Headers to send with one request."""
        match self.kind:
            case CredentialKind.BEARER:
                return {"Authorization": f"Bearer {self.token}"}
            case CredentialKind.BASIC:
                return {"Authorization": f"Basic {self.basic_token()}"}
            case CredentialKind.HEADER:
                assert self.name is not None and self.value is not None
                return {self.name: self.value}
            case _:
                return {}

    def params(self) -> dict[str, str]:
        """Query parameters to add to one request."""
        if self.kind is CredentialKind.QUERY:
            assert self.name is not None and self.value is not None
            return {self.name: self.value}
        return {}

    def __repr__(self) -> str:
        shown = (
            f", name={self.name!r}"
            if self.kind in (CredentialKind.HEADER, CredentialKind.QUERY)
            else ""
        )
        return f"Credentials(kind={self.kind.value!r}{shown}, secret=***)"
