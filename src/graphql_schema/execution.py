"""graphql-core's executor, doing less per field for the two commonest kinds of field.

A page of 100 connections selects about 2,500 fields, three in four of them scalars or enums
read straight off an attribute. For each, graphql-core builds a response path and a resolve
info, checks for arguments, calls strawberry's resolver wrapper and walks `complete_value`'s
type tests twice (non-null, then leaf): more CPU than the SQL of the whole page. Here such a
*plain* field is read and coerced in a few steps. A plain field whose value is not simply
valid (null where non-null, an awaitable, a value the type refuses, an exception) takes
graphql-core's own path, so errors, nulls and their paths are exactly what they were.

Fields with a *resolver* and nothing around it are called directly, with their arguments
coerced and converted once per field of the document instead of once per object (strawberry
converts them on every call). Their results are completed by graphql-core as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import Schema as StrawberrySchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.arguments import convert_arguments
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver


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


class ResolverField(NamedTuple):
    """A field whose resolver strawberry calls with nothing around it (no field extension,
    permission class or exception handler): called here directly."""

    graphql_field: GraphQLField
    definition: StrawberryField
    resolver: StrawberryResolver[Any]
    info_class: type[Any]
    config: StrawberryConfig
    scalar_registry: Any
    source_as_self: bool
    # Parameters strawberry fills with the source (`root`, a `Parent` annotation).
    source_keywords: tuple[str, ...]
    info_keyword: str | None


def resolver_field(
    field: GraphQLField, definition: StrawberryField, schema: StrawberrySchema
) -> ResolverField | None:
    """`field` as a `ResolverField`, or None when strawberry's own wrapper must call it."""
    resolver = definition.base_resolver
    converter = schema.schema_converter
    if (
        resolver is None
        or definition.extensions
        or definition.is_subscription
        or field.resolve is None
        # Any exception handler can reshape a resolver's error: leave all fields to strawberry.
        or getattr(converter, "_exception_handler_specs", None)
    ):
        return None
    source_keywords = tuple(
        parameter.name
        for parameter in (resolver.root_parameter, resolver.parent_parameter)
        if parameter is not None
    )
    info = resolver.info_parameter
    return ResolverField(
        graphql_field=field,
        definition=definition,
        resolver=resolver,
        info_class=schema.config.info_class,
        config=schema.config,
        scalar_registry=converter.scalar_registry,
        source_as_self=resolver.self_parameter is not None,
        source_keywords=source_keywords,
        info_keyword=info.name if info is not None else None,
    )


# Per object type of a schema; weak so that schemas built and dropped (tests) are not kept.
_fields: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, PlainField | ResolverField]] = (
    weakref.WeakKeyDictionary()
)


def fields_of(
    schema: GraphQLSchema, object_type: GraphQLObjectType
) -> dict[str, PlainField | ResolverField]:
    """The fields of `object_type` this executor runs itself, by GraphQL name (found once per
    type); the others go through graphql-core and strawberry as usual."""
    found = _fields.get(object_type)
    if found is None:
        found = {}
        definition = object_type.extensions.get("strawberry-definition")
        strawberry_schema = getattr(schema, "_strawberry_schema", None)
        if definition is not None and strawberry_schema is not None:
            names = strawberry_schema.config.name_converter
            for strawberry_field in definition.fields:
                name = names.get_graphql_name(strawberry_field)
                field = object_type.fields.get(name)
                if field is None:
                    continue
                known = plain_field(field, strawberry_field) or resolver_field(
                    field, strawberry_field, strawberry_schema
                )
                if known is not None:
                    found[name] = known
        _fields[object_type] = found
    return found


class InliningExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with plain fields completed inline and bare resolvers
    called directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Strawberry always hands over a middleware manager; only one that wraps resolvers
        # (an extension implementing `resolve`) must see every field go through it.
        manager = self.middleware_manager
        self._inline = manager is None or manager.get_field_resolver(_unwrapped) is _unwrapped
        # Converted arguments per field group of the document, kept with the group (the key
        # is its id, as graphql-core memoizes sub-selections).
        self._arguments: dict[int, tuple[FieldDetailsList, dict[str, Any]]] = {}
        self._fields: dict[GraphQLObjectType, dict[str, PlainField | ResolverField]] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if not self._inline:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        fields = self._fields.get(parent_type)
        if fields is None:
            fields = self._fields[parent_type] = fields_of(self.schema, parent_type)
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                known = fields.get(field_details_list[0].node.name.value)
                if type(known) is PlainField:
                    completed = _complete_plain(known, source_value, is_awaitable)
                    if completed is not Undefined:
                        results[response_name] = completed
                        continue
                field_path = Path(path, response_name, parent_type.name)
                if type(known) is ResolverField:
                    result = self._execute_resolver_field(
                        known,
                        parent_type,
                        source_value,
                        field_details_list,
                        field_path,
                        position_context,
                    )
                else:
                    result = self.execute_field(
                        parent_type,
                        source_value,
                        field_details_list,
                        field_path,
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

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's, going straight to the sub-selection for a present value of an object
        type (about 950 per page of connections); every other case is graphql-core's."""
        object_type = get_nullable_type(return_type)
        if (
            isinstance(object_type, GraphQLObjectType)
            and result is not None
            and result is not Undefined
            and not isinstance(result, Exception)
            and (object_type.is_type_of is None or object_type.is_type_of(result, info) is True)
        ):
            return self.collect_and_execute_subfields(
                object_type, field_details_list, path, result, position_context
            )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

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

    def _execute_resolver_field(
        self,
        field: ResolverField,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_field`, calling the resolver without strawberry's wrapper."""
        return_type = field.graphql_field.type
        info = self.build_resolve_info(
            field.graphql_field, to_nodes(field_details_list), parent_type, path
        )
        try:
            result = self._call_resolver(field, source, field_details_list, info)
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, position_context
                )
            completed = self.complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
            if self.is_awaitable(completed):
                return self._await_completed(completed, return_type, field_details_list, path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    def _call_resolver(
        self,
        field: ResolverField,
        source: Any,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
    ) -> Any:
        """What strawberry's `get_arguments` and resolver wrapper do, minus the per-call
        argument conversion."""
        strawberry_info = field.info_class(_raw_info=info, _field=field.definition)
        keywords = dict(self._converted_arguments(field, field_details_list, strawberry_info))
        for name in field.source_keywords:
            keywords[name] = source
        if field.info_keyword is not None:
            keywords[field.info_keyword] = strawberry_info
        if field.source_as_self:
            return field.resolver(source, **keywords)
        return field.resolver(**keywords)

    def _converted_arguments(
        self, field: ResolverField, field_details_list: FieldDetailsList, info: Any
    ) -> dict[str, Any]:
        """The field's arguments as its resolver takes them, converted once per field group.

        The arguments of a field group depend only on the document and the variables, so the
        100 `uses(first: 5)` of a page are converted once, not 100 times (with graphql-core's
        coercion, a fifth of that page's CPU). Resolvers receive the same converted values
        and must not change them (none does).
        """
        cached = self._arguments.get(id(field_details_list))
        if cached is not None:
            return cached[1]
        first = field_details_list[0]
        raw = get_argument_values(
            field.graphql_field,
            first.node,
            self.variable_values,
            first.fragment_variable_values,
            self.hide_suggestions,
        )
        converted = convert_arguments(
            raw,
            field.definition.arguments,
            scalar_registry=field.scalar_registry,
            config=field.config,
            info=info,
        )
        self._arguments[id(field_details_list)] = (field_details_list, converted)
        return converted


# The types of nearly every plain value: no need to ask whether they are awaitable.
_NEVER_AWAITABLE = frozenset({str, int, float, bool, datetime})


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
    if type(value) not in _NEVER_AWAITABLE and (
        isinstance(value, Exception) or is_awaitable(value)
    ):
        return Undefined
    try:
        coerced = plain.leaf_type.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced
