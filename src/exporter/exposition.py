"""The text exposition format (version 0.0.4), written directly: the hot path of a scrape.

prometheus-client builds a Sample object and a labels dict per series, then sorts and formats
them; at a million series that is most of a scrape timeout. Here each connection row becomes
its lines with a few f-strings, connector and consumer names are escaped once each, and each
block of rows is joined in one call: the text comes out in pieces, never whole.
`exporter.reference` builds the same output the slow, obviously-right way; a test proves both
parse to identical families and samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from exporter import contract as c
from store.metrics import AttentionMetrics, ConnectionMetrics, MetricsSnapshot, UseMetrics

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


ROWS_PER_PIECE = 1024
"""Rows rendered per piece of a per-row family: ~50-230 KB of text, whatever the row count."""

Row = TypeVar("Row")


def _family(
    family: c.Family, rows: Sequence[Row], lines: Callable[[Sequence[Row]], list[str]]
) -> Iterator[str]:
    """HELP and TYPE, then the samples of `ROWS_PER_PIECE` rows at a time; `lines(block)` gives
    each sample as `{labels} value` without the name (the name is joined in once per piece)."""
    yield header(family)
    name = family.name
    joiner = "\n" + name
    for start in range(0, len(rows), ROWS_PER_PIECE):
        block = lines(rows[start : start + ROWS_PER_PIECE])
        if block:
            yield f"{name}{joiner.join(block)}\n"


def _single(family: c.Family, value: str) -> str:
    return f"{header(family)}{family.name} {value}\n"


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
    return "".join(render_pieces(snapshot)).encode()


def render_pieces(snapshot: MetricsSnapshot) -> Iterator[str]:
    """render_store as text pieces of at most `ROWS_PER_PIECE` rows each, in order.

    Only one piece's lines are alive at a time: a 100k-connection scrape never holds its
    ~100 MB of text, whatever reads the pieces (exporter.stream joins and compresses them).
    """
    rows = snapshot.connections
    names = _Names(snapshot)
    yield from _family(c.CONNECTION_UP, rows, names.up)
    yield from _family(c.LAST_CHECKED, rows, names.last_checked)
    yield from _family(c.LAST_SUCCESS, rows, _last_success)
    yield from _family(c.CHECK_INTERVAL, rows, _check_interval)
    yield from _family(c.CHECK_DURATION, rows, _check_duration)
    yield from _family(c.CONSECUTIVE_FAILURES, rows, _consecutive_failures)
    yield from _family(c.FAILURE_REASON, rows, _failure_reason)
    yield from _family(c.TLS_EXPIRY, rows, _tls_expiry)
    yield from _family(c.PENDING_SINCE, rows, _pending_since)
    yield from _family(c.CONNECTION_INFO, rows, names.info)
    yield from _family(c.USE_UP, snapshot.uses, _Uses().lines)
    yield from _family(c.CONNECTIONS, _small(c.CONNECTIONS, _by_state(snapshot)), _same)
    yield _single(c.CONSUMERS, str(len(snapshot.consumers)))
    yield _single(c.CONSUMERS_ACTIVE, str(snapshot.consumers_active))
    yield from _family(
        c.SYNC_ACTIVATIONS, _small(c.SYNC_ACTIVATIONS, _activations(snapshot)), _same
    )
    yield from _family(
        c.SYNC_ACTIVATION_RATIO, _small(c.SYNC_ACTIVATION_RATIO, _ratios(snapshot)), _same
    )
    yield _single(c.SCHEDULER_OVERDUE, str(snapshot.overdue_connections))
    yield _single(c.SCHEDULER_LAG, number(snapshot.scheduler_lag_seconds))
    yield from _attention(snapshot.attention, names.connector)


# --- the per-connection families, one block of rows at a time -----------------------------------
# One comprehension per family and block: the loop runs in the interpreter's fast path, and
# each line is one f-string or one concatenation.


class _Names:
    """A snapshot's connector and consumer names escaped once each, not once per connection;
    and the families whose labels carry them."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.connector = {id_: escape(name) for id_, name in snapshot.connectors.items()}
        self.category = {id_: escape(name) for id_, name in snapshot.connector_categories.items()}
        self.consumer = {id_: escape(names.name) for id_, names in snapshot.consumers.items()}
        self.external = {
            id_: escape(names.external_id) for id_, names in snapshot.consumers.items()
        }

    def identity(self, rows: Sequence[ConnectionMetrics]) -> list[str]:
        connector, consumer = self.connector, self.consumer
        return [
            f'{{connection_id="{row.id}",connection="{escape(row.name)}",'
            f'connector="{connector[row.connector_id]}",consumer="{consumer[row.consumer_id]}"}} '
            for row in rows
        ]

    def up(self, rows: Sequence[ConnectionMetrics]) -> list[str]:
        up = c.connection_up
        return [
            labels + _BIT[value]
            for labels, row in zip(self.identity(rows), rows, strict=True)
            if (value := up(row.state, row.status)) is not None
        ]

    def last_checked(self, rows: Sequence[ConnectionMetrics]) -> list[str]:
        return [
            labels + repr(row.last_checked)
            for labels, row in zip(self.identity(rows), rows, strict=True)
            if row.last_checked is not None
        ]

    def info(self, rows: Sequence[ConnectionMetrics]) -> list[str]:
        external, category = self.external, self.category
        return [
            f'{labels[:-2]},consumer_id="{external[row.consumer_id]}",'
            f'direction="{row.direction}",state="{row.state}",'
            f'category="{category[row.connector_id]}"}} 1'
            for labels, row in zip(self.identity(rows), rows, strict=True)
        ]


def _last_success(rows: Sequence[ConnectionMetrics]) -> list[str]:
    return [
        f'{{connection_id="{row.id}"}} {row.last_success!r}'
        for row in rows
        if row.last_success is not None
    ]


def _check_interval(rows: Sequence[ConnectionMetrics]) -> list[str]:
    return [f'{{connection_id="{row.id}"}} {row.check_interval_seconds}' for row in rows]


def _check_duration(rows: Sequence[ConnectionMetrics]) -> list[str]:
    return [
        f'{{connection_id="{row.id}"}} {row.check_duration!r}'
        for row in rows
        if row.check_duration is not None
    ]


def _consecutive_failures(rows: Sequence[ConnectionMetrics]) -> list[str]:
    return [f'{{connection_id="{row.id}"}} {row.consecutive_failures}' for row in rows]


def _failure_reason(rows: Sequence[ConnectionMetrics]) -> list[str]:
    reason = c.failing_reason
    return [
        f'{{connection_id="{row.id}",reason="{escape(failing)}"}} 1'
        for row in rows
        if (failing := reason(row.state, row.failure_reason)) is not None
    ]


def _tls_expiry(rows: Sequence[ConnectionMetrics]) -> list[str]:
    return [
        f'{{connection_id="{row.id}"}} {row.tls_cert_expiry!r}'
        for row in rows
        if row.tls_cert_expiry is not None
    ]


def _pending_since(rows: Sequence[ConnectionMetrics]) -> list[str]:
    since = c.pending_since
    return [
        f'{{connection_id="{row.id}"}} {pending!r}'
        for row in rows
        if (pending := since(row.state, row.state_changed)) is not None
    ]


class _Uses:
    """healthgraph_use_up; use kinds repeat over many uses: each escaped once per scrape."""

    def __init__(self) -> None:
        self.kinds = _Cache()

    def lines(self, uses: Sequence[UseMetrics]) -> list[str]:
        kinds, use_up = self.kinds, c.USE_UP_VALUES
        return [
            f'{{use_id="{use.id}",use="{escape(use.name)}",kind="{kinds[use.kind]}",'
            f'connection_id="{use.connection_id}"}} {use_up[use.status]}'
            for use in uses
            if use.status in use_up
        ]


def _same(lines: Sequence[str]) -> list[str]:
    return list(lines)


# --- outages, mutes, credentials, the webhook backlog --------------------------------------------


def _attention(attention: AttentionMetrics, connector: dict[int, str]) -> Iterator[str]:
    by_connector = {
        id_: f'{{connector_slug="{escape(slug)}",connector="{connector[id_]}"}} '
        for id_, slug in attention.connector_slugs.items()
    }
    outage = attention.connectors_in_outage
    yield from _family(
        c.CONNECTOR_OUTAGE,
        list(by_connector.items()),
        lambda block: [labels + _BIT[id_ in outage] for id_, labels in block],
    )
    yield from _family(
        c.CONNECTOR_MUTED,
        attention.muted_connectors,
        lambda block: [by_connector[id_] + "1" for id_ in block],
    )
    yield from _family(
        c.CONNECTION_MUTED,
        attention.muted_connections,
        lambda block: [f'{{connection_id="{id_}"}} 1' for id_ in block],
    )
    yield from _family(
        c.CREDENTIALS_EXPIRY,
        attention.credentials_expiry,
        lambda block: [f'{{connection_id="{id_}"}} {expiry!r}' for id_, expiry in block],
    )
    yield _single(c.WEBHOOK_PENDING, str(attention.webhook_pending))
    yield _single(
        c.WEBHOOK_OLDEST_PENDING_AGE, number(attention.webhook_oldest_pending_age_seconds)
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
