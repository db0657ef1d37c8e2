"""The inlining executor against strawberry's stock one on what the read views do not cover:
mutations (each run on its own copy of the same data), client errors, masked internal errors,
and the extensions strawberry offers around a field (field extensions, permissions, exception
handlers, masking)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import strawberry
from strawberry.extensions import FieldExtension, MaskErrors
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.context import GraphQLContext, Services, Viewer
from graphql_schema.execution import InliningExecutor
from graphql_schema.execution_fields import fields_of
from graphql_schema.schema import build_schema
from healthgraph.database import Database, open_database
from store import queries
from store.crypto import KeyRing, generate_key
from store.domain import TokenScope
from store.engine import create_engine
from store.migrate import upgrade_database
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.factories import seed_healthy_and_failed

EXECUTORS = (InliningExecutor, StrawberryGraphQLCoreExecutionContext)


@pytest.fixture(params=["sqlite", "postgresql"])
async def twins(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[list[Database]]:
    """Two databases with the same rows (and so the same ids), one per executor."""
    urls = []
    for n in range(2):
        if request.param == "sqlite":
            urls.append(f"sqlite:///{tmp_path / f'twin{n}.db'}")
        else:
            urls.append(await create_postgres_database())
    databases = []
    try:
        for url in urls:
            engine = create_engine(url)
            try:
                await upgrade_database(engine)
            finally:
                await engine.dispose()
            database = await open_database(url)
            databases.append(database)
            async with database.sessions.begin() as session:
                await seed_healthy_and_failed(session)
        yield databases
    finally:
        for database in databases:
            await database.close()
        if request.param == "postgresql":
            for url in urls:
                await drop_postgres_database(url)


def _schema(executor: type[StrawberryGraphQLCoreExecutionContext]) -> strawberry.Schema:
    schema = build_schema()
    schema.execution_context_class = executor
    return schema


CONNECTOR = "Q29ubmVjdG9yOjE"  # Connector:1 (quickbooks)
CONNECTION = "Q29ubmVjdGlvbjox"  # Connection:1 (c0's quickbooks)
MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    (
        """mutation($input: CreateConsumerInput!) {
             createConsumer(input: $input) { id externalId name email active health }
           }""",
        {"input": {"externalId": "zeta", "name": "Zeta", "email": "ops@zeta.example"}},
    ),
    # Refused by the store: a duplicate, a bad email, a blocked heartbeat URL.
    (
        """mutation { createConsumer(input: {externalId: "zeta", name: "Again"}) { id } }""",
        {},
    ),
    (
        """mutation { createConsumer(input: {externalId: "y", name: "Y", email: "nope"}) { id } }""",
        {},
    ),
    (
        """mutation($id: ID!) {
             updateConnection(id: $id, input: {heartbeat: {url: "http://169.254.169.254/"}}) {
               id heartbeat { url }
             }
           }""",
        {"id": CONNECTION},
    ),
    (
        """mutation($id: ID!) {
             updateConnection(id: $id, input: {name: "Renamed", checkIntervalSeconds: 60,
                                               failureThreshold: 3}) {
               id name checkIntervalSeconds consecutiveFailures status state
               heartbeat { kind method url expectedStatus timeoutSeconds hasCredentials }
               usedFor { kind label count } usedForSummary
               instanceHealth { healthy failed unknown total status }
               uses(first: 2) { totalCount nodes { name status kindLabel } }
             }
           }""",
        {"id": CONNECTION},
    ),
    (
        """mutation($id: ID!) {
             setConnectionCredentials(id: $id, credentials: {kind: BEARER, token: "t0ken"}) {
               heartbeat { hasCredentials }
             }
           }""",
        {"id": CONNECTION},
    ),
    (
        """mutation($id: ID!) {
             setConnectionCredentials(id: $id, credentials: {kind: BEARER, token: "bad\\n"}) {
               id
             }
           }""",
        {"id": CONNECTION},
    ),
    # Unknown and malformed ids, a wrong argument, several mutations with aliases in one document.
    ("""mutation { deleteConsumer(id: "Q29uc3VtZXI6OTk5") }""", {}),
    ("""mutation { deleteUse(id: "not-an-id") }""", {}),
    (
        """mutation($c: ID!) {
             a: updateConnector(id: $c, input: {name: "QBO"}) { id name slug health }
             b: updateConnector(id: $c, input: {slug: ""}) { id }
             c: createConnector(input: {slug: "new", name: "New", category: "crm"}) { slug }
           }""",
        {"c": CONNECTOR},
    ),
    (
        """{ connections(first: 1000) { totalCount } }""",
        {},
    ),
    (
        """{ a: node(id: "Q29ubmVjdGlvbjox") { id ... on Connection { name } }
             b: node(id: "garbage") { id } }""",
        {},
    ),
]


async def _run_all(database: Database, executor: type[Any]) -> list[tuple[Any, Any]]:
    schema = _schema(executor)
    key_ring = KeyRing([generate_key()])
    services = Services(key_ring=lambda: key_ring, credentials_key_ring=key_ring)
    answers = []
    for document, variables in MUTATIONS:
        result = await schema.execute(
            document,
            variable_values=variables,
            context_value=GraphQLContext(database.sessions, Viewer(TokenScope.ADMIN), services),
        )
        answers.append((result.data, [error.formatted for error in result.errors or []]))
    return answers


async def test_mutations_and_their_errors_answer_as_the_stock_executor_does(
    twins: list[Database],
) -> None:
    inline, stock = [
        await _run_all(database, executor)
        for database, executor in zip(twins, EXECUTORS, strict=True)
    ]
    assert inline == stock
    # The comparison covered successes and every kind of refusal.
    codes = {error.get("extensions", {}).get("code") for _, errors in inline for error in errors}
    assert {"BAD_USER_INPUT"} <= codes
    messages = [error["message"] for _, errors in inline for error in errors]
    assert "externalId: 'zeta' is already used by another consumer" in messages
    assert "first: 1000 is out of range; use 0..500" in messages
    assert inline[4][0]["updateConnection"]["name"] == "Renamed"


async def test_an_internal_error_is_masked_alike(
    twins: list[Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: /var/lib/secret")

    # The loaders look the function up on `store.queries` at call time.
    monkeypatch.setattr(queries, "use_summaries", broken)
    document = "{ connections(first: 2) { nodes { name usedForSummary } } }"
    results = []
    for database, executor in zip(twins, EXECUTORS, strict=True):
        result = await _schema(executor).execute(
            document, context_value=GraphQLContext(database.sessions, Viewer())
        )
        results.append((result.data, [error.formatted for error in result.errors or []]))
    assert results[0] == results[1]
    data, errors = results[0]
    assert data is None or all(
        node is None or node.get("usedForSummary") is None for node in data["connections"]["nodes"]
    )
    assert {error["message"] for error in errors} == {"Unexpected error."}


# --- strawberry's field extensions, permissions, exception handlers and masking -------------


class _Exclaim(FieldExtension):
    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        return f"{next_(source, info, **kwargs)}!"


class _Never(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


class _Boom(Exception):
    pass


@strawberry.type
class _Refusal:
    reason: str


@strawberry.type
class _Done:
    value: str


class _BoomHandler(strawberry.ExceptionHandler[_Boom, _Refusal]):
    def handle(self, exception: _Boom, *, field: Any, info: Any) -> _Refusal:
        return _Refusal(reason=f"handled: {exception}")


@strawberry.type
class _Item:
    name: str

    @strawberry.field(extensions=[_Exclaim()])
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field(permission_classes=[_Never])
    def hidden(self) -> str | None:
        return "leaked"

    @strawberry.field
    def boom(self) -> _Done | _Refusal | None:
        raise _Boom(self.name)

    @strawberry.field
    def crash(self) -> str | None:
        raise ValueError(f"internal {self.name}")


@strawberry.type
class _ExtensionsQuery:
    @strawberry.field
    def items(self) -> list[_Item]:
        return [_Item(name="a"), _Item(name="b")]


EXTENSIONS_DOCUMENT = "{ items { name shout hidden crash boom { ... on Refusal { reason } } } }"


async def _extensions_result(
    executor: type[Any], masked: bool, handled: bool
) -> tuple[Any, list[Any]]:
    schema = strawberry.Schema(
        query=_ExtensionsQuery,
        types=[_Refusal, _Done],
        execution_context_class=executor,
        exception_handlers=[_BoomHandler()] if handled else [],
        extensions=[MaskErrors] if masked else [],
    )
    if executor is InliningExecutor:
        item_type = schema._schema.get_type("Item")
        # Without handlers, the resolvers of `self` alone run inline; with one, none does.
        inline = set(fields_of(schema._schema, item_type))
        assert inline == ({"name"} if handled else {"name", "crash", "boom"})
    result = await schema.execute(EXTENSIONS_DOCUMENT)
    return result.data, [error.formatted for error in result.errors or []]


@pytest.mark.parametrize("handled", [False, True], ids=["unhandled", "handled"])
@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
async def test_field_extensions_permissions_handlers_and_masks_answer_alike(
    masked: bool, handled: bool
) -> None:
    inline, stock = [await _extensions_result(executor, masked, handled) for executor in EXECUTORS]
    assert inline == stock
    data, errors = inline
    assert data == {
        "items": [
            {
                "name": name,
                "shout": f"{name.upper()}!",
                "hidden": None,
                "crash": None,
                "boom": {"reason": f"handled: {name}"} if handled else None,
            }
            for name in ("a", "b")
        ]
    }
    messages = sorted(error["message"] for error in errors)
    expected = ["internal a", "internal b", "not for you", "not for you"]
    if not handled:
        expected = sorted([*expected, "a", "b"])
    assert messages == (["Unexpected error."] * len(expected) if masked else expected)
