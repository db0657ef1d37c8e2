"""Heartbeat templates and overrides: every invalid field named, merged field by field."""

from __future__ import annotations

from store.domain import HeartbeatSpec, ProbeKind
from store.heartbeat import (
    filled_problems,
    heartbeat_problems,
    merge,
    merged_problems,
    params_problems,
    to_spec,
)


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


# --- headers, body, failure_when, params ----------------------------------------------------


def test_request_shape_problems_are_named() -> None:
    assert heartbeat_problems(
        {
            "headers": {"Authorization": "Bearer x", "Bad Name": "v", "X-Ok": "a\nb", "X-N": 3},
            "body": 12,
            "failure_when": [
                {"json_path": "$.ok", "reason": "AUTH"},
                {"body_regex": "(", "reason": "SOMETHING"},
                {"json_path": "$.a", "body_regex": "b", "equals": 1, "reason": "AUTH", "x": 1},
                "not a rule",
            ],
        }
    ) == [
        (
            "headers.Authorization",
            "is not allowed in a heartbeat; secrets go in the connection's credentials",
        ),
        ("headers.Bad Name", "is not a valid HTTP header name"),
        ("headers.X-Ok", "must be one line of at most 1000 characters"),
        ("headers.X-N", "expected a string, got int"),
        ("body", "must be a string, or a mapping sent as JSON"),
        ("failure_when[0].equals", "is required with json_path"),
        (
            "failure_when[1].body_regex",
            "not a valid regular expression (missing ) at position 1)",
        ),
        (
            "failure_when[1].reason",
            "must be one of AUTH, PERMISSION, RATE_LIMITED, HTTP_STATUS, ASSERTION",
        ),
        (
            "failure_when[2].x",
            "unknown key; expected json_path with equals, or body_regex; status; reason",
        ),
        ("failure_when[2]", "give either json_path (with equals) or body_regex"),
        ("failure_when[3]", "expected a mapping"),
    ]


def test_a_body_needs_a_method_that_sends_one() -> None:
    assert merged_problems({"url": "https://x.example/", "body": "ping"}) == [
        ("body", "is sent only with POST, PUT, PATCH; set method to one of them")
    ]
    assert merged_problems({"url": "https://x.example/", "method": "POST", "body": "ping"}) == []


def test_braces_in_a_body_are_text_but_params_must_be_valid() -> None:
    graphql = {
        "method": "POST",
        "url": "https://x.example/",
        "body": {"query": "{ viewer { id } }"},
    }
    assert merged_problems(graphql) == []
    assert heartbeat_problems({"body": "{params.Tenant}"}) == [
        ("body", "uses unknown placeholder {params.Tenant}; NAME: lower-case letters, digits and _")
    ]


def test_params_fill_the_url_headers_and_body_and_each_is_checked() -> None:
    fields = {
        "url": "{params.instance_url}/services/data/{external_id}",
        "headers": {"X-Tenant": "{params.tenant}"},
    }
    assert params_problems({"Tenant": "x", "ok": "", "fine": "a\nb"}) == [
        ("params.Tenant", "is not a param name (lower-case letters, digits and _)"),
        ("params.ok", "must be a non-empty string"),
        ("params.fine", "must be one line of at most 1000 characters"),
    ]
    assert filled_problems(fields, "acme", {"tenant": "t"}) == [
        ("params.instance_url", "is required: the heartbeat uses {params.instance_url}")
    ]
    assert filled_problems(fields, "acme", {"tenant": "t", "instance_url": "not a url"}) == [
        (
            "url",
            "'not a url/services/data/acme' is not a valid URL; the scheme must be http or "
            "https (with the connection's params)",
        )
    ]
    params = {"tenant": "t-1", "instance_url": "https://acme.my.salesforce.com"}
    assert filled_problems(fields, "acme eu", params) == []
    spec = to_spec(fields, "acme eu", params)
    assert (spec.url, spec.headers) == (
        "https://acme.my.salesforce.com/services/data/acme%20eu",
        (("X-Tenant", "t-1"),),
    )
