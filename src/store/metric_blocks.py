"""The exporter's per-row data, held as it is read: blocks of columns, not one object per row.

As 100k ConnectionMetrics tuples, a snapshot was ~1.1M small objects (a tuple, its floats and
strings) alive for the whole scrape. Spread over the allocator's arenas, the few objects that
outlive a scrape kept those arenas, and RSS grew scrape after scrape while the Python heap
stayed small (bench/exporter_bench.py). A block holds up to one read block of rows
(store.metrics.BLOCK_ROWS) as columns: arrays (one allocation each), the names packed into
one string, and one shared string per distinct enum value. Blocks stay as read: no column is
ever grown by realloc, so every scrape allocates the same few sizes again, which the allocator
reuses.

Iterating a block, or `Blocks`, gives the rows as ConnectionMetrics / UseMetrics (for the
reference rendering and tests; the fast writer reads the columns).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

NAN = float("nan")
"""NULL in a float column: no stored timestamp or latency is NaN."""


class ConnectionMetrics(NamedTuple):
    """One connection as the exporter sees it (field order is the SELECT's)."""

    id: int
    name: str
    connector_id: int  # key of MetricsSnapshot.connectors
    consumer_id: int  # key of MetricsSnapshot.consumers
    direction: str
    state: str
    status: str
    failure_reason: str | None
    consecutive_failures: int
    check_interval_seconds: int
    last_checked: float | None  # Unix seconds
    last_success: float | None
    check_duration: float | None  # seconds
    tls_cert_expiry: float | None
    state_changed: float


class UseMetrics(NamedTuple):
    id: int
    name: str
    kind: str
    connection_id: int
    status: str


Shared = dict[Any, Any]
"""One object per distinct value (enum strings), shared by every block of a snapshot."""


def _column(typecode: str, values: Sequence[Any]) -> array[Any]:
    # array(typecode, values) converts item by item; struct.pack runs one C loop (~5x
    # faster: the conversion was most of the read's own CPU at 100k rows).
    column: array[Any] = array(typecode)
    column.frombytes(struct.pack(f"{len(values)}{typecode}", *values))
    return column


def _floats(values: Iterable[float | None]) -> array[float]:
    return _column("d", [NAN if value is None else value for value in values])


def _shared(shared: Shared, values: Sequence[Any]) -> list[Any]:
    return list(map(shared.setdefault, values, values))


_SEPARATOR = "\x00"


def _pack(names: Sequence[str]) -> str | list[str]:
    """`names` as one string (one allocation, not one small object per row), or as they are
    if a name holds the separator (PostgreSQL text cannot; SQLite's could)."""
    packed = _SEPARATOR.join(names)
    return packed if packed.count(_SEPARATOR) == len(names) - 1 else list(names)


def _unpack(packed: str | list[str]) -> list[str]:
    return packed.split(_SEPARATOR) if isinstance(packed, str) else packed


def _none_for_nan(value: float) -> float | None:
    return None if value != value else value  # only NaN differs from itself


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionBlock:
    """Consecutive connections (by id), one column per ConnectionMetrics field."""

    id: array[int]
    packed_names: str | list[str]  # names() unpacks them
    connector_id: array[int]
    consumer_id: array[int]
    direction: list[str]
    state: list[str]
    status: list[str]
    failure_reason: list[str | None]
    consecutive_failures: array[int]
    check_interval_seconds: array[int]
    last_checked: array[float]  # NaN: never checked
    last_success: array[float]
    check_duration: array[float]
    tls_cert_expiry: array[float]
    state_changed: array[float]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]], shared: Shared) -> ConnectionBlock:
        """`rows` (ConnectionMetrics' field order, at least one) as columns."""
        (
            ids,
            names,
            connectors,
            consumers,
            directions,
            states,
            statuses,
            reasons,
            failures,
            intervals,
            checked,
            success,
            duration,
            expiry,
            changed,
        ) = zip(*rows, strict=True)
        return cls(
            id=_column("q", ids),
            packed_names=_pack(names),
            connector_id=_column("q", connectors),
            consumer_id=_column("q", consumers),
            direction=_shared(shared, directions),
            state=_shared(shared, states),
            status=_shared(shared, statuses),
            failure_reason=_shared(shared, reasons),
            consecutive_failures=_column("q", failures),
            check_interval_seconds=_column("q", intervals),
            last_checked=_floats(checked),
            last_success=_floats(success),
            check_duration=_floats(duration),
            tls_cert_expiry=_floats(expiry),
            state_changed=_column("d", changed),
        )

    def names(self) -> list[str]:
        """The connection names, a new list each time (for the length of a render)."""
        return _unpack(self.packed_names)

    def __len__(self) -> int:
        return len(self.id)

    def __iter__(self) -> Iterator[ConnectionMetrics]:
        for values in zip(
            self.id,
            self.names(),
            self.connector_id,
            self.consumer_id,
            self.direction,
            self.state,
            self.status,
            self.failure_reason,
            self.consecutive_failures,
            self.check_interval_seconds,
            map(_none_for_nan, self.last_checked),
            map(_none_for_nan, self.last_success),
            map(_none_for_nan, self.check_duration),
            map(_none_for_nan, self.tls_cert_expiry),
            self.state_changed,
            strict=True,
        ):
            yield ConnectionMetrics._make(values)


@dataclass(frozen=True, slots=True, eq=False)
class UseBlock:
    """Consecutive uses (by id), one column per UseMetrics field."""

    id: array[int]
    packed_names: str | list[str]  # names() unpacks them
    kind: list[str]
    connection_id: array[int]
    status: list[str]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]], shared: Shared) -> UseBlock:
        """`rows` (UseMetrics' field order, at least one) as columns."""
        ids, names, kinds, connections, statuses = zip(*rows, strict=True)
        return cls(
            id=_column("q", ids),
            packed_names=_pack(names),
            kind=_shared(shared, kinds),
            connection_id=_column("q", connections),
            status=_shared(shared, statuses),
        )

    def names(self) -> list[str]:
        return _unpack(self.packed_names)

    def __len__(self) -> int:
        return len(self.id)

    def __iter__(self) -> Iterator[UseMetrics]:
        for values in zip(
            self.id, self.names(), self.kind, self.connection_id, self.status, strict=True
        ):
            yield UseMetrics._make(values)


class _Block(Protocol):
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...


Block = TypeVar("Block", bound=_Block)


@dataclass(frozen=True, slots=True, eq=False)
class Blocks(Generic[Block]):
    """Rows in blocks, in order; `len()` and iteration are over the rows."""

    blocks: list[Block]

    @classmethod
    def of(
        cls,
        rows: Iterable[Sequence[Any]],
        make: Callable[[Sequence[Sequence[Any]], Shared], Block],
        size: int,
    ) -> Blocks[Block]:
        """`rows` cut into blocks of `size` (tests; the store builds blocks as it reads)."""
        shared: Shared = {}
        rows = iter(rows)
        blocks = []
        while block := list(islice(rows, size)):
            blocks.append(make(block, shared))
        return cls(blocks)

    def __len__(self) -> int:
        return sum(len(block) for block in self.blocks)

    def __iter__(self) -> Iterator[Any]:
        for block in self.blocks:
            yield from block
