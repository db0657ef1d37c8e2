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
from store.metric_blocks import ConnectionBlock, UseBlock
from store.metrics import AttentionMetrics, MetricsSnapshot

T = TypeVar("T")

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


ROWS_PER_PIECE = 2048
"""Items per piece of a family held as a plain list (muted connections, credentials...): as
many as in one block of connections (store.metrics.BLOCK_ROWS), whose rows are rendered a
block per piece: 100-450 KB of text, whatever the row count."""

Part = TypeVar("Part")


def _family(
    family: c.Family, parts: Iterable[Part], lines: Callable[[Part], list[str]]
) -> Iterator[str]:
    """HELP and TYPE, then one piece of samples per part (a block of rows); `lines(part)`
    gives each sample as `{labels} value`, without the name (joined in once per piece)."""
    yield header(family)
    name = family.name
    joiner = "\n" + name
    for part in parts:
        if block := lines(part):
            yield f"{name}{joiner.join(block)}\n"


def _listed(
    family: c.Family, items: Sequence[T], lines: Callable[[Sequence[T]], list[str]]
) -> Iterator[str]:
    """_family over a list held whole, ROWS_PER_PIECE items per piece."""
    parts = (
        items[start : start + ROWS_PER_PIECE] for start in range(0, len(items), ROWS_PER_PIECE)
    )
    return _family(family, parts, lines)


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
    """render_store as text pieces, in order: one block of rows of a family per piece.

    Only one piece's lines are alive at a time: a 100k-connection scrape never holds its
    ~100 MB of text, whatever reads the pieces (exporter.stream joins and compresses them).
    """
    rows = _Connections(snapshot)
    blocks = snapshot.connections.blocks
    yield from _family(c.CONNECTION_UP, blocks, rows.up)
    yield from _family(c.LAST_CHECKED, blocks, rows.last_checked)
    yield from _family(c.LAST_SUCCESS, blocks, _last_success)
    yield from _family(c.CHECK_INTERVAL, blocks, _check_interval)
    yield from _family(c.CHECK_DURATION, blocks, _check_duration)
    yield from _family(c.CONSECUTIVE_FAILURES, blocks, _consecutive_failures)
    yield from _family(c.FAILURE_REASON, blocks, _failure_reason)
    yield from _family(c.TLS_EXPIRY, blocks, _tls_expiry)
    yield from _family(c.PENDING_SINCE, blocks, _pending_since)
    yield from _family(c.CONNECTION_INFO, blocks, rows.info)
    yield from _family(c.USE_UP, snapshot.uses.blocks, _Uses().lines)
    yield from _listed(c.CONNECTIONS, _small(c.CONNECTIONS, _by_state(snapshot)), list)
    yield _single(c.CONSUMERS, str(len(snapshot.consumers)))
    yield _single(c.CONSUMERS_ACTIVE, str(snapshot.consumers_active))
    yield from _listed(c.SYNC_ACTIVATIONS, _small(c.SYNC_ACTIVATIONS, _activations(snapshot)), list)
    yield from _listed(
        c.SYNC_ACTIVATION_RATIO, _small(c.SYNC_ACTIVATION_RATIO, _ratios(snapshot)), list
    )
    yield _single(c.SCHEDULER_OVERDUE, str(snapshot.overdue_connections))
    yield _single(c.SCHEDULER_LAG, number(snapshot.scheduler_lag_seconds))
    yield from _attention(snapshot.attention, rows.connector)


# --- the per-connection families, one block of rows at a time -----------------------------------
# One comprehension per family and block, zipping the columns it needs: the loop runs in the
# interpreter's fast path, each line is one f-string or one concatenation, and float columns
# hold NaN for "no value" (`x == x` is false only for NaN).


class _Connections:
    """The families labelled with names; connector and consumer names escaped once each, not
    once per connection."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.connector = {id_: escape(name) for id_, name in snapshot.connectors.items()}
        self.category = {id_: escape(name) for id_, name in snapshot.connector_categories.items()}
        self.consumer = {id_: escape(names.name) for id_, names in snapshot.consumers.items()}
        self.external = {
            id_: escape(names.external_id) for id_, names in snapshot.consumers.items()
        }

    def identity(self, rows: ConnectionBlock) -> list[str]:
        connector, consumer = self.connector, self.consumer
        return [
            f'{{connection_id="{id_}",connection="{escape(name)}",'
            f'connector="{connector[connector_id]}",consumer="{consumer[consumer_id]}"}} '
            for id_, name, connector_id, consumer_id in zip(
                rows.id, rows.names(), rows.connector_id, rows.consumer_id, strict=True
            )
        ]

    def up(self, rows: ConnectionBlock) -> list[str]:
        up = c.connection_up
        return [
            labels + _BIT[value]
            for labels, state, status in zip(
                self.identity(rows), rows.state, rows.status, strict=True
            )
            if (value := up(state, status)) is not None
        ]

    def last_checked(self, rows: ConnectionBlock) -> list[str]:
        return [
            labels + repr(value)
            for labels, value in zip(self.identity(rows), rows.last_checked, strict=True)
            if value == value
        ]

    def info(self, rows: ConnectionBlock) -> list[str]:
        external, category = self.external, self.category
        return [
            f'{labels[:-2]},consumer_id="{external[consumer_id]}",'
            f'direction="{direction}",state="{state}",category="{category[connector_id]}"}} 1'
            for labels, consumer_id, direction, state, connector_id in zip(
                self.identity(rows),
                rows.consumer_id,
                rows.direction,
                rows.state,
                rows.connector_id,
                strict=True,
            )
        ]


def _by_id(ids: Iterable[int], values: Iterable[object]) -> list[str]:
    """`{connection_id="…"} value` for every row (integer columns: no gaps)."""
    return [f'{{connection_id="{id_}"}} {value}' for id_, value in zip(ids, values, strict=True)]


def _by_id_present(ids: Iterable[int], values: Iterable[float]) -> list[str]:
    """`{connection_id="…"} value` for the rows with a value (float columns)."""
    return [
        f'{{connection_id="{id_}"}} {value!r}'
        for id_, value in zip(ids, values, strict=True)
        if value == value
    ]


def _last_success(rows: ConnectionBlock) -> list[str]:
    return _by_id_present(rows.id, rows.last_success)


def _check_interval(rows: ConnectionBlock) -> list[str]:
    return _by_id(rows.id, rows.check_interval_seconds)


def _check_duration(rows: ConnectionBlock) -> list[str]:
    return _by_id_present(rows.id, rows.check_duration)


def _consecutive_failures(rows: ConnectionBlock) -> list[str]:
    return _by_id(rows.id, rows.consecutive_failures)


def _tls_expiry(rows: ConnectionBlock) -> list[str]:
    return _by_id_present(rows.id, rows.tls_cert_expiry)


def _failure_reason(rows: ConnectionBlock) -> list[str]:
    reason = c.failing_reason
    return [
        f'{{connection_id="{id_}",reason="{escape(failing)}"}} 1'
        for id_, state, failure in zip(rows.id, rows.state, rows.failure_reason, strict=True)
        if (failing := reason(state, failure)) is not None
    ]


def _pending_since(rows: ConnectionBlock) -> list[str]:
    since = c.pending_since
    return [
        f'{{connection_id="{id_}"}} {pending!r}'
        for id_, state, changed in zip(rows.id, rows.state, rows.state_changed, strict=True)
        if (pending := since(state, changed)) is not None
    ]


class _Uses:
    """healthgraph_use_up; use kinds repeat over many uses: each escaped once per scrape."""

    def __init__(self) -> None:
        self.kinds = _Cache()

    def lines(self, uses: UseBlock) -> list[str]:
        kinds, use_up = self.kinds, c.USE_UP_VALUES
        return [
            f'{{use_id="{id_}",use="{escape(name)}",kind="{kinds[kind]}",'
            f'connection_id="{connection_id}"}} {use_up[status]}'
            for id_, name, kind, connection_id, status in zip(
                uses.id, uses.names(), uses.kind, uses.connection_id, uses.status, strict=True
            )
            if status in use_up
        ]


# --- outages, mutes, credentials, the webhook backlog --------------------------------------------


def _attention(attention: AttentionMetrics, connector: dict[int, str]) -> Iterator[str]:
    by_connector = {
        id_: f'{{connector_slug="{escape(slug)}",connector="{connector[id_]}"}} '
        for id_, slug in attention.connector_slugs.items()
    }
    outage = attention.connectors_in_outage
    yield from _listed(
        c.CONNECTOR_OUTAGE,
        list(by_connector.items()),
        lambda block: [labels + _BIT[id_ in outage] for id_, labels in block],
    )
    yield from _listed(
        c.CONNECTOR_MUTED,
        attention.muted_connectors,
        lambda block: [by_connector[id_] + "1" for id_ in block],
    )
    yield from _listed(
        c.CONNECTION_MUTED,
        attention.muted_connections,
        lambda block: [f'{{connection_id="{id_}"}} 1' for id_ in block],
    )
    yield from _listed(
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
