"""`checkConnectionNow`: probe one connection at once and write its result, as the scheduler
would (same rules, same self-metrics), without taking any worker's claim."""

from __future__ import annotations

import logging
import time

from graphql_schema.context import Info, Services
from graphql_schema.errors import ClientError
from graphql_schema.writes import write
from probes.check import check_connection
from probes.scheduler import random_jitter
from store import domain, scheduling
from store.scheduling import DueCheck

JITTER_RATIO = 0.1

log = logging.getLogger(__name__)


def _observe_check(
    services: Services, due: DueCheck, outcome: domain.CheckOutcome, seconds: float
) -> None:
    """Count the probe in the self-metrics, as the scheduler counts its own."""
    if services.check_observer is None:
        return
    try:
        services.check_observer.check_finished(
            str(due.heartbeat.get("kind", "http")), outcome, seconds
        )
    except Exception:  # metrics never fail a check
        log.exception("checkConnectionNow: check observer failed")


async def check_now(info: Info, connection_id: int, global_id: str) -> domain.Connection:
    """Probe `connection_id` now and return it as the result left it."""
    services = info.context.services
    connection = await info.context.loaders.connection.load(connection_id)
    assert connection is not None
    if connection.direction is domain.Direction.INBOUND:
        raise ClientError(f"connection {global_id!r} is inbound: it calls in, it is not probed")
    if services.probe_context is None:
        raise ClientError("checks cannot run right now: the service is starting or stopping")
    due = await info.context.read(lambda s: scheduling.load_due_check(s, connection_id))
    assert due is not None
    started = time.perf_counter()
    outcome = await check_connection(
        due,
        services.probe_context,
        services.credentials_key_ring,
        tokens=services.token_broker,
    )
    seconds = time.perf_counter() - started
    await write(
        info,
        lambda s: scheduling.record_unclaimed_outcomes(
            s, outcomes=[(connection_id, outcome)], jitter=random_jitter(JITTER_RATIO)
        ),
    )
    _observe_check(services, due, outcome, seconds)
    await services.broadcaster.publish([connection_id])
    fresh = await info.context.loaders.connection.load(connection_id)
    assert fresh is not None
    return fresh
