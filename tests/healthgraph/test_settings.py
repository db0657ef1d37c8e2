"""Settings: environment and file, and a bad value named by its key."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from healthgraph.errors import SettingsError
from healthgraph.settings import Settings, load_settings
from store.crypto import generate_key


def test_defaults() -> None:
    assert load_settings({}) == Settings(
        database_url="sqlite:///healthgraph.db",
        host="127.0.0.1",
        port=8000,
        secret_keys=(),
        allow_targets=(),
        anonymous_read=False,
        graphiql=True,
        introspection=True,
        metrics_token=None,
        log_level="INFO",
        public_url=None,
        worker_metrics_port=9464,
        probe_processes=None,
        probes_in_flight=None,
        runtime_tuning=True,
    )


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("0", False), ("yes", True)])
def test_runtime_tuning_can_be_turned_off(raw: str, expected: bool) -> None:
    assert load_settings({"HEALTHGRAPH_RUNTIME_TUNING": raw}).runtime_tuning is expected


def test_a_bad_runtime_tuning_value_is_named() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"HEALTHGRAPH_RUNTIME_TUNING": "sometimes"})
    assert str(caught.value) == (
        "HEALTHGRAPH_RUNTIME_TUNING: expected true or false (got 'sometimes')"
    )


def test_probe_processes_from_the_environment() -> None:
    assert load_settings({"HEALTHGRAPH_PROBE_PROCESSES": " 2 "}).probe_processes == 2
    assert load_settings({"HEALTHGRAPH_PROBE_PROCESSES": "0"}).probe_processes == 0
    assert load_settings({"HEALTHGRAPH_PROBE_PROCESSES": "Auto"}).probe_processes is None
    assert load_settings({}).probe_processes is None


def test_probes_in_flight_from_the_environment() -> None:
    assert load_settings({"HEALTHGRAPH_PROBES_IN_FLIGHT": " 500 "}).probes_in_flight == 500
    assert load_settings({"HEALTHGRAPH_PROBES_IN_FLIGHT": "AUTO"}).probes_in_flight is None
    assert load_settings({}).probes_in_flight is None


def test_environment_file_and_overrides_in_that_order(tmp_path: Path) -> None:
    config = tmp_path / "healthgraph.yaml"
    config.write_text(
        "database_url: postgresql://hg@db/hg\nport: 9000\nHEALTHGRAPH_GRAPHIQL: false\n"
        "allow_targets: [10.0.0.0/8, '*.internal.example']\n"
    )
    settings = load_settings(
        {
            "HEALTHGRAPH_CONFIG": str(config),
            "HEALTHGRAPH_PORT": "9100",
            "HEALTHGRAPH_ANONYMOUS_READ": "yes",
        },
        port=9200,
    )
    assert settings.database_url == "postgresql://hg@db/hg"
    assert settings.port == 9200
    assert settings.graphiql is False
    assert settings.anonymous_read is True
    assert settings.allow_targets == ("10.0.0.0/8", "*.internal.example")
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"HEALTHGRAPH_PORT": "eighty"},
            "HEALTHGRAPH_PORT: expected a port number 1..65535 (got 'eighty')",
        ),
        (
            {"HEALTHGRAPH_PORT": "70000"},
            "HEALTHGRAPH_PORT: expected a port number 1..65535 (got '70000')",
        ),
        (
            {"HEALTHGRAPH_DATABASE_URL": "mysql://db/hg"},
            "HEALTHGRAPH_DATABASE_URL: database URL 'mysql://db/hg': unsupported database 'mysql'; "
            "use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname",
        ),
        (
            {"HEALTHGRAPH_ANONYMOUS_READ": "maybe"},
            "HEALTHGRAPH_ANONYMOUS_READ: expected true or false (got 'maybe')",
        ),
        ({"HEALTHGRAPH_GRAPHIQL": "2"}, "HEALTHGRAPH_GRAPHIQL: expected true or false (got '2')"),
        (
            {"HEALTHGRAPH_ALLOW_TARGETS": "10.0.0.0/8, not a host"},
            "HEALTHGRAPH_ALLOW_TARGETS: expected a CIDR (10.0.0.0/8), an address or a host name (got 'not a host')",
        ),
        (
            {"HEALTHGRAPH_SECRET_KEYS": "hunter2"},
            "HEALTHGRAPH_SECRET_KEYS: key 1 of the ring is not a Fernet key (32 url-safe base64 bytes)",
        ),
        ({"HEALTHGRAPH_HOST": " "}, "HEALTHGRAPH_HOST: must not be empty (got ' ')"),
        (
            {"HEALTHGRAPH_LOG_LEVEL": "chatty"},
            "HEALTHGRAPH_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR (got 'chatty')",
        ),
        (
            {"HEALTHGRAPH_WORKER_METRICS_PORT": "0"},
            "HEALTHGRAPH_WORKER_METRICS_PORT: expected a port number 1..65535 (got '0')",
        ),
        (
            {"HEALTHGRAPH_PROBE_PROCESSES": "two"},
            "HEALTHGRAPH_PROBE_PROCESSES: expected auto or a whole number 0..64 (got 'two')",
        ),
        (
            {"HEALTHGRAPH_PROBE_PROCESSES": "-1"},
            "HEALTHGRAPH_PROBE_PROCESSES: expected auto or a whole number 0..64 (got '-1')",
        ),
        (
            {"HEALTHGRAPH_PROBES_IN_FLIGHT": "0"},
            "HEALTHGRAPH_PROBES_IN_FLIGHT: expected auto or a whole number 1..100000 (got '0')",
        ),
        (
            {"HEALTHGRAPH_PROBES_IN_FLIGHT": "lots"},
            "HEALTHGRAPH_PROBES_IN_FLIGHT: expected auto or a whole number 1..100000 (got 'lots')",
        ),
        (
            {"HEALTHGRAPH_PROBES_IN_FLIGHT": "100001"},
            "HEALTHGRAPH_PROBES_IN_FLIGHT: expected auto or a whole number 1..100000 "
            "(got '100001')",
        ),
        (
            {"HEALTHGRAPH_PUBLIC_URL": "ftp://hg.example"},
            "HEALTHGRAPH_PUBLIC_URL: expected an http(s) URL (got 'ftp://hg.example')",
        ),
        (
            {"HEALTHGRAPH_CONFIG": "/nonexistent/healthgraph.yaml"},
            "HEALTHGRAPH_CONFIG: cannot read the file (No such file or directory) (got '/nonexistent/healthgraph.yaml')",
        ),
    ],
)
def test_a_bad_value_is_named_by_its_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert str(caught.value) == message
    assert "hunter2" not in str(caught.value)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "healthgraph.yaml"
    config.write_text("colour: blue\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({"HEALTHGRAPH_CONFIG": str(config)})
    assert str(caught.value) == (
        f"{config}: colour: unknown setting; expected one of database_url, host, port, secret_keys, "
        "allow_targets, anonymous_read, graphiql, introspection, metrics_token, log_level, public_url, worker_metrics_port, "
        "probe_processes, probes_in_flight, runtime_tuning, outage_min_connections, outage_ratio, "
        "outage_hold_seconds"
    )
    config.write_text("[not, a, mapping]\n")
    with pytest.raises(SettingsError, match="must hold a mapping of setting: value"):
        load_settings({"HEALTHGRAPH_CONFIG": str(config)})


def test_embedded_key_file_is_generated_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings({"HEALTHGRAPH_DATABASE_URL": f"sqlite:///{tmp_path}/hg.db"})
    with caplog.at_level(logging.WARNING):
        ring = settings.key_ring()
    key_file = tmp_path / "healthgraph.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [r.getMessage() for r in caplog.records] == [
        f"generated a credential key in {key_file} (mode 0600); back it up, or set "
        "HEALTHGRAPH_SECRET_KEYS for anything beyond a trial"
    ]
    ciphertext = ring.encrypt({"token": "x"})
    assert settings.key_ring().decrypt(ciphertext) == {"token": "x"}
    assert len(caplog.records) == 1


def test_postgresql_needs_explicit_keys() -> None:
    with pytest.raises(
        SettingsError, match=r"^HEALTHGRAPH_SECRET_KEYS: is required with PostgreSQL"
    ):
        load_settings({"HEALTHGRAPH_DATABASE_URL": "postgresql://db/hg"}).key_ring()
    key = generate_key()
    settings = load_settings(
        {
            "HEALTHGRAPH_DATABASE_URL": "postgresql://db/hg",
            "HEALTHGRAPH_SECRET_KEYS": f"{key}, {generate_key()}",
        }
    )
    assert settings.secret_keys[0] == key
    assert key not in repr(settings)
