"""The schema with its guards: depth, alias and token limits, masked errors, one session per
operation closed when it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from graphql_schema.context import GraphQLContext
from graphql_schema.errors import is_client_error
from graphql_schema.execution import InliningExecutor
from graphql_schema.mutation import Mutation
from graphql_schema.page_size import PageSizeRule
from graphql_schema.query import Query
from graphql_schema.subscription import Subscription

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
# Distinct documents kept parsed and validated (clients send a handful of documents again and
# again); bounded so unique texts cannot grow memory.
PARSED_DOCUMENTS = 256


class CloseSession(SchemaExtension):
    """Give the request's database session back when the operation ends, however it ends."""

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            context = self.execution_context.context
            if isinstance(context, GraphQLContext):
                await context.close()


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    # The depth and alias limiters build a new validation rule class per instance; built once
    # here and handed to every request, the rules stay the same objects, so ValidationCache
    # (keyed by schema, document and rules) answers a repeated document without validating
    # it again. ParserCache keys by the text and the parse options, max_tokens included.
    rules: list[Any] = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
        PageSizeRule,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        CloseSession,
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=lambda error: not is_client_error(error)),
        lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
        lambda: ValidationCache(maxsize=PARSED_DOCUMENTS),
    ]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=InliningExecutor,
    )


if __name__ == "__main__":
    # `python -m graphql_schema.schema > schema.graphql` refreshes the committed SDL.
    print(build_schema().as_str())
