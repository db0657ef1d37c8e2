"""Fuzz /graphql with schemathesis (GraphQL mode, valid and invalid documents for every query
and mutation), authenticated, through the ASGI app and over HTTP, on SQLite and PostgreSQL.

Every answer must be a 2xx/4xx JSON body whose errors are client errors: no 5xx, no masked
"Unexpected error." (an internal error happened), no stack trace, SQL or driver name. After
the run, the database must still pass its integrity checks and the API's totals must still
match the rows. A consumer-scoped write token, fuzzed the same way, must neither see nor change
any other consumer's rows.

Generation is deterministic (derandomize, no example database) and bounded (max_examples), so
CI cannot flake and the file costs a bounded time. The hypothesis engine runs in a worker
thread; every request is sent on the test's event loop, where the app and its engine live.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import (
    ArgumentNode,
    FieldNode,
    GraphQLID,
    IntValueNode,
    ObjectFieldNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    get_named_type,
    parse,
    print_ast,
    visit,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select, text

from graphql_schema.ids import to_global_id
from store.domain import ConnectionState, TokenScope
from store.models import Base, ConnectionRow, ConsumerRow, SyncActivationRow
from tests.security.conftest import Served

SDL = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
SCHEMA = schemathesis.graphql.from_file(SDL)
TYPE_SCHEMA = build_schema(SDL)
CASES = st.one_of(
    SCHEMA.as_strategy(GenerationMode.POSITIVE), SCHEMA.as_strategy(GenerationMode.NEGATIVE)
)
# Ids of rows the demo catalog has (and of rows it does not, or no longer has): random strings
# would only ever meet "not an id", never a real row to read, update, delete or check.
TYPES = ("SyncActivation", "Connection", "Connector", "Consumer", "Sync", "Use")  # longest first
ROW_IDS = st.integers(1, 60)


def id_type_for(argument: str, field: str) -> str | None:
    """The type an ID argument names: `consumerIds` a Consumer, `id` on `deleteSync` a Sync."""
    hint = field if argument == "id" else argument
    for type_name in TYPES:
        if type_name.lower() in hint.lower():
            return type_name
    return None


LEAKS = (
    "traceback",
    'file "',
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
    "psycopg",
    "integrityerror",
    "select ",
    "insert into",
    "update connections",
    "nonetype",
    "object has no attribute",
    "keyerror",
)

Send = Callable[[str], Awaitable[httpx.Response]]


def with_real_ids(document: str, draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    """`document` with some ID-typed literals swapped for ids of real (or deleted) rows."""
    type_info = TypeInfo(TYPE_SCHEMA)
    arguments: list[str] = []
    fields: list[str] = []

    class SwapIds(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            fields.append(node.name.value)

        def leave_field(self, *_: Any) -> None:
            fields.pop()

        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            arguments.append(node.name.value)

        def leave_argument(self, *_: Any) -> None:
            arguments.pop()

        def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
            arguments.append(node.name.value)

        def leave_object_field(self, *_: Any) -> None:
            arguments.pop()

        def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
            return self._maybe()

        def enter_int_value(self, node: IntValueNode, *_: Any) -> Any:
            return self._maybe()

        def _maybe(self) -> Any:
            expected = type_info.get_input_type()
            if expected is None or get_named_type(expected) is not GraphQLID or not arguments:
                return None
            type_name = id_type_for(arguments[-1], fields[-1] if fields else "")
            if not draw(st.integers(0, 3)):  # one in four stays as schemathesis made it
                return None
            chosen = type_name or draw(st.sampled_from(TYPES))
            return StringValueNode(value=to_global_id(chosen, draw(ROW_IDS)))

    try:
        tree = parse(document)
    except Exception:  # an invalid document stays as schemathesis made it
        return document
    return print_ast(visit(tree, TypeInfoVisitor(type_info, SwapIds())))


def problems_in(response: httpx.Response) -> list[str]:
    """Why `response` is not an acceptable answer; empty when it is."""
    found: list[str] = []
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return [*found, f"not JSON: {response.text[:200]!r}"]
    lowered = json.dumps(body).lower()
    found += [f"leaks {leak!r}" for leak in LEAKS if leak in lowered]
    for error in body.get("errors") or []:
        if error.get("message") == "Unexpected error.":
            found.append("an internal error (masked)")
        if set(error.get("extensions") or {}) - {"code", "field"}:
            found.append(f"extensions {error['extensions']}")
    return found


async def fuzz(send: Send, examples: int) -> list[tuple[str, list[str]]]:
    """Run `examples` generated documents through `send`; every bad answer, with its document."""
    loop = asyncio.get_running_loop()
    failures: list[tuple[str, list[str]]] = []

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is listed
        suppress_health_check=list(HealthCheck),
    )
    @given(case=CASES, data=st.data())
    def one(case: Any, data: st.DataObject) -> None:
        document = with_real_ids(case.body, data.draw)
        future = asyncio.run_coroutine_threadsafe(send(document), loop)
        response = future.result(timeout=120)
        found = problems_in(response)
        if found:
            failures.append((document, found))

    await asyncio.to_thread(one)
    return failures


async def check_integrity(served: Served) -> None:
    """The database after the fuzz: sound storage, every foreign key holding, totals right."""
    async with served.database.engine.connect() as connection:
        if served.database_url.startswith("sqlite"):
            check = (await connection.execute(text("PRAGMA integrity_check"))).all()
            assert check == [("ok",)]
            assert (await connection.execute(text("PRAGMA foreign_key_check"))).all() == []
        # Every foreign key, checked by a join (PostgreSQL enforces them, SQLite only when the
        # pragma is on for the connection that wrote): no child row points at nothing.
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                parent = fk.column.table
                orphans = (
                    select(func.count())
                    .select_from(table.outerjoin(parent, fk.parent == fk.column))
                    .where(fk.parent.is_not(None), fk.column.is_(None))
                )
                count = (await connection.execute(orphans)).scalar_one()
                assert count == 0, f"{table.name}.{fk.parent.name} -> {parent.name}: {count}"
        consumers = (await connection.execute(select(func.count(ConsumerRow.id)))).scalar_one()
        connections = (await connection.execute(select(func.count(ConnectionRow.id)))).scalar_one()
        active = (
            await connection.execute(
                select(func.count(func.distinct(ConnectionRow.consumer_id))).where(
                    ConnectionRow.state == ConnectionState.ACTIVE
                )
            )
        ).scalar_one()
        activations = (
            await connection.execute(select(func.count(SyncActivationRow.id)))
        ).scalar_one()
    # The derived numbers the API shows still agree with the rows.
    admin = await served.token(TokenScope.ADMIN)
    totals = await served.execute(
        admin,
        """{ overview { consumers activeConsumers }
             consumers(first: 0) { totalCount } connections(first: 0) { totalCount }
             syncActivations(first: 0) { totalCount }
             activations: syncActivations(first: 500) { nodes { steps { step } } } }""",
    )
    assert totals["overview"] == {"consumers": consumers, "activeConsumers": active}
    assert totals["consumers"]["totalCount"] == consumers
    assert totals["connections"]["totalCount"] == connections
    assert totals["syncActivations"]["totalCount"] == activations
    for node in totals["activations"]["nodes"]:
        assert [s["step"] for s in node["steps"]] == ["CONNECTION", "MAPPING", "CONFIGURATION"]


@pytest.mark.parametrize("transport", ["asgi", "http"])
async def test_fuzzed_documents_get_client_errors_only_and_the_database_stays_sound(
    served: Served, transport: str
) -> None:
    # Admin: every query and mutation is in reach, so the fuzz can write (and break) things.
    token = await served.token(TokenScope.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    if transport == "asgi":
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served.app), base_url="http://fuzz", headers=headers
        )
    else:
        client = httpx.AsyncClient(base_url=served.base_url, headers=headers, timeout=60)

    async def send(document: str) -> httpx.Response:
        return await client.post("/graphql", json={"query": document})

    async with client:
        failures = await fuzz(send, examples=EXAMPLES[transport])
    assert failures == []
    await check_integrity(served)


# ASGI takes the bulk; over HTTP proves the same holds through uvicorn (what a client meets).
EXAMPLES = {"asgi": 150, "http": 80}


OTHERS = """
{ consumers(first: 500) { nodes { id externalId name email
    connections(first: 500) { nodes { id name state status heartbeat { url hasCredentials }
      uses(first: 50) { nodes { id name status lastError } } } }
    syncActivations(first: 50) { nodes { id steps { step complete detail } } } } }
  connectors(first: 500) { nodes { id slug name category } }
  syncs(first: 500) { nodes { id name requiredConnectors { slug } } } }
"""


async def test_a_fuzzing_tenant_sees_and_changes_only_its_own_consumer(served: Served) -> None:
    target = "acme-corp"
    admin = await served.token(TokenScope.ADMIN)
    tenant = await served.token(TokenScope.WRITE, consumer=target)

    def others(snapshot: dict[str, Any]) -> dict[str, Any]:
        nodes = snapshot["consumers"]["nodes"]
        return {**snapshot, "consumers": [n for n in nodes if n["externalId"] != target]}

    before = await served.execute(admin, OTHERS)
    # What belongs to other consumers: their ids, external ids and names, and the ids of
    # their connections, uses and activations. None may appear in the tenant's data.
    foreign = strings_in(others(before)["consumers"]) - {None}
    mine = strings_in([n for n in before["consumers"]["nodes"] if n["externalId"] == target])
    seen: set[str] = set()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=served.app),
        base_url="http://fuzz",
        headers={"Authorization": f"Bearer {tenant}"},
    )

    async def send(document: str) -> httpx.Response:
        response = await client.post("/graphql", json={"query": document})
        seen.update(strings_in(response.json().get("data")))  # errors echo what was sent
        return response

    async with client:
        # Generation follows the SDL: when the schema grew (syncActivationLink, categories),
        # the first 100 documents stopped reading the tenant's rows, which the last check needs.
        failures = await fuzz(send, examples=150)
    assert failures == []
    shared = {"ACTIVE", "PENDING", "FAILED", "DISABLED", "CONNECTED", "CONNECTION_FAILURE"}
    assert seen & (foreign - mine - shared) == set()
    assert seen & (mine - shared)  # the fuzz did read the tenant's own rows
    assert others(await served.execute(admin, OTHERS)) == others(before)
    await check_integrity(served)


def strings_in(value: Any) -> set[Any]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, dict):
        return set().union(*(strings_in(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(strings_in(item) for item in value))
    return {value} if isinstance(value, str) else set()


def test_the_fuzz_checker_catches_what_it_is_there_for() -> None:
    """A checker that passes everything would make the fuzz above prove nothing."""
    request = httpx.Request("POST", "http://fuzz/graphql")

    def answer(status: int, body: object) -> httpx.Response:
        return httpx.Response(status, json=body, request=request)

    assert problems_in(answer(200, {"data": {"overview": {"consumers": 1}}})) == []
    assert problems_in(answer(200, {"errors": [{"message": "first: -1 is out of range"}]})) == []
    assert problems_in(answer(500, {"errors": [{"message": "boom"}]})) == ["status 500"]
    assert problems_in(answer(200, {"errors": [{"message": "Unexpected error."}]})) == [
        "an internal error (masked)"
    ]
    assert problems_in(
        answer(200, {"errors": [{"message": "(sqlalchemy.exc.IntegrityError) UNIQUE"}]})
    ) == ["leaks 'sqlalchemy'", "leaks 'integrityerror'"]
    assert problems_in(httpx.Response(502, text="Bad gateway", request=request)) == [
        "status 502",
        "not JSON: 'Bad gateway'",
    ]
