"""The input rules every writer shares: column widths, ranges, and the checks that apply them.

Defined once, here. The store's commands apply them to every write (GraphQL, the catalog, the
CLI and the push endpoints all go through those commands), the ORM columns are sized from the
same constants, and the catalog reader quotes them in its own messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from store.errors import ValidationError

# Bounds of the connection settings.
MIN_CHECK_INTERVAL_SECONDS = 1
MAX_CHECK_INTERVAL_SECONDS = 86400
DEFAULT_CHECK_INTERVAL_SECONDS = 86400  # the seeds' daily heartbeat
MIN_FAILURE_THRESHOLD = 1
MAX_FAILURE_THRESHOLD = 100
DEFAULT_FAILURE_THRESHOLD = 1
# Widths of the text columns, so PostgreSQL never gets a value it would refuse.
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 64  # slugs, categories, use kinds
MAX_EMAIL_LENGTH = 320
MAX_TEXT_LENGTH = 1000  # reported errors and step details


def text(field: str, value: object, max_length: int = MAX_NAME_LENGTH) -> str:
    """`value` without surrounding blanks; refused when blank or wider than its column."""
    if not isinstance(value, str):
        raise ValidationError(field, value, f"expected a string, got {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise ValidationError(field, value, "must not be empty")
    if len(stripped) > max_length:
        raise ValidationError(
            field, value, f"is {len(stripped)} characters long; use at most {max_length}"
        )
    return stripped


def optional_text(field: str, value: object, max_length: int) -> str | None:
    return None if value is None else text(field, value, max_length)


def email(value: object) -> str | None:
    address = optional_text("email", value, MAX_EMAIL_LENGTH)
    if address is not None and "@" not in address:
        raise ValidationError("email", value, f"{address!r} is not an email address")
    return address


def int_in_range(field: str, value: object, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int subclass, and True is no interval
        raise ValidationError(field, value, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, value, f"{value} is out of range; use {low}..{high}")
    return value


def boolean(field: str, value: object) -> bool:
    if type(value) is not bool:
        raise ValidationError(field, value, f"expected true or false, got {type(value).__name__}")
    return value


def interval(value: object) -> int:
    return int_in_range(
        "check_interval_seconds", value, MIN_CHECK_INTERVAL_SECONDS, MAX_CHECK_INTERVAL_SECONDS
    )


def threshold(value: object) -> int:
    return int_in_range("failure_threshold", value, MIN_FAILURE_THRESHOLD, MAX_FAILURE_THRESHOLD)


def aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            field, value, f"{value.isoformat()} has no time zone; pass an aware datetime"
        )
    return value.astimezone(UTC)


def mapping(field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, f"expected a mapping, got {type(value).__name__}")
    return dict(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
