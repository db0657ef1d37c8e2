"""GraphQL and CSV-export benchmark over a seeded catalog of 100k connections (issue 3).

    .venv/bin/python bench/graphql_bench.py --backend sqlite|postgresql|both [--connections 100000]

Seeds a database migrated with `store.migrate.upgrade_database` (bulk Core inserts on SQLite,
COPY on PostgreSQL), then measures, through the real schema in-process:
  (a) connections(first: N) with connector, consumer, usedFor, instanceHealth, uses(first: 5),
      also after a cursor deep in the list (page 500 of 100);
  (b) overview with every field;
  (c) consumers filtered by issue CONNECTION_FAILED with a search term matching ~1% of names;
and (d) the streamed CSV export of all consumers (both views) through the real ASGI app,
plus (a)-(c) and (d) once more over real HTTP (uvicorn in-process) for comparison.

A script, never a test: it prints figures (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import math
import os
import pstats
import random
import re
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import strawberry
import uvicorn
from sqlalchemy import JSON, Table, event, insert, text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.context import GraphQLContext, Viewer
from graphql_schema.schema import build_schema
from healthgraph.app import create_app
from healthgraph.database import Database, connect, open_database
from healthgraph.runtime import RuntimeTuning
from healthgraph.settings import Settings
from store.domain import SyncStep, TokenScope
from store.migrate import upgrade_database
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRequirementRow,
    SyncRow,
    UseKindRow,
    UseRow,
    step_bit,
)
from store.pagination import encode_cursor

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
SEARCH_TERM = "zephyr"  # in ~1% of consumer names, and in nothing else
TARGET_A_MS = 50.0
TARGET_B_MS = 100.0
TARGET_STATEMENTS = 6
TARGET_CSV_ROWS_PER_S = 50_000.0
SEED = 20261122
T = TypeVar("T")

# --- the queries ---------------------------------------------------------------------------------

CONNECTIONS_QUERY = """
query Connections($first: Int!, $after: String) {
  connections(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name status lastCheckedAt
      connector { name }
      consumer { name }
      usedFor { label count }
      instanceHealth { healthy failed total status }
      uses(first: 5) { nodes { name status } }
    }
  }
}
"""

OVERVIEW_QUERY = """
query Overview {
  overview {
    consumers activeConsumers activeConnections pendingConnections failedConnections
    connectionsByStatus { connected connectionFailure unknown }
    connectors {
      connector { id slug name category }
      activeConnections pendingConnections failedConnections
    }
    categories {
      category connectors activeConnections pendingConnections failedConnections activeConsumers
    }
    activeSyncs
    syncs {
      sync { id name }
      activations activeActivations activationRate
      stepFunnel { step complete incomplete }
    }
  }
}
"""

# The page before issue 17 asked for categories: they cost a distinct count of every ACTIVE
# connection's consumer per category, which the store runs only when they are selected.
OVERVIEW_PER_CONNECTOR_QUERY = re.sub(r"\n    categories \{[^}]*\}", "", OVERVIEW_QUERY)
assert "categories" not in OVERVIEW_PER_CONNECTOR_QUERY

CONSUMERS_QUERY = """
query Consumers($first: Int!, $search: String) {
  consumers(filter: {issue: [CONNECTION_FAILED]}, search: $search, first: $first) {
    totalCount
    nodes { externalId issues { code message } }
  }
}
"""

# --- the data set --------------------------------------------------------------------------------

CONNECTOR_NAMES = (
    "QuickBooks Online", "Xero", "NetSuite", "Sage Intacct", "FreshBooks", "Zoho Books",
    "Wave", "MYOB", "Stripe", "PayPal", "Square", "Shopify", "Salesforce", "HubSpot",
    "Pipedrive", "Zendesk", "Jira", "Asana", "Trello", "Slack", "Microsoft Teams",
    "Google Drive", "Dropbox", "Box", "OneDrive", "SharePoint", "BambooHR", "Workday",
    "Gusto", "ADP", "Bill.com", "Expensify", "Brex", "Ramp", "Plaid", "Chargebee",
    "Recurly", "Zuora", "Avalara", "DocuSign", "Monday.com", "Notion", "Airtable",
    "GitHub", "GitLab", "Mailchimp", "Intercom", "Freshdesk", "ServiceNow", "SAP Business One",
)  # fmt: skip
CATEGORIES = ("accounting", "payments", "commerce", "crm", "support", "productivity", "storage")
USE_KINDS = (
    ("hypersync", "Hypersyncs", "Hypersync", 0.5),
    ("task_integration", "Task integrations", "Task integration", 0.3),
    ("livesync", "Cloud files", "Cloud folder", 0.2),
)
SYNC_NAMES = (
    "Invoices to accounting", "Payments reconciliation", "Customers to CRM",
    "Files to cloud storage", "Payroll journal", "Expenses import", "Tickets to tasks",
    "Orders to invoices", "Sales tax filing", "Contracts archive",
)  # fmt: skip
ADJECTIVES = (
    "Acme", "Blue", "Northern", "Silver", "Bright", "Golden", "Rapid", "Summit", "Coastal",
    "Pioneer", "Evergreen", "Granite", "Harbor", "Maple", "Orbit", "Prairie", "Quantum",
    "Redwood", "Sterling", "Vertex", "Atlas", "Beacon", "Cedar", "Delta", "Falcon",
)  # fmt: skip
NOUNS = (
    "Labs", "Foods", "Logistics", "Dental", "Builders", "Analytics", "Outfitters", "Studios",
    "Partners", "Systems", "Farms", "Clinic", "Motors", "Media", "Capital", "Robotics",
    "Apparel", "Energy", "Health", "Travel",
)  # fmt: skip
SUFFIXES = ("Inc", "LLC", "Ltd", "GmbH", "Co", "Group", "SA", "BV")
STATES = (("ACTIVE", 0.82), ("PENDING", 0.07), ("FAILED", 0.04), ("DISABLED", 0.07))
FAILURES = (
    ("TIMEOUT", "timed out after 10s"),
    ("HTTP_STATUS", "unexpected HTTP status 503"),
    ("CONNECT", "connection refused"),
    ("DNS", "name does not resolve"),
    ("RATE_LIMITED", "HTTP 429 Too Many Requests"),
    ("TLS", "certificate verify failed"),
)
STEPS = ("CONNECTION", "MAPPING", "CONFIGURATION")
CONNECTION_COLUMNS = (
    "id", "consumer_id", "connector_id", "name", "direction", "state", "status",
    "last_checked_at", "last_success_at", "failure_reason", "last_error", "latency_ms",
    "consecutive_failures", "check_interval_seconds", "failure_threshold", "next_check_at",
    "state_changed_at", "heartbeat", "credentials_ref", "credentials_ciphertext", "created_at",
    "updated_at", "lease_expires_at", "claimed_by", "tls_cert_expires_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scale:
    connections: int

    @property
    def consumers(self) -> int:
        return max(1, self.connections // 5)

    @property
    def uses(self) -> int:
        return self.connections * 3

    connectors: int = 50
    syncs: int = 10


@dataclass
class Dataset:
    # Insert order matters (foreign keys): table -> (columns, rows).
    tables: dict[Table, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = field(default_factory=dict)
    search_matches: int = 0
    issue_matches: int = 0

    def add(self, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.tables[table] = (columns, rows)

    def counts(self) -> dict[str, int]:
        return {table.name: len(rows) for table, (_, rows) in self.tables.items()}


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def generate(scale: Scale) -> Dataset:
    """A deterministic catalog with a realistic spread of states, statuses and use statuses."""
    rng = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    data = Dataset()

    data.add(UseKindRow.__table__, ("kind", "label"), [(k, label) for k, label, _, _ in USE_KINDS])

    connector_rows = []
    for index in range(scale.connectors):
        number = index + 1
        name = CONNECTOR_NAMES[index % len(CONNECTOR_NAMES)]
        if index >= len(CONNECTOR_NAMES):
            name = f"{name} {index // len(CONNECTOR_NAMES) + 1}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        heartbeat = {
            "kind": "http",
            "method": "GET",
            "url": f"https://api.{slug}.example/health",
            "expected_status": [200],
            "timeout_seconds": 10,
        }
        category = CATEGORIES[index % len(CATEGORIES)]
        connector_rows.append((number, slug, name, category, heartbeat, now - timedelta(days=400)))
    data.add(
        ConnectorRow.__table__,
        ("id", "slug", "name", "category", "heartbeat", "created_at"),
        connector_rows,
    )
    # Popular connectors get most connections (Zipf-like).
    connector_weights = [1 / (rank + 1) ** 0.9 for rank in range(scale.connectors)]

    consumer_rows = []
    search_ids = set(rng.sample(range(1, scale.consumers + 1), max(1, scale.consumers // 100)))
    for number in range(1, scale.consumers + 1):
        words = [rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(SUFFIXES)]
        if number in search_ids:
            words.insert(rng.randrange(3), "Zephyr")
        name = " ".join(words)
        email = f"ops{number}@customer{number}.example" if rng.random() < 0.7 else None
        created = now - timedelta(days=rng.randrange(1, 900), seconds=rng.randrange(86400))
        consumer_rows.append((number, f"cust-{number:07d}", name, email, created))
    data.add(
        ConsumerRow.__table__, ("id", "external_id", "name", "email", "created_at"), consumer_rows
    )
    data.search_matches = len(search_ids)

    # 5% of consumers never started a connection (issue NOTHING); the rest share the
    # connections, a few consumers with many (long tail).
    with_connections = [n for n in range(1, scale.consumers + 1) if rng.random() >= 0.05]
    per_consumer = Counter(with_connections)
    tail_weights = [rng.paretovariate(2.5) for _ in with_connections]
    extra = scale.connections - len(with_connections)
    per_consumer.update(rng.choices(with_connections, weights=tail_weights, k=max(0, extra)))

    connection_rows = []
    consumer_connectors: dict[int, set[int]] = {}
    failed_consumers = set()
    connection_failed: list[bool] = []
    connection_pending: list[bool] = []
    connection_id = 0
    for consumer_id in sorted(per_consumer):
        owned = consumer_connectors.setdefault(consumer_id, set())
        for sequence in range(per_consumer[consumer_id]):
            connection_id += 1
            connector_id = rng.choices(range(1, scale.connectors + 1), connector_weights)[0]
            owned.add(connector_id)
            state = _weighted(rng, STATES)
            if state == "ACTIVE":
                status = _weighted(
                    rng, (("CONNECTED", 0.93), ("CONNECTION_FAILURE", 0.04), ("UNKNOWN", 0.03))
                )
            elif state == "PENDING":
                status = "UNKNOWN"
            elif state == "FAILED":
                status = "CONNECTION_FAILURE"
            else:
                status = rng.choice(("CONNECTED", "UNKNOWN"))
            failed = state == "FAILED" or (state != "DISABLED" and status == "CONNECTION_FAILURE")
            if failed:
                failed_consumers.add(consumer_id)
            connection_failed.append(failed)
            connection_pending.append(state == "PENDING")
            interval = rng.choices((60, 300, 3600, 86400), weights=(1, 3, 4, 2))[0]
            checked = (
                None
                if status == "UNKNOWN"
                else now - timedelta(seconds=rng.randrange(min(interval, 86400)))
            )
            if state == "FAILED":
                reason, error = "AUTH", "HTTP 401 Unauthorized"
            elif status == "CONNECTION_FAILURE":
                reason, error = rng.choice(FAILURES)
            else:
                reason, error = None, None
            success = checked if status == "CONNECTED" else None
            if status == "CONNECTION_FAILURE" and rng.random() < 0.8:
                success = now - timedelta(days=rng.randrange(1, 30))
            due = checked + timedelta(seconds=interval) if checked else None
            if state in ("ACTIVE", "FAILED") and due is None:
                due = now
            created = now - timedelta(days=rng.randrange(1, 700))
            direction = "OUTBOUND" if rng.random() < 0.85 else "INBOUND"
            connection_rows.append(
                (
                    connection_id,
                    consumer_id,
                    connector_id,
                    f"{CONNECTOR_NAMES[(connector_id - 1) % len(CONNECTOR_NAMES)]} #{sequence + 1}",
                    direction,
                    state,
                    status,
                    checked,
                    success,
                    reason,
                    error,
                    round(rng.uniform(20, 900), 1) if checked else None,
                    rng.randrange(1, 6) if failed else 0,
                    interval,
                    1,
                    due,
                    created + timedelta(hours=1),
                    {},
                    None,
                    None,
                    created,
                    checked or created,
                    None,
                    None,
                    None,
                )
            )
    data.add(
        ConnectionRow.__table__,
        CONNECTION_COLUMNS,
        connection_rows,
    )
    data.issue_matches = len(failed_consumers & search_ids)

    # Uses: three per connection on average, none on PENDING connections.
    eligible = [i + 1 for i in range(len(connection_rows)) if not connection_pending[i]]
    uses_per_connection = Counter(rng.choices(eligible, k=scale.uses))
    use_rows = []
    use_id = 0
    kinds = [(kind, singular) for kind, _, singular, _ in USE_KINDS]
    kind_weights = [weight for *_, weight in USE_KINDS]
    for owner in sorted(uses_per_connection):
        numbers: Counter[str] = Counter()
        broken = connection_failed[owner - 1]
        for _ in range(uses_per_connection[owner]):
            use_id += 1
            kind, singular = rng.choices(kinds, kind_weights)[0]
            numbers[kind] += 1
            roll = rng.random()
            if broken:
                status = "FAILED" if roll < 0.6 else "UNKNOWN"
            else:
                status = "HEALTHY" if roll < 0.88 else ("FAILED" if roll < 0.94 else "UNKNOWN")
            use_rows.append(
                (
                    use_id,
                    owner,
                    kind,
                    f"{singular} {numbers[kind]}",
                    status,
                    None if status == "UNKNOWN" else now - timedelta(minutes=rng.randrange(5000)),
                    "upstream rejected the batch" if status == "FAILED" else None,
                )
            )
    data.add(
        UseRow.__table__,
        ("id", "connection_id", "kind", "name", "status", "last_run_at", "last_error"),
        use_rows,
    )

    sync_rows = [
        (n + 1, SYNC_NAMES[n % len(SYNC_NAMES)] + ("" if n < len(SYNC_NAMES) else f" {n}"), now)
        for n in range(scale.syncs)
    ]
    data.add(SyncRow.__table__, ("id", "name", "created_at"), sync_rows)
    requirements: dict[int, list[int]] = {}
    requirement_rows = []
    popular = list(range(1, min(12, scale.connectors) + 1))
    for sync_id, *_ in sync_rows:
        required = rng.sample(popular, rng.choice((1, 1, 2, 2, 3)))
        requirements[sync_id] = required
        requirement_rows += [(sync_id, c, position) for position, c in enumerate(required)]
    data.add(
        SyncRequirementRow.__table__, ("sync_id", "connector_id", "position"), requirement_rows
    )

    # About two activations per consumer; a consumer tends to activate syncs it has the
    # connectors for. Steps follow a funnel: connection, then mapping, then configuration.
    activation_rows = []
    step_rows = []
    activation_id = 0
    sync_ids = [row[0] for row in sync_rows]
    for consumer_id in range(1, scale.consumers + 1):
        owned = consumer_connectors.get(consumer_id, set())
        wanted = rng.choices((0, 1, 2, 3, 4, 5), weights=(15, 25, 25, 18, 10, 7))[0]
        weights = {s: 6.0 if set(requirements[s]) <= owned else 1.0 for s in sync_ids}
        chosen: list[int] = []
        while len(chosen) < min(wanted, len(sync_ids)):
            pick = rng.choices(list(weights), list(weights.values()))[0]
            chosen.append(pick)
            del weights[pick]
        for sync_id in sorted(chosen):
            activation_id += 1
            created = now - timedelta(days=rng.randrange(1, 300))
            has_all = set(requirements[sync_id]) <= owned
            done = rng.random() < (0.95 if has_all else 0.5)
            completed_steps = 0
            for step, chance in zip(STEPS, (1.0, 0.75, 0.7), strict=True):
                done = done and rng.random() < chance
                step_rows.append((activation_id, step, done, None))
                completed_steps |= step_bit(SyncStep(step)) if done else 0
            # Core inserts bypass the ORM flush hook that keeps completed_steps: set it here.
            activation_rows.append(
                (activation_id, sync_id, consumer_id, created, created, completed_steps)
            )
    data.add(
        SyncActivationRow.__table__,
        ("id", "sync_id", "consumer_id", "created_at", "updated_at", "completed_steps"),
        activation_rows,
    )
    data.add(
        SyncActivationStepRow.__table__,
        ("activation_id", "step", "complete", "detail"),
        step_rows,
    )
    return data


# --- seeding -------------------------------------------------------------------------------------

CHUNK = 10_000


def _chunks(rows: list[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def seed_sqlite(database: Database, data: Dataset) -> None:
    """SQLAlchemy Core executemany in chunks, one transaction."""
    async with database.engine.begin() as connection:
        for table, (columns, rows) in data.tables.items():
            for chunk in _chunks(rows):
                await connection.execute(
                    insert(table), [dict(zip(columns, r, strict=True)) for r in chunk]
                )
    async with database.engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def seed_postgresql(url: str, data: Dataset) -> None:
    """COPY (binary) per table in one transaction, then the sequences and VACUUM ANALYZE
    (what autovacuum would do shortly after such a load)."""
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        async with connection.transaction():
            for table, (columns, rows) in data.tables.items():
                json_positions = [
                    i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)
                ]

                def encode(row: tuple[Any, ...], positions: list[int] = json_positions) -> Any:
                    if not positions:
                        return row
                    values = list(row)
                    for i in positions:
                        values[i] = None if values[i] is None else json.dumps(values[i])
                    return values

                await connection.copy_records_to_table(
                    table.name, records=[encode(r) for r in rows], columns=list(columns)
                )
            for table in data.tables:
                if "id" in table.c and table.c["id"].autoincrement is not False:
                    sequence = await connection.fetchval(
                        "SELECT pg_get_serial_sequence($1, 'id')", table.name
                    )
                    if sequence:
                        await connection.execute(
                            f"SELECT setval('{sequence}', (SELECT max(id) FROM {table.name}))"
                        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class StatementLog:
    """Every statement the engine sends, with its parameters and (cursor) duration."""

    entries: list[tuple[str, Any, float]] = field(default_factory=list)
    # Start time and entry index by cursor: the overview's statements overlap on several
    # connections, so they finish in any order.
    _started: dict[int, tuple[float, int]] = field(default_factory=dict)

    def attach(self, engine: Any) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def detach(self, engine: Any) -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", self._before)
        event.remove(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self._started[id(cursor)] = (time.perf_counter(), len(self.entries))
        self.entries.append((statement, parameters, 0.0))

    def _after(self, _conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        started = self._started.pop(id(cursor), None)
        if started is None:
            return  # begun before take() cleared the log
        at, index = started
        if index < len(self.entries):
            self.entries[index] = (statement, parameters, (time.perf_counter() - at) * 1000)

    def take(self) -> list[tuple[str, Any, float]]:
        """The statements so far; one that never finished (interrupted) has INTERRUPTED ms."""
        entries, self.entries = self.entries, []
        if self._started:
            self._started.clear()
            entries = [(sql, p, INTERRUPTED if t == 0.0 else t) for sql, p, t in entries]
        return entries


INTERRUPTED = float("inf")


class TimedOutError(Exception):
    pass


class Runaway:
    """Stops a statement that runs past the time limit: sqlite3's interrupt() on SQLite (an
    abandoned await would leave the query running in aiosqlite's thread), task cancellation
    on PostgreSQL (asyncpg sends a cancel request)."""

    def __init__(self, engine: Any) -> None:
        self.connections: dict[int, Any] = {}
        event.listen(engine.sync_engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, *_: Any) -> None:
        self.connections[id(dbapi_connection)] = dbapi_connection

    async def run(self, awaitable: Awaitable[T], limit: float) -> T:
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=limit)
        if task in done:
            return task.result()
        for connection in self.connections.values():
            driver = getattr(connection, "driver_connection", None)
            if driver is not None and hasattr(driver, "interrupt"):
                await driver.interrupt()
        with suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)
        raise TimedOutError(f"> {limit:g} s")


@dataclass
class Scenario:
    key: str
    label: str
    query: str
    variables: dict[str, Any]
    target_ms: float | None
    expect: Callable[[dict[str, Any]], str]


@dataclass
class Measured:
    scenario: Scenario
    timings: list[float]
    statements: list[int]
    note: str
    profile: list[tuple[str, Any, float]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    timed_out: str | None = None

    def quantile(self, q: float) -> float:
        ordered = sorted(self.timings)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank

    @property
    def statement_count(self) -> str:
        counts = sorted(set(self.statements))
        return "/".join(str(c) for c in counts)

    @property
    def meets(self) -> bool:
        if self.timed_out:
            return False
        latency_ok = (
            self.scenario.target_ms is None or self.quantile(0.99) <= self.scenario.target_ms
        )
        return latency_ok and max(self.statements) <= TARGET_STATEMENTS


def _connections_note(first: int) -> Callable[[dict[str, Any]], str]:
    def check(data: dict[str, Any]) -> str:
        nodes = data["connections"]["nodes"]
        assert len(nodes) == first, f"expected {first} nodes, got {len(nodes)}"
        uses = sum(len(n["uses"]["nodes"]) for n in nodes)
        return f"{len(nodes)} nodes, {uses} uses"

    return check


def _overview_note(data: dict[str, Any]) -> str:
    o = data["overview"]
    return (
        f"{o['consumers']} consumers ({o['activeConsumers']} active), "
        f"{o['activeConnections']}/{o['pendingConnections']}/{o['failedConnections']} "
        f"act/pend/fail, {len(o['connectors'])} connectors, {len(o['syncs'])} syncs"
        + (f", {len(o['categories'])} categories" if "categories" in o else "")
    )


def _consumers_note(data: dict[str, Any]) -> str:
    c = data["consumers"]
    return f"totalCount {c['totalCount']}, {len(c['nodes'])} nodes"


async def _deep_cursor(database: Database, page: int, size: int) -> str | None:
    async with database.engine.connect() as connection:
        row_id = await connection.scalar(
            text("SELECT id FROM connections ORDER BY id LIMIT 1 OFFSET :skip"),
            {"skip": (page - 1) * size - 1},
        )
    return encode_cursor(row_id) if row_id is not None else None


def scenarios(deep_after: str | None) -> list[Scenario]:
    out = [
        Scenario(
            "a", "(a) connections first:10", CONNECTIONS_QUERY, {"first": 10}, None,
            _connections_note(10),
        ),
        Scenario(
            "a", "(a) connections first:100", CONNECTIONS_QUERY, {"first": 100}, TARGET_A_MS,
            _connections_note(100),
        ),
        Scenario(
            "a", "(a) connections first:200", CONNECTIONS_QUERY, {"first": 200}, None,
            _connections_note(200),
        ),
        Scenario(
            "a", "(a) connections first:500", CONNECTIONS_QUERY, {"first": 500}, None,
            _connections_note(500),
        ),
    ]  # fmt: skip
    if deep_after is not None:
        out.append(
            Scenario(
                "a",
                "(a) connections first:100 page 500",
                CONNECTIONS_QUERY,
                {"first": 100, "after": deep_after},
                TARGET_A_MS,
                _connections_note(100),
            )
        )
    out += [
        Scenario("b", "(b) overview (all fields)", OVERVIEW_QUERY, {}, TARGET_B_MS, _overview_note),
        Scenario(
            "b", "(b) overview without categories", OVERVIEW_PER_CONNECTOR_QUERY, {}, TARGET_B_MS,
            _overview_note,
        ),
        Scenario(
            "c", "(c) consumers issue+search first:10", CONSUMERS_QUERY,
            {"first": 10, "search": SEARCH_TERM}, None, _consumers_note,
        ),
        Scenario(
            "c", "(c) consumers issue+search first:50", CONSUMERS_QUERY,
            {"first": 50, "search": SEARCH_TERM}, None, _consumers_note,
        ),
    ]  # fmt: skip
    return out


async def _execute(schema: Any, database: Database, scenario: Scenario) -> dict[str, Any]:
    context = GraphQLContext(database.sessions, Viewer(scope=TokenScope.READ))
    result = await schema.execute(
        scenario.query, variable_values=scenario.variables, context_value=context
    )
    if result.errors:
        raise RuntimeError(f"{scenario.label}: {result.errors}")
    assert result.data is not None
    return result.data


def bench_schema(args: argparse.Namespace) -> strawberry.Schema:
    """The app's schema, or with --stock-executor the same schema on strawberry's own
    execution context (what graphql_schema.execution's figures are measured against)."""
    schema = build_schema()
    if args.stock_executor:
        schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return schema


async def measure_in_process(
    database: Database,
    scenario: Scenario,
    args: argparse.Namespace,
    log: StatementLog,
    runaway: Runaway,
) -> Measured:
    schema = bench_schema(args)
    started = time.perf_counter()
    try:
        data = await runaway.run(_execute(schema, database, scenario), args.timeout)
    except TimedOutError as exc:
        return Measured(scenario, [], [len(log.entries)], "", log.take(), [], str(exc))
    note = scenario.expect(data)
    first_s = time.perf_counter() - started
    runs, warmup, cut = args.runs, args.warmup, ""
    if first_s * (args.runs + args.warmup) > args.budget:
        # Seconds per run: keep the whole scenario within the budget, and say so.
        runs = max(3, int(args.budget / first_s))
        warmup, cut = 0, f" [runs cut to {runs}: {first_s:.1f} s per run, budget {args.budget} s]"
    for _ in range(max(0, warmup - 1)):
        await _execute(schema, database, scenario)
    RuntimeTuning().started()  # as the app does once its start-up is done
    log.take()
    timings: list[float] = []
    cpu: list[float] = []
    statements: list[int] = []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        await _execute(schema, database, scenario)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        statements.append(len(log.take()))
    # Per-statement durations: the median over a few more runs (statement order is fixed).
    profiles = []
    for _ in range(5 if not cut else 1):
        await _execute(schema, database, scenario)
        profiles.append(log.take())
    profile = [
        (sql, params, statistics.median(p[i][2] for p in profiles))
        for i, (sql, params, _) in enumerate(profiles[0])
    ]
    return Measured(scenario, timings, statements, note + cut, profile, cpu)


def _package(filename: str) -> str:
    """Who a profiled function belongs to: a site-package, a project package, or stdlib."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "src" in parts and parts.index("src") + 1 < len(parts):
        return "src/" + parts[parts.index("src") + 1]
    if "bench" in parts:
        return "bench"
    return "stdlib " + Path(filename).stem if parts else filename


async def cprofile_scenario(database: Database, scenario: Scenario, runs: int = 20) -> None:
    """Where the wall time of one execution goes, by package (cProfile own time, so the
    figures add up; profiling inflates everything by a similar factor)."""
    schema = build_schema()
    await _execute(schema, database, scenario)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        await _execute(schema, database, scenario)
    profiler.disable()
    stats = pstats.Stats(profiler)
    own: Counter[str] = Counter()
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        package = _package(filename)
        if package == "builtins (C)":
            # Waiting for the database (epoll) is not work: name the big C functions.
            package = "C " + re.sub(r"<(built-in )?(method|function) ", "", function).rstrip(">")
        own[package] += tottime
    total = sum(own.values())
    print(f"\ncProfile of {scenario.label}, {runs} runs, own time by package:")
    for package, seconds in own.most_common(14):
        print(f"  {package[:44]:<44} {seconds * 1000 / runs:8.1f} ms/run  {seconds / total:6.1%}")
    print(f"  {'total (profiled)':<44} {total * 1000 / runs:8.1f} ms/run")


def _compact_sql(sql: str) -> str:
    flat = re.sub(r"\s+", " ", sql).strip()
    flat = re.sub(r"(\$\d+(::\w+)?, ){3,}\$\d+(::\w+)?", "$n, ...", flat)
    return re.sub(r"(\?, ){3,}\?", "?, ...", flat)


def _short_sql(sql: str, width: int = 96) -> str:
    flat = _compact_sql(sql)
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def print_table(title: str, results: list[Measured]) -> None:
    print(f"\n{title}")
    header = (
        f"{'scenario':<38} {'runs':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu p50':>7} "
        f"{'SQL':>4}  {'target':>10} {'p99/tgt':>7}  {'SQL<=6':>6}  {'ok':>3}"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        target = m.scenario.target_ms
        if m.timed_out:
            ratio = f">{_timeout_ratio(m, target)}" if target else "-"
            print(
                f"{m.scenario.label:<38} {0:>4} {m.timed_out:>8} {m.timed_out:>8} {'':>8} "
                f"{'':>7} {'>=' + str(max(m.statements)):>4}  "
                f"{(f'p99<={target:.0f}' if target else 'SQL only'):>10} {ratio:>7}  "
                f"{'?':>6}  {'NO':>3}"
            )
            continue
        ratio = f"{m.quantile(0.99) / target:.2f}" if target else "-"
        print(
            f"{m.scenario.label:<38} {len(m.timings):>4} {m.quantile(0.5):>8.1f} "
            f"{m.quantile(0.99):>8.1f} {max(m.timings):>8.1f} {statistics.median(m.cpu):>7.1f} "
            f"{m.statement_count:>4}  "
            f"{(f'p99<={target:.0f}' if target else 'SQL only'):>10} {ratio:>7}  "
            f"{'yes' if max(m.statements) <= TARGET_STATEMENTS else 'NO':>6}  "
            f"{'yes' if m.meets else 'NO':>3}"
        )
    for m in results:
        note = f"TIMED OUT {m.timed_out}: interrupted" if m.timed_out else m.note
        print(f"  {m.scenario.label:<36} -> {note}")


def _timeout_ratio(m: Measured, target: float) -> str:
    limit = float(m.timed_out.split()[1]) if m.timed_out else 0.0
    return f"{limit * 1000 / target:.0f}"


def _ms(elapsed: float) -> str:
    return "interrupted" if elapsed == INTERRUPTED else f"{elapsed:8.2f} ms"


def print_statement_profile(results: list[Measured]) -> None:
    print("\nper-statement time (median of 5 profiled runs; cursor execute incl. fetch):")
    for m in results:
        total = sum(t for _, _, t in m.profile if t != INTERRUPTED)
        what = "before the time limit" if m.timed_out else "in SQL (summed: may overlap)"
        print(f"  {m.scenario.label}: {len(m.profile)} statements, {total:.1f} ms {what}")
        for sql, _, elapsed in sorted(m.profile, key=lambda e: -e[2])[:3]:
            print(f"    {_ms(elapsed):>11}  {_short_sql(sql)}")


async def explain(database: Database, results: list[Measured], force: bool) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) / EXPLAIN QUERY PLAN of the slowest statements of every
    scenario that misses its target (of every scenario with `force`)."""
    chosen = [m for m in results if force or not m.meets]
    if not chosen:
        print("\nno scenario misses its target: no plans printed (use --explain to force)")
        return
    await explain_statements(
        database,
        [
            (m.scenario.label, sql, params, elapsed)
            for m in chosen
            for sql, params, elapsed in sorted(m.profile, key=lambda e: -e[2])[:2]
        ],
    )


async def explain_statements(
    database: Database, statements: list[tuple[str, str, Any, float]]
) -> None:
    backend = database.engine.dialect.name
    seen: set[str] = set()
    for label, sql, params, elapsed in statements:
        if sql in seen:
            continue
        seen.add(sql)
        if backend != "postgresql":
            prefix = "EXPLAIN QUERY PLAN "
        elif elapsed < 20_000:
            prefix = "EXPLAIN (ANALYZE, BUFFERS) "
        else:
            prefix = "EXPLAIN "  # too slow to run once more
        print(f"\n--- {label}: {_ms(elapsed).strip()} --- {prefix.strip()}")
        print(_compact_sql(sql))
        print(f"params: {_short_sql(repr(params), 300)}")
        async with database.engine.connect() as connection:
            rows = (await connection.exec_driver_sql(prefix + sql, params)).all()
        for row in rows:
            print("   ", " | ".join(str(v) for v in row))


# --- the app: CSV over ASGI and everything over HTTP ---------------------------------------------


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def _proc_status(key: str) -> int:
    """kB from /proc/self/status (VmRSS, VmHWM); 0 where there is no /proc."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+)", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Streamed:
    status: int
    rows: int
    size: int
    seconds: float
    samples: list[int]
    timed_out: bool = False


async def asgi_get(
    app: Starlette, path: str, query: str, *, sample: bool, runaway: Runaway, limit: float
) -> Streamed:
    """Drive the ASGI app directly and throw each body chunk away as it arrives.

    httpx's ASGITransport would collect the whole body in a list before returning it, so the
    client, not the app, would hold 100k rows; this keeps the measurement about the app."""
    done = asyncio.Event()
    sent = False
    state = {"status": 0, "rows": 0, "size": 0}
    samples: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            state["size"] += len(body)
            state["rows"] += body.count(b"\n")
            if sample:
                samples.append(tracemalloc.get_traced_memory()[0])
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
        "state": {},
    }
    started = time.perf_counter()
    timed_out = False
    try:
        await runaway.run(app(scope, receive, send), limit)
    except TimedOutError:
        timed_out = True
    seconds = time.perf_counter() - started
    rows = max(0, state["rows"] - 1)  # minus the header
    return Streamed(state["status"], rows, state["size"], seconds, samples, timed_out)


@asynccontextmanager
async def serving(app: Starlette, http: bool) -> AsyncIterator[str | None]:
    """The app's lifespan, under uvicorn on a free loopback port when `http`."""
    if not http:
        async with app.router.lifespan_context(app):
            yield None
        return
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def measure_csv(
    app: Starlette, log: StatementLog, runaway: Runaway, limit: float
) -> set[str]:
    """Rows/s and memory of both views; returns the views that ran past `limit`."""
    print("\n(d) CSV export of all consumers, streamed by the app (direct ASGI call):")
    header = (
        f"  {'view':<12} {'rows':>7} {'MB':>6} {'s':>6} {'rows/s':>9} {'tgt':>5} "
        f"{'SQL':>4} {'RSS before':>10} {'RSS after':>10} {'peak RSS':>9} {'tracemalloc':>11} "
        f"{'traced during stream (min..max)':>32}"
    )
    print(header)
    slowest: list[tuple[str, float, list[tuple[str, Any, float]]]] = []
    timed_out: set[str] = set()
    rates: dict[str, float] = {}
    for view in ("connections", "syncs"):
        path, query = "/export/consumers.csv", f"view={view}"
        warm = await asgi_get(app, path, query, sample=False, runaway=runaway, limit=limit)
        if warm.timed_out:
            timed_out.add(view)
            entries = log.take()
            print(
                f"  {view:<12} TIMED OUT after {warm.seconds:.0f} s with {warm.rows} rows streamed "
                f"(<= {warm.rows / warm.seconds:,.0f} rows/s), {len(entries)} statements"
            )
            slowest.append((view, warm.seconds, entries))
            continue
        log.take()
        gc.collect()
        rss_before = _proc_status("VmRSS")
        reset = _reset_peak_rss()
        streamed = await asgi_get(app, path, query, sample=False, runaway=runaway, limit=limit)
        entries = log.take()
        statements = len(entries)
        rss_after, rss_peak = _proc_status("VmRSS"), _proc_status("VmHWM")
        assert streamed.status == 200, streamed.status
        # A second pass under tracemalloc (slower) for the Python-heap peak and its course.
        gc.collect()
        tracemalloc.start()
        traced = await asgi_get(app, path, query, sample=True, runaway=runaway, limit=limit * 3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        log.take()
        rate = streamed.rows / streamed.seconds
        course = traced.samples[1:] or traced.samples
        print(
            f"  {view:<12} {streamed.rows:>7} {streamed.size / 1e6:>6.2f} "
            f"{streamed.seconds:>6.2f} {rate:>9,.0f} "
            f"{'ok' if rate >= TARGET_CSV_ROWS_PER_S else 'NO':>5} {statements:>4} "
            f"{rss_before / 1024:>8.1f}MB {rss_after / 1024:>8.1f}MB "
            f"{(f'{rss_peak / 1024:.1f}MB' if reset else 'n/a'):>9} "
            f"{peak / 1e6:>9.2f}MB "
            f"{min(course) / 1e6:>8.2f}..{max(course) / 1e6:.2f} MB over {len(course)} chunks"
        )
        quarters = [course[round(q * (len(course) - 1))] / 1e6 for q in (0, 0.25, 0.5, 0.75, 1)]
        print(
            f"  {'':<12} traced heap at 0/25/50/75/100% of the stream: "
            + " / ".join(f"{v:.2f}" for v in quarters)
            + " MB"
        )
        slowest.append((view, streamed.seconds, entries))
        rates[view] = rate
    for view, seconds, entries in slowest:
        in_sql = sum(t for _, _, t in entries if t != INTERRUPTED) / 1000
        print(f"  view={view}: {in_sql:.2f} s of {seconds:.2f} s in SQL; slowest statements:")
        for sql, _, elapsed in sorted(entries, key=lambda e: -e[2])[:2]:
            print(f"    {_ms(elapsed):>11}  {_short_sql(sql, 200)}")
    print(
        f"  target: >= {TARGET_CSV_ROWS_PER_S:,.0f} rows/s; flat memory = tracemalloc peak well "
        "below the body size and RSS after ~ RSS before"
    )
    slow = [(view, entries) for view, seconds, entries in slowest if seconds > 0]
    await explain_statements(
        app.state.database,
        [
            (f"(d) CSV view={view}", sql, params, elapsed)
            for view, entries in slow
            if view in timed_out or rates.get(view, 0.0) < TARGET_CSV_ROWS_PER_S
            for sql, params, elapsed in sorted(entries, key=lambda e: -e[2])[:1]
        ],
    )
    return timed_out


async def measure_http(
    base_url: str,
    app_log: StatementLog,
    runs: int,
    checks: list[Scenario],
    skip: set[str],
) -> None:
    print(f"\nover real HTTP (uvicorn in this process, httpx client, {runs} runs):")
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for scenario in checks:
            label, query, variables = scenario.label, scenario.query, scenario.variables
            if label in skip:
                print(f"  {label:<38} skipped: timed out in-process")
                continue
            body = {"query": query, "variables": variables}
            for _ in range(3):
                response = await client.post("/graphql", json=body)
                response.raise_for_status()
                assert "errors" not in response.json(), response.json()
            app_log.take()
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.post("/graphql", json=body)
                response.json()
                timings.append((time.perf_counter() - started) * 1000)
            statements = len(app_log.take()) / runs
            ordered = sorted(timings)
            p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
            print(
                f"  {label:<38} p50 {statistics.median(timings):7.1f} ms  p99 {p99:7.1f} ms  "
                f"{len(response.content) / 1024:7.1f} kB  {statements:.0f} SQL"
            )
        for view in ("connections", "syncs"):
            if f"csv:{view}" in skip:
                print(f"  (d) CSV view={view:<12} skipped: timed out over ASGI")
                continue
            started = time.perf_counter()
            rows = size = 0
            async with client.stream("GET", f"/export/consumers.csv?view={view}") as response:
                async for chunk in response.aiter_raw():
                    rows += chunk.count(b"\n")
                    size += len(chunk)
            seconds = time.perf_counter() - started
            print(
                f"  (d) CSV view={view:<12} {rows - 1:>7} rows  {size / 1e6:5.2f} MB  "
                f"{seconds:5.2f} s  {(rows - 1) / seconds:>9,.0f} rows/s"
            )


# --- one backend end to end ----------------------------------------------------------------------


@asynccontextmanager
async def bench_database(backend: str, args: argparse.Namespace) -> AsyncIterator[str]:
    """A fresh database URL for `backend`, dropped afterwards unless --keep."""
    if args.database_url:
        yield args.database_url
        return
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="hg_bench_"))
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            if args.keep:
                print(f"kept {folder / 'bench.db'}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"hg_bench_{int(time.time())}_{random.randrange(1 << 16):04x}"
    admin_url = make_url(args.pg_url)
    admin = await asyncpg.connect(_asyncpg_dsn(args.pg_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            admin = await asyncpg.connect(_asyncpg_dsn(args.pg_url))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()


def generated(scale: Scale) -> Dataset:
    started = time.perf_counter()
    data = generate(scale)
    print(
        f"generated in {time.perf_counter() - started:.1f} s: {scale.connections:,} "
        f"connections, {scale.consumers:,} consumers, {scale.connectors} connectors, "
        f"{len(data.tables[UseRow.__table__][1]):,} uses, {scale.syncs} syncs; search "
        f"{SEARCH_TERM!r} matches {data.search_matches} consumer names, "
        f"{data.issue_matches} of them with a failed connection"
    )
    return data


async def run_backend(backend: str, args: argparse.Namespace) -> None:
    async with bench_database(backend, args) as url:
        shown = make_url(url).render_as_string(hide_password=True)
        print(f"\n{'=' * 100}\nbackend: {backend}   database: {shown}")
        if not args.database_url:
            # Generated per backend and dropped once seeded: the CSV part's RSS figures
            # should not carry the data set.
            data = generated(Scale(args.connections))
            migrated = connect(url)
            try:
                started = time.perf_counter()
                await upgrade_database(migrated.engine)
                migrate_s = time.perf_counter() - started
                started = time.perf_counter()
                if backend == "sqlite":
                    await seed_sqlite(migrated, data)
                else:
                    await seed_postgresql(url, data)
                seed_s = time.perf_counter() - started
            finally:
                await migrated.close()
            counts = ", ".join(f"{name} {count:,}" for name, count in data.counts().items())
            how = "Core executemany" if backend == "sqlite" else "COPY + VACUUM ANALYZE"
            print(f"migrated in {migrate_s:.1f} s; seeded in {seed_s:.1f} s ({how}): {counts}")
            del data
            gc.collect()
        database = await open_database(url)
        try:
            async with database.engine.connect() as connection:
                if backend == "sqlite":
                    if args.sqlite_analyze:
                        await connection.exec_driver_sql("ANALYZE")
                        await connection.commit()
                    version = await connection.scalar(text("SELECT 'SQLite ' || sqlite_version()"))
                else:
                    version = await connection.scalar(text("SHOW server_version"))
                    version = f"PostgreSQL {version}"
                for statement in args.sql:
                    started = time.perf_counter()
                    await connection.exec_driver_sql(statement)
                    await connection.commit()
                    print(f"applied in {time.perf_counter() - started:.1f} s: {statement}")
            # Settings such as ALTER DATABASE ... SET reach only connections opened from now.
            await database.engine.dispose()
            analyzed = " (ANALYZE run)" if backend == "sqlite" and args.sqlite_analyze else ""
            print(f"server: {version}{analyzed}")
            deep = await _deep_cursor(database, 500, 100)
            print(f"load average before: {_load()}")
            log = StatementLog()
            log.attach(database.engine)
            runaway = Runaway(database.engine)
            results = []
            for scenario in scenarios(deep):
                if args.only and not any(key in scenario.label for key in args.only):
                    continue
                results.append(await measure_in_process(database, scenario, args, log, runaway))
            log.detach(database.engine)
            print(f"load average after: {_load()} (a shared machine: other work competes for CPU)")
            print_table(
                f"in-process schema.execute, {backend}, {args.runs} runs after {args.warmup} "
                f"warm-up (p99 = nearest rank):",
                results,
            )
            by_size = {
                m.scenario.variables["first"]: m.statement_count
                for m in results
                if m.scenario.key == "a" and "after" not in m.scenario.variables
            }
            if by_size:
                sizes = ", ".join(f"first:{k} -> {v}" for k, v in by_size.items())
                grows = len(set(by_size.values())) > 1
                print(f"(a) SQL statements by page size: {sizes} ({'GROWS' if grows else 'flat'})")
            print_statement_profile(results)
            for scenario in scenarios(deep):
                if any(part in scenario.label for part in args.cprofile):
                    await cprofile_scenario(database, scenario)
            if args.explain or not all(m.meets for m in results):
                await explain(database, results, args.explain)
        finally:
            await database.close()

        if args.skip_app:
            return
        settings = Settings(database_url=url, anonymous_read=True, graphiql=False)
        app = create_app(settings)
        app_log = StatementLog()
        app_log.attach(app.state.database.engine)
        app_runaway = Runaway(app.state.database.engine)
        async with serving(app, http=not args.skip_http) as base_url:
            slow_views = await measure_csv(app, app_log, app_runaway, args.timeout)
            if base_url is not None:
                checks = [
                    s
                    for s in scenarios(deep)
                    if s.target_ms is not None or s.variables.get("first") == 50
                ]
                skip = {m.scenario.label for m in results if m.timed_out}
                skip |= {f"csv:{view}" for view in slow_views}
                await measure_http(base_url, app_log, args.http_runs, checks, skip)
        app_log.detach(app.state.database.engine)


def main() -> None:
    # Errors fail the run loudly anyway (_execute raises); an interrupted runaway statement is
    # reported in the table, not as strawberry's logged traceback.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per scenario (>= 50)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--http-runs", type=int, default=30)
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds per scenario before runs are cut"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL, help="where to CREATE DATABASE")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument(
        "--database-url", help="measure an already seeded database (from --keep); no seeding"
    )
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        help="statement to run before measuring, e.g. a candidate CREATE INDEX (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds before a single execution or export is interrupted and reported as such",
    )
    parser.add_argument("--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite")
    parser.add_argument("--explain", action="store_true", help="plans for every scenario")
    parser.add_argument("--only", action="append", help="scenarios whose label contains this")
    parser.add_argument(
        "--cprofile",
        action="append",
        default=[],
        help="cProfile the scenarios whose label contains this: own time by package",
    )
    parser.add_argument("--skip-app", action="store_true", help="no CSV and no HTTP part")
    parser.add_argument(
        "--stock-executor",
        action="store_true",
        help="run the in-process scenarios on strawberry's own execution context",
    )
    parser.add_argument("--skip-http", action="store_true", help="CSV over ASGI only, no uvicorn")
    args = parser.parse_args()
    if args.database_url:
        args.backend = make_url(args.database_url).get_backend_name()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)

    async def run_all() -> None:
        for backend in backends:
            await run_backend(backend, args)

    asyncio.run(run_all())


if __name__ == "__main__":
    main()
