"""A page primes its nodes' loaders so their fields resolve at once: the answers must be those
of the lazy path, and the statements as few whatever the page size."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

from sqlalchemy import event

from graphql_schema.context import GraphQLContext, Viewer
from graphql_schema.schema import build_schema
from healthgraph.database import Database
from tests.factories import seed_healthy_and_failed

NODE = """
  id name
  consumer { externalId }
  connector { slug }
  usedFor { label count }
  usedForSummary
  instanceHealth { healthy failed unknown total status }
  health
  uses(first: 2) { nodes { name status } pageInfo { hasNextPage } }
"""


async def _seed(db: Database) -> None:
    async with db.sessions.begin() as session:
        await seed_healthy_and_failed(session)


async def _run(db: Database, document: str) -> tuple[dict[str, Any], int]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        result = await build_schema().execute(
            document, context_value=GraphQLContext(db.sessions, Viewer())
        )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, len(statements)


async def test_primed_page_answers_as_the_lazy_path(db: Database) -> None:
    await _seed(db)
    primed, primed_statements = await _run(
        db, f"{{ connections(first: 50) {{ nodes {{ {NODE} }} }} }}"
    )
    # Through consumers the same connections resolve lazily, one DataLoader batch per field.
    lazy, _ = await _run(
        db, f"{{ consumers(first: 50) {{ nodes {{ connections {{ nodes {{ {NODE} }} }} }} }} }}"
    )
    lazy_nodes = [n for c in lazy["consumers"]["nodes"] for n in c["connections"]["nodes"]]
    primed_nodes = primed["connections"]["nodes"]
    assert sorted(primed_nodes, key=lambda n: n["id"]) == sorted(lazy_nodes, key=lambda n: n["id"])
    assert len(primed_nodes) == 8
    assert primed_nodes[-1]["instanceHealth"] == {
        "healthy": 0,
        "failed": 3,
        "unknown": 0,
        "total": 3,
        "status": "DOWN",
    }
    assert primed_nodes[-1]["uses"] == {
        "nodes": [{"name": "file 0", "status": "FAILED"}, {"name": "file 1", "status": "FAILED"}],
        "pageInfo": {"hasNextPage": True},
    }
    # the page with its consumers and connectors, use summaries, uses: one each, whatever the
    # page size
    assert primed_statements == 3
    _, one = await _run(db, f"{{ connections(first: 1) {{ nodes {{ {NODE} }} }} }}")
    assert one == 3


async def test_fragments_aliases_and_edges_are_primed_or_fall_back(db: Database) -> None:
    await _seed(db)
    document = """
      fragment Bits on Connection { consumer { externalId } usedForSummary }
      query($first: Int!) {
        connections(first: 3) {
          edges { node { ...Bits a: uses(first: $first) { nodes { name } } b: uses(first: 1) { nodes { name } } } }
        }
      }
    """
    result = await build_schema().execute(
        document,
        variable_values={"first": 1},
        context_value=GraphQLContext(db.sessions, Viewer()),
    )
    assert result.errors is None, result.errors
    assert result.data is not None
    edges = result.data["connections"]["edges"]
    assert [e["node"]["consumer"]["externalId"] for e in edges] == ["c0", "c0", "c1"]
    assert [e["node"]["usedForSummary"] for e in edges] == ["", "", "Hypersyncs (1)"]
    assert [e["node"]["a"] for e in edges] == [
        {"nodes": []},
        {"nodes": []},
        {"nodes": [{"name": "sync 0"}]},
    ]
    assert [e["node"]["b"] for e in edges] == [e["node"]["a"] for e in edges]


async def test_a_bad_nested_page_size_is_still_the_fields_error(db: Database) -> None:
    await _seed(db)
    result = await build_schema().execute(
        "{ connections(first: 2) { nodes { name uses(first: 501) { nodes { name } } } } }",
        context_value=GraphQLContext(db.sessions, Viewer()),
    )
    assert result.data is None
    assert result.errors is not None
    assert {error.message for error in result.errors} == {"first: 501 is out of range; use 0..500"}


async def test_a_request_leaves_nothing_for_the_collector_to_free(db: Database) -> None:
    """What a request loaded is freed by reference counting when it ends: no cycle through its
    loaders keeps the records until a collection (one landing in a request is its p99)."""
    await _seed(db)
    document = f"{{ connections(first: 50) {{ nodes {{ {NODE} }} }} }}"
    await _run(db, document)  # warm: parsed, validated, statements compiled
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        data, _ = await _run(db, document)
        gc.collect()
        garbage = Counter(type(value).__name__ for value in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert len(data["connections"]["nodes"]) == 8
    loaded = ("DataLoader", "Future", "Page", "Connection", "Use", "UseSummary", "Consumer")
    assert {name: garbage[name] for name in loaded} == dict.fromkeys(loaded, 0)
