"""Errors a client may see. Everything else is masked as "Unexpected error."."""

from __future__ import annotations

from graphql import GraphQLError

from store.errors import (
    InvalidCursorError,
    NotFoundError,
    PageSizeError,
    StoreError,
    ValidationError,
)


class ClientError(Exception):
    """An error caused by the request; its message is safe to show to the client."""


class InvalidIdError(ClientError):
    def __init__(self, value: str, expected: str | None = None) -> None:
        self.value = value
        what = f"a {expected} id" if expected else "an id returned by this API"
        super().__init__(f"id {value!r} is not {what}")


class PermissionDeniedError(ClientError):
    def __init__(self, needed: str) -> None:
        self.needed = needed
        super().__init__(f"this token cannot do that; it needs the {needed} scope")


# Store errors whose message names the user's own input and nothing internal.
_SAFE_STORE_ERRORS: tuple[type[StoreError], ...] = (
    NotFoundError,
    InvalidCursorError,
    PageSizeError,
    ValidationError,
)


def is_client_error(error: GraphQLError) -> bool:
    """Whether `error` may reach the client as it is (otherwise it is masked)."""
    original = error.original_error
    if original is None:
        return True  # syntax and validation errors from graphql-core: about the document itself
    if isinstance(original, GraphQLError):
        return is_client_error(original)
    return isinstance(original, (ClientError, *_SAFE_STORE_ERRORS))
