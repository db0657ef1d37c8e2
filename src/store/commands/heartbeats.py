"""The checks a heartbeat goes through when it is saved: valid fields, a URL to probe once the
connection's values fill it in, and a target the outbound policy admits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.domain import Direction
from store.errors import ValidationError
from store.heartbeat import (
    filled_problems,
    heartbeat_problems,
    merge,
    merged_problems,
    params_problems,
    to_spec,
)
from store.outbound import OutboundPolicy, check_targets
from store.validation import mapping

NO_URL = "is required for an outbound connection"


def template(value: object) -> dict[str, Any]:
    """A connector's heartbeat template: every field valid on its own (the URL may come later)."""
    fields = mapping("heartbeat", value)
    problems = heartbeat_problems(fields)
    if problems:
        field, problem = problems[0]
        raise ValidationError(f"heartbeat.{field}", fields.get(field), problem)
    return fields


def params(value: object) -> dict[str, str]:
    """A connection's params (the values its heartbeat's {params.NAME} placeholders take)."""
    problems = params_problems(value)
    if problems:
        field, problem = problems[0]
        raise ValidationError(field, value, problem)
    assert isinstance(value, Mapping)
    return dict(value)


def probe_problem(
    connector_template: Mapping[str, Any],
    override: Mapping[str, Any],
    external_id: str,
    values: Mapping[str, str],
) -> tuple[str, str] | None:
    """(field, problem) of the first reason an outbound connection cannot be probed, or None.

    Checks the merged spec filled with the connection's values, not the parts: an override URL
    must suit the template's kind, a template's {params.NAME} must have its value.
    """
    merged = merge(connector_template, override)
    problems = merged_problems(merged)
    if problems:
        return problems[0]
    if not merged.get("url"):
        return "url", NO_URL
    filled = filled_problems(merged, external_id, values)
    return filled[0] if filled else None


def connection_heartbeat(
    direction: Direction,
    connector_slug: str,
    connector_template: Mapping[str, Any],
    override: Mapping[str, Any],
    external_id: str,
    values: Mapping[str, str],
) -> None:
    """Refuse an override an inbound connection cannot have or an outbound one cannot probe."""
    if direction == Direction.INBOUND:
        if override:
            raise ValidationError(
                "heartbeat", override, "inbound connections are not probed; remove it"
            )
        return
    found = probe_problem(connector_template, override, external_id, values)
    if found:
        field, problem = found
        if problem == NO_URL:
            problem += f" (connector {connector_slug!r} has no URL template)"
        qualified = field if field.startswith("params.") else f"heartbeat.{field}"
        raise ValidationError(qualified, override.get(field), problem)


async def check_template_target(outbound: OutboundPolicy, fields: Mapping[str, Any]) -> None:
    """A template's URL, where its host is already known, must be one the policy admits."""
    url = fields.get("url")
    if isinstance(url, str):
        await check_targets(outbound, [("heartbeat.url", url)])


async def check_connection_targets(
    outbound: OutboundPolicy,
    connections: list[tuple[str, Mapping[str, Any], Mapping[str, Any], str, Mapping[str, str]]],
) -> None:
    """Each (field, template, override, consumer external id, params) of an outbound
    connection: the URL it will be probed at must be one the policy admits."""
    targets = []
    for field, connector_template, override, external_id, values in connections:
        url = to_spec(merge(connector_template, override), external_id, values).url
        if url:
            targets.append((field, url))
    await check_targets(outbound, targets)
