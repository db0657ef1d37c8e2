"""ProbeResult's invariants and Credentials: parsing the stored secret, and never showing it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from probes import PROBES, Credentials, ProbeConfigError, ProbeResult, ProbeTarget
from store.domain import FailureReason, HeartbeatSpec, ProbeKind

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_result_needs_an_aware_utc_time() -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        ProbeResult(True, datetime(2030, 1, 1), 1.0, None, None)
    with pytest.raises(ValueError, match="aware UTC"):
        ProbeResult(
            True, datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2))), 1.0, None, None
        )


def test_a_result_has_a_reason_exactly_when_it_failed() -> None:
    with pytest.raises(ValueError, match="failure_reason"):
        ProbeResult(True, NOW, 1.0, FailureReason.AUTH, None)
    with pytest.raises(ValueError, match="failure_reason"):
        ProbeResult(False, NOW, 1.0, None, "boom")


def test_a_result_error_is_at_most_300_characters() -> None:
    ProbeResult(False, NOW, 1.0, FailureReason.CONNECT, "x" * 300)
    with pytest.raises(ValueError, match="300"):
        ProbeResult(False, NOW, 1.0, FailureReason.CONNECT, "x" * 301)


def test_a_result_is_frozen() -> None:
    result = ProbeResult(True, NOW, 1.0, None, None, http_status=200)
    with pytest.raises(AttributeError):
        result.success = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("secret", "headers", "params"),
    [
        ({"kind": "bearer", "token": "t0k"}, {"Authorization": "Bearer t0k"}, {}),
        (
            {"kind": "basic", "username": "user", "password": "pass"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {},
        ),
        ({"kind": "header", "name": "X-Api-Key", "value": "v"}, {"X-Api-Key": "v"}, {}),
        ({"kind": "query", "name": "api_key", "value": "v"}, {}, {"api_key": "v"}),
    ],
)
def test_credentials_from_each_secret_shape(
    secret: dict[str, str], headers: dict[str, str], params: dict[str, str]
) -> None:
    credentials = Credentials.from_secret(secret)
    assert credentials.kind == secret["kind"]
    assert credentials.headers() == headers
    assert credentials.params() == params


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (
            {"kind": "oauth", "token": "s3cr3t"},
            "stored credentials.kind: must be one of bearer, basic, header, query, oauth2",
        ),
        (
            {"token": "s3cr3t"},
            "stored credentials.kind: must be one of bearer, basic, header, query, oauth2",
        ),
        (
            {"kind": "bearer"},
            "stored credentials.token: bearer credentials need a non-empty string",
        ),
        (
            {"kind": "bearer", "token": ""},
            "stored credentials.token: bearer credentials need a non-empty string",
        ),
        (
            {"kind": "bearer", "token": 12345},
            "stored credentials.token: bearer credentials need a non-empty string",
        ),
        (
            {"kind": "basic", "username": "u"},
            "stored credentials.password: basic credentials need a non-empty string",
        ),
        (
            {"kind": "header", "value": "s3cr3t"},
            "stored credentials.name: header credentials need a non-empty string",
        ),
        (
            {"kind": "query", "name": "k"},
            "stored credentials.value: query credentials need a non-empty string",
        ),
        (
            {"kind": "header", "name": "X-Key", "value": "s3cr3t\r\nX-Evil: 1"},
            "stored credentials.value: must not contain control characters or newlines",
        ),
        (
            {"kind": "header", "name": "X Key", "value": "s3cr3t"},
            "stored credentials.name: is not a valid HTTP header name",
        ),
    ],
)
def test_bad_secrets_are_config_errors_that_never_quote_the_secret(
    secret: dict[str, object], message: str
) -> None:
    with pytest.raises(ProbeConfigError) as caught:
        Credentials.from_secret(secret)
    assert str(caught.value) == message
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ({"kind": "bearer", "token": "s3cr3t"}, "Credentials(kind='bearer', secret=***)"),
        (
            {"kind": "basic", "username": "svc", "password": "s3cr3t"},
            "Credentials(kind='basic', secret=***)",
        ),
        (
            {"kind": "header", "name": "X-Api-Key", "value": "s3cr3t"},
            "Credentials(kind='header', name='X-Api-Key', secret=***)",
        ),
        (
            {"kind": "query", "name": "api_key", "value": "s3cr3t"},
            "Credentials(kind='query', name='api_key', secret=***)",
        ),
    ],
)
def test_credentials_repr_hides_the_secret(secret: dict[str, str], shown: str) -> None:
    credentials = Credentials.from_secret(secret)
    assert repr(credentials) == str(credentials) == f"{credentials!r}" == shown
    target = ProbeTarget(HeartbeatSpec(url="https://api.example.com/"), credentials)
    assert "s3cr3t" not in repr(target)


def test_every_probe_kind_has_a_probe() -> None:
    assert set(PROBES) == set(ProbeKind)
