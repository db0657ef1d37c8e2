"""The JSON a webhook carries: `{"type", "timestamp", "data"}` (Standard Webhooks' shape).

The store keeps each event's snapshot with row ids; what goes out uses the ids a client
knows from the GraphQL API (`node(id:)` takes them) and, for an event about a consumer, a
fresh signed link to its connection page, where the customer can be sent to reconnect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql_schema.ids import to_global_id
from graphql_schema.links import LinkSigner
from probes.webhook_worker import Render
from store.deliveries import DueDelivery

LINK_LIFETIME = timedelta(days=7)
_TYPES = {
    "connection": "Connection",
    "connector": "Connector",
    "consumer": "Consumer",
    "use": "Use",
}


def payload_renderer(
    link_signer: LinkSigner | None,
    public_url: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Render:
    """How each delivery's body is made in this deployment."""

    def render(delivery: DueDelivery) -> bytes:
        data: dict[str, Any] = {}
        for key, value in delivery.data.items():
            part = dict(value) if isinstance(value, dict) else value
            if isinstance(part, dict) and key in _TYPES and isinstance(part.get("id"), int):
                part["id"] = to_global_id(_TYPES[key], part["id"])
            data[key] = part
        consumer = data.get("consumer")
        if isinstance(consumer, dict):
            consumer["link"] = (
                None
                if link_signer is None
                else public_url + link_signer.path(consumer["external_id"], clock() + LINK_LIFETIME)
            )
        body = {
            "type": delivery.event_type,
            "timestamp": delivery.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    return render
