"""The shape of a connection's credentials: defined here once for every writer and reader.

The store validates a secret with `validate_secret` before encrypting it (whoever writes it:
GraphQL, the catalog or the CLI), the catalog reads the secret fields by reference
(`<field>_env` / `<field>_file`) as `CREDENTIAL_SHAPES` lists them, and the probes rebuild
their credentials from the decrypted mapping with the same function.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from store.errors import ValidationError

REDACTED = "<redacted>"  # ValidationError.value for a rejected secret
OAUTH2_GRANTS = ("refresh_token", "client_credentials")


class CredentialKind(enum.StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    HEADER = "header"
    QUERY = "query"
    OAUTH2 = "oauth2"


@dataclass(frozen=True, slots=True)
class CredentialShape:
    """The fields of one kind: `plain` ones may be shown (a header's name), `secret` never;
    `optional` ones may be left out."""

    kind: CredentialKind
    plain: tuple[str, ...]
    secret: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.plain, *self.secret, *self.optional)


CREDENTIAL_SHAPES: Mapping[CredentialKind, CredentialShape] = MappingProxyType(
    {
        shape.kind: shape
        for shape in (
            CredentialShape(CredentialKind.BEARER, (), ("token",)),
            CredentialShape(CredentialKind.BASIC, ("username",), ("password",)),
            CredentialShape(CredentialKind.HEADER, ("name",), ("value",)),
            CredentialShape(CredentialKind.QUERY, ("name",), ("value",)),
            # The grant's tokens live in `oauth_grants` (store.oauth); these are what sets them.
            # `grant` is refresh_token (the default) or client_credentials, which has no token.
            CredentialShape(
                CredentialKind.OAUTH2,
                (),
                ("refresh_token",),
                ("grant", "access_token", "access_token_expires_at"),
            ),
        )
    }
)
CREDENTIAL_KINDS = tuple(kind.value for kind in CredentialKind)
# Every field any kind has, in a stable order (the GraphQL input lists the same).
CREDENTIAL_FIELDS = tuple(
    dict.fromkeys(field for shape in CREDENTIAL_SHAPES.values() for field in shape.fields)
)

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_secret(secret: object) -> dict[str, str]:
    """`secret` as a credentials mapping of a known shape, or ValidationError naming the field.

    Errors never echo a value: `ValidationError.value` is REDACTED.
    """
    if not isinstance(secret, Mapping):
        raise ValidationError(
            "credentials", REDACTED, f"expected a mapping, got {type(secret).__name__}"
        )
    kind = secret.get("kind")
    if not isinstance(kind, str) or kind not in CREDENTIAL_KINDS:
        raise ValidationError(
            "credentials.kind", REDACTED, f"must be one of {', '.join(CREDENTIAL_KINDS)}"
        )
    shape = CREDENTIAL_SHAPES[CredentialKind(kind)]
    if shape.kind is CredentialKind.OAUTH2:
        return _oauth2_secret(secret)
    for key in secret:
        if key != "kind" and key not in shape.fields:
            raise ValidationError(
                f"credentials.{key}",
                REDACTED,
                f"is not a field of {kind} credentials; expected {', '.join(shape.fields)}",
            )
    for key in shape.fields:
        value = secret.get(key)
        if not isinstance(value, str) or not value:
            raise ValidationError(
                f"credentials.{key}", REDACTED, f"{kind} credentials need a non-empty string"
            )
        # A token read from a file often ends in a newline; it would break the request header.
        if _CONTROL.search(value):
            raise ValidationError(
                f"credentials.{key}", REDACTED, "must not contain control characters or newlines"
            )
    if shape.kind is CredentialKind.HEADER and not HEADER_NAME.match(secret["name"]):
        raise ValidationError("credentials.name", REDACTED, "is not a valid HTTP header name")
    if shape.kind is CredentialKind.BASIC and ":" in secret["username"]:
        raise ValidationError(
            "credentials.username",
            REDACTED,
            "must not contain ':' (basic auth joins user:password)",
        )
    return {"kind": kind, **{key: secret[key] for key in shape.fields}}


def _oauth2_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    grant = secret.get("grant", "refresh_token")
    if grant not in OAUTH2_GRANTS:
        raise ValidationError(
            "credentials.grant", REDACTED, f"must be one of {', '.join(OAUTH2_GRANTS)}"
        )
    allowed = {"kind", "grant"}
    if grant == "refresh_token":
        allowed |= {"refresh_token", "access_token", "access_token_expires_at"}
    for key in secret:
        if key not in allowed:
            raise ValidationError(
                f"credentials.{key}",
                REDACTED,
                f"is not a field of oauth2 credentials with the {grant} grant",
            )
    cleaned = {"kind": CredentialKind.OAUTH2.value, "grant": grant}
    for key in ("refresh_token", "access_token", "access_token_expires_at"):
        value = secret.get(key)
        if value is None:
            if key == "refresh_token" and grant == "refresh_token":
                raise ValidationError(
                    "credentials.refresh_token", REDACTED, "the refresh_token grant needs one"
                )
            continue
        if not isinstance(value, str) or not value or _CONTROL.search(value):
            raise ValidationError(
                f"credentials.{key}", REDACTED, "must be a non-empty string on one line"
            )
        cleaned[key] = value
    if "access_token_expires_at" in cleaned:
        try:
            moment = datetime.fromisoformat(cleaned["access_token_expires_at"])
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValidationError(
                "credentials.access_token_expires_at",
                cleaned["access_token_expires_at"],
                "must be an ISO 8601 time with a time zone",
            )
    return cleaned
