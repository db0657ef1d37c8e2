"""graphql-core's executor, with plain scalar and enum fields completed inline.

A page of 100 connections selects about 2,500 fields, three in four of them scalars or enums
read straight off an attribute. For each, graphql-core builds a response path and a resolve
info, checks for arguments, calls strawberry's resolver wrapper and walks `complete_value`'s
type tests twice (non-null, then leaf): more CPU than the SQL of the whole page. Here such a
field is read and coerced in a few steps. Every other field, and a plain field whose value is
not simply valid (null where non-null, an awaitable, a value the type refuses, an exception),
takes graphql-core's own path, so errors, nulls and their paths are exactly what they were.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import attrgetter
from typing import Any, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import GroupedFieldSet
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField


class PlainField(NamedTuple):
    """A field strawberry resolves by reading an attribute, typed as a scalar or an enum."""

    read: Callable[[Any], Any]
    leaf_type: GraphQLLeafType
    non_null: bool


def plain_field(field: GraphQLField, definition: StrawberryField) -> PlainField | None:
    """`field` (strawberry's `definition` of it) as a `PlainField`, or None when it needs
    graphql-core's full path."""
    # A field without resolver, permission or extension gets a resolver that ignores the
    # resolve info and returns default_resolver(source, python_name) (`is_basic_field`).
    if (
        not getattr(field.resolve, "_is_default", False)
        or not definition.is_basic_field
        or definition.default_resolver is not getattr
    ):
        return None
    field_type = get_nullable_type(field.type)
    if not is_leaf_type(field_type):
        return None
    return PlainField(attrgetter(definition.python_name), field_type, is_non_null_type(field.type))


# Per object type of a schema; weak so that schemas built and dropped (tests) are not kept.
_plain_fields: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, PlainField]] = (
    weakref.WeakKeyDictionary()
)


def plain_fields_of(schema: GraphQLSchema, object_type: GraphQLObjectType) -> dict[str, PlainField]:
    """The plain fields of `object_type`, by GraphQL name (found once per type)."""
    found = _plain_fields.get(object_type)
    if found is None:
        found = {}
        definition = object_type.extensions.get("strawberry-definition")
        strawberry_schema = getattr(schema, "_strawberry_schema", None)
        if definition is not None and strawberry_schema is not None:
            names = strawberry_schema.config.name_converter
            for strawberry_field in definition.fields:
                name = names.get_graphql_name(strawberry_field)
                field = object_type.fields.get(name)
                if field is not None and (plain := plain_field(field, strawberry_field)):
                    found[name] = plain
        _plain_fields[object_type] = found
    return found


class PlainFieldExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with plain fields completed inline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always hands over a middleware manager; only one that wraps resolvers
        # (an extension implementing `resolve`) must see plain fields too.
        manager = self.middleware_manager
        self._inline_plain_fields = (
            manager is None or manager.get_field_resolver(_unwrapped) is _unwrapped
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self._inline_plain_fields:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plain_fields = plain_fields_of(self.schema, parent_type)
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                plain = plain_fields.get(field_details_list[0].node.name.value)
                if plain is not None:
                    completed = _complete_plain(plain, source_value, is_awaitable)
                    if completed is not Undefined:
                        results[response_name] = completed
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                # As graphql-core does: settle what other fields started, they may fail too.
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    async def _gather_fields(
        self, results: dict[str, Any], awaitable_fields: list[str]
    ) -> dict[str, Any]:
        if len(awaitable_fields) == 1:
            name = awaitable_fields[0]
            results[name] = await results[name]
            return results
        # graphql-core's own gather: cancels the others when one fails.
        awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
        return results


def _unwrapped(source: Any, info: Any) -> None:
    """A resolver to see whether the middleware wraps resolvers."""


def _complete_plain(plain: PlainField, source: Any, is_awaitable: Callable[[Any], bool]) -> Any:
    """The completed value, or Undefined when graphql-core must complete it (and report why)."""
    try:
        value = plain.read(source)
    except Exception:
        return Undefined
    if value is None or value is Undefined:
        return Undefined if plain.non_null else None
    if isinstance(value, Exception) or is_awaitable(value):
        return Undefined
    try:
        coerced = plain.leaf_type.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced
