"""graphql-core's executor, doing less per field for the two commonest kinds of field.

A page of 100 connections selects about 2,500 fields, three in four of them scalars or enums
read straight off an attribute. For each, graphql-core builds a response path and a resolve
info, checks for arguments, calls strawberry's resolver wrapper and walks `complete_value`'s
type tests twice (non-null, then leaf): more CPU than the SQL of the whole page. Here such a
*plain* field (an attribute, or a resolver of `self` alone such as a global id) is read and
coerced in a few steps. A plain value that is not simply valid (null where non-null, an
awaitable, a value the type refuses, an exception) is completed by graphql-core's own
`complete_value`, so errors, nulls and their paths are exactly what they were; the value is
never read twice.

Fields with a *resolver* and nothing around it are called directly, with their arguments
coerced and converted once per field of the document instead of once per object (strawberry
converts them on every call).

An object value, or each object of a list, goes straight to its fields through a *plan* made
once per selection (which fields, and how each runs); nulls, errors, awaitables and objects of
another type are left to graphql-core's `complete_value`.

Measured (2026-12-02, 2-core machine, 100k connections on SQLite, 100 runs after 5 warm-up):
`.venv/bin/python bench/graphql_bench.py --database-url sqlite:///<seeded> --only "(a)"
--skip-app [--stock-executor]`, the connected-accounts page with its uses:

    connections(first: 100)   p50 12.4 ms, p99 14.2 ms   stock: p50 27.0 ms, p99 42.4 ms
    connections(first: 500)   p50 60.8 ms, p99 68.2 ms   stock: p50 118.4 ms, p99 162.8 ms

No public strawberry or graphql-core hook gives this: the cost is in graphql-core's per-field
steps, which only an execution context can skip. So the executor stays, pinned and tested
against the stock one (see `execution_fields`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import to_nodes
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.arguments import convert_arguments

from graphql_schema.execution_fields import (
    UNDECIDED,
    PlainField,
    PlainObjectField,
    Plan,
    ResolverField,
    Shape,
    coerce_plain,
    fields_of,
    shape_of,
)


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
        self._plans: dict[int, tuple[GroupedFieldSet, Plan]] = {}
        self._subfield_plans: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, Plan | None]
        ] = {}
        self._shapes: dict[GraphQLOutputType, Shape] = {}
        self._streamable = self.schema.get_directive("stream") is not None

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
        return self._execute_plan(
            parent_type,
            source_value,
            path,
            self._plan(parent_type, grouped_field_set),
            position_context,
        )

    def _execute_plan(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        plan: Plan,
        position_context: Any,
    ) -> Any:
        """`execute_fields` for the fields of a `Plan`."""
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, known in plan:
                if type(known) is PlainField:
                    try:
                        value = known.read(source_value)
                    except Exception as raw_error:
                        # What graphql-core makes of a resolver that returns its error.
                        value = raw_error
                    if value is None and not known.non_null:
                        results[response_name] = None
                        continue
                    completed = known.coerce_common(value)
                    if completed is UNDECIDED:
                        completed = coerce_plain(known, value, is_awaitable)
                    if completed is not Undefined:
                        results[response_name] = completed
                        continue
                elif type(known) is PlainObjectField:
                    try:
                        value = known.read(source_value)
                    except Exception as raw_error:
                        value = raw_error
                field_path = Path(path, response_name, parent_type.name)
                if type(known) is PlainField or type(known) is PlainObjectField:
                    result = self._complete_read_value(
                        known.graphql_field,
                        parent_type,
                        value,
                        field_details_list,
                        field_path,
                        position_context,
                    )
                elif type(known) is ResolverField:
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
                    if type(result) is not dict and is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                # As graphql-core does: settle what other fields started, they may fail too.
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        """Each field of the set with how it is executed, found once per set and request
        (a set is collected for one object type: its id is key enough)."""
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        fields = fields_of(self.schema, parent_type)
        plan = tuple(
            (response_name, field_details_list, fields.get(field_details_list[0].node.name.value))
            for response_name, field_details_list in grouped_field_set.items()
        )
        # The set is kept with its plan so that its id is not reused during the request.
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

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
        type and for the items of a list of objects (about 950 objects per page of
        connections); every other case is graphql-core's."""
        shape = self._shapes.get(return_type)
        if shape is None:
            shape = self._shapes[return_type] = shape_of(return_type)
        object_type, item_type = shape
        if object_type is not None:
            if item_type is None:
                if (
                    result is not None
                    and result is not Undefined
                    and not isinstance(result, Exception)
                    and (
                        object_type.is_type_of is None
                        or object_type.is_type_of(result, info) is True
                    )
                ):
                    return self._execute_subfields(
                        object_type, field_details_list, path, result, position_context
                    )
            elif type(result) is list or type(result) is tuple:
                return self._complete_object_list(
                    return_type,
                    object_type,
                    item_type,
                    field_details_list,
                    info,
                    path,
                    result,
                    position_context,
                )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _execute_subfields(
        self,
        object_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        key = (object_type, id(field_details_list))
        cached = self._subfield_plans.get(key)
        if cached is None:
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(
                object_type, field_details_list
            )
            # Deferred fragments need graphql-core's incremental executor.
            plan = None if new_defer_usages else self._plan(object_type, grouped_field_set)
            # Kept with the group (graphql-core memoizes on its id the same way).
            cached = self._subfield_plans[key] = (field_details_list, plan)
        plan = cached[1]
        if plan is None or position_context is not None or not self._inline:
            return self.collect_and_execute_subfields(
                object_type, field_details_list, path, result, position_context
            )
        return self._execute_plan(object_type, result, path, plan, None)

    def _complete_object_list(
        self,
        return_type: GraphQLOutputType,
        object_type: GraphQLObjectType,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        items: list[Any] | tuple[Any, ...],
        position_context: Any,
    ) -> Any:
        """graphql-core's `complete_iterable_value` for a list of objects, with each present
        object of the type executed without the generic steps in between."""
        if self._streamable and self.get_stream_usage(field_details_list, path) is not None:
            return super().complete_value(
                return_type, field_details_list, info, path, items, position_context
            )
        is_awaitable = self.is_awaitable
        is_type_of = object_type.is_type_of
        completed_items: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                if (
                    item is None
                    or isinstance(item, Exception)
                    or is_awaitable(item)
                    or (is_type_of is not None and is_type_of(item, info) is not True)
                ):
                    # Nulls, errors, awaitables and objects of another type: graphql-core's way.
                    rest = (item_type, field_details_list, info, item_path, position_context)
                    if is_awaitable(item):
                        completed_items.append(self.complete_awaitable_list_item_value(item, *rest))
                        awaitable_indices.append(index)
                    elif self.complete_list_item_value(item, completed_items, *rest):
                        awaitable_indices.append(index)
                    continue
                try:
                    completed = self._execute_subfields(
                        object_type, field_details_list, item_path, item, position_context
                    )
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    completed = None
                if type(completed) is not dict and is_awaitable(completed):
                    completed = self._await_completed(
                        completed, item_type, field_details_list, item_path
                    )
                    awaitable_indices.append(index)
                completed_items.append(completed)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed_items[index] for index in awaitable_indices])
            raise
        if not awaitable_indices:
            return completed_items
        return self._gather_items(completed_items, awaitable_indices)

    async def _gather_items(
        self, completed_items: list[Any], awaitable_indices: list[int]
    ) -> list[Any]:
        awaited = await gather_with_cancel(*(completed_items[i] for i in awaitable_indices))
        for index, item in zip(awaitable_indices, awaited, strict=True):
            completed_items[index] = item
        return completed_items

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

    def _complete_read_value(
        self,
        field: GraphQLField,
        parent_type: GraphQLObjectType,
        value: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_field` for a value read without a resolve info."""
        info = self.build_resolve_info(field, to_nodes(field_details_list), parent_type, path)
        return self._complete_resolved(
            field.type, field_details_list, info, path, value, position_context
        )

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
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return self._complete_resolved(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_resolved(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """The rest of graphql-core's `execute_field` once the field's value is known."""
        try:
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
            return field.call(source, **keywords)
        return field.call(**keywords)

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


def _unwrapped(source: Any, info: Any) -> None:
    """A resolver to see whether the middleware wraps resolvers."""
