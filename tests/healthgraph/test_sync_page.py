"""The sync link and the page it opens ("Get sync link", seed 2), through the real app and a
real GraphQL client on each backend: the page follows the activation through each issue, says
it in the issue column's words, escapes every name, shows no secret, and refuses every link
that is not genuine, unexpired and for this very page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError

from graphql_schema.links import LinkSigner
from store.domain import TokenScope
from tests.demo_server import Server, view
from tests.healthgraph.test_pages import consumer_page_headers
from tests.link_pages import read_page

EVIL = "<script>alert(1)</script>"
CANARY = "canary-sync-page-7c1e"
REFUSED = (
    "<!doctype html><title>Link expired</title>"
    "<p>This link is not valid or has expired. Ask for a new one.</p>"
)
ACTIVATION = """
fragment Row on SyncActivation { id issue { code message } }
"""


class Story:
    """One consumer, two required connectors and an activation, made over GraphQL."""

    def __init__(self, demo: Server, writer: str) -> None:
        self.demo = demo
        self.writer = writer
        self.ids: dict[str, str] = {}

    async def run(self, document: str, variables: dict[str, Any] | None = None) -> Any:
        return await self.demo.execute(self.writer, document, variables)

    async def connector(self, slug: str, name: str, behaviour: str) -> str:
        made = await self.run(
            "mutation($i: CreateConnectorInput!) { createConnector(input: $i) { id } }",
            {
                "i": {
                    "slug": slug,
                    "name": name,
                    "category": "accounting",
                    "heartbeat": {
                        "url": f"{self.demo.base_url}/demo/{behaviour}/{{external_id}}",
                        "timeoutSeconds": 5,
                    },
                }
            },
        )
        return str(made["createConnector"]["id"])

    async def connection(self, connector: str, name: str) -> str:
        made = await self.run(
            "mutation($i: CreateConnectionInput!) { createConnection(input: $i) { id } }",
            {"i": {"consumerId": self.ids["consumer"], "connectorId": connector, "name": name}},
        )
        return str(made["createConnection"]["id"])

    async def check_now(self, connection: str) -> dict[str, Any]:
        checked = await self.run(
            "mutation($id: ID!) { checkConnectionNow(id: $id) { status failureReason lastError } }",
            {"id": connection},
        )
        result: dict[str, Any] = checked["checkConnectionNow"]
        return result

    async def steps(self, **complete: bool) -> dict[str, Any]:
        steps = [
            {"step": step.upper(), "complete": done, "detail": None if done else f"<i>{step}</i>"}
            for step, done in complete.items()
        ]
        updated = await self.run(
            ACTIVATION
            + "mutation($id: ID!, $s: [StepInput!]!) { updateSyncActivation(id: $id, steps: $s) { ...Row } }",
            {"id": self.ids["activation"], "s": steps},
        )
        row: dict[str, Any] = updated["updateSyncActivation"]
        return row

    async def link(self, token: str | None = None, seconds: int = 600) -> str:
        made = await self.demo.execute(
            token or self.writer,
            view("sync_link"),
            {"activationId": self.ids["activation"], "expiresInSeconds": seconds},
        )
        return str(made["syncActivationLink"]["url"])


@pytest.fixture
async def story(demo: Server) -> Story:
    """Consumer `pageant` (named `<b>Pageant</b>`) with an activation of a sync (named EVIL)
    that needs EVIL (a failing target) and Ledger (a healthy one); a connection to EVIL only,
    with the CANARY as its bearer token."""
    story = Story(demo, await demo.token(TokenScope.WRITE))
    story.ids["evil"] = await story.connector("evil", EVIL, "failing")
    story.ids["ledger"] = await story.connector("ledger", "Ledger", "healthy")
    consumer = await story.run(
        'mutation { createConsumer(input: {externalId: "pageant", name: "<b>Pageant</b>"}) { id } }'
    )
    story.ids["consumer"] = consumer["createConsumer"]["id"]
    story.ids["evil_connection"] = await story.connection(story.ids["evil"], f"{EVIL} books")
    await story.run(
        "mutation($id: ID!, $c: CredentialsInput) { setConnectionCredentials(id: $id, credentials: $c) { id } }",
        {"id": story.ids["evil_connection"], "c": {"kind": "BEARER", "token": CANARY}},
    )
    sync = await story.run(
        "mutation($i: SyncInput!) { createSync(input: $i) { id } }",
        {
            "i": {
                "name": f"{EVIL} sync",
                "requiredConnectorIds": [story.ids["evil"], story.ids["ledger"]],
            }
        },
    )
    activation = await story.run(
        "mutation($s: ID!, $c: ID!) { createSyncActivation(syncId: $s, consumerId: $c) { id } }",
        {"s": sync["createSync"]["id"], "c": story.ids["consumer"]},
    )
    story.ids["activation"] = activation["createSyncActivation"]["id"]
    return story


def _requirement(connector: str, connection: str, status: tuple[str, str], *rest: str) -> list:
    return [(connector, None), (connection, None), status, *((text, None) for text in rest)]


async def test_the_page_follows_the_activation_through_each_issue(story: Story) -> None:
    url = await story.link()
    async with httpx.AsyncClient() as client:

        async def page_for(row: dict[str, Any]) -> Any:
            response = await client.get(url)
            assert response.status_code == 200
            assert (
                EVIL not in response.text
                and "<b>" not in response.text
                and "<i>" not in response.text
            )
            assert CANARY not in response.text
            page = read_page(response.text)
            # The same words as the issue column (the GraphQL `issue.message`).
            issue = page.sections["What might have failed"].paragraphs
            assert issue == (
                [(row["issue"]["message"], "down")]
                if row["issue"]
                else [("Nothing: the sync is active", "up")]
            )
            return page

        # A failing connection to EVIL, none to Ledger; the mapping and configuration undone.
        failing = await story.check_now(story.ids["evil_connection"])
        assert (failing["status"], failing["failureReason"]) == (
            "CONNECTION_FAILURE",
            "HTTP_STATUS",
        )
        row = await story.steps(connection=True, mapping=False, configuration=False)
        assert row["issue"] == {
            "code": "CONNECTION_FAILED",
            "message": f"Connection failed ({EVIL})",
        }
        page = await page_for(row)
        assert (page.title, page.h1) == (f"<b>Pageant</b>: {EVIL} sync", f"{EVIL} sync")
        assert page.sections[""].paragraphs == [("Sync activation of <b>Pageant</b>", None)]
        assert page.sections["Steps"].rows == [
            [("Connection", None), ("Complete", "up"), ("", None)],
            [("Mapping", None), ("Incomplete", "down"), ("<i>mapping</i>", None)],
            [("Configuration", None), ("Incomplete", "down"), ("<i>configuration</i>", None)],
        ]
        checked_rows = page.sections["Required connections"].rows
        assert checked_rows[0][3][0].endswith(" UTC")  # when it was checked, just now
        assert checked_rows == [
            _requirement(
                EVIL,
                f"{EVIL} books",
                ("Connection failure", "down"),
                checked_rows[0][3][0],
                f"HTTP_STATUS {failing['lastError']}",
            ),
            _requirement("Ledger", "", ("Missing", "down"), "", ""),
        ]

        # No connection to EVIL either: both missing.
        await story.run(
            "mutation($id: ID!) { deleteConnection(id: $id) }", {"id": story.ids["evil_connection"]}
        )
        row = await story.steps(connection=True, mapping=False, configuration=False)
        assert row["issue"] == {
            "code": "NO_CONNECTION",
            "message": f"No connection: required connections are missing ({EVIL})",
        }
        page = await page_for(row)
        assert page.sections["Required connections"].rows == [
            _requirement(EVIL, "", ("Missing", "down"), "", ""),
            _requirement("Ledger", "", ("Missing", "down"), "", ""),
        ]

        # Both connected (Ledger's checked and up; EVIL's new one never checked): the mapping.
        story.ids["evil_connection"] = await story.connection(story.ids["evil"], "Evil again")
        ledger = await story.connection(story.ids["ledger"], "Pageant Ledger")
        assert (await story.check_now(ledger))["status"] == "CONNECTED"
        row = await story.steps(connection=True, mapping=False, configuration=False)
        assert row["issue"]["code"] == "MAPPING_INCOMPLETE"
        page = await page_for(row)
        rows = page.sections["Required connections"].rows
        assert rows == [
            _requirement(EVIL, "Evil again", ("Not checked yet", "unknown"), "never", " "),
            _requirement("Ledger", "Pageant Ledger", ("Connected", "up"), rows[1][3][0], " "),
        ]

        row = await story.steps(connection=True, mapping=True, configuration=False)
        assert row["issue"]["code"] == "CONFIGURATION_INCOMPLETE"
        page = await page_for(row)
        assert [cells[1] for cells in page.sections["Steps"].rows] == [
            ("Complete", "up"),
            ("Complete", "up"),
            ("Incomplete", "down"),
        ]

        row = await story.steps(connection=True, mapping=True, configuration=True)
        assert row["issue"] is None
        await page_for(row)

        # Deleted since the link was made: gone, not refused.
        await story.run(
            "mutation($id: ID!) { deleteSyncActivation(id: $id) }", {"id": story.ids["activation"]}
        )
        gone = await client.get(url)
    assert (gone.status_code, gone.text) == (
        404,
        "<!doctype html><p>This sync activation no longer exists.</p>",
    )


async def test_only_a_genuine_unexpired_sync_link_opens_the_page(
    demo: Server, story: Story
) -> None:
    url = await story.link()
    path, query = url.removeprefix(demo.base_url).split("?")
    consumer_link = await story.run(
        "mutation($id: ID!) { consumerLink(consumerId: $id) { url } }",
        {"id": story.ids["consumer"]},
    )
    consumer_url = consumer_link["consumerLink"]["url"]
    consumer_query = consumer_url.split("?")[1]
    activation_id = int(path.rsplit("/", 1)[1])
    signer = demo.services.link_signer if demo.services else None
    assert isinstance(signer, LinkSigner)
    expired = signer.sync_path("pageant", activation_id, datetime.now(UTC) - timedelta(seconds=1))
    other = await story.run(
        "mutation($s: ID!, $c: ID!) { createSyncActivation(syncId: $s, consumerId: $c) { id } }",
        {
            "s": (
                await story.run(
                    'mutation { createSync(input: {name: "Other", requiredConnectorIds: []}) { id } }'
                )
            )["createSync"]["id"],
            "c": story.ids["consumer"],
        },
    )
    assert other["createSyncActivation"]["id"]
    refusals = {
        "tampered signature": f"{path}?{query[:-1]}{'0' if query[-1] != '0' else '1'}",
        "another activation": f"{path.rsplit('/', 1)[0]}/{activation_id + 1}?{query}",
        "another consumer": f"{path.replace('/pageant/', '/acme-corp/')}?{query}",
        "expired": expired,
        "unsigned": path,
        "a consumer link's signature": f"{path}?{consumer_query}",
        "a sync link's signature on the consumer page": f"/consumers/pageant?{query}",
    }
    async with httpx.AsyncClient(base_url=demo.base_url) as client:
        genuine = await client.get(url)
        answers = {why: await client.get(target) for why, target in refusals.items()}
    assert genuine.status_code == 200
    assert {why: (r.status_code, r.text) for why, r in answers.items()} == {
        why: (403, REFUSED) for why in refusals
    }
    # The same strict headers as the consumer page, on the page and on every refusal.
    expected = consumer_page_headers(genuine)
    assert expected["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert all(consumer_page_headers(r) == expected for r in answers.values())


def test_sync_signatures_bind_the_activation_the_consumer_and_the_expiry() -> None:
    signer = LinkSigner(b"k" * 32)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    path = signer.sync_path("acme", 7, now + timedelta(minutes=5))
    assert path.startswith("/consumers/acme/syncs/7?expires=")
    expires = path.split("expires=")[1].split("&")[0]
    signature = path.split("signature=")[1]
    assert signer.verify_sync("acme", 7, expires, signature, now)
    assert not signer.verify_sync("acme", 7, expires, signature, now + timedelta(minutes=6))
    assert not signer.verify_sync("acme", 8, expires, signature, now)
    assert not signer.verify_sync("globex", 7, expires, signature, now)
    assert not LinkSigner(b"x" * 32).verify_sync("acme", 7, expires, signature, now)
    # Neither kind of link opens the other's page, whatever the external id looks like.
    assert not signer.verify("acme", expires, signature, now)
    consumer = signer.path("7:acme", now + timedelta(minutes=5)).split("signature=")[1]
    assert not signer.verify_sync("acme", 7, expires, consumer, now)
    assert signer.verify("7:acme", expires, consumer, now)


async def test_the_sync_link_needs_write_scope_the_tenant_and_a_sane_expiry(
    demo: Server, story: Story
) -> None:
    activation = story.ids["activation"]

    async def refusal(token: str, variables: dict[str, Any]) -> str:
        with pytest.raises(TransportQueryError) as raised:
            await demo.execute(token, view("sync_link"), variables)
        return str(raised.value.errors[0]["message"])  # type: ignore[index]

    reader = await demo.token(TokenScope.READ)
    others = await demo.token(TokenScope.WRITE, consumer="acme-corp")
    own = await demo.token(TokenScope.WRITE, consumer="pageant")
    assert "write" in await refusal(reader, {"activationId": activation})
    assert await refusal(others, {"activationId": activation}) == (
        f"SyncActivation {activation!r} does not exist"
    )
    for seconds in (59, 30 * 86400 + 1):
        assert await refusal(
            story.writer, {"activationId": activation, "expiresInSeconds": seconds}
        ) == (f"expiresInSeconds: {seconds} is out of range; use 60..{30 * 86400}")
    assert "SyncActivation" in await refusal(story.writer, {"activationId": story.ids["consumer"]})
    # The tenant's own activation: a link, which opens the page.
    url = await story.link(own)
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 200
