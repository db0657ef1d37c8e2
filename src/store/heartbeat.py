"""Heartbeat specs: the connector's template, a connection's overrides, and their validation.

Stored as JSON (template on the connector, overrides on the connection) so the catalog can be
written back exactly as it was read; merged into a `HeartbeatSpec` when a probe needs it, with
the placeholders `{external_id}` (the consumer's id) and `{params.NAME}` (the connection's own
values: a Salesforce instance URL, a Xero tenant id, a Zendesk subdomain) filled in.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import regex

from store.domain import FailureReason, FailureRule, HeartbeatSpec, ProbeKind

HEARTBEAT_FIELDS = (
    "kind",
    "method",
    "url",
    "expected_status",
    "timeout_seconds",
    "body_regex",
    "json_path",
    "json_equals",
    "headers",
    "body",
    "failure_when",
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS")
BODY_METHODS = ("POST", "PUT", "PATCH")
MAX_TIMEOUT_SECONDS = 60.0
MAX_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 1000
MAX_BODY_LENGTH = 64 * 1024
MAX_FAILURE_RULES = 20
FAILURE_RULE_REASONS = (
    FailureReason.AUTH,
    FailureReason.PERMISSION,
    FailureReason.RATE_LIMITED,
    FailureReason.HTTP_STATUS,
    FailureReason.ASSERTION,
)
# The transport's own business, or a secret: neither belongs in a heartbeat template, which is
# shown in the API and written to exports. Secrets go in the connection's credentials.
FORBIDDEN_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_PARAMS = 20
MAX_PARAM_LENGTH = 1000
_SCHEMES = {
    ProbeKind.HTTP: ("http", "https"),
    ProbeKind.TCP: ("tcp",),
    ProbeKind.TLS: ("https", "tls"),
}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"\{(external_id|params\.[a-z][a-z0-9_]*)\}")
_BODY_PARAM = re.compile(r"\{params\.([^{}]*)\}")
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*$")


def heartbeat_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, problem) for every invalid field of a template or override; empty when valid.

    Each field is checked on its own, so a partial override is checked too; `merged_problems`
    checks what only the whole spec can tell (a body needs a method that sends one).
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
    if "expected_status" in fields and not _statuses_valid(fields["expected_status"]):
        problems.append(("expected_status", "must be a non-empty list of HTTP statuses 100..599"))
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
        problem = _regex_problem(fields["body_regex"])
        if problem:
            problems.append(("body_regex", problem))
    if "json_path" in fields and not _valid_json_path(fields["json_path"]):
        problems.append(("json_path", "must look like $.field.sub[0] (dots and [index] only)"))
    if "headers" in fields:
        problems.extend(_header_problems(fields["headers"]))
    if "body" in fields:
        problem = _body_problem(fields["body"])
        if problem:
            problems.append(("body", problem))
    if "failure_when" in fields:
        problems.extend(_failure_rule_problems(fields["failure_when"]))
    return problems


def merged_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`heartbeat_problems` of a whole spec (template and overrides merged), and what only the
    whole can tell."""
    problems = heartbeat_problems(fields)
    if fields.get("body") is not None and fields.get("method", "GET") not in BODY_METHODS:
        problems.append(
            ("body", f"is sent only with {', '.join(BODY_METHODS)}; set method to one of them")
        )
    return problems


def url_problem(url: object, kind: ProbeKind | None) -> str | None:
    """Why `url` cannot be a heartbeat target for `kind`, or None."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    problem = placeholder_problem(url)
    if problem:
        return f"{url!r} {problem}"
    parts = urlsplit(_PLACEHOLDER.sub("x", url))
    schemes = _SCHEMES[kind] if kind else ("http", "https", "tcp", "tls")
    if parts.scheme not in schemes and not url.startswith("{params."):
        return f"{url!r} is not a valid URL; the scheme must be {' or '.join(schemes)}"
    try:
        port = parts.port
    except ValueError:
        return f"{url!r} has an invalid port"
    if not parts.hostname and not url.startswith("{params."):
        return f"{url!r} is not a valid URL; it has no host"
    if kind in (ProbeKind.TCP, ProbeKind.TLS) and parts.scheme != "https" and port is None:
        return f"{url!r} needs a port"
    return None


def placeholder_problem(text: str) -> str | None:
    """Why the placeholders of `text` are wrong (unbalanced, unknown), or None."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return "has an unbalanced { or }"
    for name in names:
        if name != "external_id" and not (
            name.startswith("params.") and PARAM_NAME.match(name.removeprefix("params."))
        ):
            return (
                f"uses unknown placeholder {{{name}}}; use {{external_id}} or "
                "{params.NAME} (NAME: lower-case letters, digits and _)"
            )
    return None


def placeholders(fields: Mapping[str, Any]) -> set[str]:
    """Every param name the spec's URL, headers and body refer to as {params.NAME}."""
    found: set[str] = set()
    for text in _texts(fields):
        found.update(
            name.removeprefix("params.")
            for name in _PLACEHOLDER.findall(text)
            if name.startswith("params.")
        )
    return found


def params_problems(params: object) -> list[tuple[str, str]]:
    """(field, problem) for a connection's params: names and plain one-line values."""
    if not isinstance(params, Mapping):
        return [("params", f"expected a mapping, got {type(params).__name__}")]
    problems: list[tuple[str, str]] = []
    if len(params) > MAX_PARAMS:
        problems.append(("params", f"has {len(params)} entries; use at most {MAX_PARAMS}"))
    for name, value in params.items():
        if not isinstance(name, str) or not PARAM_NAME.match(name):
            problems.append(
                (f"params.{name}", "is not a param name (lower-case letters, digits and _)")
            )
        elif not isinstance(value, str) or not value:
            problems.append((f"params.{name}", "must be a non-empty string"))
        elif len(value) > MAX_PARAM_LENGTH or _CONTROL.search(value):
            problems.append(
                (
                    f"params.{name}",
                    f"must be one line of at most {MAX_PARAM_LENGTH} characters",
                )
            )
    return problems


def _texts(fields: Mapping[str, Any]) -> list[str]:
    texts = [fields["url"]] if isinstance(fields.get("url"), str) else []
    headers = fields.get("headers")
    if isinstance(headers, Mapping):
        texts.extend(value for value in headers.values() if isinstance(value, str))
    body = fields.get("body")
    if isinstance(body, str):
        texts.append(body)
    elif body is not None:
        texts.append(json.dumps(body))
    return texts


def _statuses_valid(statuses: object) -> bool:
    return (
        isinstance(statuses, list)
        and bool(statuses)
        and all(type(s) is int and 100 <= s <= 599 for s in statuses)
    )


def _regex_problem(pattern: object) -> str | None:
    try:
        # The engine the probe uses (probes.assertions), so what saves is what runs.
        regex.compile(str(pattern))
    except regex.error as exc:
        return f"not a valid regular expression ({exc})"
    return None


def _header_problems(headers: object) -> list[tuple[str, str]]:
    if not isinstance(headers, Mapping):
        return [("headers", f"expected a mapping of name: value, got {type(headers).__name__}")]
    if len(headers) > MAX_HEADERS:
        return [("headers", f"has {len(headers)} headers; use at most {MAX_HEADERS}")]
    problems: list[tuple[str, str]] = []
    for name, value in headers.items():
        field = f"headers.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            problems.append((field, "is not a valid HTTP header name"))
        elif name.lower() in FORBIDDEN_HEADERS:
            problems.append(
                (
                    field,
                    "is not allowed in a heartbeat; secrets go in the connection's credentials",
                )
            )
        elif not isinstance(value, str):
            problems.append((field, f"expected a string, got {type(value).__name__}"))
        elif len(value) > MAX_HEADER_VALUE_LENGTH or _CONTROL.search(value):
            problems.append(
                (field, f"must be one line of at most {MAX_HEADER_VALUE_LENGTH} characters")
            )
        elif problem := placeholder_problem(value):
            problems.append((field, problem))
    return problems


def _body_problem(body: object) -> str | None:
    if isinstance(body, str):
        text = body
    elif isinstance(body, Mapping | list):
        try:
            text = json.dumps(body)
        except (TypeError, ValueError):
            return "must be a string, or a mapping sent as JSON"
    else:
        return "must be a string, or a mapping sent as JSON"
    if len(text) > MAX_BODY_LENGTH:
        return f"is {len(text)} characters long; use at most {MAX_BODY_LENGTH}"
    # Bodies are full of braces (JSON, GraphQL): only {params.…} is taken as a placeholder
    # there, and it must be a valid one.
    for name in _BODY_PARAM.findall(text):
        if not PARAM_NAME.match(name):
            return (
                f"uses unknown placeholder {{params.{name}}}; "
                "NAME: lower-case letters, digits and _"
            )
    return None


def _failure_rule_problems(rules: object) -> list[tuple[str, str]]:
    if not isinstance(rules, list):
        return [("failure_when", f"expected a list of rules, got {type(rules).__name__}")]
    if len(rules) > MAX_FAILURE_RULES:
        return [("failure_when", f"has {len(rules)} rules; use at most {MAX_FAILURE_RULES}")]
    problems: list[tuple[str, str]] = []
    reasons = ", ".join(reason.value for reason in FAILURE_RULE_REASONS)
    for index, rule in enumerate(rules):
        where = f"failure_when[{index}]"
        if not isinstance(rule, Mapping):
            problems.append((where, "expected a mapping"))
            continue
        unknown = set(rule) - {"json_path", "equals", "body_regex", "status", "reason"}
        if unknown:
            problems.append(
                (
                    f"{where}.{sorted(unknown)[0]}",
                    "unknown key; expected json_path with equals, or body_regex; status; reason",
                )
            )
        if ("json_path" in rule) == ("body_regex" in rule):
            problems.append((where, "give either json_path (with equals) or body_regex"))
        if "json_path" in rule:
            if not _valid_json_path(rule["json_path"]):
                problems.append(
                    (f"{where}.json_path", "must look like $.field.sub[0] (dots and [index] only)")
                )
            if "equals" not in rule:
                problems.append((f"{where}.equals", "is required with json_path"))
        if "body_regex" in rule and (problem := _regex_problem(rule["body_regex"])):
            problems.append((f"{where}.body_regex", problem))
        if "status" in rule and not _statuses_valid(rule["status"]):
            problems.append((f"{where}.status", "must be a non-empty list of HTTP statuses"))
        if rule.get("reason") not in {reason.value for reason in FAILURE_RULE_REASONS}:
            problems.append((f"{where}.reason", f"must be one of {reasons}"))
    return problems


def _valid_json_path(path: object) -> bool:
    return isinstance(path, str) and bool(_JSON_PATH.match(path))


def filled_problems(
    fields: Mapping[str, Any], external_id: str, params: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(field, problem) of a whole spec once a connection's values fill it in: every param it
    names is given, and the URL it then makes is a valid target."""
    missing = missing_params(fields, params)
    if missing:
        return [
            (
                f"params.{missing[0]}",
                f"is required: the heartbeat uses {{params.{missing[0]}}}",
            )
        ]
    url = fields.get("url")
    if isinstance(url, str):
        kind = fields.get("kind", ProbeKind.HTTP.value)
        problem = url_problem(fill(url, external_id, params, url=True), ProbeKind(kind))
        if problem:
            return [("url", f"{problem} (with the connection's params)")]
    return []


def merge(template: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's overrides laid over the connector's template, field by field."""
    return {**template, **override}


def missing_params(fields: Mapping[str, Any], params: Mapping[str, str]) -> list[str]:
    """The {params.NAME} the merged spec needs that `params` does not give, sorted."""
    return sorted(placeholders(fields) - set(params))


def fill(text: str, external_id: str, params: Mapping[str, str], *, url: bool = False) -> str:
    """`text` with its placeholders filled in. In a URL the consumer's id is percent-encoded
    (it is the product's own id, any characters); params go in as written (a Salesforce
    instance URL is a whole origin), and the URL they make is checked where it is saved."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "external_id":
            return quote(external_id, safe="") if url else external_id
        return params.get(name.removeprefix("params."), match.group(0))

    return _PLACEHOLDER.sub(value, text)


def _filled_body(body: Any, external_id: str, params: Mapping[str, str]) -> Any:
    if isinstance(body, str):
        return fill(body, external_id, params)
    if isinstance(body, Mapping):
        return {key: _filled_body(value, external_id, params) for key, value in body.items()}
    if isinstance(body, list):
        return [_filled_body(item, external_id, params) for item in body]
    return body


def failure_rules(rules: Any) -> tuple[FailureRule, ...]:
    """The `failure_when` rules of a valid spec as records."""
    if not isinstance(rules, list):
        return ()
    return tuple(
        FailureRule(
            reason=FailureReason(rule["reason"]),
            json_path=rule.get("json_path"),
            equals=rule.get("equals"),
            body_regex=rule.get("body_regex"),
            statuses=tuple(rule.get("status", ())),
        )
        for rule in rules
    )


def to_spec(
    fields: Mapping[str, Any], external_id: str, params: Mapping[str, str] | None = None
) -> HeartbeatSpec:
    """A probe-ready spec with its placeholders filled; assumes `fields` passed
    `merged_problems`."""
    values = params or {}
    url = fields.get("url")
    headers = fields.get("headers") or {}
    body = fields.get("body")
    if body is not None:
        body = _filled_body(body, external_id, values)
    return HeartbeatSpec(
        kind=ProbeKind(fields.get("kind", ProbeKind.HTTP.value)),
        method=fields.get("method", "GET"),
        url=fill(url, external_id, values, url=True) if isinstance(url, str) else None,
        expected_status=tuple(fields.get("expected_status", (200,))),
        timeout_seconds=float(fields.get("timeout_seconds", 10.0)),
        body_regex=fields.get("body_regex"),
        json_path=fields.get("json_path"),
        json_equals=fields.get("json_equals"),
        headers=tuple((name, fill(value, external_id, values)) for name, value in headers.items()),
        body=body if body is None or isinstance(body, str) else json.dumps(body),
        body_is_json=body is not None and not isinstance(body, str),
        failure_when=failure_rules(fields.get("failure_when")),
    )
