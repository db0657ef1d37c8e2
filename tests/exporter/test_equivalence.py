"""The fast writer against prometheus-client's straightforward construction, on the same data.

Both outputs go through prometheus-client's parser; the families and samples must be
identical: names, help, types, every label value (hostile ones included), every value, in
the same order.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter import contract
from exporter.exposition import escape, number, render_store
from exporter.reference import reference_exposition
from store.domain import ConnectionState, ConnectionStatus, FailureReason, UseStatus
from store.metric_blocks import Blocks, ConnectionBlock, ConnectionMetrics, UseBlock, UseMetrics
from store.metrics import BLOCK_ROWS, AttentionMetrics, ConsumerNames, MetricsSnapshot, SyncMetrics

HOSTILE = [
    'quote " inside',
    "back\\slash",
    "trailing backslash \\",
    "new\nline",
    "literal \\n, not a newline",
    'x"} 1\nhealthgraph_injected{a="b"} 1',
    "carriage\rreturn and\ttab",
    "{braces},commas=equals",
    "Ωmega 🚀 ünïcödé",
    "# HELP not a comment",
    "",
    " leading and trailing ",
    '\\"',
]


def families(text: bytes) -> list[tuple[str, str, str, list[Sample]]]:
    return [
        (family.name, family.documentation, family.type, family.samples)
        for family in text_string_to_metric_families(text.decode("utf-8"))
    ]


def snapshot(
    size: int, names: list[str], seed: int = 7, block_rows: int = BLOCK_ROWS
) -> MetricsSnapshot:
    """`size` connections with random states, statuses and values; names drawn from `names`;
    connections and uses in blocks of `block_rows`."""
    rng = random.Random(seed)
    states = [state.value for state in ConnectionState]
    statuses = [status.value for status in ConnectionStatus]
    reasons = [None, *(reason.value for reason in FailureReason)]

    def maybe(value: float) -> float | None:
        return value if rng.random() < 0.8 else None

    connectors = {i: rng.choice(names) + f" {i}" for i in range(1, 6)}
    categories = {i: rng.choice(names) for i in connectors}
    consumers = {
        i: ConsumerNames(rng.choice(names), rng.choice(names) + f"/{i}") for i in range(1, 20)
    }
    connections = [
        ConnectionMetrics(
            id=i,
            name=rng.choice(names),
            connector_id=rng.randrange(1, 6),
            consumer_id=rng.randrange(1, 20),
            direction=rng.choice(["OUTBOUND", "INBOUND"]),
            state=rng.choice(states),
            status=rng.choice(statuses),
            failure_reason=rng.choice(reasons),
            consecutive_failures=rng.randrange(0, 5),
            check_interval_seconds=rng.choice([1, 60, 86400]),
            last_checked=maybe(1_793_491_200 + rng.randrange(0, 10**6) / 1000),
            last_success=maybe(1_793_491_200 + rng.randrange(0, 10**6) / 1000),
            check_duration=maybe(rng.uniform(0.001, 30)),
            tls_cert_expiry=maybe(1_800_000_000.0 + rng.randrange(0, 10**9)),
            state_changed=1_790_000_000 + rng.randrange(0, 10**7) / 1000,
        )
        for i in range(1, size + 1)
    ]
    uses = [
        UseMetrics(
            id=i,
            name=rng.choice(names),
            kind=rng.choice(["hypersync", "livesync", rng.choice(names)]),
            connection_id=rng.randrange(1, size + 1),
            status=rng.choice([status.value for status in UseStatus]),
        )
        for i in range(1, size // 2 + 1)
    ]
    syncs = [SyncMetrics(name + f" {i}", 10 * i, 3 * i) for i, name in enumerate(names[:5])]
    syncs.append(SyncMetrics("never activated", 0, 0))
    return MetricsSnapshot(
        connections=Blocks.of(connections, ConnectionBlock.of, block_rows),
        connectors=connectors,
        connector_categories=categories,
        consumers=consumers,
        uses=Blocks.of(uses, UseBlock.of, block_rows),
        connections_by_state={state: rng.randrange(0, 100) for state in states},
        consumers_active=12,
        syncs=syncs,
        overdue_connections=3,
        scheduler_lag_seconds=12.25,
        attention=AttentionMetrics(
            connector_slugs={i: rng.choice(names) + f"-{i}" for i in connectors},
            connectors_in_outage=frozenset({2, 4}),
            muted_connectors=[3],
            muted_connections=sorted(rng.sample(range(1, size + 1), size // 10)),
            credentials_expiry=[
                (i, 1_800_000_000.0 + rng.randrange(0, 10**9) / 1000) for i in range(1, size + 1, 3)
            ],
            webhook_pending=17,
            webhook_oldest_pending_age_seconds=42.5,
        ),
    )


@pytest.mark.parametrize(
    ("size", "names"),
    [
        (50, HOSTILE),
        (2000, [f"Customer {i}" for i in range(40)]),
        (300, [*HOSTILE, *(f"name {i}" for i in range(20))]),
    ],
    ids=["hostile", "plain", "mixed"],
)
def test_same_families_and_samples_as_prometheus_client(size: int, names: list[str]) -> None:
    data = snapshot(size, names)
    fast, reference = families(render_store(data)), families(reference_exposition(data))
    assert [family[:3] for family in fast] == [family[:3] for family in reference]
    for ours, theirs in zip(fast, reference, strict=True):
        assert ours[3] == theirs[3], ours[0]


def test_every_family_has_samples_in_the_random_data() -> None:
    # Otherwise the comparison above would prove little for an empty family.
    parsed = {
        name: samples for name, _, _, samples in families(render_store(snapshot(300, HOSTILE)))
    }
    assert all(parsed[family.name] for family in contract.STORE_FAMILIES)


def test_hostile_label_values_come_back_unchanged() -> None:
    data = snapshot(len(HOSTILE), HOSTILE)
    renamed = [row._replace(name=name) for row, name in zip(data.connections, HOSTILE, strict=True)]
    data = dataclasses.replace(data, connections=Blocks.of(renamed, ConnectionBlock.of, BLOCK_ROWS))
    parsed = {name: samples for name, _, _, samples in families(render_store(data))}
    assert [s.labels["connection"] for s in parsed["healthgraph_connection_info"]] == HOSTILE
    # An injection attempt stays inside its label value: no family of its own.
    assert "healthgraph_injected" not in parsed


def test_escape_and_number() -> None:
    assert escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape("plain") == "plain"
    assert number(3) == "3"
    assert number(0.1) == "0.1"
    assert number(float("inf")) == "+Inf"
    assert number(float("-inf")) == "-Inf"
    assert number(float("nan")) == "NaN"


@pytest.mark.parametrize("block_rows", [1, 7, 512])
def test_blocks_of_any_size_give_the_same_text(block_rows: int) -> None:
    # Families are written block by block: a boundary must neither lose nor repeat a sample.
    names = [*HOSTILE, *(f"name {i}" for i in range(20))]
    whole = render_store(snapshot(1500, names, block_rows=10**6))
    assert render_store(snapshot(1500, names, block_rows=block_rows)) == whole
    assert families(whole) == families(reference_exposition(snapshot(1500, names)))


def test_names_holding_the_packing_separator_come_back_whole() -> None:
    # Blocks pack names into one string split on NUL; a name holding NUL (SQLite text can)
    # keeps its block unpacked.
    data = snapshot(40, ["nul\x00inside", "plain"])
    names = [row.name for row in data.connections]
    assert len(names) == 40
    assert set(names) == {"nul\x00inside", "plain"}
    assert [use.name for use in data.uses] and {use.name for use in data.uses} <= set(names)
