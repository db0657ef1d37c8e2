"""The service's own metrics, on injected registries: checks, probe durations, build info."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import SelfMetrics
from exporter.self_metrics import SUCCESS_REASON
from store.domain import CheckOutcome, FailureReason

AT = datetime(2026, 11, 1, tzinfo=UTC)


class CheckObserver(Protocol):
    """The scheduler's observer hook as probes declares it (probes never imports exporter)."""

    def check_finished(self, kind: str, outcome: CheckOutcome, seconds: float) -> None: ...


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_checks_by_result_and_reason_and_durations_by_kind() -> None:
    registry = CollectorRegistry()
    observer: CheckObserver = SelfMetrics(registry, version="1.0.0")
    observer.check_finished("http", CheckOutcome(success=True, checked_at=AT), 0.2)
    observer.check_finished("http", CheckOutcome(success=True, checked_at=AT), 0.3)
    timeout = CheckOutcome(success=False, checked_at=AT, failure_reason=FailureReason.TIMEOUT)
    observer.check_finished("tcp", timeout, 10.5)
    auth = CheckOutcome(success=False, checked_at=AT, failure_reason=FailureReason.AUTH)
    observer.check_finished("not-a-kind", auth, -1.0)  # bounded label, clamped duration

    values = samples(registry)
    checks = {
        labels: value
        for (name, labels), value in values.items()
        if name == "healthgraph_checks_total"
    }
    assert checks[(("reason", SUCCESS_REASON), ("result", "success"))] == 2
    assert checks[(("reason", "TIMEOUT"), ("result", "failure"))] == 1
    assert checks[(("reason", "AUTH"), ("result", "failure"))] == 1
    # Every reason is there from the start, so rate() sees the first failure of each.
    assert len(checks) == 1 + len(FailureReason)
    assert values[("healthgraph_probe_duration_seconds_count", (("kind", "http"),))] == 2
    assert values[("healthgraph_probe_duration_seconds_sum", (("kind", "http"),))] == 0.5
    assert values[("healthgraph_probe_duration_seconds_count", (("kind", "tcp"),))] == 1
    assert values[("healthgraph_probe_duration_seconds_count", (("kind", "tls"),))] == 0
    assert values[("healthgraph_probe_duration_seconds_sum", (("kind", "other"),))] == 0
    assert values[("healthgraph_build_info", (("version", "1.0.0"),))] == 1


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    SelfMetrics(first).check_finished("http", CheckOutcome(success=True, checked_at=AT), 0.1)
    SelfMetrics(second)
    key = ("healthgraph_checks_total", (("reason", SUCCESS_REASON), ("result", "success")))
    assert samples(first)[key] == 1
    assert samples(second)[key] == 0
