"""Oversized and malformed requests are refused with a clear error before any work is done.

"Before any work" is measured, not assumed: every SQL statement the server's engine runs is
counted, and a refused request may run none (body limits: not even the token lookup) or only
the token lookup that every authenticated request costs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from healthgraph.limits import MAX_GRAPHQL_BODY_BYTES, MAX_PUSH_BODY_BYTES
from store.domain import TokenScope
from tests.demo_server import Server


class Statements:
    def __init__(self) -> None:
        self.count = 0


@contextmanager
def counting(server: Server) -> Iterator[Statements]:
    """Count the SQL statements the server runs inside the block for the requests themselves
    (not the token's last use, recorded beside them at most once a minute)."""
    statements = Statements()

    def seen(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("UPDATE api_tokens SET last_used_at"):
            statements.count += 1

    engine = server.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def padded(size: int) -> bytes:
    """A valid GraphQL request of exactly `size` bytes (JSON whitespace as padding)."""
    core = json.dumps({"query": "{ __typename }"}).encode()
    return core[:-1] + b" " * (size - len(core)) + b"}"


async def test_bodies_over_the_limit_are_refused_before_the_token_is_looked_up(
    demo: Server,
) -> None:
    writer = await demo.token(TokenScope.WRITE)
    use = await _a_use_id(demo, writer)
    too_large = {
        "errors": [{"message": f"request body: larger than {MAX_GRAPHQL_BODY_BYTES} bytes"}]
    }
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        for token in (writer, "hg_not-a-token"):
            with counting(demo) as statements:
                response = await client.post(
                    "/graphql",
                    content=padded(MAX_GRAPHQL_BODY_BYTES + 1),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
            assert (response.status_code, response.json()) == (413, too_large)
            assert statements.count == 0
        with counting(demo) as statements:
            pushed = await client.post(
                f"/push/use-run/{use}",
                content=b'{"success": false, "error": "' + b"x" * MAX_PUSH_BODY_BYTES + b'"}',
                headers={"Authorization": f"Bearer {writer}", "Content-Type": "application/json"},
            )
        assert (pushed.status_code, pushed.json()) == (
            413,
            {"error": f"request body: larger than {MAX_PUSH_BODY_BYTES} bytes"},
        )
        assert statements.count == 0
        # At the limit exactly, the request is served.
        served = await client.post(
            "/graphql",
            content=padded(MAX_GRAPHQL_BODY_BYTES),
            headers={"Authorization": f"Bearer {writer}", "Content-Type": "application/json"},
        )
        assert (served.status_code, served.json()) == (200, {"data": {"__typename": "Query"}})


async def test_a_streamed_body_without_content_length_is_cut_off_at_the_limit(
    demo: Server, reader: str
) -> None:
    async def chunks(total: int) -> AsyncIterator[bytes]:
        body = padded(total)
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    # httpx sends an async iterator chunked, so the server learns the size only by reading.
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {reader}", "Content-Type": "application/json"}
        refused = await client.post(
            "/graphql", content=chunks(MAX_GRAPHQL_BODY_BYTES + 1), headers=headers
        )
        served = await client.post("/graphql", content=chunks(200_000), headers=headers)
    assert "content-length" not in {k.lower() for k in refused.request.headers}
    assert (refused.status_code, refused.json()) == (
        413,
        {"errors": [{"message": f"request body: larger than {MAX_GRAPHQL_BODY_BYTES} bytes"}]},
    )
    assert (served.status_code, served.json()) == (200, {"data": {"__typename": "Query"}})


MALFORMED: list[tuple[str, dict[str, str], bytes, int, str]] = [
    (
        "no content type",
        {"Content-Type": ""},  # "" removes the header
        b'{"query": "{ __typename }"}',
        415,
        "Content-Type: expected application/json, got none",
    ),
    (
        "plain text",
        {"Content-Type": "text/plain"},
        b'{"query": "{ __typename }"}',
        415,
        "Content-Type: expected application/json, got 'text/plain'",
    ),
    (
        "a form",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"query=%7B+__typename+%7D",
        415,
        "Content-Type: expected application/json, got 'application/x-www-form-urlencoded'",
    ),
    (
        "multipart (uploads are off)",
        {"Content-Type": "multipart/form-data; boundary=x"},
        b"--x--",
        415,
        "Content-Type: expected application/json, got 'multipart/form-data; boundary=x'",
    ),
    (
        "truncated JSON",
        {},
        b'{"query": "{ __typ',
        400,
        "request body: not valid JSON (Unterminated string starting at at line 1, column 11)",
    ),
    (
        "not UTF-8",
        {},
        b'{"query": "\xff\xfe"}',
        400,
        "request body: not valid UTF-8 (byte 11)",
    ),
    (
        "a JSON string",
        {},
        b'"{ __typename }"',
        400,
        'request body: expected a JSON object {"query": ...}, got a string',
    ),
    ("null", {}, b"null", 400, 'request body: expected a JSON object {"query": ...}, got null'),
    (
        "a batch",
        {},
        b'[{"query": "{ __typename }"}]',
        400,
        "request body: a JSON array (a batch); send one operation as a JSON object",
    ),
    ("nested 100k deep", {}, b"[" * 100_000, 400, "request body: nested too deeply"),
    (
        "a 5000-digit number",
        {},
        b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}",
        400,
        "request body: not valid JSON (a number too long)",
    ),
    ("no query", {}, b"{}", 400, "No GraphQL query found in the request"),
    (
        "query not a string",
        {},
        b'{"query": 5}',
        400,
        "The GraphQL operation's `query` must be a string or null, if provided.",
    ),
    (
        "variables not an object",
        {},
        b'{"query": "{ __typename }", "variables": [1]}',
        400,
        "The GraphQL operation's `variables` must be an object or null, if provided.",
    ),
]


async def test_malformed_requests_get_a_clear_json_error_and_touch_no_data(
    demo: Server, reader: str
) -> None:
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        for name, headers, body, status, message in MALFORMED:
            headers = {"Content-Type": "application/json", **headers}
            if not headers["Content-Type"]:
                del headers["Content-Type"]
            with counting(demo) as statements:
                response = await client.post(
                    "/graphql",
                    content=body,
                    headers={"Authorization": f"Bearer {reader}", **headers},
                )
            assert response.status_code == status, name
            # httpx adds no Content-Type of its own to raw `content`: the rows mean what they say.
            assert response.request.headers.get("content-type") == (headers.get("Content-Type"))
            assert response.headers["content-type"] == "application/json", name
            assert response.json() == {"errors": [{"message": message}]}, name
            assert statements.count <= 1, name  # the token lookup, nothing else
        mutation_over_get = await client.get(
            "/graphql",
            params={"query": 'mutation { deleteConsumer(id: "x") }'},
            headers={"Authorization": f"Bearer {reader}"},
        )
    assert (mutation_over_get.status_code, mutation_over_get.json()) == (
        400,
        {"errors": [{"message": "mutations are not allowed when using GET"}]},
    )


DOCUMENT_LIMITS = [
    (
        "{ connections { nodes { consumer { connections { nodes { consumer { connections { nodes"
        " { consumer { connections { nodes { consumer { name } } } } } } } } } } } } }",
        "'anonymous' exceeds maximum operation depth of 10",
    ),
    (
        "{ " + " ".join(f"a{i}: consumers {{ totalCount }}" for i in range(31)) + " }",
        "31 aliases found. Allowed: 30",
    ),
    (
        "{ consumers { " + " ".join(["totalCount"] * 2100) + " } }",
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
    ),
    ("{ consumers(first: 501) { totalCount } }", "first: 501 is out of range; use 0..500"),
    ("{ connections(first: -1) { totalCount } }", "first: -1 is out of range; use 0..500"),
    (
        "{ consumers(first: 99999999999) { totalCount } }",
        "Int cannot represent non 32-bit signed integer value: 99999999999",
    ),
    (
        '{ consumers(after: "aGcxOi0x") { totalCount } }',  # "hg1:-1"
        "cursor 'aGcxOi0x' is not valid; pass a cursor returned by this API",
    ),
    ('{ node(id: "") { id } }', "id '' is not an id returned by this API"),
    (
        '{ connections(filter: {consumerIds: ["Q29ubmVjdG9yOjE"]}) { totalCount } }',
        "id 'Q29ubmVjdG9yOjE' is not a Consumer id",
    ),
]


async def test_document_limits_are_enforced_before_the_data_is_read(
    demo: Server, reader: str
) -> None:
    headers = {"Authorization": f"Bearer {reader}"}
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        with counting(demo) as baseline:
            plain = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert plain.json() == {"data": {"__typename": "Query"}}
        for document, message in DOCUMENT_LIMITS:
            with counting(demo) as statements:
                response = await client.post("/graphql", json={"query": document}, headers=headers)
            assert response.status_code == 200, message
            body = response.json()
            assert [error["message"] for error in body["errors"]] == [message]
            assert body.get("data") in (None, {"node": None}), message
            # Nothing beyond what `{ __typename }` costs: the token lookup.
            assert statements.count == baseline.count, message


async def test_a_nested_page_size_is_refused_before_the_parent_is_read(
    demo: Server, reader: str
) -> None:
    headers = {"Authorization": f"Bearer {reader}"}
    document = "{ consumers(first: 1) { nodes { connections(first: 100000) { totalCount } } } }"
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        with counting(demo) as baseline:
            await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        with counting(demo) as statements:
            response = await client.post("/graphql", json={"query": document}, headers=headers)
    assert [e["message"] for e in response.json()["errors"]] == [
        "first: 100000 is out of range; use 0..500"
    ]
    assert statements.count == baseline.count  # today: one more, the consumers page


async def test_invalid_ids_in_mutations_and_push_paths_change_nothing(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    headers = {"Authorization": f"Bearer {writer}"}
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        for document, message in (
            ('mutation { deleteConsumer(id: "x") }', "id 'x' is not an id returned by this API"),
            (
                'mutation { deleteConnection(id: "Q29uc3VtZXI6MQ") }',
                "id 'Q29uc3VtZXI6MQ' is not a Connection id",
            ),
            (
                'mutation { checkConnectionNow(id: "%%%") { id } }',
                "id '%%%' is not an id returned by this API",
            ),
        ):
            with counting(demo) as statements:
                response = await client.post("/graphql", json={"query": document}, headers=headers)
            assert [e["message"] for e in response.json()["errors"]] == [message], document
            assert statements.count <= 1, document
        for path, message in (
            ("/push/heartbeat/x", "id 'x' is not an id returned by this API"),
            ("/push/use-run/Q29uc3VtZXI6MQ", "id 'Q29uc3VtZXI6MQ' is not a Use id"),
        ):
            with counting(demo) as statements:
                response = await client.post(path, json={"success": True}, headers=headers)
            assert (response.status_code, response.json()) == (400, {"error": message}), path
            assert statements.count <= 1, path


async def test_malformed_push_bodies_are_400_not_500(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    use = await _a_use_id(demo, writer)
    async with httpx.AsyncClient(base_url=demo.base_url, timeout=30) as client:
        for body in (b"[" * 10_000, b'{"success": "\xff"}', b"{", b"\x00"):
            response = await client.post(
                f"/push/use-run/{use}",
                content=body,
                headers={"Authorization": f"Bearer {writer}", "Content-Type": "application/json"},
            )
            assert (response.status_code, response.json()) == (
                400,
                {"error": "body: not valid JSON"},
            ), body[:20]


async def _a_use_id(demo: Server, token: str) -> str:
    data = await demo.execute(
        token, "{ connections(first: 50) { nodes { uses(first: 1) { nodes { id } } } } }"
    )
    return next(
        node["uses"]["nodes"][0]["id"]
        for node in data["connections"]["nodes"]
        if node["uses"]["nodes"]
    )


async def test_unicode_digits_are_bad_input_not_internal_errors(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    headers = {"Authorization": f"Bearer {writer}"}
    cursor = base64.urlsafe_b64encode("hg1:²".encode()).decode().rstrip("=")
    node = base64.urlsafe_b64encode("Consumer:²".encode()).decode().rstrip("=")
    connection = base64.urlsafe_b64encode("Connection:²".encode()).decode().rstrip("=")
    async with httpx.AsyncClient(base_url=demo.base_url, headers=headers, timeout=30) as client:
        answers = [
            (await client.post("/graphql", json={"query": document})).json()
            for document in (
                '{ consumers(search: "²") { totalCount } }',
                f'{{ consumers(after: "{cursor}") {{ totalCount }} }}',
                f'{{ node(id: "{node}") {{ id }} }}',
            )
        ]
        pushed = await client.post(f"/push/heartbeat/{connection}")
        csv = await client.get("/export/consumers.csv", params={"search": "²"})
    assert answers[0] == {"data": {"consumers": {"totalCount": 0}}}
    assert [e["message"] for e in answers[1]["errors"]] == [
        f"cursor {cursor!r} is not valid; pass a cursor returned by this API"
    ]
    assert [e["message"] for e in answers[2]["errors"]] == [
        f"id {node!r} is not an id returned by this API"
    ]
    assert (pushed.status_code, pushed.json()) == (
        400,
        {"error": f"id {connection!r} is not an id returned by this API"},
    )
    assert (csv.status_code, csv.text.splitlines()[1:]) == (200, [])
