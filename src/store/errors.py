"""Errors raised by the store. Each carries the offending value and, where possible, the fix."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for store errors."""


class DatabaseUrlError(StoreError):
    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(
            f"database URL {url!r}: {problem}; "
            "use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
        )


class NotFoundError(StoreError):
    def __init__(self, kind: str, identifier: object) -> None:
        self.kind = kind
        self.identifier = identifier
        super().__init__(f"{kind} {identifier!r} does not exist")


class InvalidCursorError(StoreError):
    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(f"cursor {cursor!r} is not valid; pass a cursor returned by this API")


class PageSizeError(StoreError):
    def __init__(self, first: int, maximum: int) -> None:
        self.first = first
        self.maximum = maximum
        super().__init__(f"first: {first} is out of range; use 0..{maximum}")


class ValidationError(StoreError):
    """Input the caller can fix: names the field (the domain's snake_case name) and its value.

    The message reads "{field}: {problem}". `value` is what was rejected, except for secrets,
    where it is "<redacted>" so that logging the error cannot leak them.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ConflictError(ValidationError):
    """Valid input that the current state of the data refuses (e.g. deleting a used connector).

    The message is one sentence naming the record, e.g. "connector 'quickbooks' is used by
    3 connections; delete or move them first"; `field` and `value` still name the argument.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(field, value, problem)
        self.args = (problem,)
