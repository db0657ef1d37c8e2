"""Which fields `execution.InliningExecutor` runs itself, and how: the field's strawberry
definition read once per object type.

This reads strawberry's schema-building results through its public names where it has them
(`is_default_resolver`, `Schema.exception_handlers`, `CustomGraphQLEnumType.wrapped_cls`) and
two private ones where it has none: the strawberry schema kept on graphql-core's
(`GraphQLSchema._strawberry_schema`) and `Info`'s constructor (`_raw_info`, `_field`, in
`execution`). Both are read directly, never through a default, so a release that renames them
fails at the first query instead of silently taking another path; pyproject.toml pins
strawberry-graphql and graphql-core to the minor versions that tests/graphql_schema/
test_execution*.py (every path compared with strawberry's own executor: the read views,
mutations, client and masked errors, field extensions, permissions, exception handlers and
middleware) have passed on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from types import FunctionType
from typing import Any, NamedTuple

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    get_nullable_type,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Undefined
from strawberry.resolvers import is_default_resolver
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import Schema as StrawberrySchema
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.types.field import StrawberryField


def has_exception_handlers(schema: StrawberrySchema) -> bool:
    """Whether the schema has exception handlers, which may reshape any resolver's error."""
    return bool(schema.exception_handlers)


# What a fast coercion returns when graphql-core's own must decide.
UNDECIDED: Any = object()


class PlainField(NamedTuple):
    """A field whose value needs no resolve info (an attribute, or a synchronous resolver of
    `self` alone), typed as a scalar or an enum."""

    read: Callable[[Any], Any]
    graphql_field: GraphQLField
    leaf_type: GraphQLLeafType
    non_null: bool
    # The coerced value of the commonest values (a str for String), else UNDECIDED.
    coerce_common: Callable[[Any], Any]


class PlainObjectField(NamedTuple):
    """A field whose value needs no resolve info, typed as an object or a list: read here,
    completed by `complete_value`."""

    read: Callable[[Any], Any]
    graphql_field: GraphQLField


def plain_field(
    field: GraphQLField, definition: StrawberryField, schema: StrawberrySchema
) -> PlainField | PlainObjectField | None:
    """`field` (strawberry's `definition` of it) read without a resolve info, or None when it
    needs one."""
    read = _plain_reader(field, definition, schema)
    if read is None:
        return None
    field_type = get_nullable_type(field.type)
    if not is_leaf_type(field_type):
        return PlainObjectField(read, field)
    return PlainField(
        read, field, field_type, is_non_null_type(field.type), _common_coercion(field_type)
    )


def _plain_reader(
    field: GraphQLField, definition: StrawberryField, schema: StrawberrySchema
) -> Callable[[Any], Any] | None:
    # A field without resolver, permission or extension gets a resolver that ignores the
    # resolve info and returns default_resolver(source, python_name) (`is_basic_field`).
    if field.resolve is not None and is_default_resolver(field.resolve):
        if definition.is_basic_field and definition.default_resolver is getattr:
            return attrgetter(definition.python_name)
        return None
    resolver = definition.base_resolver
    if (
        resolver is None
        or field.resolve is None
        or definition.extensions
        or definition.is_subscription
        or definition.arguments
        or resolver.is_async
        or resolver.self_parameter is None
        or resolver.info_parameter is not None
        or resolver.root_parameter is not None
        or resolver.parent_parameter is not None
        or has_exception_handlers(schema)
    ):
        return None
    read = resolver.wrapped_func
    return read if isinstance(read, FunctionType) else None


def _common_coercion(leaf_type: GraphQLLeafType) -> Callable[[Any], Any]:
    """For the built-in scalars and strawberry's enums, the coercion of the values they are
    nearly always given, with the same result as `leaf_type.coerce_output_value`."""
    exact_type = _EXACT_TYPES.get(leaf_type)
    if exact_type is not None:
        return lambda value: value if type(value) is exact_type else UNDECIDED
    if leaf_type is GraphQLInt:
        return lambda value: (
            value if type(value) is int and _MIN_INT <= value <= _MAX_INT else UNDECIDED
        )
    if isinstance(leaf_type, CustomGraphQLEnumType):
        wrapped_class = leaf_type.wrapped_cls
        # Strawberry's enum type returns the first name whose value equals the member's.
        names: dict[Any, str] = {}
        try:
            for name, enum_value in leaf_type.values.items():
                names.setdefault(enum_value.value, name)
        except TypeError:  # an unhashable value: leave the enum to its own coercion
            return lambda value: UNDECIDED

        member_class: Any = wrapped_class  # `type(value) is` a `type` would narrow to object

        def coerce_member(value: Any) -> Any:
            if type(value) is member_class:
                return names.get(value.value, UNDECIDED)
            return UNDECIDED

        return coerce_member
    return lambda value: UNDECIDED


_EXACT_TYPES: dict[GraphQLLeafType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
}
_MIN_INT, _MAX_INT = -(2**31), 2**31 - 1


class ResolverField(NamedTuple):
    """A field whose resolver strawberry calls with nothing around it (no field extension,
    permission class or exception handler): called here directly."""

    graphql_field: GraphQLField
    definition: StrawberryField
    # The resolver's function itself where it is one (as `StrawberryResolver.__call__` does).
    call: Callable[..., Any]
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
        or has_exception_handlers(schema)
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
        call=resolver.wrapped_func if isinstance(resolver.wrapped_func, FunctionType) else resolver,
        info_class=schema.config.info_class,
        config=schema.config,
        scalar_registry=converter.scalar_registry,
        source_as_self=resolver.self_parameter is not None,
        source_keywords=source_keywords,
        info_keyword=info.name if info is not None else None,
    )


KnownField = PlainField | PlainObjectField | ResolverField

# The fields of a selection on one object type: response name, field group, how it runs
# (None: through graphql-core).
Plan = tuple[tuple[str, FieldDetailsList, KnownField | None], ...]

# Per object type of a schema; weak so that schemas built and dropped (tests) are not kept.
_fields: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, KnownField]] = (
    weakref.WeakKeyDictionary()
)


def fields_of(schema: GraphQLSchema, object_type: GraphQLObjectType) -> dict[str, KnownField]:
    """The fields of `object_type` this executor runs itself, by GraphQL name (found once per
    type); the others go through graphql-core and strawberry as usual."""
    found = _fields.get(object_type)
    if found is None:
        found = {}
        definition = object_type.extensions.get("strawberry-definition")
        # Strawberry keeps itself on the graphql-core schema it builds (private; pinned).
        strawberry_schema: StrawberrySchema = schema._strawberry_schema  # type: ignore[attr-defined]
        if definition is not None:
            names = strawberry_schema.config.name_converter
            for strawberry_field in definition.fields:
                name = names.get_graphql_name(strawberry_field)
                field = object_type.fields.get(name)
                if field is None:
                    continue
                known = plain_field(field, strawberry_field, strawberry_schema) or resolver_field(
                    field, strawberry_field, strawberry_schema
                )
                if known is not None:
                    found[name] = known
        _fields[object_type] = found
    return found


class Shape(NamedTuple):
    """What `complete_value` needs to know of a return type to take its shortcuts."""

    object_type: GraphQLObjectType | None  # of the value, or of the items of a list
    item_type: GraphQLOutputType | None  # for a list of objects


def shape_of(return_type: GraphQLOutputType) -> Shape:
    nullable = get_nullable_type(return_type)
    if isinstance(nullable, GraphQLObjectType):
        return Shape(nullable, None)
    if isinstance(nullable, GraphQLList):
        item_object = get_nullable_type(nullable.of_type)
        if isinstance(item_object, GraphQLObjectType):
            return Shape(item_object, nullable.of_type)
    return Shape(None, None)


# The types of nearly every plain value: no need to ask whether they are awaitable.
NEVER_AWAITABLE = frozenset({str, int, float, bool, datetime})


def coerce_plain(plain: PlainField, value: Any, is_awaitable: Callable[[Any], bool]) -> Any:
    """The completed value, or Undefined when graphql-core must complete it (and report why)."""
    if value is None or value is Undefined:
        return Undefined if plain.non_null else None
    if type(value) not in NEVER_AWAITABLE and (isinstance(value, Exception) or is_awaitable(value)):
        return Undefined
    try:
        coerced = plain.leaf_type.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced
