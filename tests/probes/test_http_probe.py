"""The HTTP probe against real local servers: one test per failure reason, then the details."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes import Credentials, ProbeConfigError, ProbeContext, probe_http, run_probe
from probes.http import MAX_REDIRECTS
from store.domain import FailureReason
from tests.probes.conftest import LOOPBACK, HttpServer, NetworkLog, http_target, outcome

AUTH = FailureReason.AUTH


# --- one test per failure reason -------------------------------------------------------------


async def test_success_is_the_expected_status(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    result = await probe_http(http_target(http_server.url("/echo")), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    assert result.tls_cert_expires_at is None


async def test_401_is_auth(http_server: HttpServer, loopback_context: ProbeContext) -> None:
    result = await probe_http(http_target(http_server.url("/status/401")), loopback_context)
    assert outcome(result) == (False, AUTH, 401, "HTTP 401 Unauthorized; expected 200")


async def test_403_is_permission(http_server: HttpServer, loopback_context: ProbeContext) -> None:
    result = await probe_http(http_target(http_server.url("/status/403")), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.PERMISSION,
        403,
        "HTTP 403 Forbidden; expected 200",
    )


async def test_429_is_rate_limited_and_says_when_to_retry(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    result = await probe_http(http_target(http_server.url("/status/429")), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.RATE_LIMITED,
        429,
        "HTTP 429 Too Many Requests (Retry-After: 30); expected 200",
    )


async def test_500_is_http_status(http_server: HttpServer, loopback_context: ProbeContext) -> None:
    target = http_target(http_server.url("/status/500"), expected_status=(200, 204))
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.HTTP_STATUS,
        500,
        "HTTP 500 Internal Server Error; expected 200, 204",
    )


async def test_a_401_the_user_listed_as_expected_is_success(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/status/401"), expected_status=(401,))
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (True, None, 401, None)


async def test_a_200_the_user_did_not_list_is_http_status(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/echo"), expected_status=(204,))
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.HTTP_STATUS,
        200,
        "HTTP 200 OK; expected 204",
    )


async def test_a_server_that_never_answers_is_timeout(
    silent_port: int, loopback_context: ProbeContext
) -> None:
    target = http_target(f"http://127.0.0.1:{silent_port}/", timeout_seconds=0.5)
    started = time.perf_counter()
    result = await probe_http(target, loopback_context)
    elapsed = time.perf_counter() - started
    assert outcome(result) == (
        False,
        FailureReason.TIMEOUT,
        None,
        f"no complete answer from 127.0.0.1:{silent_port} within 0.5 s",
    )
    # Stopped at its deadline (a silent server would hold it for ever); the upper bound leaves
    # a busy 2-core machine its scheduling delays.
    assert 0.45 <= elapsed < 3.0
    assert 450 <= result.latency_ms < 3000


async def test_a_closed_port_is_connect(closed_port: int, loopback_context: ProbeContext) -> None:
    result = await probe_http(http_target(f"http://127.0.0.1:{closed_port}/"), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.CONNECT,
        None,
        f"connection to 127.0.0.1:{closed_port} failed: Connection refused",
    )


async def test_a_name_that_does_not_resolve_is_dns(
    loopback_context: ProbeContext, network_log: NetworkLog
) -> None:
    result = await probe_http(http_target("http://heartbeat.invalid/health"), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.DNS,
        None,
        "cannot resolve heartbeat.invalid: Name or service not known",
    )
    assert network_log.connects == []


async def test_a_body_that_fails_the_regex_is_assertion(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/echo"), body_regex=r"^healthy$")
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "body does not match /^healthy$/",
    )


async def test_a_json_value_that_differs_is_assertion(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/json"), json_path="$.status.state", json_equals="down")
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        'JSON path $.status.state is "up", expected "down"',
    )


async def test_a_missing_json_path_is_assertion(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/json"), json_path="$.status.checks[5]")
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "JSON path $.status.checks[5] not found",
    )


async def test_a_body_that_is_not_json_is_assertion_when_a_json_path_is_set(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/not-json"), json_path="$.status")
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (False, FailureReason.ASSERTION, 200, "body is not valid JSON")


async def test_body_assertions_that_hold_are_success(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    for spec in (
        {"json_path": "$.status.checks[1]", "json_equals": 2},
        {"json_path": "$.version", "json_equals": 3.0},
        {"json_path": "$.status.state"},  # presence only
        {"body_regex": r'"state":\s*"up"'},
    ):
        result = await probe_http(http_target(http_server.url("/json"), **spec), loopback_context)
        assert outcome(result) == (True, None, 200, None), spec


async def test_json_equals_does_not_confuse_true_with_1(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/json"), json_path="$.status.checks[0]", json_equals=True)
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.ASSERTION,
        200,
        "JSON path $.status.checks[0] is 1, expected true",
    )


# --- body cap and total deadline -------------------------------------------------------------


async def test_a_gigantic_body_is_read_only_up_to_the_cap(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    started = time.perf_counter()
    # Anchored at both ends: it matches only if what was read is all "x", i.e. capped, not failed.
    ok = await probe_http(
        http_target(http_server.url("/huge"), body_regex=r"^x+$"), loopback_context
    )
    no = await probe_http(http_target(http_server.url("/huge"), body_regex="y"), loopback_context)
    assert time.perf_counter() - started < 5.0  # the whole body would take minutes
    assert outcome(ok) == (True, None, 200, None)
    assert outcome(no) == (
        False,
        FailureReason.ASSERTION,
        200,
        "body does not match /y/ (only the first part of the body was read)",
    )


async def test_the_cap_is_the_context_setting(http_server: HttpServer) -> None:
    async with ProbeContext.create(allow=LOOPBACK, body_cap_bytes=10) as context:
        result = await probe_http(
            http_target(http_server.url("/huge"), body_regex=r"^x{10}$"), context
        )
    assert outcome(result) == (True, None, 200, None)


async def test_a_server_that_trickles_bytes_hits_the_total_timeout(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/trickle"), body_regex="never", timeout_seconds=0.5)
    started = time.perf_counter()
    result = await probe_http(target, loopback_context)
    assert time.perf_counter() - started < 3.0  # the trickle lasts ten seconds
    assert outcome(result) == (
        False,
        FailureReason.TIMEOUT,
        None,
        f"no complete answer from 127.0.0.1:{http_server.port} within 0.5 s",
    )


# --- credentials ----------------------------------------------------------------------------


async def test_bearer_credentials_reach_the_server(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "bearer", "token": "tok-123"})
    result = await probe_http(http_target(http_server.url("/echo"), credentials), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    assert http_server.seen[-1].headers["Authorization"] == "Bearer tok-123"


async def test_basic_credentials_reach_the_server(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret(
        {"kind": "basic", "username": "svc", "password": "pa:ss wörd"}
    )
    result = await probe_http(http_target(http_server.url("/echo"), credentials), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    expected = base64.b64encode("svc:pa:ss wörd".encode()).decode()
    assert http_server.seen[-1].headers["Authorization"] == f"Basic {expected}"


async def test_header_credentials_reach_the_server(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "header", "name": "X-Api-Key", "value": "k-1"})
    result = await probe_http(http_target(http_server.url("/echo"), credentials), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    assert http_server.seen[-1].headers["X-Api-Key"] == "k-1"
    assert "Authorization" not in http_server.seen[-1].headers


async def test_query_credentials_reach_the_server_next_to_the_url_query(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "query", "name": "api_key", "value": "q&1="})
    target = http_target(http_server.url("/echo?format=json"), credentials)
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (True, None, 200, None)
    assert http_server.seen[-1].query == {"format": "json", "api_key": "q&1="}
    assert "Authorization" not in http_server.seen[-1].headers


async def test_credentials_belong_to_one_request_not_to_the_shared_client(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "bearer", "token": "only-mine"})
    await probe_http(http_target(http_server.url("/echo"), credentials), loopback_context)
    await probe_http(http_target(http_server.url("/echo")), loopback_context)
    assert [s.headers.get("Authorization") for s in http_server.seen] == [
        "Bearer only-mine",
        None,
    ]


async def test_the_method_is_the_specs(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    for method in ("HEAD", "POST", "OPTIONS"):
        result = await probe_http(
            http_target(http_server.url("/echo"), method=method), loopback_context
        )
        assert outcome(result) == (True, None, 200, None)
    assert [s.method for s in http_server.seen] == ["HEAD", "POST", "OPTIONS"]


@dataclass
class SlowServer:
    url: str
    in_flight: int = 0
    most_at_once: int = 0


@pytest.fixture
async def slow_servers() -> AsyncIterator[tuple[SlowServer, SlowServer]]:
    """Two origins that answer each request after 0.3 s and count requests at once."""
    started: list[tuple[TestServer, SlowServer]] = []
    for _ in range(2):
        state = SlowServer(url="")

        async def slow(request: web.Request, state: SlowServer = state) -> web.Response:
            state.in_flight += 1
            state.most_at_once = max(state.most_at_once, state.in_flight)
            await asyncio.sleep(0.3)
            state.in_flight -= 1
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", slow)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        state.url = f"http://127.0.0.1:{server.port}/"
        started.append((server, state))
    yield started[0][1], started[1][1]
    for server, _ in started:
        await server.close()


# --- pooling without sharing -----------------------------------------------------------------


async def test_two_connections_to_one_host_do_not_share_cookies(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    first = await probe_http(http_target(http_server.url("/cookie")), loopback_context)
    second = await probe_http(http_target(http_server.url("/cookie")), loopback_context)
    assert outcome(first) == outcome(second) == (True, None, 200, None)
    assert [s.headers.get("Cookie") for s in http_server.seen] == [None, None]


async def test_probes_to_one_host_share_a_connection_pool(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    for _ in range(3):
        await probe_http(http_target(http_server.url("/echo")), loopback_context)
    assert len({s.peer_port for s in http_server.seen}) == 1  # one kept-alive connection


async def test_each_origin_is_capped_on_its_own(
    slow_servers: tuple[SlowServer, SlowServer],
) -> None:
    busy, quiet = slow_servers
    async with ProbeContext.create(allow=LOOPBACK, connections_per_origin=2) as context:

        async def probe(server: SlowServer) -> float:
            result = await probe_http(http_target(server.url), context)
            assert outcome(result) == (True, None, 200, None)
            return result.latency_ms

        latencies = await asyncio.gather(*(probe(busy) for _ in range(6)), probe(quiet))
    # Six to the busy origin, two at a time: three rounds of 0.3 s. The quiet origin's probe
    # ran at once beside them: the busy origin's queue is its own.
    assert (busy.most_at_once, quiet.most_at_once) == (2, 1)
    assert latencies[-1] < 550
    assert max(latencies[:-1]) >= 850


# --- redirects -------------------------------------------------------------------------------


async def test_a_redirect_between_allowed_servers_is_followed(
    http_server: HttpServer, other_http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    hop = other_http_server.url("/echo")
    result = await probe_http(http_target(http_server.url(f"/redirect?to={hop}")), loopback_context)
    assert outcome(result) == (True, None, 200, None)
    assert [s.path for s in other_http_server.seen] == ["/echo"]


async def test_a_redirect_to_a_refused_address_is_blocked_before_connecting(
    http_server: HttpServer, http_server_on_127_0_0_2: HttpServer, network_log: NetworkLog
) -> None:
    # 127.0.0.2 runs a healthy server; only the guard can stop the hop from reaching it.
    hop = http_server_on_127_0_0_2.url("/echo")
    async with ProbeContext.create(allow=["127.0.0.1/32"]) as context:
        result = await probe_http(http_target(http_server.url(f"/redirect?to={hop}")), context)
    assert outcome(result) == (
        False,
        FailureReason.BLOCKED,
        None,
        "refused 127.0.0.2 (a loopback address); "
        "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
    )
    assert http_server_on_127_0_0_2.seen == []
    assert "127.0.0.2" not in network_log.connected_hosts()


async def test_a_redirect_to_a_name_that_resolves_to_a_refused_address_is_blocked(
    http_server: HttpServer, other_http_server: HttpServer
) -> None:
    # The first hop is admitted by name; the second is a name only the connect-time resolver
    # sees, and it resolves to loopback, which nothing admits.
    start = f"http://a.svc.localhost:{http_server.port}/redirect"
    hop = f"http://b.localhost:{other_http_server.port}/echo"
    async with ProbeContext.create(allow=["*.svc.localhost"]) as context:
        result = await probe_http(http_target(f"{start}?to={hop}"), context)
    assert outcome(result) == (
        False,
        FailureReason.BLOCKED,
        None,
        "refused b.localhost (it resolves to 127.0.0.1, a loopback address); "
        "if it is a trusted internal target, add it to HEALTHGRAPH_ALLOW_TARGETS",
    )
    assert [s.path for s in http_server.seen] == ["/redirect"]
    assert other_http_server.seen == []


async def test_a_failing_redirect_hop_is_reported_against_the_hop(
    http_server: HttpServer, closed_port: int, loopback_context: ProbeContext
) -> None:
    hop = f"http://127.0.0.1:{closed_port}/gone"
    result = await probe_http(http_target(http_server.url(f"/redirect?to={hop}")), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.CONNECT,
        None,
        f"connection to 127.0.0.1:{closed_port} failed: Connection refused",
    )


async def test_redirects_stop_after_five(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    result = await probe_http(http_target(http_server.url("/redirect-loop")), loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.HTTP_STATUS,
        302,
        "HTTP 302 Found; expected 200 (stopped after 5 redirects)",
    )
    assert len(http_server.seen) == 1 + MAX_REDIRECTS


async def test_a_redirect_the_user_expects_is_the_answer(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/redirect-loop"), expected_status=(302,))
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (True, None, 302, None)
    assert len(http_server.seen) == 1


async def test_a_redirect_to_another_scheme_is_blocked(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    target = http_target(http_server.url("/redirect?to=file:///etc/passwd"))
    result = await probe_http(target, loopback_context)
    assert outcome(result) == (
        False,
        FailureReason.BLOCKED,
        None,
        "redirect to a file: URL refused; only http and https are followed",
    )


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    http_server: HttpServer, other_http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    hop = other_http_server.url("/echo")
    for secret in (
        {"kind": "header", "name": "X-Api-Key", "value": "k-1"},
        {"kind": "bearer", "token": "tok-1"},
    ):
        target = http_target(
            http_server.url(f"/redirect?to={hop}"), Credentials.from_secret(secret)
        )
        assert outcome(await probe_http(target, loopback_context)) == (True, None, 200, None)
    assert [s.headers.get("X-Api-Key") for s in http_server.seen] == ["k-1", None]
    assert [s.headers.get("Authorization") for s in http_server.seen] == [None, "Bearer tok-1"]
    assert [
        (s.headers.get("X-Api-Key"), s.headers.get("Authorization")) for s in other_http_server.seen
    ] == [(None, None), (None, None)]


async def test_credentials_follow_a_redirect_within_the_origin(
    http_server: HttpServer, loopback_context: ProbeContext
) -> None:
    credentials = Credentials.from_secret({"kind": "header", "name": "X-Api-Key", "value": "k-1"})
    target = http_target(http_server.url("/redirect?to=/echo"), credentials)
    assert outcome(await probe_http(target, loopback_context)) == (True, None, 200, None)
    assert [(s.path, s.headers.get("X-Api-Key")) for s in http_server.seen] == [
        ("/redirect", "k-1"),
        ("/echo", "k-1"),
    ]


# --- configuration errors are not results -----------------------------------------------------


async def test_a_spec_without_url_is_a_config_error(loopback_context: ProbeContext) -> None:
    with pytest.raises(ProbeConfigError):
        await run_probe(http_target(""), loopback_context)


async def test_a_tcp_url_for_an_http_probe_is_a_config_error(
    loopback_context: ProbeContext,
) -> None:
    with pytest.raises(ProbeConfigError) as caught:
        await probe_http(http_target("tcp://127.0.0.1:5432"), loopback_context)
    assert str(caught.value) == (
        "tcp://127.0.0.1:5432 is not a valid target; the scheme must be http or https"
    )
