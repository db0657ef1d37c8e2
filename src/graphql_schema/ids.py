"""Global ids: opaque, typed, the same for `node(id:)` and every `id` field."""

from __future__ import annotations

import base64
import binascii

from graphql_schema.errors import InvalidIdError


def to_global_id(type_name: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{row_id}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, int]:
    """(type name, row id) of a global id; InvalidIdError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode((global_id + "=" * (-len(global_id) % 4)).encode("ascii"))
        type_name, _, row_id = text.decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidIdError(global_id) from exc
    # ASCII digits only: '²' passes isdigit() and fails int().
    if not type_name or not (row_id.isascii() and row_id.isdigit()) or len(row_id) > 18:
        raise InvalidIdError(global_id)
    return type_name, int(row_id)


def decode_id(global_id: str, expected_type: str) -> int:
    """The row id of a global id that must name `expected_type`."""
    type_name, row_id = from_global_id(global_id)
    if type_name != expected_type:
        raise InvalidIdError(global_id, expected_type)
    return row_id
