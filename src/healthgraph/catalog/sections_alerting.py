"""The catalog's `webhooks` and `maintenance` sections: who is told when a connection breaks,
and the planned windows during which nobody is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from healthgraph.catalog.entries import CatalogSpec, MaintenanceSpec, WebhookSpec
from healthgraph.catalog.reader import Reader, type_name
from store.domain import MuteScope, WebhookEventType
from store.validation import MAX_TEXT_LENGTH

EVENT_TYPES = tuple(kind.value for kind in WebhookEventType)
_TARGETS = {
    "connector": MuteScope.CONNECTOR,
    "consumer": MuteScope.CONSUMER,
    "connection": MuteScope.CONNECTION,
}


def webhooks(reader: Reader, top: Mapping[str, Any]) -> Iterable[WebhookSpec]:
    for index, item in enumerate(reader.sequence(top, "webhooks", "")):
        path = f"webhooks[{index}]"
        entry = reader.mapping(
            item, path, ("url",), ("events", "description", "secret_env", "secret_file")
        )
        if entry is None:
            continue
        if "secret" in entry:
            reader.problem(
                f"{path}.secret", "secrets are never written inline; use secret_env or secret_file"
            )
        given = {key: entry[key] for key in ("secret_env", "secret_file") if key in entry}
        if len(given) != 1:
            reader.problem(
                path,
                "give exactly one of secret_env or secret_file (the whsec_ secret your receiver "
                "verifies signatures with)",
            )
            continue
        ((key, value),) = given.items()
        if not isinstance(value, str) or not value:
            reader.problem(f"{path}.{key}", f"expected a non-empty string, got {type_name(value)}")
            continue
        yield WebhookSpec(
            url=reader.text(entry, "url", path, max_length=2000),
            events=_events(reader, entry, path),
            description=reader.text(entry, "description", path, max_length=MAX_TEXT_LENGTH)
            if entry.get("description") is not None
            else None,
            secret_ref={key: value},
        )


def _events(reader: Reader, entry: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    if "events" not in entry or entry["events"] is None:
        return None
    listed = reader.sequence(entry, "events", path)
    if not listed and isinstance(entry["events"], list):
        reader.problem(f"{path}.events", "name at least one event type, or leave it out for all")
    chosen: list[str] = []
    for position, kind in enumerate(listed):
        if kind not in EVENT_TYPES:
            reader.problem(
                f"{path}.events[{position}]", f"{kind!r} is not one of {', '.join(EVENT_TYPES)}"
            )
        elif kind not in chosen:
            chosen.append(kind)
    return tuple(chosen)


def maintenance(reader: Reader, top: Mapping[str, Any]) -> Iterable[MaintenanceSpec]:
    for index, item in enumerate(reader.sequence(top, "maintenance", "")):
        path = f"maintenance[{index}]"
        entry = reader.mapping(item, path, ("from", "until"), (*_TARGETS, "reason"))
        if entry is None:
            continue
        named = [key for key in _TARGETS if key in entry]
        if len(named) != 1:
            reader.problem(path, "name exactly one of connector, consumer or connection")
            continue
        (kind,) = named
        target = _target(reader, entry[kind], f"{path}.{kind}", kind)
        starts_at = _moment(reader, entry, "from", path)
        ends_at = _moment(reader, entry, "until", path)
        if target is None or starts_at is None or ends_at is None:
            continue
        if ends_at <= starts_at:
            reader.problem(f"{path}.until", "must be after from")
            continue
        yield MaintenanceSpec(
            scope=_TARGETS[kind],
            target=target,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reader.text(entry, "reason", path, max_length=MAX_TEXT_LENGTH)
            if entry.get("reason") is not None
            else "maintenance",
        )


def _target(reader: Reader, value: object, path: str, kind: str) -> tuple[str, ...] | None:
    """A connector's slug, a consumer's external id, or a connection as {consumer, name}."""
    if kind != "connection":
        if not isinstance(value, str) or not value:
            reader.problem(path, f"expected a {kind} {'slug' if kind == 'connector' else 'id'}")
            return None
        return (value,)
    entry = reader.mapping(value, path, ("consumer", "name"), ())
    if entry is None:
        return None
    consumer, name = reader.text(entry, "consumer", path), reader.text(entry, "name", path)
    return (consumer, name) if consumer and name else None


def _moment(reader: Reader, entry: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """A time with its zone: YAML's own timestamps, or ISO 8601 text."""
    value = entry.get(key)
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None:
        reader.problem(f"{path}.{key}", f"expected a time like 2026-12-24T22:00:00Z, got {value!r}")
        return None
    if moment.tzinfo is None:
        reader.problem(f"{path}.{key}", f"{value!r} has no time zone; add Z or +01:00")
        return None
    return moment


def check_duplicates(reader: Reader, spec: CatalogSpec) -> None:
    seen: dict[str, int] = {}
    for index, webhook in enumerate(spec.webhooks):
        if webhook.url in seen:
            reader.problem(
                f"webhooks[{index}].url",
                f"duplicate webhook URL {webhook.url!r} (first at webhooks[{seen[webhook.url]}])",
            )
        seen.setdefault(webhook.url, index)
