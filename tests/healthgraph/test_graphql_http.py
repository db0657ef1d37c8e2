"""GraphQL over HTTP as the specification says: the graphql-http audit suite, run by node against
the real app, passes whole; and the media types, statuses and bodies it checks, one by one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from healthgraph.app import create_app
from healthgraph.graphql_media import GRAPHQL_RESPONSE_JSON, JSON, response_media_type
from healthgraph.settings import Settings
from tests.external_tools import missing, program
from tests.servers import running

AUDIT = Path(__file__).parent / "graphql_http_audit"
NODE_HINT = "install Node.js with npm (Debian: apt-get install nodejs npm)"
GRAPHQL_RESPONSE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    """The app on SQLite with anonymous reads, as a client without a token meets it."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hg.db", anonymous_read=True)
    async with running(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit script with its pinned packages installed by `npm ci` from the lock file."""
    npm = program("npm", NODE_HINT)
    folder = tmp_path_factory.mktemp("graphql-http-audit")
    for name in ("package.json", "package-lock.json", "audit.mjs"):
        shutil.copy(AUDIT / name, folder / name)
    installed = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        missing(f"npm ci of the graphql-http audit failed: {installed.stderr.strip()[-2000:]}")
    return folder


async def test_the_graphql_http_audit_passes_whole(base_url: str, audit_dir: Path) -> None:
    node = program("node", NODE_HINT)
    process = await asyncio.create_subprocess_exec(
        node,
        "audit.mjs",
        f"{base_url}/graphql",
        cwd=audit_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    results = json.loads(stdout)
    not_ok = [f"{r['id']} {r['name']}: {r['status']} ({r.get('reason')})" for r in results]
    not_ok = [line for line, r in zip(not_ok, results, strict=True) if r["status"] != "ok"]
    assert not_ok == []
    assert len(results) >= 61  # the whole suite ran (1.23.1 has 61 audits)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/html", JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=0, */*", JSON),
        (f"*/*;q=0.8, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON.upper()};charset=utf-8", GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=nonsense", JSON),
    ],
)
def test_media_type_negotiation(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


async def post(base_url: str, body: dict[str, Any], accept: str | None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.post("/graphql", json=body, headers=headers)


PARSE = {"query": "{"}
VALIDATION = {"query": "{ nope }"}
COERCION = {
    "query": "query($first: Int) { consumers(first: $first) { totalCount } }",
    "variables": {"first": "many"},
}
EXECUTED_WITH_ERROR = {"query": "{ apiTokens { totalCount } }"}  # needs admin: a field error
FINE = {"query": "{ overview { consumers } }"}


async def test_graphql_response_json_says_what_failed_by_status(base_url: str) -> None:
    outcomes = {}
    for name, body in (
        ("parse", PARSE),
        ("validation", VALIDATION),
        ("coercion", COERCION),
        ("field error", EXECUTED_WITH_ERROR),
        ("fine", FINE),
    ):
        response = await post(base_url, body, GRAPHQL_RESPONSE_JSON)
        assert response.headers["content-type"] == GRAPHQL_RESPONSE, name
        answer = response.json()
        outcomes[name] = (response.status_code, "data" in answer, bool(answer.get("errors")))
    assert outcomes == {
        "parse": (400, False, True),
        "validation": (400, False, True),
        "coercion": (400, False, True),
        "field error": (200, True, True),
        "fine": (200, True, False),
    }
    coercion = (await post(base_url, COERCION, GRAPHQL_RESPONSE_JSON)).json()
    assert coercion == {
        "errors": [
            {
                "message": "Variable '$first' has invalid value: "
                "Int cannot represent non-integer value: 'many'",
                "locations": [{"line": 1, "column": 7}],
            }
        ]
    }
    field_error = (await post(base_url, EXECUTED_WITH_ERROR, GRAPHQL_RESPONSE_JSON)).json()
    assert field_error["data"] is None
    assert field_error["errors"][0]["message"] == (
        "this token cannot do that; it needs the admin scope"
    )


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
async def test_application_json_keeps_200_and_the_data_entry(
    base_url: str, accept: str | None
) -> None:
    for body in (PARSE, VALIDATION, COERCION, EXECUTED_WITH_ERROR):
        response = await post(base_url, body, accept)
        assert (response.status_code, response.headers["content-type"]) == (
            200,
            "application/json",
        )
        answer = response.json()
        assert answer["data"] is None and answer["errors"]
    fine = await post(base_url, FINE, accept)
    assert (fine.status_code, fine.headers["content-type"], fine.json()) == (
        200,
        "application/json",
        {"data": {"overview": {"consumers": 0}}},
    )


async def test_a_request_strawberry_cannot_run_is_answered_in_the_asked_type(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for accept, media_type in ((GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON), (None, JSON)):
            headers = {"Accept": accept} if accept else {}
            response = await client.post("/graphql", json={"variables": {}}, headers=headers)
            assert (response.status_code, response.headers["content-type"]) == (400, media_type)
            assert response.json() == {
                "errors": [{"message": "No GraphQL query found in the request"}]
            }
