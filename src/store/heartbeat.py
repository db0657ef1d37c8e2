"""Heartbeat specs: the connector's template, a connection's overrides, and their validation.

Stored as JSON (template on the connector, overrides on the connection) so the catalog can be
written back exactly as it was read; merged into a `HeartbeatSpec` when a probe needs it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import regex

from store.domain import HeartbeatSpec, ProbeKind

HEARTBEAT_FIELDS = (
    "kind",
    "method",
    "url",
    "expected_status",
    "timeout_seconds",
    "body_regex",
    "json_path",
    "json_equals",
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS")
URL_PLACEHOLDERS = ("external_id",)
MAX_TIMEOUT_SECONDS = 60.0
_SCHEMES = {
    ProbeKind.HTTP: ("http", "https"),
    ProbeKind.TCP: ("tcp",),
    ProbeKind.TLS: ("https", "tls"),
}


def heartbeat_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for every invalid field of a template or override; empty when valid.

    Each field is checked on its own, so a partial override is checked too.
    """
    problems: list[tuple[str, str]] = []
    for key in fields:
        if key not in HEARTBEAT_FIELDS:
            problems.append((key, f"unknown key; expected one of {', '.join(HEARTBEAT_FIELDS)}"))
    kind_value = fields.get("kind", ProbeKind.HTTP.value)
    kinds = [k.value for k in ProbeKind]
    if kind_value not in kinds:
        problems.append(("kind", f"{kind_value!r} is not one of {', '.join(kinds)}"))
    if "method" in fields and fields["method"] not in HTTP_METHODS:
        problems.append(("method", f"{fields['method']!r} is not one of {', '.join(HTTP_METHODS)}"))
    if "url" in fields:
        problem = url_problem(fields["url"], ProbeKind(kind_value) if kind_value in kinds else None)
        if problem:
            problems.append(("url", problem))
    if "expected_status" in fields:
        statuses = fields["expected_status"]
        if (
            not isinstance(statuses, list)
            or not statuses
            or not all(type(s) is int and 100 <= s <= 599 for s in statuses)
        ):
            problems.append(
                ("expected_status", "must be a non-empty list of HTTP statuses 100..599")
            )
    if "timeout_seconds" in fields:
        timeout = fields["timeout_seconds"]
        if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            problems.append(
                (
                    "timeout_seconds",
                    f"{timeout!r} is out of range; use a number in (0, {MAX_TIMEOUT_SECONDS:g}]",
                )
            )
    if "body_regex" in fields:
        try:
            # The engine the probe uses (probes.assertions), so what saves is what runs.
            regex.compile(str(fields["body_regex"]))
        except regex.error as exc:
            problems.append(("body_regex", f"not a valid regular expression ({exc})"))
    if "json_path" in fields and not _valid_json_path(fields["json_path"]):
        problems.append(("json_path", "must look like $.field.sub[0] (dots and [index] only)"))
    return problems


def url_problem(url: object, kind: ProbeKind | None) -> str | None:
    """Why `url` cannot be a heartbeat target for `kind`, or None."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(url) if name is not None]
    except ValueError:
        return f"{url!r} has an unbalanced {{ or }}"
    unknown = sorted(set(names) - set(URL_PLACEHOLDERS))
    if unknown:
        return f"{url!r} uses unknown placeholder {{{unknown[0]}}}; only {{external_id}} is allowed"
    parts = urlsplit(url.replace("{external_id}", "x"))
    schemes = _SCHEMES[kind] if kind else ("http", "https", "tcp", "tls")
    if parts.scheme not in schemes:
        return f"{url!r} is not a valid URL; the scheme must be {' or '.join(schemes)}"
    try:
        port = parts.port
    except ValueError:
        return f"{url!r} has an invalid port"
    if not parts.hostname:
        return f"{url!r} is not a valid URL; it has no host"
    if kind in (ProbeKind.TCP, ProbeKind.TLS) and parts.scheme != "https" and port is None:
        return f"{url!r} needs a port"
    return None


_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*$")


def _valid_json_path(path: object) -> bool:
    return isinstance(path, str) and bool(_JSON_PATH.match(path))


def merge(template: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's overrides laid over the connector's template, field by field."""
    return {**template, **override}


def to_spec(fields: Mapping[str, Any], external_id: str) -> HeartbeatSpec:
    """A probe-ready spec; assumes `fields` passed `heartbeat_problems`."""
    url = fields.get("url")
    return HeartbeatSpec(
        kind=ProbeKind(fields.get("kind", ProbeKind.HTTP.value)),
        method=fields.get("method", "GET"),
        url=url.replace("{external_id}", quote(external_id, safe=""))
        if isinstance(url, str)
        else None,
        expected_status=tuple(fields.get("expected_status", (200,))),
        timeout_seconds=float(fields.get("timeout_seconds", 10.0)),
        body_regex=fields.get("body_regex"),
        json_path=fields.get("json_path"),
        json_equals=fields.get("json_equals"),
    )
