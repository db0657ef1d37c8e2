"""One settings object from `HEALTHGRAPH_*` environment variables and an optional YAML file.

Validated at start-up: a bad value stops the process with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from healthgraph.errors import SettingsError
from store.crypto import KeyRing, KeyRingError, generate_key
from store.engine import async_url, is_sqlite
from store.errors import DatabaseUrlError
from store.outages import OutageRules

log = logging.getLogger(__name__)

PREFIX = "HEALTHGRAPH_"
DEFAULT_DATABASE_URL = "sqlite:///healthgraph.db"

_KEYS = (
    "DATABASE_URL",
    "HOST",
    "PORT",
    "SECRET_KEYS",
    "ALLOW_TARGETS",
    "ANONYMOUS_READ",
    "GRAPHIQL",
    "INTROSPECTION",
    "METRICS_TOKEN",
    "LOG_LEVEL",
    "PUBLIC_URL",
    "WORKER_METRICS_PORT",
    "PROBE_PROCESSES",
    "PROBES_IN_FLIGHT",
    "RUNTIME_TUNING",
    "OUTAGE_MIN_CONNECTIONS",
    "OUTAGE_RATIO",
    "OUTAGE_HOLD_SECONDS",
)
MAX_PROBE_PROCESSES = 64
MAX_PROBES_IN_FLIGHT = 100_000


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    allow_targets: tuple[str, ...] = ()
    anonymous_read: bool = False
    graphiql: bool = True
    introspection: bool = True
    metrics_token: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    public_url: str | None = None
    worker_metrics_port: int = 9464
    # 0: the scheduler probes in its own process; N: in N child processes (probes.pool);
    # None ("auto"): on SQLite as many as the catalog asks for at start-up
    # (healthgraph.probe_cores), on PostgreSQL none (healthgraph.worker).
    probe_processes: int | None = None
    # The scheduler's global budget; None ("auto"): 200 for its own process and 200 more for
    # each probe process (probes.scheduler_config).
    probes_in_flight: int | None = None
    # The interpreter tuning of healthgraph.runtime (collector thresholds, switch interval).
    runtime_tuning: bool = True
    # A connector is in outage when at least this many of its ACTIVE, checked connections
    # exist and at least this share of them fail now for a reason other than AUTH/PERMISSION.
    outage_min_connections: int = 5
    outage_ratio: float = 0.5
    # The longest a connection.failed webhook waits for an outage to show (store.dispatch).
    outage_hold_seconds: float = 60.0

    @property
    def outage_rules(self) -> OutageRules:
        return OutageRules(
            min_connections=self.outage_min_connections,
            ratio=self.outage_ratio,
            hold_seconds=self.outage_hold_seconds,
        )

    @property
    def base_url(self) -> str:
        """Where users reach this server: PUBLIC_URL, or the address it listens on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.database_url)

    def key_file(self) -> Path:
        """Where the embedded default keeps its generated key: beside the SQLite file."""
        database = async_url(self.database_url).database or "healthgraph.db"
        return Path(database).expanduser().resolve().parent / "healthgraph.key"

    def key_ring(self) -> KeyRing:
        """The credential key ring; on embedded SQLite without keys, a generated key file."""
        if self.secret_keys:
            try:
                return KeyRing(self.secret_keys)
            except KeyRingError as exc:
                raise SettingsError(f"{PREFIX}SECRET_KEYS", None, str(exc)) from exc
        if not self.is_sqlite:
            raise SettingsError(
                f"{PREFIX}SECRET_KEYS",
                None,
                "is required with PostgreSQL; generate a key with: python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
            )
        path = self.key_file()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as key_out:
                key_out.write(generate_key() + "\n")
            log.warning(
                "generated a credential key in %s (mode 0600); back it up, or set "
                "HEALTHGRAPH_SECRET_KEYS for anything beyond a trial",
                path,
            )
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        try:
            return KeyRing(keys)
        except KeyRingError as exc:
            raise SettingsError(str(path), None, str(exc)) from exc


def _bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(key, raw, "expected true or false")


def _port(key: str, raw: Any) -> int:
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise SettingsError(key, raw, "expected a port number 1..65535")
    return port


def _count(key: str, raw: Any, maximum: int) -> int:
    try:
        count = int(str(raw).strip())
    except ValueError:
        count = -1
    if not 0 <= count <= maximum:
        raise SettingsError(key, raw, f"expected a whole number 0..{maximum}")
    return count


def _auto_or_count(key: str, raw: Any, minimum: int, maximum: int) -> int | None:
    """None for "auto", else a whole number within [minimum, maximum]."""
    if str(raw).strip().lower() == "auto":
        return None
    try:
        count = _count(key, raw, maximum)
    except SettingsError:
        count = -1
    if count < minimum:
        raise SettingsError(key, raw, f"expected auto or a whole number {minimum}..{maximum}")
    return count


def _number(key: str, raw: Any, low: float, high: float, expected: str) -> float:
    try:
        number = float(str(raw).strip())
    except ValueError:
        number = float("nan")
    if not low <= number <= high:  # NaN fails too
        raise SettingsError(key, raw, f"expected a number {expected}")
    return number


def _list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        return tuple(str(item).strip() for item in raw if str(item).strip())
    return tuple(item.strip() for item in str(raw).split(",") if item.strip())


def _allow_target(key: str, entry: str) -> str:
    try:
        ipaddress.ip_network(entry, strict=False)
        return entry
    except ValueError:
        pass
    label = entry.removeprefix("*.")
    if label and all(part and len(part) < 64 for part in label.split(".")) and " " not in label:
        return entry
    raise SettingsError(key, entry, "expected a CIDR (10.0.0.0/8), an address or a host name")


def _read_file(path_text: str) -> dict[str, Any]:
    key = f"{PREFIX}CONFIG"
    path = Path(path_text)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(key, path_text, f"cannot read the file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(key, path_text, f"not valid YAML ({exc})") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(key, path_text, "must hold a mapping of setting: value")
    values: dict[str, Any] = {}
    for name, value in loaded.items():
        short = str(name).upper().removeprefix(PREFIX)
        if short not in _KEYS:
            raise SettingsError(
                f"{path_text}: {name}",
                None,
                f"unknown setting; expected one of {', '.join(k.lower() for k in _KEYS)}",
            )
        values[short] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the file named by HEALTHGRAPH_CONFIG, then the environment, then overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if env.get(f"{PREFIX}CONFIG"):
        raw.update(_read_file(env[f"{PREFIX}CONFIG"]))
    for short in _KEYS:
        if f"{PREFIX}{short}" in env:
            raw[short] = env[f"{PREFIX}{short}"]
    for name, value in overrides.items():
        if value is not None:
            raw[name.upper()] = value

    values: dict[str, Any] = {}
    if "DATABASE_URL" in raw:
        key, url = f"{PREFIX}DATABASE_URL", str(raw["DATABASE_URL"]).strip()
        try:
            async_url(url)
        except DatabaseUrlError as exc:
            raise SettingsError(key, None, str(exc)) from exc
        values["database_url"] = url
    if "HOST" in raw:
        host = str(raw["HOST"]).strip()
        if not host:
            raise SettingsError(f"{PREFIX}HOST", raw["HOST"], "must not be empty")
        values["host"] = host
    for short, name in (("PORT", "port"), ("WORKER_METRICS_PORT", "worker_metrics_port")):
        if short in raw:
            values[name] = _port(f"{PREFIX}{short}", raw[short])
    if "SECRET_KEYS" in raw:
        values["secret_keys"] = _list(raw["SECRET_KEYS"])
        try:
            KeyRing(values["secret_keys"])
        except KeyRingError as exc:
            raise SettingsError(f"{PREFIX}SECRET_KEYS", None, str(exc)) from exc
    if "ALLOW_TARGETS" in raw:
        key = f"{PREFIX}ALLOW_TARGETS"
        values["allow_targets"] = tuple(_allow_target(key, e) for e in _list(raw["ALLOW_TARGETS"]))
    for short in ("ANONYMOUS_READ", "GRAPHIQL", "INTROSPECTION", "RUNTIME_TUNING"):
        if short in raw:
            values[short.lower()] = _bool(f"{PREFIX}{short}", raw[short])
    if raw.get("METRICS_TOKEN"):
        values["metrics_token"] = str(raw["METRICS_TOKEN"])
    if "LOG_LEVEL" in raw:
        level = str(raw["LOG_LEVEL"]).strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(
                f"{PREFIX}LOG_LEVEL", raw["LOG_LEVEL"], "expected DEBUG, INFO, WARNING or ERROR"
            )
        values["log_level"] = level
    if "PROBE_PROCESSES" in raw:
        values["probe_processes"] = _auto_or_count(
            f"{PREFIX}PROBE_PROCESSES", raw["PROBE_PROCESSES"], 0, MAX_PROBE_PROCESSES
        )
    if "PROBES_IN_FLIGHT" in raw:
        values["probes_in_flight"] = _auto_or_count(
            f"{PREFIX}PROBES_IN_FLIGHT", raw["PROBES_IN_FLIGHT"], 1, MAX_PROBES_IN_FLIGHT
        )
    if "OUTAGE_MIN_CONNECTIONS" in raw:
        values["outage_min_connections"] = _count(
            f"{PREFIX}OUTAGE_MIN_CONNECTIONS", raw["OUTAGE_MIN_CONNECTIONS"], 1_000_000
        )
        if values["outage_min_connections"] < 1:
            raise SettingsError(
                f"{PREFIX}OUTAGE_MIN_CONNECTIONS",
                raw["OUTAGE_MIN_CONNECTIONS"],
                "must be 1 or more",
            )
    if "OUTAGE_RATIO" in raw:
        values["outage_ratio"] = _number(
            f"{PREFIX}OUTAGE_RATIO", raw["OUTAGE_RATIO"], 0.0, 1.0, "more than 0 and at most 1"
        )
        if values["outage_ratio"] <= 0:
            raise SettingsError(
                f"{PREFIX}OUTAGE_RATIO", raw["OUTAGE_RATIO"], "expected more than 0 and at most 1"
            )
    if "OUTAGE_HOLD_SECONDS" in raw:
        values["outage_hold_seconds"] = _number(
            f"{PREFIX}OUTAGE_HOLD_SECONDS", raw["OUTAGE_HOLD_SECONDS"], 0.0, 3600.0, "0..3600"
        )
    if raw.get("PUBLIC_URL"):
        url = str(raw["PUBLIC_URL"]).strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"{PREFIX}PUBLIC_URL", url, "expected an http(s) URL")
        values["public_url"] = url
    return Settings(**values)
