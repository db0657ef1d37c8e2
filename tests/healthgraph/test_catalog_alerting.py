"""The catalog's `webhooks` and `maintenance`: applied through the store's commands, idempotent,
secrets read by reference and never exported, bad entries named, export round-trips."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from healthgraph.catalog.export import dump_yaml, export_catalog
from healthgraph.database import Database
from healthgraph.errors import CatalogError
from store.crypto import KeyRing, generate_key
from store.domain import MuteScope
from store.models import MuteRow, WebhookEndpointRow
from tests.healthgraph.test_catalog import BASE, apply_text, edit, snapshot

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" + "AAAAAAAAAAA="
OTHER = "whsec_" + "c2Vjb25kLXNlY3JldC1mb3ItdGVzdHMtMTIzNDU2Nzg="
ALERTING = BASE + textwrap.dedent(
    """\
    webhooks:
      - url: https://hooks.example.com/healthgraph
        events: [connection.auth_failed, connector.outage_started]
        description: reconnect emails
        secret_env: HOOK_SECRET
    maintenance:
      - connector: quickbooks
        from: 2026-12-24T22:00:00Z
        until: 2026-12-25T02:00:00Z
        reason: Intuit maintenance
      - connection: {consumer: acme, name: Acme QuickBooks}
        from: 2026-12-01T00:00:00+01:00
        until: 2026-12-01T06:00:00+01:00
    """
)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([generate_key()])


async def test_webhooks_and_windows_apply_once_and_export_by_reference(
    db: Database, ring: KeyRing
) -> None:
    report = await apply_text(db, ALERTING, key_ring=ring, environ={"HOOK_SECRET": SECRET})
    assert report.changes[-2:] == [
        "created webhook 'https://hooks.example.com/healthgraph'",
        "updated maintenance windows: 2 added, 0 removed",
    ]
    again = await apply_text(db, ALERTING, key_ring=ring, environ={"HOOK_SECRET": SECRET})
    assert again.summary() == "no changes"
    async with db.sessions() as session:
        endpoint = await session.scalar(select(WebhookEndpointRow))
        assert endpoint is not None
        assert ring.decrypt(endpoint.secret_ciphertext) == {"secret": SECRET}
        assert (endpoint.events, endpoint.consumer_id, endpoint.secret_ref) == (
            ["connection.auth_failed", "connector.outage_started"],
            None,
            {"secret_env": "HOOK_SECRET"},
        )
        windows = list(await session.scalars(select(MuteRow).order_by(MuteRow.id)))
    assert [(w.scope, w.starts_at, w.ends_at, w.reason, w.from_catalog) for w in windows] == [
        (
            MuteScope.CONNECTOR,
            datetime(2026, 12, 24, 22, tzinfo=UTC),
            datetime(2026, 12, 25, 2, tzinfo=UTC),
            "Intuit maintenance",
            True,
        ),
        (
            MuteScope.CONNECTION,
            datetime(2026, 11, 30, 23, tzinfo=UTC),
            datetime(2026, 12, 1, 5, tzinfo=UTC),
            "maintenance",
            True,
        ),
    ]
    async with db.sessions() as session:
        exported = await export_catalog(session)
    assert exported["webhooks"] == [
        {
            "url": "https://hooks.example.com/healthgraph",
            "events": ["connection.auth_failed", "connector.outage_started"],
            "description": "reconnect emails",
            "secret_env": "HOOK_SECRET",
        }
    ]
    assert exported["maintenance"] == [
        {
            "connector": "quickbooks",
            "from": "2026-12-24T22:00:00Z",
            "until": "2026-12-25T02:00:00Z",
            "reason": "Intuit maintenance",
        },
        {
            "connection": {"consumer": "acme", "name": "Acme QuickBooks"},
            "from": "2026-11-30T23:00:00Z",
            "until": "2026-12-01T05:00:00Z",
            "reason": "maintenance",
        },
    ]
    assert SECRET not in dump_yaml(exported)
    before = await snapshot(db)
    back = await apply_text(db, dump_yaml(exported), key_ring=ring, environ={"HOOK_SECRET": SECRET})
    assert back.summary() == "no changes" and await snapshot(db) == before


async def test_a_changed_secret_or_field_updates_and_prune_removes(
    db: Database, ring: KeyRing
) -> None:
    await apply_text(db, ALERTING, key_ring=ring, environ={"HOOK_SECRET": SECRET})
    changed = edit(ALERTING, "description: reconnect emails", "description: tickets")
    report = await apply_text(db, changed, key_ring=ring, environ={"HOOK_SECRET": OTHER})
    assert report.changes == [
        "updated webhook 'https://hooks.example.com/healthgraph': description, secret"
    ]
    without = ALERTING.split("webhooks:")[0]
    kept = await apply_text(db, without, key_ring=ring)
    assert kept.changes == ["updated maintenance windows: 0 added, 2 removed"]
    async with db.sessions() as session:
        assert await session.scalar(select(WebhookEndpointRow.id)) is not None  # no --prune
    pruned = await apply_text(db, without, key_ring=ring, prune=True)
    assert pruned.changes == ["deleted webhook 'https://hooks.example.com/healthgraph'"]


BAD = [
    (
        edit(ALERTING, "secret_env: HOOK_SECRET", "secret: whsec_abc"),
        [
            "catalog.yaml: webhooks[0].secret: unknown key; expected one of url, events, "
            "description, secret_env, secret_file",
            "catalog.yaml: webhooks[0].secret: secrets are never written inline; use "
            "secret_env or secret_file",
            "catalog.yaml: webhooks[0]: give exactly one of secret_env or secret_file (the "
            "whsec_ secret your receiver verifies signatures with)",
        ],
    ),
    (
        edit(ALERTING, "connector.outage_started]", "connector.down]"),
        [
            "catalog.yaml: webhooks[0].events[1]: 'connector.down' is not one of "
            "connection.failed, connection.recovered, connection.auth_failed, use.failed, "
            "use.recovered, connector.outage_started, connector.outage_ended"
        ],
    ),
    (
        edit(ALERTING, "until: 2026-12-25T02:00:00Z", "until: tomorrow"),
        [
            "catalog.yaml: maintenance[0].until: expected a time like 2026-12-24T22:00:00Z, "
            "got 'tomorrow'"
        ],
    ),
    (
        edit(ALERTING, "until: 2026-12-25T02:00:00Z", "until: 2026-12-24T21:00:00Z"),
        ["catalog.yaml: maintenance[0].until: must be after from"],
    ),
    (
        edit(ALERTING, "from: 2026-12-24T22:00:00Z", 'from: "2026-12-24T22:00:00"'),
        [
            "catalog.yaml: maintenance[0].from: '2026-12-24T22:00:00' has no time zone; add Z "
            "or +01:00"
        ],
    ),
    (
        edit(ALERTING, "  - connector: quickbooks\n", "  - consumer: acme\n    connector: x\n"),
        ["catalog.yaml: maintenance[0]: name exactly one of connector, consumer or connection"],
    ),
    (
        edit(ALERTING, "name: Acme QuickBooks}", "name: Nope}"),
        ["catalog.yaml: maintenance[1]: connection acme/'Nope' does not exist"],
    ),
    (
        edit(
            ALERTING,
            "maintenance:\n",
            "  - {url: https://hooks.example.com/healthgraph, secret_env: X}\nmaintenance:\n",
        ),
        [
            "catalog.yaml: webhooks[1].url: duplicate webhook URL "
            "'https://hooks.example.com/healthgraph' (first at webhooks[0])"
        ],
    ),
]


@pytest.mark.parametrize(("text", "problems"), BAD)
async def test_bad_alerting_entries_are_named_and_change_nothing(
    db: Database, ring: KeyRing, text: str, problems: list[str]
) -> None:
    await apply_text(db, BASE)
    before = await snapshot(db)
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, text, key_ring=ring, environ={"HOOK_SECRET": SECRET})
    assert list(caught.value.problems) == problems
    assert await snapshot(db) == before


async def test_a_missing_or_malformed_secret_is_named_never_quoted(
    db: Database, ring: KeyRing
) -> None:
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, ALERTING, key_ring=ring, environ={})
    assert list(caught.value.problems) == [
        "catalog.yaml: webhooks[0].secret_env: environment variable HOOK_SECRET is not set"
    ]
    with pytest.raises(CatalogError) as caught:
        await apply_text(db, ALERTING, key_ring=ring, environ={"HOOK_SECRET": "hunter2"})
    (problem,) = caught.value.problems
    assert problem.startswith(
        "catalog.yaml: webhooks[0].secret: must be 'whsec_' followed by the base64 of 24 to 64 "
        "random bytes"
    )
    assert "hunter2" not in problem
