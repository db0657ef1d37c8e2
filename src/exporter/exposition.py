"""The text exposition format (version 0.0.4), written directly: the hot path of a scrape.

prometheus-client builds a Sample object and a labels dict per series, then sorts and formats
them; at a million series that is most of a scrape timeout. Here each connection row becomes
its lines with a few f-strings, connector and consumer names are escaped once each, and each
family is joined in one call. `exporter.reference` builds the same output the slow,
obviously-right way; a test proves both parse to identical families and samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from exporter import contract as c
from store.metrics import MetricsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: float) -> str:
    """A sample value; integers without a fraction, floats round-trip exactly (repr)."""
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def header(family: c.Family) -> str:
    help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.type}\n"


def _block(family: c.Family, lines: list[str]) -> bytes:
    """HELP, TYPE and the samples; each entry of `lines` is `{labels} value` without the name."""
    if not lines:
        return header(family).encode()
    joiner = "\n" + family.name
    return f"{header(family)}{family.name}{joiner.join(lines)}\n".encode()


class _Cache(dict[str, str]):
    """Escaped label values, for values repeated over many samples (use kinds)."""

    def __missing__(self, key: str) -> str:
        value = self[key] = escape(key)
        return value


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def render_store(snapshot: MetricsSnapshot) -> bytes:
    """Every store-derived family of the contract, in contract order, as UTF-8 bytes."""
    return b"".join(render_chunks(snapshot))


def render_chunks(snapshot: MetricsSnapshot) -> Iterator[bytes]:
    """render_store one family at a time: only one family's lines are alive at once."""
    rows = snapshot.connections
    kinds = _Cache()
    # Names escaped once per connector and consumer, not once per connection.
    connector = {id_: escape(name) for id_, name in snapshot.connectors.items()}
    category = {id_: escape(name) for id_, name in snapshot.connector_categories.items()}
    consumer = {id_: escape(names.name) for id_, names in snapshot.consumers.items()}
    external = {id_: escape(names.external_id) for id_, names in snapshot.consumers.items()}
    # One comprehension per family over the rows: the loop runs in the interpreter's fast
    # path, and each line is one f-string or one concatenation.
    by_id = [f'{{connection_id="{row.id}"}} ' for row in rows]
    identity = [
        f'{{connection_id="{row.id}",connection="{escape(row.name)}",'
        f'connector="{connector[row.connector_id]}",consumer="{consumer[row.consumer_id]}"}} '
        for row in rows
    ]
    up = c.connection_up
    reason = c.failing_reason
    since = c.pending_since
    use_up = c.USE_UP_VALUES
    yield _block(
        c.CONNECTION_UP,
        [
            labels + _BIT[value]
            for labels, row in zip(identity, rows, strict=True)
            if (value := up(row.state, row.status)) is not None
        ],
    )
    yield _block(
        c.LAST_CHECKED,
        [
            labels + repr(row.last_checked)
            for labels, row in zip(identity, rows, strict=True)
            if row.last_checked is not None
        ],
    )
    yield _block(
        c.LAST_SUCCESS,
        [
            labels + repr(row.last_success)
            for labels, row in zip(by_id, rows, strict=True)
            if row.last_success is not None
        ],
    )
    yield _block(
        c.CHECK_INTERVAL,
        [f"{labels}{row.check_interval_seconds}" for labels, row in zip(by_id, rows, strict=True)],
    )
    yield _block(
        c.CHECK_DURATION,
        [
            labels + repr(row.check_duration)
            for labels, row in zip(by_id, rows, strict=True)
            if row.check_duration is not None
        ],
    )
    yield _block(
        c.CONSECUTIVE_FAILURES,
        [f"{labels}{row.consecutive_failures}" for labels, row in zip(by_id, rows, strict=True)],
    )
    yield _block(
        c.FAILURE_REASON,
        [
            f'{{connection_id="{row.id}",reason="{escape(failing)}"}} 1'
            for row in rows
            if (failing := reason(row.state, row.failure_reason)) is not None
        ],
    )
    yield _block(
        c.TLS_EXPIRY,
        [
            labels + repr(row.tls_cert_expiry)
            for labels, row in zip(by_id, rows, strict=True)
            if row.tls_cert_expiry is not None
        ],
    )
    yield _block(
        c.PENDING_SINCE,
        [
            labels + repr(pending)
            for labels, row in zip(by_id, rows, strict=True)
            if (pending := since(row.state, row.state_changed)) is not None
        ],
    )
    yield _block(
        c.CONNECTION_INFO,
        [
            f'{labels[:-2]},consumer_id="{external[row.consumer_id]}",'
            f'direction="{row.direction}",state="{row.state}",'
            f'category="{category[row.connector_id]}"}} 1'
            for labels, row in zip(identity, rows, strict=True)
        ],
    )
    yield _block(
        c.USE_UP,
        [
            f'{{use_id="{use.id}",use="{escape(use.name)}",kind="{kinds[use.kind]}",'
            f'connection_id="{use.connection_id}"}} {use_up[use.status]}'
            for use in snapshot.uses
            if use.status in use_up
        ],
    )
    yield _block(c.CONNECTIONS, _small(c.CONNECTIONS, _by_state(snapshot)))
    yield _block(c.CONSUMERS, [f" {len(snapshot.consumers)}"])
    yield _block(c.CONSUMERS_ACTIVE, [f" {snapshot.consumers_active}"])
    yield _block(c.SYNC_ACTIVATIONS, _small(c.SYNC_ACTIVATIONS, _activations(snapshot)))
    yield _block(c.SYNC_ACTIVATION_RATIO, _small(c.SYNC_ACTIVATION_RATIO, _ratios(snapshot)))
    yield _block(c.SCHEDULER_OVERDUE, [f" {snapshot.overdue_connections}"])
    yield _block(c.SCHEDULER_LAG, [f" {number(snapshot.scheduler_lag_seconds)}"])
    yield from _attention_blocks(snapshot, connector)


def _attention_blocks(snapshot: MetricsSnapshot, connector: dict[int, str]) -> Iterator[bytes]:
    attention = snapshot.attention
    by_connector = {
        id_: f'{{connector_slug="{escape(slug)}",connector="{connector[id_]}"}} '
        for id_, slug in attention.connector_slugs.items()
    }
    yield _block(
        c.CONNECTOR_OUTAGE,
        [
            labels + _BIT[id_ in attention.connectors_in_outage]
            for id_, labels in by_connector.items()
        ],
    )
    yield _block(c.CONNECTOR_MUTED, [by_connector[id_] + "1" for id_ in attention.muted_connectors])
    yield _block(
        c.CONNECTION_MUTED,
        [f'{{connection_id="{id_}"}} 1' for id_ in attention.muted_connections],
    )
    yield _block(
        c.CREDENTIALS_EXPIRY,
        [f'{{connection_id="{id_}"}} {expiry!r}' for id_, expiry in attention.credentials_expiry],
    )
    yield _block(c.WEBHOOK_PENDING, [f" {attention.webhook_pending}"])
    yield _block(
        c.WEBHOOK_OLDEST_PENDING_AGE, [f" {number(attention.webhook_oldest_pending_age_seconds)}"]
    )


_BIT = ("0", "1")


# The small families: a handful of samples, written the general way.

Sample = tuple[tuple[str, ...], float]


def _small(family: c.Family, samples: Iterable[Sample]) -> list[str]:
    return [
        f"{_labels(zip(family.labels, values, strict=True))} {number(value)}"
        for values, value in samples
    ]


def _by_state(snapshot: MetricsSnapshot) -> Iterable[Sample]:
    return (((state,), count) for state, count in snapshot.connections_by_state.items())


def _activations(snapshot: MetricsSnapshot) -> Iterable[Sample]:
    for sync in snapshot.syncs:
        yield (sync.name, "true"), sync.active
        yield (sync.name, "false"), sync.activations - sync.active


def _ratios(snapshot: MetricsSnapshot) -> Iterable[Sample]:
    for sync in snapshot.syncs:
        yield (sync.name,), sync.active / sync.activations if sync.activations else 0.0
