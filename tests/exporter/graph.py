"""A small known graph, and exactly the samples the exporter must publish for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from healthgraph.database import Database
from store.crypto import KeyRing, generate_key
from store.domain import (
    ConnectionState,
    ConnectionStatus,
    DeliveryState,
    Direction,
    FailureReason,
    MuteScope,
    UseStatus,
)
from store.models import (
    ConnectorOutageRow,
    ConnectorRow,
    ConsumerRow,
    MuteRow,
    OAuthGrantRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
)
from tests.factories import GraphFactory

NOW = datetime(2026, 11, 1, 0, 10, tzinfo=UTC)
CANARY = "canary-s3cr3t-7f41"
# A connection name with everything the text format must escape, and a label injection try.
HOSTILE = 'Acme "QB" \\ main\nx"} 1\nhealthgraph_fake 1'
HOSTILE_ESCAPED = 'Acme \\"QB\\" \\\\ main\\nx\\"} 1\\nhealthgraph_fake 1'


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def known_graph(db: Database) -> None:
    """Six connections, one of each kind of case the contract distinguishes.

    1 ACTIVE CONNECTED, overdue; 2 ACTIVE failing TIMEOUT, overdue; 3 FAILED (AUTH);
    4 PENDING; 5 DISABLED with a stale failure reason; 6 ACTIVE INBOUND never checked.
    """
    ring = KeyRing([generate_key()])
    async with db.sessions.begin() as session:
        make = GraphFactory(session)
        quickbooks = await make.connector("quickbooks", "QuickBooks Online")
        xero = await make.connector("xero", "Xero", 'accounting "EU"')
        acme = await make.consumer("acme", "Acme Corp")
        beta = await make.consumer("beta", 'Beta "Ltd"')
        gamma = await make.consumer("gamma", "Gamma")
        await make.consumer("delta", "Delta")  # no connections: counted, not active

        one = await make.connection(acme, quickbooks, name=HOSTILE)
        one.last_checked_at = at("2026-11-01T00:00:00")
        one.last_success_at = at("2026-11-01T00:00:00")
        one.latency_ms = 123.0
        one.check_interval_seconds = 60
        one.tls_cert_expires_at = at("2027-01-01T00:00:00")
        one.next_check_at = at("2026-11-01T00:01:00")
        # Secrets of every kind the store holds: none may reach a metric.
        one.credentials_ref = {"kind": "bearer", "token_env": CANARY.upper().replace("-", "_")}
        one.credentials_ciphertext = ring.encrypt({"kind": "bearer", "token": CANARY})
        one.heartbeat = {"url": f"https://api.example.com/health?token={CANARY}"}

        two = await make.connection(
            acme, xero, status=ConnectionStatus.CONNECTION_FAILURE, name="Acme Xero"
        )
        two.last_checked_at = at("2026-11-01T00:01:30.500")
        two.last_success_at = at("2026-10-31T12:00:00")
        two.latency_ms = 10000.0
        two.failure_reason = FailureReason.TIMEOUT
        two.last_error = f"timed out calling https://api.example.com/?token={CANARY}"
        two.consecutive_failures = 3
        two.check_interval_seconds = 300
        two.next_check_at = at("2026-11-01T00:09:00")

        three = await make.connection(
            beta,
            quickbooks,
            state=ConnectionState.FAILED,
            status=ConnectionStatus.CONNECTION_FAILURE,
            name="Beta QuickBooks",
        )
        three.failure_reason = FailureReason.AUTH
        three.consecutive_failures = 1
        three.latency_ms = 50.0
        three.next_check_at = at("2026-11-01T00:20:00")

        four = await make.connection(
            beta,
            xero,
            state=ConnectionState.PENDING,
            status=ConnectionStatus.UNKNOWN,
            name="Beta Xero",
        )
        four.state_changed_at = at("2026-10-30T08:00:00")

        five = await make.connection(
            gamma,
            quickbooks,
            state=ConnectionState.DISABLED,
            status=ConnectionStatus.CONNECTED,
            name="Gamma QuickBooks",
        )
        five.failure_reason = FailureReason.TIMEOUT  # from before it was disabled
        five.next_check_at = at("2026-10-01T00:00:00")  # not probed: never overdue

        six = await make.connection(
            gamma,
            xero,
            status=ConnectionStatus.UNKNOWN,
            direction=Direction.INBOUND,
            name="Gamma Xero",
        )
        six.next_check_at = at("2026-10-01T00:00:00")  # inbound: not the scheduler's lag

        await make.use(one, "hypersync", "Invoices")
        await make.use(one, "task_integration", 'Bills "2026"', UseStatus.FAILED)
        await make.use(two, "livesync", "Drive", UseStatus.UNKNOWN)

        invoices = await make.sync("Invoices to accounting", [quickbooks])
        await make.activation(invoices, acme)  # complete, ACTIVE QuickBooks: active
        await make.activation(invoices, beta)  # complete, but QuickBooks FAILED: inactive
        await make.activation(invoices, gamma, mapping=False)  # incomplete: inactive
        await make.sync("Bills to Xero", [xero])  # no activations
        await session.flush()
        await _attention(session, ring, quickbooks=quickbooks, xero=xero, people=(acme, beta))
        await session.flush()


async def _attention(
    session: AsyncSession,
    ring: KeyRing,
    *,
    quickbooks: ConnectorRow,
    xero: ConnectorRow,
    people: tuple[ConsumerRow, ConsumerRow],
) -> None:
    """Xero in outage (QuickBooks' is over); QuickBooks muted (so 1, 3 and 5) and 6 on its own;
    Beta's mute is over and Acme's not begun; 2's refresh token expires 2027-02-01 and 3's
    provider tells no lifetime; a webhook event undispatched for 90 s and a delivery pending
    for 30 s (beside one delivered, and one to a disabled endpoint: neither counts)."""
    acme, beta = people
    hour = timedelta(hours=1)
    session.add_all(
        [
            ConnectorOutageRow(
                connector_id=xero.id,
                started_at=NOW - timedelta(minutes=5),
                failing_connections=5,
                total_connections=6,
            ),
            ConnectorOutageRow(
                connector_id=quickbooks.id,
                started_at=NOW - 3 * hour,
                ended_at=NOW - 2 * hour,
                failing_connections=5,
                total_connections=5,
            ),
            MuteRow(
                scope=MuteScope.CONNECTOR,
                connector_id=quickbooks.id,
                starts_at=NOW - hour,
                ends_at=NOW + hour,
            ),
            MuteRow(scope=MuteScope.CONNECTION, connection_id=6, starts_at=NOW, ends_at=NOW + hour),
            MuteRow(
                scope=MuteScope.CONSUMER,
                consumer_id=beta.id,
                starts_at=NOW - 2 * hour,
                ends_at=NOW,
            ),
            MuteRow(
                scope=MuteScope.CONSUMER,
                consumer_id=acme.id,
                starts_at=NOW + timedelta(seconds=1),
                ends_at=NOW + hour,
            ),
            OAuthGrantRow(
                connection_id=2,
                grant_type="refresh_token",
                refresh_token_ciphertext=ring.encrypt({"refresh_token": CANARY}),
                refresh_token_expires_at=at("2027-02-01T00:00:00"),
            ),
            OAuthGrantRow(
                connection_id=3,
                grant_type="refresh_token",
                refresh_token_ciphertext=ring.encrypt({"refresh_token": CANARY}),
            ),
        ]
    )
    secret = ring.encrypt({"secret": CANARY})
    enabled = WebhookEndpointRow(url="https://hooks.example.com/a", secret_ciphertext=secret)
    disabled = WebhookEndpointRow(
        url="https://hooks.example.com/b", secret_ciphertext=secret, enabled=False
    )
    told = WebhookEventRow(
        type="connection.failed", occurred_at=NOW - 2 * hour, dispatched_at=NOW - 2 * hour
    )
    session.add_all(
        [
            enabled,
            disabled,
            told,
            WebhookEventRow(type="connection.failed", occurred_at=NOW - timedelta(seconds=90)),
        ]
    )
    await session.flush()
    session.add_all(
        [
            WebhookDeliveryRow(
                event_id=told.id,
                endpoint_id=enabled.id,
                state=DeliveryState.PENDING,
                created_at=NOW - timedelta(seconds=30),
            ),
            WebhookDeliveryRow(
                event_id=told.id,
                endpoint_id=enabled.id,
                state=DeliveryState.DELIVERED,
                created_at=NOW - 2 * hour,
            ),
            WebhookDeliveryRow(
                event_id=told.id,
                endpoint_id=disabled.id,
                state=DeliveryState.PENDING,
                created_at=NOW - 2 * hour,
            ),
        ]
    )


# Sample lines (without the metric name) of each store family, in exposition order.
IDENTITY_1 = (
    f'connection_id="1",connection="{HOSTILE_ESCAPED}",connector="QuickBooks Online",'
    'consumer="Acme Corp"'
)
IDENTITY_2 = 'connection_id="2",connection="Acme Xero",connector="Xero",consumer="Acme Corp"'
IDENTITY_3 = (
    'connection_id="3",connection="Beta QuickBooks",connector="QuickBooks Online",'
    'consumer="Beta \\"Ltd\\""'
)
IDENTITY_4 = 'connection_id="4",connection="Beta Xero",connector="Xero",consumer="Beta \\"Ltd\\""'
IDENTITY_5 = (
    'connection_id="5",connection="Gamma QuickBooks",connector="QuickBooks Online",consumer="Gamma"'
)
# The connector's category, escaped as the text format quotes it.
QB = 'category="accounting"'
XERO = 'category="accounting \\"EU\\""'
IDENTITY_6 = 'connection_id="6",connection="Gamma Xero",connector="Xero",consumer="Gamma"'
CHECKED = "1793491200.0"  # 2026-11-01T00:00:00Z, the factory's last check time

EXPECTED: dict[str, list[str]] = {
    "healthgraph_connection_up": [
        f"{{{IDENTITY_1}}} 1",
        f"{{{IDENTITY_2}}} 0",
        f"{{{IDENTITY_3}}} 0",
    ],
    "healthgraph_connection_last_checked_timestamp_seconds": [
        f"{{{IDENTITY_1}}} 1793491200.0",
        f"{{{IDENTITY_2}}} 1793491290.5",
        f"{{{IDENTITY_3}}} {CHECKED}",
        f"{{{IDENTITY_5}}} {CHECKED}",
    ],
    "healthgraph_connection_last_success_timestamp_seconds": [
        '{connection_id="1"} 1793491200.0',
        '{connection_id="2"} 1793448000.0',
    ],
    "healthgraph_connection_check_interval_seconds": [
        '{connection_id="1"} 60',
        '{connection_id="2"} 300',
        '{connection_id="3"} 86400',
        '{connection_id="4"} 86400',
        '{connection_id="5"} 86400',
        '{connection_id="6"} 86400',
    ],
    "healthgraph_connection_check_duration_seconds": [
        '{connection_id="1"} 0.123',
        '{connection_id="2"} 10.0',
        '{connection_id="3"} 0.05',
    ],
    "healthgraph_connection_consecutive_failures": [
        '{connection_id="1"} 0',
        '{connection_id="2"} 3',
        '{connection_id="3"} 1',
        '{connection_id="4"} 0',
        '{connection_id="5"} 0',
        '{connection_id="6"} 0',
    ],
    "healthgraph_connection_failure_reason": [
        '{connection_id="2",reason="TIMEOUT"} 1',
        '{connection_id="3",reason="AUTH"} 1',
    ],
    "healthgraph_connection_tls_cert_expiry_timestamp_seconds": [
        '{connection_id="1"} 1798761600.0',
    ],
    "healthgraph_connection_pending_since_timestamp_seconds": [
        '{connection_id="4"} 1793347200.0',
    ],
    "healthgraph_connection_info": [
        f'{{{IDENTITY_1},consumer_id="acme",direction="OUTBOUND",state="ACTIVE",{QB}}} 1',
        f'{{{IDENTITY_2},consumer_id="acme",direction="OUTBOUND",state="ACTIVE",{XERO}}} 1',
        f'{{{IDENTITY_3},consumer_id="beta",direction="OUTBOUND",state="FAILED",{QB}}} 1',
        f'{{{IDENTITY_4},consumer_id="beta",direction="OUTBOUND",state="PENDING",{XERO}}} 1',
        f'{{{IDENTITY_5},consumer_id="gamma",direction="OUTBOUND",state="DISABLED",{QB}}} 1',
        f'{{{IDENTITY_6},consumer_id="gamma",direction="INBOUND",state="ACTIVE",{XERO}}} 1',
    ],
    "healthgraph_use_up": [
        '{use_id="1",use="Invoices",kind="hypersync",connection_id="1"} 1',
        '{use_id="2",use="Bills \\"2026\\"",kind="task_integration",connection_id="1"} 0',
    ],
    "healthgraph_connections": [
        '{state="PENDING"} 1',
        '{state="ACTIVE"} 3',
        '{state="FAILED"} 1',
        '{state="DISABLED"} 1',
    ],
    "healthgraph_consumers": [" 4"],
    "healthgraph_consumers_active": [" 2"],
    "healthgraph_sync_activations": [
        '{sync="Bills to Xero",active="true"} 0',
        '{sync="Bills to Xero",active="false"} 0',
        '{sync="Invoices to accounting",active="true"} 1',
        '{sync="Invoices to accounting",active="false"} 2',
    ],
    "healthgraph_sync_activation_ratio": [
        '{sync="Bills to Xero"} 0.0',
        '{sync="Invoices to accounting"} 0.3333333333333333',
    ],
    "healthgraph_scheduler_overdue_connections": [" 2"],
    "healthgraph_scheduler_lag_seconds": [" 540.0"],
    "healthgraph_connector_outage": [
        '{connector_slug="quickbooks",connector="QuickBooks Online"} 0',
        '{connector_slug="xero",connector="Xero"} 1',
    ],
    "healthgraph_connector_muted": [
        '{connector_slug="quickbooks",connector="QuickBooks Online"} 1'
    ],
    "healthgraph_connection_muted": [
        '{connection_id="1"} 1',
        '{connection_id="3"} 1',
        '{connection_id="5"} 1',
        '{connection_id="6"} 1',
    ],
    "healthgraph_connection_credentials_expiry_timestamp_seconds": [
        '{connection_id="2"} 1801440000.0'
    ],
    "healthgraph_webhook_pending_events": [" 2"],
    "healthgraph_webhook_oldest_pending_age_seconds": [" 90.0"],
}
