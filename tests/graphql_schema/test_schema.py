"""The committed SDL is the contract; statement counts do not grow with the page size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from graphql_schema.context import GraphQLContext, Viewer
from graphql_schema.schema import build_schema
from healthgraph.database import Database
from store.domain import ConnectionState, ConnectionStatus, TokenScope, UseStatus
from tests.factories import GraphFactory

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"

NESTED = """
query Nested($first: Int!) {
  connections(first: $first) {
    totalCount
    nodes {
      id name status lastCheckedAt
      connector { name health }
      consumer { name externalId active health issues { code message connector { name } } }
      usedFor { kind label count }
      usedForSummary
      instanceHealth { healthy failed unknown total status }
      uses(first: 5) { totalCount nodes { name kindLabel status connection { name } } }
    }
  }
}
"""


def test_committed_sdl_matches_the_schema() -> None:
    assert SDL.read_text() == build_schema().as_str() + "\n", (
        "schema.graphql drifted: run `python -m graphql_schema.schema > schema.graphql` "
        "and review the change"
    )


async def _run(db: Database, query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], int]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        context = GraphQLContext(db.sessions, Viewer(scope=TokenScope.READ))
        result = await build_schema().execute(
            query, variable_values=variables, context_value=context
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, len(statements)


async def test_statement_count_does_not_grow_with_page_size(db: Database) -> None:
    async with db.sessions.begin() as session:
        graph = GraphFactory(session)
        connectors = [await graph.connector(f"c{i}", f"Connector {i}") for i in range(5)]
        for index in range(220):
            consumer = await graph.consumer(f"consumer-{index}")
            connection = await graph.connection(
                consumer,
                connectors[index % 5],
                state=ConnectionState.FAILED if index % 9 == 0 else ConnectionState.ACTIVE,
                status=ConnectionStatus.CONNECTION_FAILURE
                if index % 7 == 0
                else ConnectionStatus.CONNECTED,
            )
            for number in range(index % 7):
                kind = ("hypersync", "livesync", "task_integration")[number % 3]
                status = UseStatus.FAILED if number == 3 else UseStatus.HEALTHY
                await graph.use(connection, kind, f"use {number}", status)

    small, small_count = await _run(db, NESTED, {"first": 10})
    large, large_count = await _run(db, NESTED, {"first": 200})

    assert len(small["connections"]["nodes"]) == 10
    assert len(large["connections"]["nodes"]) == 200
    assert large["connections"]["nodes"][:10] == small["connections"]["nodes"]
    assert small_count == large_count
    # One each: the page (with its connections' consumers and connectors), its count, connector
    # health, consumer activity, consumer health, consumer issues, the issues' connectors, use
    # summaries, the uses pages and their counts. Each is a batch, whatever the page size.
    assert large_count == 10
