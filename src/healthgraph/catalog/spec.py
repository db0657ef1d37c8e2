"""The catalog file: parsed into frozen specs, every problem reported with the entry's path.

Parsing never stops at the first problem: a user fixing a file wants the whole list at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from healthgraph.errors import CatalogError
from store.credentials import CREDENTIAL_KINDS, CREDENTIAL_SHAPES, CredentialKind
from store.domain import ConnectionState, Direction, SyncStep
from store.heartbeat import heartbeat_problems, merge
from store.validation import (
    DEFAULT_CHECK_INTERVAL_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    MAX_CHECK_INTERVAL_SECONDS,
    MAX_EMAIL_LENGTH,
    MAX_FAILURE_THRESHOLD,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MIN_CHECK_INTERVAL_SECONDS,
    MIN_FAILURE_THRESHOLD,
)


@dataclass(frozen=True, slots=True)
class UseKindSpec:
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    slug: str
    name: str
    category: str
    heartbeat: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UseSpec:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    name: str
    connector: str
    direction: Direction
    state: ConnectionState | None  # None: leave what the service found (e.g. FAILED after a 401)
    check_interval_seconds: int
    failure_threshold: int
    heartbeat: dict[str, Any]
    credentials: dict[str, str] | None  # the reference only (env/file names), never the secret
    uses: tuple[UseSpec, ...]


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    external_id: str
    name: str
    email: str | None
    connections: tuple[ConnectionSpec, ...]


@dataclass(frozen=True, slots=True)
class ActivationSpec:
    consumer: str
    steps: tuple[tuple[SyncStep, bool], ...]


@dataclass(frozen=True, slots=True)
class SyncSpec:
    name: str
    requires: tuple[str, ...]
    activations: tuple[ActivationSpec, ...]


@dataclass(frozen=True, slots=True)
class CatalogSpec:
    use_kinds: tuple[UseKindSpec, ...] = ()
    connectors: tuple[ConnectorSpec, ...] = ()
    consumers: tuple[ConsumerSpec, ...] = ()
    syncs: tuple[SyncSpec, ...] = ()


class _Reader:
    """Typed field access that records a problem (with its path) instead of raising."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path or '(top level)'}: {message}")

    def mapping(
        self, value: object, path: str, required: Iterable[str], optional: Iterable[str]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {_type_name(value)}")
            return None
        required, optional = tuple(required), tuple(optional)
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.problem(_join(path, key), f"unknown key; expected one of {allowed}")
        for key in required:
            if key not in value:
                self.problem(_join(path, key), "is required")
        return value

    def sequence(self, mapping: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = mapping.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(
                f"{path}.{key}" if path else key, f"expected a list, got {_type_name(value)}"
            )
            return []
        return value

    def text(
        self, mapping: Mapping[str, Any], key: str, path: str, *, max_length: int = MAX_NAME_LENGTH
    ) -> str:
        value = mapping.get(key)
        if key not in mapping:
            return ""  # "is required" already recorded by mapping()
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{path}.{key}", f"expected a non-empty string, got {_type_name(value)}")
            return ""
        if len(value) > max_length:
            self.problem(f"{path}.{key}", f"longer than {max_length} characters")
        return value.strip()

    def integer(
        self, mapping: Mapping[str, Any], key: str, path: str, low: int, high: int, default: int
    ) -> int:
        if key not in mapping:
            return default
        value = mapping[key]
        if type(value) is not int:
            self.problem(f"{path}.{key}", f"expected an integer, got {_type_name(value)}")
            return default
        if not low <= value <= high:
            self.problem(f"{path}.{key}", f"{value} is out of range; use {low}..{high}")
            return default
        return value

    def choice(
        self, mapping: Mapping[str, Any], key: str, path: str, choices: Iterable[str]
    ) -> str | None:
        if key not in mapping:
            return None
        value = mapping[key]
        allowed = tuple(choices)
        if not isinstance(value, str) or value.lower() not in allowed:
            self.problem(f"{path}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value.lower()

    def heartbeat(self, mapping: Mapping[str, Any], path: str) -> dict[str, Any]:
        value = mapping.get("heartbeat")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{path}.heartbeat", f"expected a mapping, got {_type_name(value)}")
            return {}
        for field, message in heartbeat_problems(value):
            self.problem(f"{path}.heartbeat.{field}", message)
        return dict(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
    }
    if value is None:
        return "nothing"
    return names.get(type(value), f"a {type(value).__name__}")


def load_catalog_file(path: Path) -> CatalogSpec:
    """Read and parse a catalog file; raise CatalogError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError([f"{path}: cannot read the file ({exc.strerror})"]) from exc
    return parse_catalog(text, str(path))


def parse_catalog(text: str, source: str) -> CatalogSpec:
    """Parse catalog YAML; `source` names the file in messages."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise CatalogError(
            [f"{source}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from exc
    reader = _Reader(source)
    if document is None:
        document = {}
    top = reader.mapping(document, "", (), ("use_kinds", "connectors", "consumers", "syncs"))
    if top is None:
        raise CatalogError(reader.problems)
    spec = CatalogSpec(
        use_kinds=tuple(_use_kinds(reader, top)),
        connectors=tuple(_connectors(reader, top)),
        consumers=tuple(_consumers(reader, top)),
        syncs=tuple(_syncs(reader, top)),
    )
    _check_duplicates(reader, spec)
    if reader.problems:
        raise CatalogError(reader.problems)
    return spec


def _use_kinds(reader: _Reader, top: Mapping[str, Any]) -> Iterable[UseKindSpec]:
    for index, item in enumerate(reader.sequence(top, "use_kinds", "")):
        path = f"use_kinds[{index}]"
        entry = reader.mapping(item, path, ("kind", "label"), ())
        if entry is not None:
            yield UseKindSpec(
                reader.text(entry, "kind", path, max_length=MAX_KEY_LENGTH),
                reader.text(entry, "label", path),
            )


def _connectors(reader: _Reader, top: Mapping[str, Any]) -> Iterable[ConnectorSpec]:
    for index, item in enumerate(reader.sequence(top, "connectors", "")):
        path = f"connectors[{index}]"
        entry = reader.mapping(item, path, ("slug", "name", "category"), ("heartbeat",))
        if entry is None:
            continue
        yield ConnectorSpec(
            slug=reader.text(entry, "slug", path, max_length=MAX_KEY_LENGTH),
            name=reader.text(entry, "name", path),
            category=reader.text(entry, "category", path, max_length=MAX_KEY_LENGTH),
            heartbeat=reader.heartbeat(entry, path),
        )


def _consumers(reader: _Reader, top: Mapping[str, Any]) -> Iterable[ConsumerSpec]:
    for index, item in enumerate(reader.sequence(top, "consumers", "")):
        path = f"consumers[{index}]"
        entry = reader.mapping(item, path, ("external_id", "name"), ("email", "connections"))
        if entry is None:
            continue
        email = None
        if entry.get("email") is not None:
            email = reader.text(entry, "email", path, max_length=MAX_EMAIL_LENGTH)
            if email and "@" not in email:
                reader.problem(f"{path}.email", f"{email!r} is not an email address")
        connections = tuple(
            _connection(reader, raw, f"{path}.connections[{position}]")
            for position, raw in enumerate(reader.sequence(entry, "connections", path))
        )
        yield ConsumerSpec(
            external_id=reader.text(entry, "external_id", path),
            name=reader.text(entry, "name", path),
            email=email,
            connections=tuple(c for c in connections if c is not None),
        )


def _connection(reader: _Reader, raw: object, path: str) -> ConnectionSpec | None:
    entry = reader.mapping(
        raw,
        path,
        ("name", "connector"),
        (
            "direction",
            "state",
            "check_interval_seconds",
            "failure_threshold",
            "heartbeat",
            "credentials",
            "uses",
        ),
    )
    if entry is None:
        return None
    direction = reader.choice(entry, "direction", path, ("outbound", "inbound")) or "outbound"
    state = reader.choice(entry, "state", path, ("pending", "active", "failed", "disabled"))
    uses = []
    for position, item in enumerate(reader.sequence(entry, "uses", path)):
        use_path = f"{path}.uses[{position}]"
        use = reader.mapping(item, use_path, ("kind", "name"), ())
        if use is not None:
            uses.append(
                UseSpec(
                    reader.text(use, "kind", use_path, max_length=MAX_KEY_LENGTH),
                    reader.text(use, "name", use_path),
                )
            )
    heartbeat = reader.heartbeat(entry, path)
    if heartbeat and direction == "inbound":
        reader.problem(f"{path}.heartbeat", "inbound connections are not probed; remove it")
    return ConnectionSpec(
        name=reader.text(entry, "name", path),
        connector=reader.text(entry, "connector", path, max_length=MAX_KEY_LENGTH),
        direction=Direction(direction.upper()),
        state=ConnectionState(state.upper()) if state else None,
        check_interval_seconds=reader.integer(
            entry,
            "check_interval_seconds",
            path,
            MIN_CHECK_INTERVAL_SECONDS,
            MAX_CHECK_INTERVAL_SECONDS,
            DEFAULT_CHECK_INTERVAL_SECONDS,
        ),
        failure_threshold=reader.integer(
            entry,
            "failure_threshold",
            path,
            MIN_FAILURE_THRESHOLD,
            MAX_FAILURE_THRESHOLD,
            DEFAULT_FAILURE_THRESHOLD,
        ),
        heartbeat=heartbeat,
        credentials=_credentials(reader, entry.get("credentials"), f"{path}.credentials"),
        uses=tuple(uses),
    )


def _credentials(reader: _Reader, raw: object, path: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.problem(path, f"expected a mapping, got {_type_name(raw)}")
        return None
    kind = raw.get("kind")
    if kind not in CREDENTIAL_KINDS:
        reader.problem(f"{path}.kind", f"{kind!r} is not one of {', '.join(CREDENTIAL_KINDS)}")
        return None
    shape = CREDENTIAL_SHAPES[CredentialKind(kind)]
    plain, secret = shape.plain, shape.secret
    by_reference = [f"{name}_{how}" for name in secret for how in ("env", "file")]
    entry = reader.mapping(raw, path, ("kind", *plain), by_reference)
    if entry is None:
        return None
    for name in secret:
        if name in raw:
            reader.problem(
                f"{path}.{name}", f"secrets are never written inline; use {name}_env or {name}_file"
            )
        given = [key for key in (f"{name}_env", f"{name}_file") if key in entry]
        if len(given) != 1:
            reader.problem(path, f"give exactly one of {name}_env or {name}_file")
    out: dict[str, str] = {}
    for key, value in entry.items():
        if not isinstance(value, str) or not value:
            reader.problem(f"{path}.{key}", f"expected a non-empty string, got {_type_name(value)}")
        else:
            out[key] = value
    return out


def _syncs(reader: _Reader, top: Mapping[str, Any]) -> Iterable[SyncSpec]:
    step_names = tuple(step.value.lower() for step in SyncStep)
    for index, item in enumerate(reader.sequence(top, "syncs", "")):
        path = f"syncs[{index}]"
        entry = reader.mapping(item, path, ("name", "requires"), ("activations",))
        if entry is None:
            continue
        requires = []
        for position, slug in enumerate(reader.sequence(entry, "requires", path)):
            if not isinstance(slug, str) or not slug:
                reader.problem(
                    f"{path}.requires[{position}]",
                    f"expected a connector slug, got {_type_name(slug)}",
                )
            else:
                requires.append(slug)
        activations = []
        for position, raw in enumerate(reader.sequence(entry, "activations", path)):
            act_path = f"{path}.activations[{position}]"
            activation = reader.mapping(raw, act_path, ("consumer",), ("steps",))
            if activation is None:
                continue
            raw_steps = activation.get("steps") or {}
            steps = reader.mapping(raw_steps, f"{act_path}.steps", (), step_names) or {}
            parsed: list[tuple[SyncStep, bool]] = []
            for step in SyncStep:
                value = steps.get(step.value.lower(), "incomplete")
                if value not in ("complete", "incomplete"):
                    reader.problem(
                        f"{act_path}.steps.{step.value.lower()}",
                        f"{value!r} is not one of complete, incomplete",
                    )
                parsed.append((step, value == "complete"))
            activations.append(
                ActivationSpec(reader.text(activation, "consumer", act_path), tuple(parsed))
            )
        yield SyncSpec(
            name=reader.text(entry, "name", path),
            requires=tuple(requires),
            activations=tuple(activations),
        )


def _check_duplicates(reader: _Reader, spec: CatalogSpec) -> None:
    def once(values: Iterable[tuple[str, str]], what: str) -> None:
        seen: dict[str, str] = {}
        for path, value in values:
            if value and value in seen:
                reader.problem(path, f"duplicate {what} {value!r} (first at {seen[value]})")
            seen.setdefault(value, path)

    once(((f"use_kinds[{i}].kind", k.kind) for i, k in enumerate(spec.use_kinds)), "use kind")
    once(
        ((f"connectors[{i}].slug", c.slug) for i, c in enumerate(spec.connectors)), "connector slug"
    )
    once(
        ((f"consumers[{i}].external_id", c.external_id) for i, c in enumerate(spec.consumers)),
        "external_id",
    )
    once(((f"syncs[{i}].name", s.name) for i, s in enumerate(spec.syncs)), "sync name")
    for i, consumer in enumerate(spec.consumers):
        base = f"consumers[{i}].connections"
        once(
            ((f"{base}[{j}].name", c.name) for j, c in enumerate(consumer.connections)),
            "connection name",
        )
        for j, connection in enumerate(consumer.connections):
            once(
                (
                    (f"{base}[{j}].uses[{k}]", f"{u.kind}/{u.name}")
                    for k, u in enumerate(connection.uses)
                ),
                "use",
            )
    for i, sync in enumerate(spec.syncs):
        once(
            (
                (f"syncs[{i}].activations[{j}].consumer", a.consumer)
                for j, a in enumerate(sync.activations)
            ),
            "activation for consumer",
        )


def check_references(
    spec: CatalogSpec,
    source: str,
    stored_connectors: Mapping[str, dict[str, Any]],
    stored_use_kinds: Iterable[str],
    stored_consumers: Iterable[str],
) -> None:
    """Check that every name the file refers to exists in the file or already in the database.

    `stored_connectors` maps slug → heartbeat template, so a connection's merged heartbeat
    can be checked for a URL.
    """
    problems: list[str] = []
    templates = {**stored_connectors, **{c.slug: c.heartbeat for c in spec.connectors}}
    kinds = set(stored_use_kinds) | {k.kind for k in spec.use_kinds}
    consumers = set(stored_consumers) | {c.external_id for c in spec.consumers}
    for i, consumer in enumerate(spec.consumers):
        for j, connection in enumerate(consumer.connections):
            path = f"consumers[{i}].connections[{j}]"
            if connection.connector not in templates:
                problems.append(
                    f"{source}: {path}.connector: unknown connector {connection.connector!r}; "
                    "define it under connectors"
                )
            elif connection.direction is Direction.OUTBOUND and not merge(
                templates[connection.connector], connection.heartbeat
            ).get("url"):
                problems.append(
                    f"{source}: {path}.heartbeat.url: is required for an outbound connection "
                    f"(connector {connection.connector!r} has no URL template)"
                )
            for k, use in enumerate(connection.uses):
                if use.kind not in kinds:
                    problems.append(
                        f"{source}: {path}.uses[{k}].kind: unknown use kind {use.kind!r}; "
                        "define it under use_kinds"
                    )
    for i, sync in enumerate(spec.syncs):
        for j, slug in enumerate(sync.requires):
            if slug not in templates:
                problems.append(f"{source}: syncs[{i}].requires[{j}]: unknown connector {slug!r}")
        for j, activation in enumerate(sync.activations):
            if activation.consumer not in consumers:
                problems.append(
                    f"{source}: syncs[{i}].activations[{j}].consumer: unknown consumer "
                    f"{activation.consumer!r}"
                )
    if problems:
        raise CatalogError(problems)


def resolve_secret(
    reference: Mapping[str, str], path: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The secret a credentials reference points at, read from the environment or a file.

    Raises CatalogError naming the variable or file, never the value.
    """
    env = os.environ if environ is None else environ
    kind = reference["kind"]
    shape = CREDENTIAL_SHAPES[CredentialKind(kind)]
    plain, secret_fields = shape.plain, shape.secret
    secret: dict[str, str] = {"kind": kind, **{name: reference[name] for name in plain}}
    for name in secret_fields:
        if f"{name}_env" in reference:
            variable = reference[f"{name}_env"]
            if not env.get(variable):
                raise CatalogError(
                    [f"{path}.{name}_env: environment variable {variable} is not set"]
                )
            secret[name] = env[variable]
        else:
            file_name = reference[f"{name}_file"]
            try:
                secret[name] = Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CatalogError(
                    [f"{path}.{name}_file: cannot read {file_name} ({exc.strerror})"]
                ) from exc
            if not secret[name]:
                raise CatalogError([f"{path}.{name}_file: {file_name} is empty"])
    return secret
