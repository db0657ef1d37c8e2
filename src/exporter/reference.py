"""The straightforward prometheus-client construction of the store families.

GaugeMetricFamily per family, one add_metric per sample, generate_latest on a throwaway
registry: obviously right and too slow for 100k connections. It is the yardstick the fast
writer (exporter.exposition) is tested and benchmarked against, on the same snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import contract as c
from store.metrics import MetricsSnapshot


def _gauge(family: c.Family) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))


def reference_families(snapshot: MetricsSnapshot) -> list[Metric]:
    """The contract's store families for `snapshot`, as prometheus-client metric families."""
    families = {family.name: _gauge(family) for family in c.STORE_FAMILIES}

    def add(family: c.Family, labels: list[str], value: float) -> None:
        families[family.name].add_metric(labels, value)

    for row in snapshot.connections:
        cid = str(row.id)
        consumer = snapshot.consumers[row.consumer_id]
        identity = [cid, row.name, snapshot.connectors[row.connector_id], consumer.name]
        up = c.connection_up(row.state, row.status)
        if up is not None:
            add(c.CONNECTION_UP, identity, up)
        if row.last_checked is not None:
            add(c.LAST_CHECKED, identity, row.last_checked)
        if row.last_success is not None:
            add(c.LAST_SUCCESS, [cid], row.last_success)
        add(c.CHECK_INTERVAL, [cid], row.check_interval_seconds)
        if row.check_duration is not None:
            add(c.CHECK_DURATION, [cid], row.check_duration)
        add(c.CONSECUTIVE_FAILURES, [cid], row.consecutive_failures)
        reason = c.failing_reason(row.state, row.failure_reason)
        if reason is not None:
            add(c.FAILURE_REASON, [cid, reason], 1)
        if row.tls_cert_expiry is not None:
            add(c.TLS_EXPIRY, [cid], row.tls_cert_expiry)
        since = c.pending_since(row.state, row.state_changed)
        if since is not None:
            add(c.PENDING_SINCE, [cid], since)
        category = snapshot.connector_categories[row.connector_id]
        info = [*identity, consumer.external_id, row.direction, row.state, category]
        add(c.CONNECTION_INFO, info, 1)
    for use in snapshot.uses:
        if use.status in c.USE_UP_VALUES:
            add(
                c.USE_UP,
                [str(use.id), use.name, use.kind, str(use.connection_id)],
                c.USE_UP_VALUES[use.status],
            )
    for state, count in snapshot.connections_by_state.items():
        add(c.CONNECTIONS, [state], count)
    add(c.CONSUMERS, [], len(snapshot.consumers))
    add(c.CONSUMERS_ACTIVE, [], snapshot.consumers_active)
    for sync in snapshot.syncs:
        add(c.SYNC_ACTIVATIONS, [sync.name, "true"], sync.active)
        add(c.SYNC_ACTIVATIONS, [sync.name, "false"], sync.activations - sync.active)
    for sync in snapshot.syncs:
        ratio = sync.active / sync.activations if sync.activations else 0.0
        add(c.SYNC_ACTIVATION_RATIO, [sync.name], ratio)
    add(c.SCHEDULER_OVERDUE, [], snapshot.overdue_connections)
    add(c.SCHEDULER_LAG, [], snapshot.scheduler_lag_seconds)
    attention = snapshot.attention
    for id_, slug in attention.connector_slugs.items():
        labels = [slug, snapshot.connectors[id_]]
        add(c.CONNECTOR_OUTAGE, labels, 1 if id_ in attention.connectors_in_outage else 0)
    for id_ in attention.muted_connectors:
        add(c.CONNECTOR_MUTED, [attention.connector_slugs[id_], snapshot.connectors[id_]], 1)
    for id_ in attention.muted_connections:
        add(c.CONNECTION_MUTED, [str(id_)], 1)
    for id_, expiry in attention.credentials_expiry:
        add(c.CREDENTIALS_EXPIRY, [str(id_)], expiry)
    add(c.WEBHOOK_PENDING, [], attention.webhook_pending)
    add(c.WEBHOOK_OLDEST_PENDING_AGE, [], attention.webhook_oldest_pending_age_seconds)
    return [families[family.name] for family in c.STORE_FAMILIES]


class SnapshotCollector(Collector):
    """A prometheus-client Collector over one snapshot (for registries and tests)."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from reference_families(self._snapshot)


def reference_exposition(snapshot: MetricsSnapshot) -> bytes:
    """generate_latest over a registry holding only `snapshot`'s families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
