"""Credentials never show: not in a result's error, not in any repr, whatever failed."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from probes import Credentials, ProbeContext, ProbeResult, ProbeTarget, probe_http
from store.domain import FailureReason
from tests.probes.conftest import CANARY, LOOPBACK, HttpServer, http_target

SECRETS = [
    {"kind": "bearer", "token": CANARY},
    {"kind": "basic", "username": "svc", "password": CANARY},
    {"kind": "header", "name": "X-Api-Key", "value": CANARY},
    {"kind": "query", "name": "api_key", "value": CANARY},
]
BASIC_CANARY = base64.b64encode(f"svc:{CANARY}".encode()).decode()


def assert_clean(result: ProbeResult) -> None:
    for text in (result.error or "", repr(result), str(result)):
        assert CANARY not in text
        assert BASIC_CANARY not in text
    assert result.error is not None
    assert 0 < len(result.error) <= 300
    assert "\n" not in result.error


Scenario = Callable[[HttpServer, int, int], tuple[str, dict[str, object]]]

SCENARIOS: dict[str, tuple[FailureReason, Scenario]] = {
    "auth": (FailureReason.AUTH, lambda s, closed, silent: (s.url("/status/401"), {})),
    "http_status": (FailureReason.HTTP_STATUS, lambda s, c, q: (s.url("/status/503"), {})),
    "connect": (FailureReason.CONNECT, lambda s, closed, q: (f"http://127.0.0.1:{closed}/", {})),
    "timeout": (
        FailureReason.TIMEOUT,
        lambda s, c, silent: (f"http://127.0.0.1:{silent}/", {"timeout_seconds": 0.3}),
    ),
    "dns": (FailureReason.DNS, lambda s, c, q: ("http://api.invalid/v1", {})),
    "blocked_redirect": (
        FailureReason.BLOCKED,
        lambda s, c, q: (s.url("/redirect?to=http://10.0.0.1/"), {}),
    ),
    # The server echoes the Authorization header into the JSON the assertion quotes.
    "assertion_echo": (
        FailureReason.ASSERTION,
        lambda s, c, q: (s.url("/echo-auth-json"), {"json_path": "$.seen", "json_equals": "x"}),
    ),
}


@pytest.mark.parametrize("secret", SECRETS, ids=[s["kind"] for s in SECRETS])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_canary_secret_never_appears_in_a_failure(
    secret: dict[str, str],
    scenario: str,
    http_server: HttpServer,
    closed_port: int,
    silent_port: int,
    loopback_context: ProbeContext,
) -> None:
    reason, build = SCENARIOS[scenario]
    url, spec = build(http_server, closed_port, silent_port)
    target = http_target(url, Credentials.from_secret(secret), **spec)
    result = await probe_http(target, loopback_context)
    assert result.failure_reason == reason
    assert_clean(result)
    assert CANARY not in repr(target)


async def test_userinfo_and_query_secrets_in_the_url_never_appear(
    http_server: HttpServer, closed_port: int, loopback_context: ProbeContext
) -> None:
    for base in (http_server.url("/status/401"), f"http://127.0.0.1:{closed_port}/x"):
        url = base.replace("http://", f"http://svc:{CANARY}@") + f"?token={CANARY}"
        result = await probe_http(http_target(url), loopback_context)
        assert result.failure_reason in (FailureReason.AUTH, FailureReason.CONNECT)
        assert_clean(result)


async def test_a_masked_echo_still_says_what_failed(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "bearer", "token": CANARY})
    target = http_target(
        http_server.url("/echo-auth-json"), credentials, json_path="$.seen", json_equals="x"
    )
    result = await probe_http(target, loopback_context)
    assert result.error == 'JSON path $.seen is "Bearer ***", expected "x"'


async def test_blocked_results_name_the_host_not_the_url_secrets(
    http_server: HttpServer,
) -> None:
    async with ProbeContext.create(allow=LOOPBACK) as context:
        target = ProbeTarget(
            http_target(f"http://svc:{CANARY}@10.0.0.1/?key={CANARY}").spec,
            Credentials.from_secret({"kind": "bearer", "token": CANARY}),
        )
        result = await probe_http(target, context)
    assert result.failure_reason == FailureReason.BLOCKED
    assert_clean(result)
