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
