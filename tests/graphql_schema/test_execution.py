"""Plain fields completed inline must answer exactly as graphql-core's own path: same data,
same errors with the same paths, same nulls, and middleware still sees every field."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLString,
)
from graphql.pyutils import Undefined
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema import execution, execution_fields
from graphql_schema.context import GraphQLContext, Viewer
from graphql_schema.execution import InliningExecutor
from graphql_schema.execution_fields import PlainField, ResolverField, fields_of
from graphql_schema.schema import build_schema
from healthgraph.database import Database
from tests.factories import seed_healthy_and_failed

QUERIES = Path(__file__).parents[2] / "docs" / "queries"
# The views that read. A mutation's answer holds the time it ran (the sync link's expiry), so
# two runs need not agree; test_views runs it against the demo.
READ_VIEWS = sorted(
    path for path in QUERIES.glob("*.graphql") if "\nmutation " not in f"\n{path.read_text()}"
)


def test_a_connection_s_fields_by_how_they_are_executed() -> None:
    schema = build_schema()
    connection_type = schema._schema.type_map["Connection"]
    assert isinstance(connection_type, GraphQLObjectType)
    fields = fields_of(schema._schema, connection_type)
    assert sorted(name for name, field in fields.items() if type(field) is ResolverField) == [
        "checks",
        "connector",
        "consumer",
        "health",
        "heartbeat",
        "instanceHealth",
        "muteReason",
        "mutedUntil",
        "uptime",
        "usedFor",
        "usedForSummary",
        "uses",
    ]
    assert sorted(name for name, field in fields.items() if type(field) is PlainField) == [
        "checkIntervalSeconds",
        "consecutiveFailures",
        "direction",
        "failureReason",
        "failureThreshold",
        "id",
        "lastCheckedAt",
        "lastError",
        "lastSuccessAt",
        "latencyMs",
        "name",
        "nextCheckAt",
        "params",
        "state",
        "status",
    ]


@pytest.fixture
def inline_completions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every plain field value completed inline (proof the inline path ran at all): by the
    common coercion, or by `coerce_plain` when that one could not decide."""
    completed: list[Any] = []
    common_coercion, coerce_plain = execution_fields._common_coercion, execution_fields.coerce_plain

    def recording_common_coercion(leaf_type: Any) -> Callable[[Any], Any]:
        coerce = common_coercion(leaf_type)

        def recorded(value: Any) -> Any:
            result = coerce(value)
            if result is not execution_fields.UNDECIDED:
                completed.append(result)
            return result

        return recorded

    def recording_coerce_plain(*args: Any) -> Any:
        value = coerce_plain(*args)
        completed.append(value)
        return value

    # Schemas built from here on take the recording coercions (fields are found per schema).
    monkeypatch.setattr(execution_fields, "_common_coercion", recording_common_coercion)
    monkeypatch.setattr(execution, "coerce_plain", recording_coerce_plain)
    return completed


def _graphql_core_schema() -> strawberry.Schema:
    """The same schema with strawberry's stock execution context."""
    schema = build_schema()
    assert schema.execution_context_class is InliningExecutor
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return schema


async def _seed(db: Database) -> None:
    async with db.sessions.begin() as session:
        await seed_healthy_and_failed(session)


@pytest.mark.parametrize("document", READ_VIEWS, ids=lambda p: p.stem)
async def test_every_view_answers_as_graphql_core_does(
    db: Database, document: Path, inline_completions: list[Any]
) -> None:
    await _seed(db)
    first = await build_schema().execute(
        "{ connections(first: 10, filter: {state: [FAILED]}) { nodes { id } } }",
        context_value=GraphQLContext(db.sessions, Viewer()),
    )
    assert first.data is not None
    # The last consumer's failed connection: the one with the most uses.
    variables = {"direction": "OUTBOUND", "id": first.data["connections"]["nodes"][-1]["id"]}
    text = await asyncio.to_thread(document.read_text)
    results = []
    for schema in (build_schema(), _graphql_core_schema()):
        result = await schema.execute(
            text,
            variable_values={
                name: value for name, value in variables.items() if f"${name}:" in text
            },
            context_value=GraphQLContext(db.sessions, Viewer()),
        )
        assert result.errors is None, result.errors
        results.append(result.data)
    inline, stock = results
    assert inline == stock
    assert inline  # the document answered something to compare
    assert any(value is not Undefined for value in inline_completions)


class Colour(enum.Enum):
    RED = "red"


async def _later() -> str:
    return "awaited"


@strawberry.type
class Thing:
    label: str
    optional_label: str | None
    colour: Colour
    count: int
    awaited: str


@strawberry.type
class ProbeQuery:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [
            Thing(label="a", optional_label=None, colour=Colour.RED, count=1, awaited="x"),
            Thing(label=None, optional_label="b", colour=Colour.RED, count=2, awaited="x"),  # type: ignore[arg-type]
            Thing(label="c", optional_label=None, colour="blue", count=3, awaited="x"),  # type: ignore[arg-type]
            Thing(label="d", optional_label=None, colour=Colour.RED, count="many", awaited="x"),  # type: ignore[arg-type]
            Thing(label="e", optional_label=None, colour=Colour.RED, count=5, awaited=_Awaitable()),  # type: ignore[arg-type]
        ]


class _Awaitable:
    """An attribute value graphql-core must await (not a coroutine: no never-awaited warning)."""

    def __await__(self) -> Any:
        return _later().__await__()


DOCUMENT = "{ things { label optionalLabel colour count awaited } }"


async def _execute(
    executor: type[StrawberryGraphQLCoreExecutionContext], extensions: list[Any] | None = None
) -> tuple[Any, list[Any]]:
    schema = strawberry.Schema(
        query=ProbeQuery, execution_context_class=executor, extensions=extensions or []
    )
    result = await schema.execute(DOCUMENT)
    return result.data, [error.formatted for error in result.errors or []]


async def test_bad_plain_values_fail_as_graphql_core_fails_them(
    inline_completions: list[Any],
) -> None:
    inline = await _execute(InliningExecutor)
    # The three bad values and the awaitable are handed back to graphql-core; a bad non-null
    # value ends its object, so 18 of the 25 fields are reached; the four nulls of
    # `optionalLabel` need no coercion at all.
    assert sum(value is Undefined for value in inline_completions) == 4
    assert len(inline_completions) == 18 - 4
    assert inline == await _execute(StrawberryGraphQLCoreExecutionContext)
    data, errors = inline
    assert data == {
        "things": [
            {"label": "a", "optionalLabel": None, "colour": "RED", "count": 1, "awaited": "x"},
            None,
            None,
            None,
            {
                "label": "e",
                "optionalLabel": None,
                "colour": "RED",
                "count": 5,
                "awaited": "awaited",
            },
        ]
    }
    assert [(error["path"], error["message"]) for error in errors] == [
        (["things", 1, "label"], "Cannot return null for non-nullable field Thing.label."),
        (["things", 2, "colour"], "Enum 'Colour' cannot represent value: 'blue'"),
        (["things", 3, "count"], "Int cannot represent non-integer value: 'many'"),
    ]


class _Upper(SchemaExtension):
    """Middleware: every resolved string upper-cased."""

    def resolve(
        self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any
    ) -> Any:
        value = _next(root, info, *args, **kwargs)
        if isinstance(value, str):
            return value.upper()
        if asyncio.iscoroutine(value) or isinstance(value, _Awaitable):
            return _upper_later(value)
        return value


async def _upper_later(value: Awaitable[Any]) -> Any:
    resolved = await value
    return resolved.upper() if isinstance(resolved, str) else resolved


async def test_middleware_still_sees_plain_fields(inline_completions: list[Any]) -> None:
    inline = await _execute(InliningExecutor, [_Upper])
    assert inline_completions == []  # a resolve() extension wraps every field: none inline
    assert inline == await _execute(StrawberryGraphQLCoreExecutionContext, [_Upper])
    data, _ = inline
    assert data["things"][0] == {
        "label": "A",
        "optionalLabel": None,
        "colour": "RED",
        "count": 1,
        "awaited": "X",
    }
    assert data["things"][4]["awaited"] == "AWAITED"


@strawberry.input
class Options:
    times: int = 1


@strawberry.type
class Box:
    label: str

    @strawberry.field
    def greet(
        self, info: strawberry.Info, prefix: str = "hi", options: Options | None = None
    ) -> str:
        times = options.times if options else 0
        return f"{prefix} {self.label} at {info.path.key} x{times}"

    @strawberry.field
    async def later(self, suffix: str) -> str:
        await asyncio.sleep(0)
        return self.label + suffix

    @strawberry.field
    @staticmethod
    def via_root(root: Box) -> str:
        return root.label.upper()

    @strawberry.field
    def fails(self) -> str:
        raise ValueError(f"box {self.label} refuses")


@strawberry.type
class BoxQuery:
    @strawberry.field
    def boxes(self) -> list[Box | None]:
        return [Box(label="p"), Box(label="q")]


BOX_DOCUMENT = """
  query($prefix: String!, $times: Int!) {
    boxes {
      a: greet(prefix: "yo")
      b: greet(options: {times: $times})
      c: greet(prefix: $prefix)
      later(suffix: "!")
      viaRoot
    }
    failing: boxes { label fails }
  }
"""


async def _execute_boxes(
    executor: type[StrawberryGraphQLCoreExecutionContext], variables: dict[str, Any]
) -> tuple[Any, list[Any]]:
    schema = strawberry.Schema(query=BoxQuery, execution_context_class=executor)
    result = await schema.execute(BOX_DOCUMENT, variable_values=variables)
    return result.data, [error.formatted for error in result.errors or []]


async def test_resolvers_called_directly_answer_as_strawberry_calls_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    call = InliningExecutor._call_resolver

    def counting(self: InliningExecutor, field: ResolverField, *args: Any) -> Any:
        calls.append(field.definition.python_name)
        return call(self, field, *args)

    monkeypatch.setattr(InliningExecutor, "_call_resolver", counting)
    variables = {"prefix": "hey", "times": 3}
    inline = await _execute_boxes(InliningExecutor, variables)
    # `boxes` and `fails` take `self` alone: they are read as plain fields, not called here.
    assert sorted(set(calls)) == ["greet", "later", "via_root"]
    assert inline == await _execute_boxes(StrawberryGraphQLCoreExecutionContext, variables)
    data, errors = inline
    assert data == {
        "boxes": [
            {
                "a": "yo p at a x0",
                "b": "hi p at b x3",
                "c": "hey p at c x0",
                "later": "p!",
                "viaRoot": "P",
            },
            {
                "a": "yo q at a x0",
                "b": "hi q at b x3",
                "c": "hey q at c x0",
                "later": "q!",
                "viaRoot": "Q",
            },
        ],
        "failing": [None, None],
    }
    assert [(error["path"], error["message"]) for error in errors] == [
        (["failing", 0, "fails"], "box p refuses"),
        (["failing", 1, "fails"], "box q refuses"),
    ]


@strawberry.interface
class Named:
    label: str


@strawberry.type
class Tag(Named):
    colour: Colour


@strawberry.type
class TagQuery:
    @strawberry.field
    def tags(self) -> list[Tag | None]:
        # The second is no Tag: its is_type_of refuses it.
        return [
            Tag(label="t", colour=Colour.RED),
            Box(label="b"),
            Tag(label="u", colour=Colour.RED),
        ]  # type: ignore[list-item]


async def test_an_object_of_the_wrong_type_fails_as_graphql_core_fails_it() -> None:
    results = []
    for executor in (InliningExecutor, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(query=TagQuery, execution_context_class=executor)
        result = await schema.execute("{ tags { label colour } }")
        results.append((result.data, [error.formatted for error in result.errors or []]))
    assert results[0] == results[1]
    data, errors = results[0]
    assert data == {
        "tags": [{"label": "t", "colour": "RED"}, None, {"label": "u", "colour": "RED"}]
    }
    assert [(error["path"], error["message"]) for error in errors] == [
        (["tags", 1], "Expected value of type 'Tag' but got: <Box instance>.")
    ]


@strawberry.type
class Leaf(Named):  # with an interface, so that strawberry gives it an is_type_of
    reads: strawberry.Private[list[str]]

    @strawberry.field
    def shout(self) -> str:
        self.reads.append(f"{self.label}.shout")
        return self.label.upper()

    @strawberry.field
    def missing(self) -> str:
        self.reads.append(f"{self.label}.missing")
        return None  # type: ignore[return-value]

    @strawberry.field
    def refuses(self) -> int | None:
        self.reads.append(f"{self.label}.refuses")
        raise ValueError(f"{self.label} refuses")


class _AwaitableLeaf:
    """A list item graphql-core must await before completing it."""

    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf

    def __await__(self) -> Any:
        return self._resolve().__await__()

    async def _resolve(self) -> Leaf:
        await asyncio.sleep(0)
        return self.leaf


@strawberry.type
class Tree:
    reads: strawberry.Private[list[str]]

    def _leaf(self, label: str) -> Leaf:
        return Leaf(label=label, reads=self.reads)

    @strawberry.field
    def leaves(self) -> list[Leaf | None]:
        self.reads.append("leaves")
        return [
            self._leaf("a"),
            None,
            _AwaitableLeaf(self._leaf("b")),  # type: ignore[list-item]
            Box(label="not a leaf"),  # type: ignore[list-item]
            self._leaf("c"),
        ]

    @strawberry.field
    def strict_leaves(self) -> list[Leaf] | None:
        return [self._leaf("d"), self._leaf("e")]

    @strawberry.field
    def broken(self) -> list[Leaf] | None:
        raise ValueError("no leaves today")


@strawberry.type
class TreeQuery:
    tree: Tree


TREE_DOCUMENT = """
{
  tree {
    leaves { shout refuses }
    strictLeaves { shout missing }
    broken { shout }
  }
}"""


async def test_resolvers_of_self_alone_are_read_once_and_complete_as_graphql_core_does() -> None:
    runs = []
    for executor in (InliningExecutor, StrawberryGraphQLCoreExecutionContext):
        reads: list[str] = []
        schema = strawberry.Schema(query=TreeQuery, execution_context_class=executor)
        tree = Tree(reads=reads)
        result = await schema.execute(TREE_DOCUMENT, root_value=TreeQuery(tree=tree))
        runs.append((result.data, [error.formatted for error in result.errors or []], reads))
    assert runs[0] == runs[1]
    data, errors, reads = runs[0]
    assert data == {
        "tree": {
            "leaves": [
                {"shout": "A", "refuses": None},
                None,
                {"shout": "B", "refuses": None},
                None,
                {"shout": "C", "refuses": None},
            ],
            # `missing` is null for a non-null field: its leaf is null, so the whole list.
            "strictLeaves": None,
            "broken": None,
        }
    }
    assert [(error["path"], error["message"]) for error in errors] == [
        (["tree", "leaves", 0, "refuses"], "a refuses"),
        (["tree", "leaves", 3], "Expected value of type 'Leaf' but got: <Box instance>."),
        (["tree", "leaves", 4, "refuses"], "c refuses"),
        (
            ["tree", "strictLeaves", 0, "missing"],
            "Cannot return null for non-nullable field Leaf.missing.",
        ),
        (["tree", "broken"], "no leaves today"),
        (["tree", "leaves", 2, "refuses"], "b refuses"),
    ]
    # Every resolver ran once per object it was asked of, never twice; `e` was not reached
    # once `d` had failed its non-null list.
    assert sorted(reads) == sorted(
        ["leaves"]
        + [f"{label}.{name}" for label in "abc" for name in ("shout", "refuses")]
        + ["d.shout", "d.missing"]
    )


def test_common_coercions_answer_as_the_types_do() -> None:
    schema = build_schema()
    checked = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLEnumType) or graphql_type.name.startswith("__"):
            continue
        coerce = execution_fields._common_coercion(graphql_type)
        for member in graphql_type.wrapped_cls:  # type: ignore[attr-defined]
            assert coerce(member) == graphql_type.coerce_output_value(member)
            checked += 1
        assert coerce("not a member") is execution_fields.UNDECIDED
    assert checked >= 20
    samples: list[tuple[Any, Any, Any]] = [
        (GraphQLString, "text", "text"),
        (GraphQLString, 7, execution_fields.UNDECIDED),
        (GraphQLID, "Q29uc3VtZXI6MQ", "Q29uc3VtZXI6MQ"),
        (GraphQLBoolean, True, True),
        (GraphQLBoolean, 1, execution_fields.UNDECIDED),
        (GraphQLInt, 2**31 - 1, 2**31 - 1),
        (GraphQLInt, 2**31, execution_fields.UNDECIDED),
        (GraphQLInt, True, execution_fields.UNDECIDED),
        (GraphQLFloat, 1.5, execution_fields.UNDECIDED),
    ]
    for leaf_type, value, expected in samples:
        assert execution_fields._common_coercion(leaf_type)(value) == expected, (leaf_type, value)
