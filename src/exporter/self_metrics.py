"""The service's own metrics: checks by result and reason, probe durations, build info.

They live on a registry the caller injects (never prometheus-client's global one), so two
apps in one process, or two tests, never share a counter. `SelfMetrics.check_finished` is the
scheduler's observer hook: probes calls it through a protocol of its own and never imports
this package.
"""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from exporter import contract as c
from store.domain import CheckOutcome, FailureReason, ProbeKind

SUCCESS_REASON = "none"
"""The `reason` label of successful checks (a label value cannot be left out)."""

PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; probes time out at 10 s by default, and a check past 30 s is a failure anyway."""

_KINDS = frozenset(kind.value for kind in ProbeKind)


def package_version() -> str:
    try:
        return metadata.version("healthgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def service_registry() -> CollectorRegistry:
    """A new registry with the process, platform and garbage-collector metrics."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class SelfMetrics:
    """healthgraph_checks_total, healthgraph_probe_duration_seconds, healthgraph_build_info,
    healthgraph_oauth_refreshes_total, healthgraph_webhook_deliveries_total."""

    def __init__(self, registry: CollectorRegistry, *, version: str | None = None) -> None:
        self.registry = registry
        self._checks = Counter(
            c.CHECKS_TOTAL.removesuffix("_total"),
            "Heartbeat checks run by this process, by result and failure reason.",
            ("result", "reason"),
            registry=registry,
        )
        self._durations = Histogram(
            c.PROBE_DURATION,
            "Duration of heartbeat probes run by this process, by probe kind.",
            ("kind",),
            buckets=PROBE_BUCKETS,
            registry=registry,
        )
        build = Gauge(
            c.BUILD_INFO,
            "Always 1; the running healthgraph version.",
            ("version",),
            registry=registry,
        )
        build.labels(version or package_version()).set(1)
        self._refreshes = Counter(
            c.OAUTH_REFRESHES_TOTAL.removesuffix("_total"),
            "OAuth2 token refreshes run by this process, by connector and result.",
            ("connector", "result"),
            registry=registry,
        )
        self._deliveries = Counter(
            c.WEBHOOK_DELIVERIES_TOTAL.removesuffix("_total"),
            "Webhook delivery attempts made by this process, by result.",
            ("result",),
            registry=registry,
        )
        for result in c.WEBHOOK_DELIVERY_RESULTS:
            self._deliveries.labels(result)
        # Every series from the start at 0, so rate() and increase() see the first check.
        self._checks.labels("success", SUCCESS_REASON)
        for reason in FailureReason:
            self._checks.labels("failure", reason.value)
        for kind in sorted(_KINDS):
            self._durations.labels(kind)

    def check_finished(self, kind: str, outcome: CheckOutcome, seconds: float) -> None:
        """Count one check and observe its probe's duration (the scheduler's observer hook)."""
        reason = outcome.failure_reason  # set exactly when the check failed (CheckOutcome)
        if reason is None:
            self._checks.labels("success", SUCCESS_REASON).inc()
        else:
            self._checks.labels("failure", reason.value).inc()
        # The kind comes from stored configuration: bound the label to the known kinds.
        self._durations.labels(kind if kind in _KINDS else "other").observe(max(0.0, seconds))

    def delivery_finished(self, result: str) -> None:
        """Count one webhook delivery attempt (the webhook worker's observer hook)."""
        self._deliveries.labels(result if result in c.WEBHOOK_DELIVERY_RESULTS else "failed").inc()

    def refresh_finished(self, connector: str, result: str) -> None:
        """Count one OAuth2 refresh (the token broker's observer hook)."""
        known = result if result in c.OAUTH_REFRESH_RESULTS else "other"
        self._refreshes.labels(connector, known).inc()
