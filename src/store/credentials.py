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
from types import MappingProxyType

from store.errors import ValidationError

REDACTED = "<redacted>"  # ValidationError.value for a rejected secret


class CredentialKind(enum.StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    HEADER = "header"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class CredentialShape:
    """The fields of one kind: `plain` ones may be shown (a header's name), `secret` never."""

    kind: CredentialKind
    plain: tuple[str, ...]
    secret: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.plain, *self.secret)


CREDENTIAL_SHAPES: Mapping[CredentialKind, CredentialShape] = MappingProxyType(
    {
        shape.kind: shape
        for shape in (
            CredentialShape(CredentialKind.BEARER, (), ("token",)),
            CredentialShape(CredentialKind.BASIC, ("username",), ("password",)),
            CredentialShape(CredentialKind.HEADER, ("name",), ("value",)),
            CredentialShape(CredentialKind.QUERY, ("name",), ("value",)),
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
