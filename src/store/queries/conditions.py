"""Filters as SQL: each store filter turned into WHERE conditions, search included."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from store import derived
from store.engine import UNICODE_LOWER
from store.filters import (
    ConnectionFilter,
    ConnectorFilter,
    ConsumerFilter,
    SyncActivationFilter,
    SyncFilter,
    UseFilter,
)
from store.models import (
    ConnectionRow,
    ConnectorRow,
    ConsumerRow,
    SyncActivationRow,
    SyncRequirementRow,
    SyncRow,
    UseRow,
)

T = TypeVar("T")


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _folded(FunctionElement[str]):
    """lower() that folds every letter: on SQLite the Unicode one `store.engine` registers."""

    type = String()
    name = "folded"
    inherit_cache = True


@compiles(_folded)
def _compile_folded(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_folded, "sqlite")
def _compile_folded_sqlite(element: _folded, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


def _search(
    term: str | None,
    id_column: InstrumentedAttribute[int],
    *text_columns: InstrumentedAttribute[Any],
) -> list[ColumnElement[bool]]:
    """Case-insensitive substring on the text columns, or the exact numeric id."""
    term = (term or "").strip()
    if not term:
        return []
    pattern = _like_pattern(term)
    matches: list[ColumnElement[bool]]
    if term.isascii():
        # ASCII letters fold alike on both backends, and SQLite's ilike (lower() LIKE lower())
        # stays in C: a Python function per row would cost more than the search.
        matches = [column.ilike(pattern, escape="\\") for column in text_columns]
    else:
        matches = [_folded(column).like(pattern.lower(), escape="\\") for column in text_columns]
    # ASCII digits only: '²' is isdigit() but not int(), and '١٢' is not how ids are written.
    if term.isascii() and term.isdigit() and len(term) < 18:
        matches.append(id_column == int(term))
    return [or_(*matches)]


def in_values(column: Any, values: tuple[Any, ...] | None) -> list[ColumnElement[bool]]:
    return [] if values is None else [column.in_(values)]


def consumer_conditions(f: ConsumerFilter) -> list[ColumnElement[bool]]:
    conditions = in_values(ConsumerRow.id, f.consumer_ids)
    if f.active is not None:
        active = derived.consumer_is_active()
        conditions.append(active if f.active else ~active)
    if f.connector_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.consumer_id == ConsumerRow.id,
                ConnectionRow.connector_id.in_(f.connector_ids),
            )
            .exists()
        )
    if f.issue_codes is not None:
        conditions.append(or_(*(derived.consumer_has_issue(code) for code in f.issue_codes)))
    conditions += _search(f.search, ConsumerRow.id, ConsumerRow.name, ConsumerRow.external_id)
    return conditions


def connector_conditions(f: ConnectorFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *in_values(ConnectorRow.id, f.connector_ids),
        *in_values(ConnectorRow.category, f.categories),
    ]
    if f.consumer_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.connector_id == ConnectorRow.id,
                ConnectionRow.consumer_id.in_(f.consumer_ids),
            )
            .exists()
        )
    conditions += _search(f.search, ConnectorRow.id, ConnectorRow.name, ConnectorRow.slug)
    return conditions


def connection_conditions(f: ConnectionFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *in_values(ConnectionRow.id, f.connection_ids),
        *in_values(ConnectionRow.consumer_id, f.consumer_ids),
        *in_values(ConnectionRow.connector_id, f.connector_ids),
        *in_values(ConnectionRow.state, f.states),
        *in_values(ConnectionRow.status, f.statuses),
        *in_values(ConnectionRow.direction, f.directions),
    ]
    conditions += _search(f.search, ConnectionRow.id, ConnectionRow.name)
    return conditions


def use_conditions(f: UseFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *in_values(UseRow.connection_id, f.connection_ids),
        *in_values(UseRow.kind, f.kinds),
        *in_values(UseRow.status, f.statuses),
    ]
    if f.consumer_ids is not None:
        conditions.append(
            select(ConnectionRow.id)
            .where(
                ConnectionRow.id == UseRow.connection_id,
                ConnectionRow.consumer_id.in_(f.consumer_ids),
            )
            .exists()
        )
    conditions += _search(f.search, UseRow.id, UseRow.name)
    return conditions


def sync_conditions(f: SyncFilter) -> list[ColumnElement[bool]]:
    return _search(f.search, SyncRow.id, SyncRow.name)


def sync_activation_conditions(f: SyncActivationFilter) -> list[ColumnElement[bool]]:
    conditions = [
        *in_values(SyncActivationRow.consumer_id, f.consumer_ids),
        *in_values(SyncActivationRow.sync_id, f.sync_ids),
    ]
    if f.connector_ids is not None:
        conditions.append(
            select(SyncRequirementRow.sync_id)
            .where(
                SyncRequirementRow.sync_id == SyncActivationRow.sync_id,
                SyncRequirementRow.connector_id.in_(f.connector_ids),
            )
            .exists()
        )
    if f.active is not None:
        active = derived.activation_is_active()
        conditions.append(active if f.active else ~active)
    if f.issue_codes is not None:
        code, _ = derived.activation_issue()
        conditions.append(code.in_([c.value for c in f.issue_codes]))
    if f.search and f.search.strip():
        # "search by name or consumer id": the consumer's name/external id, or the sync's name.
        consumer_match = (
            select(ConsumerRow.id)
            .where(
                ConsumerRow.id == SyncActivationRow.consumer_id,
                *_search(f.search, ConsumerRow.id, ConsumerRow.name, ConsumerRow.external_id),
            )
            .exists()
        )
        sync_match = (
            select(SyncRow.id)
            .where(
                SyncRow.id == SyncActivationRow.sync_id,
                *_search(f.search, SyncRow.id, SyncRow.name),
            )
            .exists()
        )
        conditions.append(or_(consumer_match, sync_match))
    return conditions


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of a group meet `condition` (0 for none)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
