"""Body assertions: a regular expression, or a JSON path with an optional expected value."""

from __future__ import annotations

import json
import re
from typing import Any

import regex

from store.domain import FailureRule, HeartbeatSpec

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*")
_MISSING = object()
# A heartbeat's regex over a 64 KiB body takes microseconds; one that backtracks
# catastrophically ((a+)+$) would hold the event loop, and every other probe, for ever.
REGEX_SECONDS = 0.1


def body_problem(body: bytes, spec: HeartbeatSpec, *, encoding: str, truncated: bool) -> str | None:
    """Why `body` fails the spec's assertions, or None. `truncated`: only a prefix was read."""
    note = " (only the first part of the body was read)" if truncated else ""
    if spec.body_regex is not None:
        text = body.decode(encoding, errors="replace")
        try:
            found = regex.search(spec.body_regex, text, timeout=REGEX_SECONDS)
        except TimeoutError:
            return (
                f"body regex /{_short(spec.body_regex)}/ ran longer than {REGEX_SECONDS:g} s "
                "and was stopped; simplify it (nested repetition backtracks)"
            )
        if not found:
            return f"body does not match /{_short(spec.body_regex)}/{note}"
    if spec.json_path is not None:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # a hostile body can nest past the stack
            return f"body is not valid JSON{note}"
        value = json_path_value(document, spec.json_path)
        if value is _MISSING:
            return f"JSON path {spec.json_path} not found"
        # json_equals None means "the path must exist"; HeartbeatSpec cannot tell null apart.
        if spec.json_equals is not None and not json_equal(value, spec.json_equals):
            return (
                f"JSON path {spec.json_path} is {_short(json.dumps(value, default=str))}, "
                f"expected {_short(json.dumps(spec.json_equals, default=str))}"
            )
    return None


def failed_rule(
    body: bytes, rules: tuple[FailureRule, ...], status: int, *, encoding: str
) -> tuple[FailureRule, str] | None:
    """The first `failure_when` rule the answer meets, with a message saying why; None if
    none does. A body that is not JSON meets no json_path rule."""
    document: Any = _MISSING
    for index, rule in enumerate(rules):
        if rule.statuses and status not in rule.statuses:
            continue
        if rule.json_path is not None:
            if document is _MISSING:
                try:
                    document = json.loads(body)
                except (ValueError, RecursionError):
                    document = _NOT_JSON
            if document is _NOT_JSON:
                continue
            value = json_path_value(document, rule.json_path)
            if value is not _MISSING and json_equal(value, rule.equals):
                shown = _short(json.dumps(value, default=str))
                return rule, f"{rule.json_path} is {shown} (failure_when rule {index + 1})"
        elif rule.body_regex is not None:
            text = body.decode(encoding, errors="replace")
            try:
                found = regex.search(rule.body_regex, text, timeout=REGEX_SECONDS)
            except TimeoutError:
                found = None
            if found:
                return rule, (
                    f"body matches /{_short(rule.body_regex)}/ (failure_when rule {index + 1})"
                )
    return None


_NOT_JSON = object()


def json_path_value(document: Any, path: str) -> Any:
    """The value at `path` ($.a.b[0]: dots and [index] only), or a private MISSING marker."""
    if not _PATH.fullmatch(path):
        return _MISSING
    value = document
    for step in _STEP.finditer(path, 1):
        key, index = step.group(1), step.group(2)
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                return _MISSING
            value = value[position]
    return value


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, containers compare member by member."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
