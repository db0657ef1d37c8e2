"""GraphQL over HTTP media types (https://graphql.github.io/graphql-over-http/draft/).

A client that asks for `application/graphql-response+json` gets it, with the status codes it
defines: 400 and no `data` entry when the request never reached execution (the document does
not parse or validate, the variables do not coerce), 500 when the server failed before
execution, 200 once execution began (field errors travel beside `data`). Every other client
(`application/json`, `*/*`, no Accept at all) gets `application/json` and 200, as before.
"""

from __future__ import annotations

import enum

from graphql import GraphQLError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from graphql_schema.errors import is_client_error

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# What the schema's MaskErrors extension (graphql_schema.schema) says in place of an internal
# error: before execution, such an error is the server's fault, not the request's.
MASKED_MESSAGE = "Unexpected error."


class Outcome(enum.Enum):
    """How far a GraphQL request got, which sets the status under graphql-response+json."""

    EXECUTED = 200
    REQUEST_ERROR = 400
    SERVER_ERROR = 500


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def response_media_type(accept: str | None) -> str:
    """The media type to answer a request with `accept` in: GRAPHQL_RESPONSE_JSON when it is
    listed and ranked no lower than application/json (or a wildcard), else JSON."""
    ranked = {GRAPHQL_RESPONSE_JSON: 0.0, JSON: 0.0}
    for media_range in (accept or "").split(","):
        media_type, *parameters = media_range.split(";")
        media_type = media_type.strip().lower()
        quality = _quality(parameters)
        if media_type in ranked:
            ranked[media_type] = max(ranked[media_type], quality)
        elif media_type in ("*/*", "application/*"):
            # A wildcard admits both; it ranks application/json, the legacy default.
            ranked[JSON] = max(ranked[JSON], quality)
    wanted = ranked[GRAPHQL_RESPONSE_JSON]
    return GRAPHQL_RESPONSE_JSON if wanted > 0 and wanted >= ranked[JSON] else JSON


def _before_execution(errors: list[GraphQLError]) -> bool:
    # Parse, validation and variable coercion errors have no path; execution errors always do.
    return all(error.path is None for error in errors)


def outcome(result: ExecutionResult) -> Outcome:
    """Whether `result` came from executing the operation, or from a request that could not
    be executed (and whose fault that was)."""
    errors = result.errors or []
    if not errors or result.data is not None or not _before_execution(errors):
        return Outcome.EXECUTED
    if isinstance(result, PreExecutionError) and any(
        error.message == MASKED_MESSAGE or not is_client_error(error) for error in errors
    ):
        return Outcome.SERVER_ERROR
    return Outcome.REQUEST_ERROR
