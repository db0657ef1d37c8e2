"""Failure classification, body assertions and redaction, as plain functions."""

from __future__ import annotations

import socket
import ssl
import time

import aiohttp
import pytest

from probes import BlockedAddressError
from probes.assertions import body_problem, json_equal
from probes.classify import classify_exception, classify_status, exception_chain
from probes.redact import Redactor, clip, display_url
from store.domain import FailureReason, HeartbeatSpec


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        (200, (200,), None),
        (204, (200, 204), None),
        (401, (401,), None),
        (401, (200,), FailureReason.AUTH),
        (403, (200,), FailureReason.PERMISSION),
        (429, (200,), FailureReason.RATE_LIMITED),
        (404, (200,), FailureReason.HTTP_STATUS),
        (500, (200,), FailureReason.HTTP_STATUS),
        (200, (204,), FailureReason.HTTP_STATUS),
        (302, (200,), FailureReason.HTTP_STATUS),
    ],
)
def test_status_classification(
    status: int, expected: tuple[int, ...], reason: FailureReason | None
) -> None:
    assert classify_status(status, expected) == reason


def _wrapped(inner: BaseException, *outer: type[BaseException]) -> BaseException:
    """`inner` raised from under each of `outer` in turn, the way libraries chain errors."""
    current = inner
    for kind in outer:
        try:
            raise kind("wrapped") from current
        except BaseException as exc:
            current = exc
    return current


def test_exception_classification_reads_the_root_cause_not_the_wrapper() -> None:
    # aiohttp calls every resolver failure a DNS error; ours also refuses blocked addresses.
    refused = BlockedAddressError("h", "10.0.0.1", "a private address")
    assert classify_exception(_wrapped(refused, aiohttp.ClientError)) == FailureReason.BLOCKED
    assert classify_exception(_wrapped(aiohttp.ServerDisconnectedError(), RuntimeError)) == (
        FailureReason.CONNECT
    )
    assert classify_exception(
        _wrapped(ConnectionRefusedError(111, "x"), aiohttp.ClientOSError)
    ) == (FailureReason.CONNECT)
    assert classify_exception(_wrapped(ConnectionResetError(104, "x"), aiohttp.ClientError)) == (
        FailureReason.CONNECT
    )
    assert classify_exception(_wrapped(socket.gaierror(-2, "x"), aiohttp.ClientOSError)) == (
        FailureReason.DNS
    )
    assert (
        classify_exception(_wrapped(ssl.SSLCertVerificationError(1, "x"), aiohttp.ClientError))
        == FailureReason.TLS
    )
    assert classify_exception(_wrapped(aiohttp.ServerTimeoutError(), aiohttp.ClientError)) == (
        FailureReason.TIMEOUT
    )
    assert classify_exception(TimeoutError()) == FailureReason.TIMEOUT
    assert classify_exception(ValueError("a bug, not the target")) == FailureReason.CONNECT


def test_exception_chain_stops_at_a_cycle() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert list(exception_chain(first)) == [first, second]


def _spec(**fields: object) -> HeartbeatSpec:
    return HeartbeatSpec(url="http://example.com/", **fields)  # type: ignore[arg-type]


def test_a_regex_that_backtracks_for_ever_is_stopped_and_named() -> None:
    started = time.perf_counter()
    problem = body_problem(
        b"a" * 64 + b"!", _spec(body_regex="^(a|aa)+$"), encoding="utf-8", truncated=False
    )
    assert time.perf_counter() - started < 3.0  # unbounded, this runs for hours
    assert problem == (
        "body regex /^(a|aa)+$/ ran longer than 0.1 s and was stopped; "
        "simplify it (nested repetition backtracks)"
    )


@pytest.mark.parametrize(
    ("body", "fields", "problem"),
    [
        (b"all good", {"body_regex": "good"}, None),
        (b"all bad", {"body_regex": "good"}, "body does not match /good/"),
        (b'{"a": {"b": [1, {"c": null}]}}', {"json_path": "$.a.b[1].c"}, None),
        (b'{"a": {"b": [1]}}', {"json_path": "$.a.b[1]"}, "JSON path $.a.b[1] not found"),
        (b'{"a": [1]}', {"json_path": "$.a.b"}, "JSON path $.a.b not found"),
        (b'{"a": 1}', {"json_path": "$.a", "json_equals": 1.0}, None),
        (
            b'{"a": true}',
            {"json_path": "$.a", "json_equals": 1},
            "JSON path $.a is true, expected 1",
        ),
        (b'{"a": [1, 2]}', {"json_path": "$.a", "json_equals": [1, 2]}, None),
        (
            b'{"a": {"x": 1}}',
            {"json_path": "$.a", "json_equals": {"x": True}},
            'JSON path $.a is {"x": 1}, expected {"x": true}',
        ),
        (b"not json", {"json_path": "$.a"}, "body is not valid JSON"),
        (b"[" * 100_000, {"json_path": "$.a"}, "body is not valid JSON"),
        (b'{"a": 1}', {"json_path": "$.a junk"}, "JSON path $.a junk not found"),
    ],
)
def test_body_assertions(body: bytes, fields: dict[str, object], problem: str | None) -> None:
    assert body_problem(body, _spec(**fields), encoding="utf-8", truncated=False) == problem


def test_a_truncated_body_says_so_when_it_fails() -> None:
    assert body_problem(b"xx", _spec(body_regex="y"), encoding="utf-8", truncated=True) == (
        "body does not match /y/ (only the first part of the body was read)"
    )


def test_json_equal_is_json_semantics() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert not json_equal("1", 1)
    assert json_equal(None, None)
    assert not json_equal([1], [1, 2])


def test_redactor_masks_secrets_in_their_encoded_spellings_and_url_parts() -> None:
    redact = Redactor(["p@ss word", ""])
    assert redact("saw p@ss word and p%40ss%20word and p%40ss+word") == "saw *** and *** and ***"
    assert redact("GET https://u:pw@api.example.com/x?token=abc failed") == (
        "GET https://api.example.com/x?*** failed"
    )


def test_clip_makes_one_short_line() -> None:
    assert clip("a\n  b\tc") == "a b c"
    clipped = clip("x" * 500)
    assert len(clipped) == 300
    assert clipped.endswith("…")


def test_display_url_drops_userinfo_query_and_fragment() -> None:
    assert display_url("https://u:p@[::1]:8443/a/b?key=s#frag") == "https://[::1]:8443/a/b"
