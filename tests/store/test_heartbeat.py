"""Heartbeat templates and overrides: every invalid field named, merged field by field."""

from __future__ import annotations

from store.domain import HeartbeatSpec, ProbeKind
from store.heartbeat import heartbeat_problems, merge, to_spec


def test_a_valid_template_has_no_problems() -> None:
    assert (
        heartbeat_problems(
            {
                "kind": "http",
                "method": "GET",
                "url": "https://api.example.com/v3/company/{external_id}/info",
                "expected_status": [200, 204],
                "timeout_seconds": 10,
                "body_regex": "ok",
                "json_path": "$.data[0].status",
                "json_equals": "ok",
            }
        )
        == []
    )
    assert heartbeat_problems({"kind": "tcp", "url": "tcp://db.example.com:5432"}) == []
    assert heartbeat_problems({"kind": "tls", "url": "https://api.example.com"}) == []


def test_every_bad_field_is_named() -> None:
    assert heartbeat_problems(
        {
            "kind": "http",
            "method": "FETCH",
            "url": "ftp://files.example.com",
            "expected_status": [200, 999],
            "timeout_seconds": 0,
            "body_regex": "(",
            "json_path": "data.status",
            "retries": 3,
        }
    ) == [
        (
            "retries",
            "unknown key; expected one of kind, method, url, expected_status, timeout_seconds, body_regex, json_path, json_equals, headers, body, failure_when",
        ),
        ("method", "'FETCH' is not one of GET, HEAD, POST, PUT, PATCH, OPTIONS"),
        ("url", "'ftp://files.example.com' is not a valid URL; the scheme must be http or https"),
        ("expected_status", "must be a non-empty list of HTTP statuses 100..599"),
        ("timeout_seconds", "0 is out of range; use a number in (0, 60]"),
        (
            "body_regex",
            "not a valid regular expression (missing ) at position 1)",
        ),
        ("json_path", "must look like $.field.sub[0] (dots and [index] only)"),
    ]


def test_url_problems() -> None:
    def problem(url: object, kind: str = "http") -> list[tuple[str, str]]:
        return heartbeat_problems({"kind": kind, "url": url})

    assert problem("https://{tenant}.example.com") == [
        (
            "url",
            "'https://{tenant}.example.com' uses unknown placeholder {tenant}; use {external_id} or "
            "{params.NAME} (NAME: lower-case letters, digits and _)",
        )
    ]
    assert problem("https://x.example.com/{") == [
        ("url", "'https://x.example.com/{' has an unbalanced { or }")
    ]
    assert problem("https:///path") == [
        ("url", "'https:///path' is not a valid URL; it has no host")
    ]
    assert problem("https://x.example.com:99999/") == [
        ("url", "'https://x.example.com:99999/' has an invalid port")
    ]
    assert problem("tcp://db.example.com", "tcp") == [
        ("url", "'tcp://db.example.com' needs a port")
    ]
    assert problem(42) == [("url", "must be a non-empty string")]
    assert heartbeat_problems({"kind": "icmp"}) == [("kind", "'icmp' is not one of http, tcp, tls")]


def test_override_merges_over_template_and_substitutes_external_id() -> None:
    template = {
        "kind": "http",
        "url": "https://api.example.com/{external_id}/info",
        "timeout_seconds": 10,
    }
    merged = merge(template, {"timeout_seconds": 3, "expected_status": [200, 204]})
    assert to_spec(merged, "acme corp/1") == HeartbeatSpec(
        kind=ProbeKind.HTTP,
        method="GET",
        url="https://api.example.com/acme%20corp%2F1/info",
        expected_status=(200, 204),
        timeout_seconds=3.0,
    )
