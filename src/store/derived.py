"""Derived facts as SQL expressions: the single definition used by lists, filters, counts and CSV.

Never stored: a consumer is *active*, a connection is *failed*, an activation has an *issue*.
Each function returns a correlated expression, so it filters, counts and selects alike. The one
denormalised input is `sync_activations.completed_steps` (see `completed_steps_from_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, not_, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement as Column

from store.domain import SYNC_STEPS, ConnectionState, ConnectionStatus, IssueCode, SyncStep
from store.models import (
    ALL_STEPS_COMPLETE,
    ConnectionRow,
    ConsumerRow,
    SyncActivationRow,
    SyncActivationStepRow,
    SyncRequirementRow,
    step_bit,
)


def _exists(table: Any, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """EXISTS over `table` that correlates with every enclosing query, however deep it is nested."""
    return select(literal(1)).select_from(table).where(*conditions).correlate_except(table).exists()


def connection_is_failed(connection: Any = ConnectionRow) -> ColumnElement[bool]:
    """Failed to authenticate (state FAILED) or its heartbeat fails now (and not switched off)."""
    return or_(
        connection.state == ConnectionState.FAILED,
        and_(
            connection.state != ConnectionState.DISABLED,
            connection.status == ConnectionStatus.CONNECTION_FAILURE,
        ),
    )


def connection_is_healthy(connection: Any = ConnectionRow) -> ColumnElement[bool]:
    """ACTIVE and its heartbeat not failing: what satisfies a sync's requirement."""
    return and_(
        connection.state == ConnectionState.ACTIVE,
        connection.status != ConnectionStatus.CONNECTION_FAILURE,
    )


def connection_is_active(connection: Any = ConnectionRow) -> ColumnElement[bool]:
    state: Column[ConnectionState] = connection.state
    return state == ConnectionState.ACTIVE


def consumer_is_active(consumer: Any = ConsumerRow) -> ColumnElement[bool]:
    """Active ⇔ at least one ACTIVE connection (seed 2)."""
    c = aliased(ConnectionRow)
    return _exists(c, c.consumer_id == consumer.id, c.state == ConnectionState.ACTIVE)


def consumer_has_failed_connection(consumer: Any = ConsumerRow) -> ColumnElement[bool]:
    c = aliased(ConnectionRow)
    return _exists(c, c.consumer_id == consumer.id, connection_is_failed(c))


def consumer_has_no_connection(consumer: Any = ConsumerRow) -> ColumnElement[bool]:
    c = aliased(ConnectionRow)
    return not_(_exists(c, c.consumer_id == consumer.id))


def consumer_has_issue(code: IssueCode, consumer: Any = ConsumerRow) -> ColumnElement[bool]:
    """The "by connections" issue column as a predicate; sync-only codes never match here."""
    if code is IssueCode.CONNECTION_FAILED:
        return consumer_has_failed_connection(consumer)
    if code is IssueCode.NOTHING:
        return consumer_has_no_connection(consumer)
    return false()


def completed_steps_from_rows(activation: Any = SyncActivationRow) -> Column[int]:
    """What `sync_activations.completed_steps` must equal: the bits of its complete step rows.

    The stored column is what lists, counts and the funnel read; this is its definition, for
    the tests that hold every write path to it (and the 0004 backfill does the same in SQL).
    """
    s = aliased(SyncActivationStepRow)
    bit = case(*((s.step == step, step_bit(step)) for step in SYNC_STEPS), else_=0)
    return (
        select(func.coalesce(func.sum(bit), 0))
        .where(s.activation_id == activation.id, s.complete.is_(True))
        .correlate_except(s)
        .scalar_subquery()
    )


def step_is_complete(step: SyncStep, activation: Any = SyncActivationRow) -> ColumnElement[bool]:
    """The step has a complete row (read from the denormalised bitmask)."""
    mask: Column[int] = activation.completed_steps
    return mask.op("&")(step_bit(step)) != 0


def all_steps_complete(activation: Any = SyncActivationRow) -> ColumnElement[bool]:
    mask: Column[int] = activation.completed_steps
    return mask == ALL_STEPS_COMPLETE


def _step_incomplete(activation: Any, step: SyncStep | None = None) -> ColumnElement[bool]:
    if step is None:
        return not_(all_steps_complete(activation))
    return not_(step_is_complete(step, activation))


def _requirement_connector(activation: Any, *, failed: bool) -> Column[Any]:
    """First required connector (by position) without a healthy ACTIVE connection.

    failed=True: only those where a failed connection exists; False: only where none does.
    """
    r = aliased(SyncRequirementRow)
    healthy = aliased(ConnectionRow)
    broken = aliased(ConnectionRow)
    has_healthy = _exists(
        healthy,
        healthy.consumer_id == activation.consumer_id,
        healthy.connector_id == r.connector_id,
        connection_is_healthy(healthy),
    )
    has_failed = _exists(
        broken,
        broken.consumer_id == activation.consumer_id,
        broken.connector_id == r.connector_id,
        connection_is_failed(broken),
    )
    return (
        select(r.connector_id)
        .where(r.sync_id == activation.sync_id, not_(has_healthy))
        .where(has_failed if failed else not_(has_failed))
        .order_by(r.position, r.connector_id)
        .limit(1)
        .scalar_subquery()
    )


def activation_issue(activation: Any = SyncActivationRow) -> tuple[Column[Any], Column[Any]]:
    """(issue code, connector id) of the "by syncs" issue column; both NULL when nothing is wrong.

    Precedence, first match wins: CONNECTION_FAILED (a required connector's connection failed),
    NO_CONNECTION (one is missing or the connection step is incomplete), MAPPING_INCOMPLETE,
    CONFIGURATION_INCOMPLETE.
    """
    failed_connector = _requirement_connector(activation, failed=True)
    missing_connector = _requirement_connector(activation, failed=False)
    code = case(
        (failed_connector.is_not(None), literal(IssueCode.CONNECTION_FAILED.value)),
        (
            or_(
                missing_connector.is_not(None),
                _step_incomplete(activation, SyncStep.CONNECTION),
            ),
            literal(IssueCode.NO_CONNECTION.value),
        ),
        (
            _step_incomplete(activation, SyncStep.MAPPING),
            literal(IssueCode.MAPPING_INCOMPLETE.value),
        ),
        (
            _step_incomplete(activation, SyncStep.CONFIGURATION),
            literal(IssueCode.CONFIGURATION_INCOMPLETE.value),
        ),
        else_=None,
    )
    connector_id = case(
        (failed_connector.is_not(None), failed_connector),
        else_=missing_connector,
    )
    return code, connector_id


def activation_is_active(activation: Any = SyncActivationRow) -> ColumnElement[bool]:
    """Active ⇔ every step complete and an ACTIVE connection to every required connector."""
    r = aliased(SyncRequirementRow)
    c = aliased(ConnectionRow)
    # OFFSET 0 keeps PostgreSQL from turning this into a hashed subplan over every ACTIVE
    # connection (82k at 100k); probed per activation it runs only for complete ones (2x
    # faster for the overview). SQLite plans both forms alike.
    has_active = (
        select(literal(1))
        .select_from(c)
        .where(
            c.consumer_id == activation.consumer_id,
            c.connector_id == r.connector_id,
            connection_is_active(c),
        )
        .correlate_except(c)
        .offset(0)
        .exists()
    )
    missing_requirement = _exists(r, r.sync_id == activation.sync_id, not_(has_active))
    # Steps first: the cheap column test spares the EXISTS for every unfinished activation.
    return and_(all_steps_complete(activation), not_(missing_requirement))


# --- the same "by syncs" facts in Python, for batches (CSV export) ----------------------------
# `activation_issue` and `activation_is_active` above are the definitions; these evaluate them
# from per-(consumer, connector) flags fetched once per batch, instead of correlated subqueries
# per activation. tests/store/test_derived.py holds the two to the same answers on every case.


@dataclass(frozen=True, slots=True)
class RequirementHealth:
    """One consumer's connections to one connector, as the sync facts see them."""

    healthy: bool = False  # connection_is_healthy for at least one
    failed: bool = False  # connection_is_failed for at least one
    active: bool = False  # connection_is_active for at least one


def requirement_health_flags(connection: Any = ConnectionRow) -> tuple[Column[Any], ...]:
    """Aggregates over a (consumer, connector) group giving the `RequirementHealth` flags."""
    return tuple(
        func.max(case((condition, 1), else_=0))
        for condition in (
            connection_is_healthy(connection),
            connection_is_failed(connection),
            connection_is_active(connection),
        )
    )


_NO_CONNECTION = RequirementHealth()
_CONNECTION_BIT = step_bit(SyncStep.CONNECTION)
_MAPPING_BIT = step_bit(SyncStep.MAPPING)
_CONFIGURATION_BIT = step_bit(SyncStep.CONFIGURATION)


def activation_state(
    required: Sequence[int], health: Mapping[int, RequirementHealth], completed_steps: int
) -> tuple[bool, IssueCode | None, int | None]:
    """(active, issue code, issue connector id) of one activation, as the SQL definitions.

    `required`: the sync's connector ids by position; `health`: the consumer's flags per
    connector (absent: no connection); `completed_steps`: the activation's bitmask. One pass
    and no allocation: the CSV export calls it for every row.
    """
    active = completed_steps == ALL_STEPS_COMPLETE
    failed: int | None = None  # first unmet requirement (by position) with a failed connection
    missing: int | None = None  # first unmet requirement without one
    for connector_id in required:
        flags = health.get(connector_id, _NO_CONNECTION)
        active = active and flags.active
        if flags.healthy:
            continue
        if flags.failed:
            if failed is None:
                failed = connector_id
        elif missing is None:
            missing = connector_id
    code: IssueCode | None = None
    if failed is not None:
        code = IssueCode.CONNECTION_FAILED
    elif missing is not None or not completed_steps & _CONNECTION_BIT:
        code = IssueCode.NO_CONNECTION
    elif not completed_steps & _MAPPING_BIT:
        code = IssueCode.MAPPING_INCOMPLETE
    elif not completed_steps & _CONFIGURATION_BIT:
        code = IssueCode.CONFIGURATION_INCOMPLETE
    return active, code, failed if failed is not None else missing
