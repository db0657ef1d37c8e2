"""Catalog as code: apply is idempotent and transactional, prune deletes, export round-trips."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from healthgraph.catalog.apply import ApplyReport, apply_catalog
from healthgraph.catalog.export import dump_yaml, export_catalog
from healthgraph.catalog.spec import parse_catalog
from healthgraph.database import Database
from healthgraph.demo import demo_catalog, demo_environ
from healthgraph.demo.oauth import DemoOAuthProvider
from healthgraph.errors import CatalogError
from store.crypto import KeyRing, generate_key
from store.domain import ConnectionState
from store.models import Base, ConnectionRow
from tests.outbound import LOOPBACK_OUTBOUND, OUTBOUND
from tests.store.steps_check import completed_steps

BASE = textwrap.dedent(
    """\
    use_kinds:
      - {kind: hypersync, label: Hypersyncs}
      - {kind: livesync, label: Cloud files}
    connectors:
      - slug: quickbooks
        name: QuickBooks Online
        category: accounting
        heartbeat: {kind: http, url: "https://api.example.com/v3/company/{external_id}/info", expected_status: [200], timeout_seconds: 10}
      - slug: drive
        name: Google Drive
        category: storage
        heartbeat: {kind: http, url: "https://drive.example.com/health"}
    consumers:
      - external_id: acme
        name: Acme Corp
        connections:
          - name: Acme QuickBooks
            connector: quickbooks
            state: active
            check_interval_seconds: 60
            uses:
              - {kind: hypersync, name: Invoices}
              - {kind: hypersync, name: Bills}
          - name: Acme Drive
            connector: drive
            direction: inbound
            uses:
              - {kind: livesync, name: Policies}
      - external_id: globex
        name: Globex
    syncs:
      - name: Invoices to accounting
        requires: [quickbooks]
        activations:
          - {consumer: acme, steps: {connection: complete, mapping: complete, configuration: incomplete}}
    """
)


class edit(str):
    """`text` with `old` replaced by `new`; fails loudly when `old` is not there."""

    def __new__(cls, text: str, old: str, new: str) -> edit:
        assert old in text, f"{old!r} is not in the text being edited"
        return super().__new__(cls, text.replace(old, new))

    def then(self, old: str, new: str) -> edit:
        return edit(self, old, new)


async def apply_text(
    db: Database,
    text: str,
    *,
    prune: bool = False,
    key_ring: KeyRing | None = None,
    environ: dict[str, str] | None = None,
) -> ApplyReport:
    spec = parse_catalog(text, "catalog.yaml")
    async with db.sessions.begin() as session:
        return await apply_catalog(
            session,
            spec,
            "catalog.yaml",
            key_ring,
            outbound=OUTBOUND,
            prune=prune,
            environ=environ or {},
        )


async def snapshot(db: Database) -> tuple[dict[str, Any], dict[str, int]]:
    """The exported catalog plus every table's row count: equal snapshots, unchanged database."""
    async with db.sessions() as session:
        exported = await export_catalog(session)
        counts = {
            name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }
    return exported, counts


async def test_apply_creates_everything_and_a_second_apply_changes_nothing(db: Database) -> None:
    first = await apply_text(db, BASE)
    assert first.changes == [
        "created use kind 'hypersync'",
        "created use kind 'livesync'",
        "created connector 'quickbooks'",
        "created connector 'drive'",
        "created consumer 'acme'",
        "created connection acme/'Acme QuickBooks'",
        "created use hypersync/'Invoices' of connection acme/'Acme QuickBooks'",
        "created use hypersync/'Bills' of connection acme/'Acme QuickBooks'",
        "created connection acme/'Acme Drive'",
        "created use livesync/'Policies' of connection acme/'Acme Drive'",
        "created consumer 'globex'",
        "created sync 'Invoices to accounting'",
        "created activation of 'Invoices to accounting' for 'acme'",
    ]
    assert first.summary() == "13 created, 0 updated, 0 deleted"

    second = await apply_text(db, BASE)
    assert (second.changes, second.summary()) == ([], "no changes")
    assert list((await completed_steps(db)).values()) == [0b011]  # connection and mapping


async def test_apply_updates_only_what_changed(db: Database) -> None:
    await apply_text(db, BASE)
    changed = (
        edit(BASE, "name: Acme Corp", "name: Acme Corporation")
        .then("check_interval_seconds: 60", "check_interval_seconds: 300")
        .then("configuration: incomplete", "configuration: complete")
        .then("requires: [quickbooks]", "requires: [quickbooks, drive]")
    )
    report = await apply_text(db, changed)
    assert report.changes == [
        "updated consumer 'acme': name",
        "updated connection acme/'Acme QuickBooks': check_interval_seconds",
        "updated sync 'Invoices to accounting': requires",
        "updated activation of 'Invoices to accounting' for 'acme': configuration",
    ]
    assert list((await completed_steps(db)).values()) == [0b111]
    assert (await apply_text(db, changed)).changes == []
    unmapped = edit(changed, "mapping: complete", "mapping: incomplete")
    assert (await apply_text(db, unmapped)).changes == [
        "updated activation of 'Invoices to accounting' for 'acme': mapping"
    ]
    assert list((await completed_steps(db)).values()) == [0b101]


async def test_unlisted_rows_stay_without_prune_and_go_with_it(db: Database) -> None:
    await apply_text(db, BASE)
    smaller = textwrap.dedent(
        """\
        use_kinds:
          - {kind: hypersync, label: Hypersyncs}
        connectors:
          - slug: quickbooks
            name: QuickBooks Online
            category: accounting
            heartbeat: {kind: http, url: "https://api.example.com/v3/company/{external_id}/info", expected_status: [200], timeout_seconds: 10}
        consumers:
          - external_id: acme
            name: Acme Corp
            connections:
              - name: Acme QuickBooks
                connector: quickbooks
                state: active
                check_interval_seconds: 60
                uses:
                  - {kind: hypersync, name: Invoices}
        """
    )
    assert (await apply_text(db, smaller)).changes == []

    pruned = await apply_text(db, smaller, prune=True)
    assert pruned.changes == [
        "deleted use hypersync/'Bills' of connection acme/'Acme QuickBooks'",
        "deleted connection acme/'Acme Drive'",
        "deleted sync 'Invoices to accounting'",
        "deleted consumer 'globex'",
        "deleted connector 'drive'",
        "deleted use kind 'livesync'",
    ]
    exported, counts = await snapshot(db)
    assert exported == parse_yaml(smaller_as_exported())
    assert counts["uses"] == 1 and counts["connections"] == 1 and counts["sync_activations"] == 0
    assert (await apply_text(db, smaller, prune=True)).changes == []


def smaller_as_exported() -> str:
    return textwrap.dedent(
        """\
        use_kinds:
        - {kind: hypersync, label: Hypersyncs}
        connectors:
        - slug: quickbooks
          name: QuickBooks Online
          category: accounting
          heartbeat: {kind: http, url: "https://api.example.com/v3/company/{external_id}/info", expected_status: [200], timeout_seconds: 10}
        consumers:
        - external_id: acme
          name: Acme Corp
          connections:
          - name: Acme QuickBooks
            connector: quickbooks
            direction: outbound
            state: active
            check_interval_seconds: 60
            uses:
            - {kind: hypersync, name: Invoices}
        syncs: []
        """
    )


def parse_yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


async def test_export_then_apply_round_trips_the_demo_catalog(db: Database) -> None:
    await apply_text(db, "{}")
    ring = KeyRing([generate_key()])
    environ = demo_environ(DemoOAuthProvider())
    async with db.sessions.begin() as session:
        await apply_catalog(
            session,
            demo_catalog("http://127.0.0.1:8000"),
            "demo",
            ring,
            outbound=LOOPBACK_OUTBOUND,
            environ=environ,
        )
    exported_once, counts_once = await snapshot(db)
    text = dump_yaml(exported_once)
    assert "$DEMO_BASE_URL" not in text
    assert not any(secret in text for secret in environ.values())

    assert (await apply_text(db, text, key_ring=ring, environ=environ)).changes == []
    assert (await apply_text(db, text, prune=True, key_ring=ring, environ=environ)).changes == []
    assert await snapshot(db) == (exported_once, counts_once)


def test_demo_catalog_meets_the_brief() -> None:
    spec = demo_catalog("http://127.0.0.1:8000")
    connections = [c for consumer in spec.consumers for c in consumer.connections]
    urls = " ".join(str(c.heartbeat.get("url", "")) for c in connections)
    assert len(spec.connectors) >= 5 and len({c.category for c in spec.connectors}) >= 3
    assert len(spec.consumers) >= 20
    assert sum(1 for consumer in spec.consumers if not consumer.connections) >= 2
    assert len(connections) >= 40
    assert {c.direction.value for c in connections} == {"OUTBOUND", "INBOUND"}
    assert {c.state.value for c in connections if c.state} >= {"PENDING", "ACTIVE", "FAILED"}
    assert {u.kind for c in connections for u in c.uses} == {
        "hypersync",
        "task_integration",
        "livesync",
    }
    for behaviour in ("failing", "slow", "flapping", "unauthorized"):
        assert f"http://127.0.0.1:8000/demo/{behaviour}/" in urls
    plain = [c for c in spec.connectors if c.template is None]
    assert all("http://127.0.0.1:8000/demo/healthy/" in c.heartbeat["url"] for c in plain)
    (oauth_connector,) = (c for c in spec.connectors if c.template is not None)
    assert (oauth_connector.template, oauth_connector.oauth2) == (
        "quickbooks",
        {
            "token_url": "http://127.0.0.1:8000/demo/oauth/token",
            "scopes": ["com.intuit.quickbooks.accounting"],
            "auth_method": "client_secret_basic",
            "client_id": "healthgraph-demo",
        },
    )
    assert sum(1 for c in connections if c.connector == oauth_connector.slug) == 4
    assert len(spec.syncs) == 3
    stuck_at = {
        next((step.value for step, done in a.steps if not done), "ACTIVE")
        for sync in spec.syncs
        for a in sync.activations
    }
    assert stuck_at == {"CONNECTION", "MAPPING", "CONFIGURATION", "ACTIVE"}


async def test_state_left_out_keeps_what_the_service_set(db: Database) -> None:
    text = edit(BASE, "        state: active\n", "")
    await apply_text(db, text)
    async with db.sessions.begin() as session:
        row = await session.scalar(
            select(ConnectionRow).where(ConnectionRow.name == "Acme QuickBooks")
        )
        assert row is not None and row.state is ConnectionState.ACTIVE
        row.state = ConnectionState.FAILED  # as a 401 heartbeat would
    assert (await apply_text(db, text)).changes == []
    # Saying `state: active` again re-arms it, as after re-authentication.
    assert (await apply_text(db, BASE)).changes == [
        "updated connection acme/'Acme QuickBooks': state"
    ]


async def test_credentials_are_encrypted_never_exported_and_idempotent(db: Database) -> None:
    ring = KeyRing([generate_key()])
    canary = "canary-secret-4b1d"
    text = edit(
        BASE,
        "        check_interval_seconds: 60\n",
        "        check_interval_seconds: 60\n        credentials: {kind: bearer, token_env: ACME_QB_TOKEN}\n",
    )
    environ = {"ACME_QB_TOKEN": canary}
    await apply_text(db, text, key_ring=ring, environ=environ)
    assert (await apply_text(db, text, key_ring=ring, environ=environ)).changes == []

    async with db.sessions() as session:
        row = await session.scalar(
            select(ConnectionRow).where(ConnectionRow.name == "Acme QuickBooks")
        )
        exported = dump_yaml(await export_catalog(session))
    assert row is not None and row.credentials_ciphertext is not None
    assert canary.encode() not in row.credentials_ciphertext
    assert ring.decrypt(row.credentials_ciphertext) == {"kind": "bearer", "token": canary}
    assert canary not in exported
    assert "credentials:\n      kind: bearer\n      token_env: ACME_QB_TOKEN" in exported

    rotated = {"ACME_QB_TOKEN": "canary-secret-rotated"}
    report = await apply_text(db, text, key_ring=ring, environ=rotated)
    assert report.changes == ["updated connection acme/'Acme QuickBooks': credentials"]


BAD_FILES = [
    pytest.param(
        "connectors: [",
        [
            "catalog.yaml: line 1: not valid YAML (expected the node content, but found '<stream end>')"
        ],
        id="invalid-yaml",
    ),
    pytest.param(
        "- just a list",
        ["catalog.yaml: (top level): expected a mapping, got a list"],
        id="not-a-mapping",
    ),
    pytest.param(
        edit(BASE, "connector: drive", "connector: dropbox"),
        [
            "catalog.yaml: consumers[0].connections[1].connector: unknown connector 'dropbox'; define it under connectors"
        ],
        id="unknown-connector",
    ),
    pytest.param(
        edit(BASE, "external_id: globex", "external_id: acme"),
        [
            "catalog.yaml: consumers[1].external_id: duplicate external_id 'acme' (first at consumers[0].external_id)"
        ],
        id="duplicate-external-id",
    ),
    pytest.param(
        edit(BASE, 'url: "https://drive.example.com/health"', 'url: "drive.example.com/health"'),
        [
            "catalog.yaml: connectors[1].heartbeat.url: 'drive.example.com/health' is not a valid URL; the scheme must be http or https"
        ],
        id="bad-url",
    ),
    pytest.param(
        edit(BASE, "check_interval_seconds: 60", 'check_interval_seconds: "60"').then(
            "name: Globex", "name: [Globex]"
        ),
        [
            "catalog.yaml: consumers[0].connections[0].check_interval_seconds: expected an integer, got a string",
            "catalog.yaml: consumers[1].name: expected a non-empty string, got a list",
        ],
        id="wrong-types",
    ),
    pytest.param(
        edit(BASE, "check_interval_seconds: 60", "check_interval_seconds: 0"),
        [
            "catalog.yaml: consumers[0].connections[0].check_interval_seconds: 0 is out of range; use 1..86400"
        ],
        id="interval-out-of-range",
    ),
    pytest.param(
        "widgets: []\n"
        + edit(BASE, "    name: Acme Corp\n", "    name: Acme Corp\n    colour: red\n"),
        [
            "catalog.yaml: widgets: unknown key; expected one of use_kinds, connectors, consumers, "
            "syncs, webhooks, maintenance",
            "catalog.yaml: consumers[0].colour: unknown key; expected one of external_id, name, email, connections",
        ],
        id="unknown-keys",
    ),
    pytest.param(
        edit(BASE, "{kind: livesync, name: Policies}", "{kind: hypersinc, name: Policies}"),
        [
            "catalog.yaml: consumers[0].connections[1].uses[0].kind: unknown use kind 'hypersinc'; define it under use_kinds"
        ],
        id="unknown-use-kind",
    ),
    pytest.param(
        edit(BASE, "state: active", "state: broken").then(
            "direction: inbound", "direction: sideways"
        ),
        [
            "catalog.yaml: consumers[0].connections[0].state: 'broken' is not one of pending, active, failed, disabled",
            "catalog.yaml: consumers[0].connections[1].direction: 'sideways' is not one of outbound, inbound",
        ],
        id="bad-choices",
    ),
    pytest.param(
        edit(BASE, "{consumer: acme,", "{consumer: nobody,"),
        ["catalog.yaml: syncs[0].activations[0].consumer: unknown consumer 'nobody'"],
        id="unknown-activation-consumer",
    ),
    pytest.param(
        edit(
            BASE,
            "        check_interval_seconds: 60\n",
            "        check_interval_seconds: 60\n        credentials: {kind: bearer, token: hunter2}\n",
        ),
        [
            "catalog.yaml: consumers[0].connections[0].credentials.token: unknown key; expected one of kind, token_env, token_file",
            "catalog.yaml: consumers[0].connections[0].credentials.token: secrets are never written inline; use token_env or token_file",
            "catalog.yaml: consumers[0].connections[0].credentials: give exactly one of token_env or token_file",
        ],
        id="inline-secret",
    ),
    pytest.param(
        edit(
            BASE,
            "        check_interval_seconds: 60\n",
            "        check_interval_seconds: 60\n        credentials: {kind: bearer, token_env: NOT_SET_ANYWHERE}\n",
        ),
        [
            "catalog.yaml: consumers[0].connections[0].credentials.token_env: environment variable NOT_SET_ANYWHERE is not set"
        ],
        id="credentials-env-missing",
    ),
]


@pytest.mark.parametrize(("text", "problems"), BAD_FILES)
async def test_bad_files_are_refused_with_exact_messages_and_change_nothing(
    db: Database, text: str, problems: list[str]
) -> None:
    await apply_text(db, BASE)
    before = await snapshot(db)
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, text, key_ring=KeyRing([generate_key()]))
    assert list(caught.value.problems) == problems
    assert "hunter2" not in str(caught.value)
    assert await snapshot(db) == before


async def test_prune_refuses_references_to_rows_the_file_does_not_list(db: Database) -> None:
    await apply_text(db, BASE)
    before = await snapshot(db)
    only_consumers = BASE.split("connectors:")[0] + "consumers:" + BASE.split("consumers:")[1]
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, only_consumers, prune=True)
    assert caught.value.problems[0] == (
        "catalog.yaml: consumers[0].connections[0].connector: unknown connector 'quickbooks'; "
        "define it under connectors"
    )
    assert await snapshot(db) == before


# --- one write path: the catalog obeys every rule the API obeys ----------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (
            'heartbeat: {kind: http, url: "https://drive.example.com/health"}',
            'heartbeat: {kind: http, url: "http://169.254.169.254/latest/meta-data/"}',
            "connectors[1].heartbeat.url",
        ),
        (
            "        check_interval_seconds: 60\n",
            "        check_interval_seconds: 60\n"
            '        heartbeat: {url: "http://169.254.169.254/latest/meta-data/"}\n',
            "consumers[0].connections[0].heartbeat.url",
        ),
    ],
)
async def test_apply_refuses_a_heartbeat_the_outbound_guard_refuses(
    db: Database, old: str, new: str, path: str
) -> None:
    """The GraphQL mutation refused the cloud metadata address; apply saved it. Now both ask the
    same guard when the URL is saved, and apply writes nothing."""
    before = await snapshot(db)
    with pytest.raises(CatalogError) as refused:
        await apply_text(db, edit(BASE, old, new))
    assert list(refused.value.problems) == [
        f"catalog.yaml: {path}: refused 169.254.169.254 (the cloud metadata address "
        "(link-local)); if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS"
    ]
    assert await snapshot(db) == before


async def test_apply_lists_every_refused_entry_and_writes_nothing(db: Database) -> None:
    text = (
        edit(BASE, "name: Acme Corp", "name: Acme Corp\n    email: not-an-email")
        .then(
            "        check_interval_seconds: 60\n",
            "        check_interval_seconds: 60\n"
            '        heartbeat: {url: "http://127.0.0.1:9/health"}\n',
        )
        .then("name: Globex", "name: Globex\n    email: also-not-an-email")
    )
    before = await snapshot(db)
    with pytest.raises(CatalogError) as refused:
        await apply_text(db, text)
    assert list(refused.value.problems) == [
        "catalog.yaml: consumers[0].email: 'not-an-email' is not an email address",
        "catalog.yaml: consumers[1].email: 'also-not-an-email' is not an email address",
    ]
    assert await snapshot(db) == before
    # With acme's email fixed, its connection's loopback heartbeat is the problem left.
    fixed = edit(text, "email: not-an-email", "email: ops@acme.example").then(
        "email: also-not-an-email", "email: ops@globex.example"
    )
    with pytest.raises(CatalogError) as refused_again:
        await apply_text(db, fixed)
    assert list(refused_again.value.problems) == [
        "catalog.yaml: consumers[0].connections[0].heartbeat.url: refused 127.0.0.1 "
        "(a loopback address); if it is a trusted internal target, add it to "
        "HEALTHGRAPH_ALLOW_TARGETS"
    ]
    assert await snapshot(db) == before


async def test_apply_that_shortens_the_interval_makes_the_connection_due_now(
    db: Database,
) -> None:
    """`update_connection` rescheduled; apply left a daily connection a day away. Now apply
    calls `update_connection`."""
    daily = edit(BASE, "check_interval_seconds: 60", "check_interval_seconds: 86400")
    await apply_text(db, daily)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    async with db.sessions.begin() as session:
        row = await session.scalar(
            select(ConnectionRow).where(ConnectionRow.name == "Acme QuickBooks")
        )
        assert row is not None
        row.next_check_at = tomorrow  # as the scheduler leaves it after a check

    before = datetime.now(UTC)
    report = await apply_text(
        db, edit(daily, "check_interval_seconds: 86400", "check_interval_seconds: 2")
    )

    assert report.changes == ["updated connection acme/'Acme QuickBooks': check_interval_seconds"]
    async with db.sessions() as session:
        row = await session.scalar(
            select(ConnectionRow).where(ConnectionRow.name == "Acme QuickBooks")
        )
        assert row is not None and row.next_check_at is not None
        assert before <= row.next_check_at <= datetime.now(UTC)


@pytest.mark.parametrize("value", ["token-with-newline\n", "token\r\nX-Evil: 1", "tab\there"])
async def test_apply_refuses_a_secret_with_control_characters(db: Database, value: str) -> None:
    """Commands refused control characters in a secret (they would break the request header);
    the catalog stored them. Now the catalog's secrets go through the same check."""
    text = edit(
        BASE,
        "        check_interval_seconds: 60\n",
        "        check_interval_seconds: 60\n        credentials: {kind: bearer, token_env: QB}\n",
    )
    before = await snapshot(db)
    with pytest.raises(CatalogError) as refused:
        await apply_text(db, text, key_ring=KeyRing([generate_key()]), environ={"QB": value})
    assert list(refused.value.problems) == [
        "catalog.yaml: consumers[0].connections[0].credentials.token: "
        "must not contain control characters or newlines"
    ]
    assert value.strip() not in str(refused.value)
    assert await snapshot(db) == before


# --- OAuth2, library templates and params ------------------------------------------------------

OAUTH = textwrap.dedent(
    """\
    connectors:
      - slug: books
        template: xero
        oauth2: {client_id: app-1, client_secret_env: XERO_SECRET}
        heartbeat: {timeout_seconds: 5}
    consumers:
      - external_id: acme
        name: Acme Corp
        connections:
          - name: Acme Xero
            connector: books
            params: {tenant_id: 7f3c-tenant}
            credentials: {kind: oauth2, refresh_token_env: ACME_SEED}
    """
)


async def _grant(db: Database, ring: KeyRing) -> tuple[int, str | None, str | None]:
    from store import oauth

    async with db.sessions() as session:
        row = await session.scalar(select(ConnectionRow).where(ConnectionRow.name == "Acme Xero"))
        assert row is not None
        grant = await oauth.load_grant(session, row.id, ring)
    assert grant is not None
    return grant.generation, grant.refresh_token, grant.seed_digest


async def test_a_template_connector_with_oauth2_round_trips_and_a_reapply_keeps_rotated_tokens(
    db: Database,
) -> None:
    from store import oauth

    ring = KeyRing([generate_key()])
    environ = {"XERO_SECRET": "client-secret-x", "ACME_SEED": "seed-token-1"}
    first = await apply_text(db, OAUTH, key_ring=ring, environ=environ)
    assert first.changes == [
        "created connector 'books'",
        "created consumer 'acme'",
        "created connection acme/'Acme Xero'",
    ]
    assert await _grant(db, ring) == (1, "seed-token-1", oauth.seed_digest("seed-token-1"))

    # The provider rotated the token since: a re-apply of the same seed must not put it back.
    async with db.sessions.begin() as session:
        row = await session.scalar(select(ConnectionRow).where(ConnectionRow.name == "Acme Xero"))
        assert row is not None
        assert await oauth.take_refresh_lease(
            session, row.id, holder="worker", now=datetime.now(UTC), generation=1
        )
        assert await oauth.save_refreshed_tokens(
            session,
            row.id,
            holder="worker",
            used_generation=1,
            refresh_token="rotated-2",
            access_token="access-2",
            access_token_expires_at=None,
            refresh_token_expires_at=None,
            now=datetime.now(UTC),
            key_ring=ring,
        )
    assert (await apply_text(db, OAUTH, key_ring=ring, environ=environ)).changes == []
    assert (await _grant(db, ring))[:2] == (2, "rotated-2")

    # Exported, it is the file again (the template's fields left out), and applies to nothing.
    exported, _ = await snapshot(db)
    assert exported["connectors"] == [
        {
            "slug": "books",
            "template": "xero",
            "heartbeat": {"timeout_seconds": 5},
            "oauth2": {"client_id": "app-1", "client_secret_env": "XERO_SECRET"},
        }
    ]
    assert exported["consumers"][0]["connections"][0] == {
        "name": "Acme Xero",
        "connector": "books",
        "direction": "outbound",
        "state": "active",
        "params": {"tenant_id": "7f3c-tenant"},
        "credentials": {"kind": "oauth2", "refresh_token_env": "ACME_SEED"},
        "uses": [],
    }
    text = dump_yaml(exported)
    assert "rotated-2" not in text and "client-secret-x" not in text and "seed-token" not in text
    assert (await apply_text(db, text, key_ring=ring, environ=environ)).changes == []

    # A new seed (the consumer reconnected) replaces the token.
    environ["ACME_SEED"] = "seed-token-2"
    assert (await apply_text(db, OAUTH, key_ring=ring, environ=environ)).changes == [
        "updated connection acme/'Acme Xero': credentials"
    ]
    assert (await _grant(db, ring))[:2] == (3, "seed-token-2")


async def test_template_params_and_oauth2_problems_are_named(db: Database) -> None:
    ring = KeyRing([generate_key()])
    environ = {"XERO_SECRET": "s", "ACME_SEED": "seed"}
    unknown = edit(OAUTH, "template: xero", "template: xerox")
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, unknown, key_ring=ring, environ=environ)
    assert list(caught.value.problems) == [
        "catalog.yaml: connectors[0].template: 'xerox' is not a connector template; "
        "see `healthgraph connectors list`"
    ]
    missing_param = edit(OAUTH, "        params: {tenant_id: 7f3c-tenant}\n", "")
    before = await snapshot(db)
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, missing_param, key_ring=ring, environ=environ)
    assert list(caught.value.problems) == [
        "catalog.yaml: consumers[0].connections[0].params.tenant_id: is required: the "
        "heartbeat uses {params.tenant_id}"
    ]
    inline = edit(OAUTH, "client_secret_env: XERO_SECRET", "client_secret: hunter2")
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, inline, key_ring=ring, environ=environ)
    assert list(caught.value.problems) == [
        "catalog.yaml: connectors[0].oauth2.client_secret: unknown key; expected one of "
        "client_id, token_url, scopes, auth_method, client_secret_env, client_secret_file",
        "catalog.yaml: connectors[0].oauth2.client_secret: secrets are never written inline; "
        "use client_secret_env or client_secret_file",
        "catalog.yaml: connectors[0].oauth2: give exactly one of client_secret_env or "
        "client_secret_file",
    ]
    assert "hunter2" not in str(caught.value)
    assert await snapshot(db) == before
