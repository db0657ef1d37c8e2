"""The object types of the graph. Each wraps a store record (`from_record`); resolvers stay thin
and go through the request's DataLoaders, so nesting never multiplies statements."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graphql_schema import relay
from graphql_schema.batching import First, nested, now_or_later
from graphql_schema.context import Info
from graphql_schema.inputs import (
    ConnectionFilterInput,
    SyncActivationFilterInput,
    UseFilterInput,
    connection_filter,
    sync_activation_filter,
    use_filter,
)
from graphql_schema.values import (
    Check,
    FailureRule,
    Heartbeat,
    InstanceHealth,
    OAuth2App,
    OutageReason,
    UsedFor,
)
from store import domain, queries
from store.heartbeat import merge, to_spec


async def _connector(info: Info, connector_id: int | None) -> Connector | None:
    if connector_id is None:
        return None
    record = await info.context.loaders.connector.load(connector_id)
    return Connector.from_record(record) if record else None


@strawberry.type(description="One entry of the issue column: what might have failed.")
class Issue:
    code: domain.IssueCode
    message: str
    _connector_id: strawberry.Private[int | None]

    @strawberry.field
    async def connector(self, info: Info) -> Connector | None:
        return await _connector(info, self._connector_id)

    @classmethod
    def from_record(cls, issue: domain.Issue) -> Issue:
        return cls(code=issue.code, message=issue.message, _connector_id=issue.connector_id)


MUTED_UNTIL = (
    "Until when webhook events and the shipped alerts are silenced (a mute, or a maintenance "
    "window of the catalog); null while not muted."
)
MUTE_REASON = "Why it is muted; null while not muted."


@strawberry.type(description="A connector's outage going on now.")
class ConnectorOutage:
    started_at: datetime
    failing_connections: int = strawberry.field(
        description="ACTIVE connections failing now for a reason other than AUTH or PERMISSION."
    )
    total_connections: int = strawberry.field(
        description="ACTIVE, checked outbound connections of the connector."
    )
    reasons: list[OutageReason] = strawberry.field(description="Most connections first.")
    _connector_id: strawberry.Private[int]

    @classmethod
    def from_record(cls, record: domain.ConnectorOutage) -> ConnectorOutage:
        return cls(
            started_at=record.started_at,
            failing_connections=record.failing_connections,
            total_connections=record.total_connections,
            reasons=[
                OutageReason(reason=r.reason, connections=r.connections) for r in record.reasons
            ],
            _connector_id=record.connector_id,
        )

    @strawberry.field
    async def connector(self, info: Info) -> Connector:
        record = await info.context.loaders.connector.load(self._connector_id)
        assert record is not None
        return Connector.from_record(record)


@strawberry.type(description="A customer account that owns connections.")
class Consumer(relay.Node):
    external_id: str
    name: str
    email: str | None
    created_at: datetime

    @classmethod
    def from_record(cls, record: domain.Consumer) -> Consumer:
        return cls(
            _row_id=record.id,
            external_id=record.external_id,
            name=record.name,
            email=record.email,
            created_at=record.created_at,
        )

    @strawberry.field(description="At least one ACTIVE connection.")
    async def active(self, info: Info) -> bool:
        return await info.context.loaders.consumer_active.load(self._row_id)

    @strawberry.field(description=MUTED_UNTIL)
    async def muted_until(self, info: Info) -> datetime | None:
        mute = await info.context.loaders.consumer_mute.load(self._row_id)
        return None if mute is None else mute.muted_until

    @strawberry.field(description=MUTE_REASON)
    async def mute_reason(self, info: Info) -> str | None:
        mute = await info.context.loaders.consumer_mute.load(self._row_id)
        return None if mute is None else mute.reason

    @strawberry.field
    async def health(self, info: Info) -> domain.Health:
        return await info.context.loaders.consumer_health.load(self._row_id)

    @strawberry.field(description="The issue column by connections.")
    async def issues(self, info: Info) -> list[Issue]:
        issues = await info.context.loaders.consumer_issues.load(self._row_id)
        return [Issue.from_record(issue) for issue in issues]

    @strawberry.field
    async def connections(
        self,
        info: Info,
        filter: ConnectionFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[ConnectionNode]:
        f = connection_filter(filter, search, info.context.viewer)
        loaders = info.context.loaders
        return await nested(
            loaders.connections_of,
            loaders.connection_counts_of,
            self._row_id,
            ("consumer", f),
            first,
            after,
            ConnectionNode.from_record,
        )

    @strawberry.field
    async def sync_activations(
        self,
        info: Info,
        filter: SyncActivationFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[SyncActivation]:
        f = sync_activation_filter(filter, search, info.context.viewer)
        loaders = info.context.loaders
        return await nested(
            loaders.activations_of,
            loaders.activation_counts_of,
            self._row_id,
            ("consumer", f),
            first,
            after,
            SyncActivation.from_record,
        )


@strawberry.type(description="A third-party system type, e.g. QuickBooks.")
class Connector(relay.Node):
    slug: str
    name: str
    category: str
    template: str | None = strawberry.field(
        description="The library template it was made from (Query.connectorTemplates)."
    )
    oauth2: OAuth2App | None

    @classmethod
    def from_record(cls, record: domain.Connector) -> Connector:
        app = record.oauth2
        return cls(
            _row_id=record.id,
            slug=record.slug,
            name=record.name,
            category=record.category,
            template=record.template,
            oauth2=None
            if app is None
            else OAuth2App(
                token_url=app["token_url"],
                client_id=app["client_id"],
                scopes=list(app.get("scopes", [])),
                auth_method=app.get("auth_method", "client_secret_basic"),
                has_client_secret=record.has_client_secret,
            ),
        )

    @strawberry.field
    async def health(self, info: Info) -> domain.Health:
        return await info.context.loaders.connector_health.load(self._row_id)

    @strawberry.field(
        description="Its outage going on now: enough of its connections failing at once, for "
        "reasons other than their own credentials, that the provider is down. Null: none, "
        "and always for a token limited to one consumer (it counts every consumer's)."
    )
    async def outage(self, info: Info) -> ConnectorOutage | None:
        if info.context.viewer.consumer_id is not None:
            return None
        outage = await info.context.loaders.connector_outage.load(self._row_id)
        return None if outage is None else ConnectorOutage.from_record(outage)

    @strawberry.field(description=MUTED_UNTIL)
    async def muted_until(self, info: Info) -> datetime | None:
        mute = await info.context.loaders.connector_mute.load(self._row_id)
        return None if mute is None else mute.muted_until

    @strawberry.field(description=MUTE_REASON)
    async def mute_reason(self, info: Info) -> str | None:
        mute = await info.context.loaders.connector_mute.load(self._row_id)
        return None if mute is None else mute.reason

    @strawberry.field
    async def connections(
        self,
        info: Info,
        filter: ConnectionFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[ConnectionNode]:
        f = connection_filter(filter, search, info.context.viewer)
        loaders = info.context.loaders
        return await nested(
            loaders.connections_of,
            loaders.connection_counts_of,
            self._row_id,
            ("connector", f),
            first,
            after,
            ConnectionNode.from_record,
        )


@strawberry.type(description="One thing that uses a connection (a Hypersync, a task integration…).")
class Use(relay.Node):
    kind: str
    kind_label: str
    name: str
    status: domain.UseStatus
    last_run_at: datetime | None
    last_error: str | None
    _connection_id: strawberry.Private[int]

    @classmethod
    def from_record(cls, record: domain.Use) -> Use:
        return cls(
            _row_id=record.id,
            kind=record.kind,
            kind_label=record.kind_label,
            name=record.name,
            status=record.status,
            last_run_at=record.last_run_at,
            last_error=record.last_error,
            _connection_id=record.connection_id,
        )

    @strawberry.field
    async def connection(self, info: Info) -> ConnectionNode:
        record = await info.context.loaders.connection.load(self._connection_id)
        assert record is not None
        return ConnectionNode.from_record(record)


@strawberry.type(name="Connection", description="One consumer's link to a connector.")
class ConnectionNode(relay.Node):
    name: str
    direction: domain.Direction
    state: domain.ConnectionState
    status: domain.ConnectionStatus
    last_checked_at: datetime | None
    last_success_at: datetime | None
    failure_reason: domain.FailureReason | None
    last_error: str | None
    latency_ms: float | None
    consecutive_failures: int
    check_interval_seconds: int
    failure_threshold: int
    next_check_at: datetime | None
    _record: strawberry.Private[domain.Connection]

    @classmethod
    def from_record(cls, record: domain.Connection) -> ConnectionNode:
        return cls(
            _row_id=record.id,
            name=record.name,
            direction=record.direction,
            state=record.state,
            status=record.status,
            last_checked_at=record.last_checked_at,
            last_success_at=record.last_success_at,
            failure_reason=record.failure_reason,
            last_error=record.last_error,
            latency_ms=record.latency_ms,
            consecutive_failures=record.consecutive_failures,
            check_interval_seconds=record.check_interval_seconds,
            failure_threshold=record.failure_threshold,
            next_check_at=record.next_check_at,
            _record=record,
        )

    @strawberry.field(description="Values of the heartbeat's {params.NAME} placeholders.")
    def params(self) -> JSON:
        return JSON(dict(self._record.params))

    @strawberry.field(
        description=MUTED_UNTIL + " A connection is silenced by its own mute, its connector's "
        "or its consumer's: the one that ends last."
    )
    async def muted_until(self, info: Info) -> datetime | None:
        mute = await info.context.loaders.connection_mute.load(self._row_id)
        return None if mute is None else mute.muted_until

    @strawberry.field(description=MUTE_REASON)
    async def mute_reason(self, info: Info) -> str | None:
        mute = await info.context.loaders.connection_mute.load(self._row_id)
        return None if mute is None else mute.reason

    # The fields below resolve synchronously when the page primed their loaders
    # (`prime_connection_page`), lazily otherwise; `graphql_type` keeps the SDL as it was.

    @strawberry.field(graphql_type=Consumer)
    def consumer(self, info: Info) -> Consumer | Awaitable[Consumer]:
        return now_or_later(
            info.context.loaders.consumer, self._record.consumer_id, _existing_consumer
        )

    @strawberry.field(graphql_type=Connector)
    def connector(self, info: Info) -> Connector | Awaitable[Connector]:
        return now_or_later(
            info.context.loaders.connector, self._record.connector_id, _existing_connector
        )

    @strawberry.field(
        graphql_type=list[UsedFor],
        description='Uses per kind: [{label: "Hypersyncs", count: 4}].',
    )
    def used_for(self, info: Info) -> list[UsedFor] | Awaitable[list[UsedFor]]:
        return now_or_later(info.context.loaders.use_summary, self._record.id, _used_for)

    @strawberry.field(
        graphql_type=str,
        description='The "Used for" column as text: "Hypersyncs (4), Cloud files (1)".',
    )
    def used_for_summary(self, info: Info) -> str | Awaitable[str]:
        return now_or_later(info.context.loaders.use_summary, self._record.id, _used_for_text)

    @strawberry.field(graphql_type=InstanceHealth)
    def instance_health(self, info: Info) -> InstanceHealth | Awaitable[InstanceHealth]:
        return now_or_later(info.context.loaders.use_summary, self._record.id, _instance_health)

    @strawberry.field(
        graphql_type=domain.Health,
        description="DOWN when failing, DEGRADED when up with failing uses.",
    )
    def health(self, info: Info) -> domain.Health | Awaitable[domain.Health]:
        record = self._record

        def rollup(summary: domain.UseSummary) -> domain.Health:
            if record.state is domain.ConnectionState.FAILED:
                return domain.Health.DOWN
            return domain.health_rollup(
                total=1,
                failed=int(record.status is domain.ConnectionStatus.CONNECTION_FAILURE),
                unknown=int(record.status is domain.ConnectionStatus.UNKNOWN),
                with_failing_uses=summary.instance_health.failed,
            )

        return now_or_later(info.context.loaders.use_summary, record.id, rollup)

    @strawberry.field(graphql_type=relay.Connection[Use])
    def uses(
        self,
        info: Info,
        filter: UseFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[Use] | Awaitable[relay.Connection[Use]]:
        loaders = info.context.loaders
        connection_id = self._record.id
        f = use_filter(filter, search)
        page = relay.page_request(first, after)
        return now_or_later(
            loaders.uses_of,
            (connection_id, (f, page)),
            lambda result: relay.to_connection(
                result, Use.from_record, lambda: loaders.use_counts_of.load((connection_id, (f,)))
            ),
        )

    @strawberry.field(description="Heartbeat history, newest first.")
    async def checks(
        self, info: Info, first: First = None, after: str | None = None
    ) -> relay.Connection[Check]:
        page = relay.page_request(first, after)
        connection_id = self._record.id
        result = await info.context.read(
            lambda session: queries.list_checks(session, connection_id, page)
        )
        return relay.to_connection(
            result,
            Check.from_record,
            lambda: info.context.read(lambda s: queries.count_checks(s, connection_id)),
        )

    @strawberry.field(
        description="Share of successful checks over the last `windowSeconds` (null: no checks)."
    )
    async def uptime(self, info: Info, window_seconds: int = 86400) -> float | None:
        connection_id = self._record.id
        return await info.context.read(
            lambda session: queries.uptime(session, connection_id, window_seconds)
        )

    @strawberry.field
    async def heartbeat(self, info: Info) -> Heartbeat | None:
        record = self._record
        if record.direction is domain.Direction.INBOUND:
            return None  # inbound connections are not probed: the remote side calls in
        connector = await info.context.loaders.connector.load(record.connector_id)
        consumer = await info.context.loaders.consumer.load(record.consumer_id)
        assert connector is not None
        assert consumer is not None
        spec = to_spec(
            merge(connector.heartbeat, record.heartbeat), consumer.external_id, record.params
        )
        return Heartbeat(
            kind=spec.kind,
            method=spec.method,
            url=spec.url,
            expected_status=list(spec.expected_status),
            timeout_seconds=spec.timeout_seconds,
            has_credentials=record.has_credentials,
            headers=JSON(dict(spec.headers)),
            body=spec.body,
            failure_when=[FailureRule.from_record(rule) for rule in spec.failure_when],
        )


def _existing_consumer(record: domain.Consumer | None) -> Consumer:
    assert record is not None  # a connection cannot outlive its consumer (FK cascade)
    return Consumer.from_record(record)


def _existing_connector(record: domain.Connector | None) -> Connector:
    assert record is not None  # connectors in use cannot be deleted (FK restrict)
    return Connector.from_record(record)


def _used_for(summary: domain.UseSummary) -> list[UsedFor]:
    return [UsedFor(kind=u.kind, label=u.label, count=u.count) for u in summary.used_for]


def _used_for_text(summary: domain.UseSummary) -> str:
    return ", ".join(str(entry) for entry in summary.used_for)


def _instance_health(summary: domain.UseSummary) -> InstanceHealth:
    return InstanceHealth.from_record(summary.instance_health)


@strawberry.type(description="A data flow that needs connections to some connectors.")
class Sync(relay.Node):
    name: str

    @classmethod
    def from_record(cls, record: domain.Sync) -> Sync:
        return cls(
            _row_id=record.id,
            name=record.name,
        )

    @strawberry.field
    async def required_connectors(self, info: Info) -> list[Connector]:
        ids = await info.context.loaders.required_connectors.load(self._row_id)
        records = await info.context.loaders.connector.load_many(list(ids))
        return [Connector.from_record(record) for record in records if record is not None]

    @strawberry.field(description="Active activations / activations (0 when there are none).")
    async def activation_rate(self, info: Info) -> float:
        total, active = await info.context.loaders.sync_stats.load(self._row_id)
        return active / total if total else 0.0

    @strawberry.field
    async def activations(
        self,
        info: Info,
        filter: SyncActivationFilterInput | None = None,
        search: str | None = None,
        first: First = None,
        after: str | None = None,
    ) -> relay.Connection[SyncActivation]:
        f = sync_activation_filter(filter, search, info.context.viewer)
        loaders = info.context.loaders
        return await nested(
            loaders.activations_of,
            loaders.activation_counts_of,
            self._row_id,
            ("sync", f),
            first,
            after,
            SyncActivation.from_record,
        )


@strawberry.type
class StepState:
    step: domain.SyncStep
    complete: bool
    detail: str | None


@strawberry.type(description="One consumer's attempt to activate a sync.")
class SyncActivation(relay.Node):
    steps: list[StepState]
    updated_at: datetime
    _record: strawberry.Private[domain.SyncActivation]

    @classmethod
    def from_record(cls, record: domain.SyncActivation) -> SyncActivation:
        return cls(
            _row_id=record.id,
            steps=[
                StepState(step=s.step, complete=s.complete, detail=s.detail) for s in record.steps
            ],
            updated_at=record.updated_at,
            _record=record,
        )

    @strawberry.field
    async def sync(self, info: Info) -> Sync:
        record = await info.context.loaders.sync.load(self._record.sync_id)
        assert record is not None
        return Sync.from_record(record)

    @strawberry.field
    async def consumer(self, info: Info) -> Consumer:
        record = await info.context.loaders.consumer.load(self._record.consumer_id)
        assert record is not None
        return Consumer.from_record(record)

    @strawberry.field(description="Every step complete and every required connection ACTIVE.")
    async def active(self, info: Info) -> bool:
        active, _ = await info.context.loaders.activation_state.load(self._record.id)
        return active

    @strawberry.field(description="The issue column by syncs; null when nothing is wrong.")
    async def issue(self, info: Info) -> Issue | None:
        _, issue = await info.context.loaders.activation_state.load(self._record.id)
        return Issue.from_record(issue) if issue else None
