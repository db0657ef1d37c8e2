"""The heartbeat request's shape: headers, a body, the connection's params filled in, and
`failure_when` rules for APIs that answer 200 on error."""

from __future__ import annotations

import pytest

from probes import Credentials, ProbeContext, ProbeTarget
from probes.http import probe_http
from store.credentials import CredentialKind
from store.domain import FailureReason
from store.heartbeat import to_spec
from tests.probes.conftest import HttpServer, outcome

SLACK_RULES = [
    {"json_path": "$.error", "equals": "invalid_auth", "reason": "AUTH"},
    {"json_path": "$.error", "equals": "missing_scope", "reason": "PERMISSION"},
    {"json_path": "$.ok", "equals": False, "reason": "ASSERTION"},
]


async def test_headers_and_a_json_body_go_out_with_the_params_filled_in(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    fields = {
        "method": "POST",
        "url": http_server.url("/echo-body?tenant={params.tenant_id}"),
        "headers": {"xero-tenant-id": "{params.tenant_id}", "X-Consumer": "{external_id}"},
        "body": {"query": "{ viewer { id } }", "tenant": "{params.tenant_id}"},
        "json_path": "$.content_type",
        "json_equals": "application/json",
    }
    spec = to_spec(fields, "acme/eu", {"tenant_id": "t-42"})
    credentials = Credentials(CredentialKind.BEARER, token="s3cr3t")
    result = await probe_http(ProbeTarget(spec, credentials), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    (seen,) = http_server.seen
    assert (seen.method, seen.query) == ("POST", {"tenant": "t-42"})
    assert seen.headers["xero-tenant-id"] == "t-42"
    assert seen.headers["X-Consumer"] == "acme/eu"  # as written: only the URL is encoded
    assert seen.headers["Authorization"] == "Bearer s3cr3t"


async def test_a_string_body_is_sent_as_it_is(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    spec = to_spec(
        {
            "method": "PUT",
            "url": http_server.url("/echo-body"),
            "headers": {"Content-Type": "text/plain"},
            "body": "ping {params.who}",
            "json_path": "$.body",
            "json_equals": "ping me",
        },
        "acme",
        {"who": "me"},
    )
    assert outcome(await probe_http(ProbeTarget(spec), loopback_context)) == (
        True,
        None,
        200,
        None,
    )


@pytest.mark.parametrize(
    ("query", "reason", "error"),
    [
        ("", None, None),
        (
            "?error=invalid_auth",
            FailureReason.AUTH,
            'HTTP 200: $.error is "invalid_auth" (failure_when rule 1)',
        ),
        (
            "?error=missing_scope",
            FailureReason.PERMISSION,
            'HTTP 200: $.error is "missing_scope" (failure_when rule 2)',
        ),
        (
            "?error=fatal_error",
            FailureReason.ASSERTION,
            "HTTP 200: $.ok is false (failure_when rule 3)",
        ),
    ],
)
async def test_failure_when_reads_a_200_that_means_failure(
    http_server: HttpServer,
    loopback_context: ProbeContext,
    query: str,
    reason: FailureReason | None,
    error: str | None,
) -> None:
    spec = to_spec({"url": http_server.url(f"/slack{query}"), "failure_when": SLACK_RULES}, "x")
    result = await probe_http(ProbeTarget(spec), loopback_context)
    assert outcome(result) == (reason is None, reason, 200, error)


async def test_a_rule_under_some_statuses_leaves_the_others_to_the_status(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    rules = [{"body_regex": "status 400", "status": [400], "reason": "AUTH"}]
    spec = to_spec({"url": http_server.url("/status/400"), "failure_when": rules}, "x")
    assert outcome(await probe_http(ProbeTarget(spec), loopback_context)) == (
        False,
        FailureReason.AUTH,
        400,
        "HTTP 400: body matches /status 400/ (failure_when rule 1)",
    )
    other = to_spec({"url": http_server.url("/status/404"), "failure_when": rules}, "x")
    assert outcome(await probe_http(ProbeTarget(other), loopback_context)) == (
        False,
        FailureReason.HTTP_STATUS,
        404,
        "HTTP 404 Not Found; expected 200",
    )


async def test_a_redirect_elsewhere_keeps_the_headers_but_not_the_credentials(
    http_server: HttpServer, other_http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = other_http_server.url("/echo")
    spec = to_spec(
        {
            "url": http_server.url(f"/redirect?to={target}"),
            "headers": {"Accept": "application/json"},
        },
        "x",
    )
    credentials = Credentials(CredentialKind.HEADER, name="X-Api-Key", value="s3cr3t")
    result = await probe_http(ProbeTarget(spec, credentials), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    (hop,) = other_http_server.seen
    assert hop.headers["Accept"] == "application/json"
    assert "X-Api-Key" not in hop.headers
