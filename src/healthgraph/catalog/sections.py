"""The sections of a catalog file, each read into its specs with every problem recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from healthgraph.catalog.entries import (
    ActivationSpec,
    CatalogSpec,
    ConnectionSpec,
    ConnectorSpec,
    ConsumerSpec,
    SyncSpec,
    UseKindSpec,
    UseSpec,
)
from healthgraph.catalog.reader import Reader, type_name
from store import library
from store.credentials import CREDENTIAL_KINDS, CREDENTIAL_SHAPES, OAUTH2_GRANTS, CredentialKind
from store.domain import ConnectionState, Direction, SyncStep
from store.heartbeat import params_problems
from store.validation import (
    DEFAULT_CHECK_INTERVAL_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    MAX_CHECK_INTERVAL_SECONDS,
    MAX_EMAIL_LENGTH,
    MAX_FAILURE_THRESHOLD,
    MAX_KEY_LENGTH,
    MIN_CHECK_INTERVAL_SECONDS,
    MIN_FAILURE_THRESHOLD,
)


def use_kinds(reader: Reader, top: Mapping[str, Any]) -> Iterable[UseKindSpec]:
    for index, item in enumerate(reader.sequence(top, "use_kinds", "")):
        path = f"use_kinds[{index}]"
        entry = reader.mapping(item, path, ("kind", "label"), ())
        if entry is not None:
            yield UseKindSpec(
                reader.text(entry, "kind", path, max_length=MAX_KEY_LENGTH),
                reader.text(entry, "label", path),
            )


def connectors(reader: Reader, top: Mapping[str, Any]) -> Iterable[ConnectorSpec]:
    for index, item in enumerate(reader.sequence(top, "connectors", "")):
        path = f"connectors[{index}]"
        entry = reader.mapping(
            item, path, ("slug",), ("name", "category", "heartbeat", "template", "oauth2")
        )
        if entry is None:
            continue
        template = entry.get("template")
        if template is None:
            for key in ("name", "category"):
                if key not in entry:
                    reader.problem(f"{path}.{key}", "is required (or give a template)")
        elif not isinstance(template, str) or template not in library.template_names():
            reader.problem(
                f"{path}.template",
                f"{template!r} is not a connector template; see `healthgraph connectors list`",
            )
            continue
        heartbeat = reader.heartbeat(entry, path)
        app, secret_ref = _oauth2(reader, entry.get("oauth2"), f"{path}.oauth2", template)
        name = reader.text(entry, "name", path) if "name" in entry else None
        category = (
            reader.text(entry, "category", path, max_length=MAX_KEY_LENGTH)
            if "category" in entry
            else None
        )
        if template is not None:
            made = library.resolve(
                template, name=name, category=category, heartbeat=heartbeat, oauth2=app
            )
            name, category, heartbeat, app = made.name, made.category, made.heartbeat, made.oauth2
        yield ConnectorSpec(
            slug=reader.text(entry, "slug", path, max_length=MAX_KEY_LENGTH),
            name=name or "",
            category=category or "",
            heartbeat=heartbeat,
            template=template,
            oauth2=app,
            client_secret_ref=secret_ref,
        )


def _oauth2(
    reader: Reader, raw: object, path: str, template: str | None
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """The OAuth2 app's fields the file gives (a template gives the rest) and where its client
    secret is read from."""
    if raw is None:
        return None, None
    required = ("client_id",) if template else ("token_url", "client_id")
    optional = tuple(key for key in ("token_url", "scopes", "auth_method") if key not in required)
    entry = reader.mapping(raw, path, required, (*optional, *_SECRET_REFERENCE))
    if entry is None:
        return None, None
    if "client_secret" in entry:
        reader.problem(
            f"{path}.client_secret",
            "secrets are never written inline; use client_secret_env or client_secret_file",
        )
    reference = _reference(reader, entry, path, "client_secret")
    app = {key: value for key, value in entry.items() if key in ("client_id", *optional)}
    return app, reference


_SECRET_REFERENCE = ("client_secret_env", "client_secret_file")


def _reference(
    reader: Reader, entry: Mapping[str, Any], path: str, name: str
) -> dict[str, str] | None:
    """{name_env: X} or {name_file: path}: exactly one, a non-empty string."""
    given = {key: entry[key] for key in (f"{name}_env", f"{name}_file") if key in entry}
    if len(given) != 1:
        reader.problem(path, f"give exactly one of {name}_env or {name}_file")
        return None
    ((key, value),) = given.items()
    if not isinstance(value, str) or not value:
        reader.problem(f"{path}.{key}", f"expected a non-empty string, got {type_name(value)}")
        return None
    return {key: value}


def consumers(reader: Reader, top: Mapping[str, Any]) -> Iterable[ConsumerSpec]:
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
            connection(reader, raw, f"{path}.connections[{position}]")
            for position, raw in enumerate(reader.sequence(entry, "connections", path))
        )
        yield ConsumerSpec(
            external_id=reader.text(entry, "external_id", path),
            name=reader.text(entry, "name", path),
            email=email,
            connections=tuple(c for c in connections if c is not None),
        )


def connection(reader: Reader, raw: object, path: str) -> ConnectionSpec | None:
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
            "params",
            "credentials",
            "uses",
        ),
    )
    if entry is None:
        return None
    params = entry.get("params") or {}
    for field, problem in params_problems(params):
        reader.problem(f"{path}.{field}", problem)
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
        params=dict(params) if isinstance(params, dict) else {},
    )


def _credentials(reader: Reader, raw: object, path: str) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.problem(path, f"expected a mapping, got {type_name(raw)}")
        return None
    kind = raw.get("kind")
    if kind not in CREDENTIAL_KINDS:
        reader.problem(f"{path}.kind", f"{kind!r} is not one of {', '.join(CREDENTIAL_KINDS)}")
        return None
    if kind == CredentialKind.OAUTH2:
        return _oauth2_credentials(reader, raw, path)
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
            reader.problem(f"{path}.{key}", f"expected a non-empty string, got {type_name(value)}")
        else:
            out[key] = value
    return out


def _oauth2_credentials(reader: Reader, raw: dict[str, Any], path: str) -> dict[str, str] | None:
    """{kind: oauth2, refresh_token_env|refresh_token_file} seeds a grant whose refresh token
    then rotates; {kind: oauth2, grant: client_credentials} needs no token of its own."""
    grant = raw.get("grant", "refresh_token")
    if grant not in OAUTH2_GRANTS:
        reader.problem(f"{path}.grant", f"{grant!r} is not one of {', '.join(OAUTH2_GRANTS)}")
        return None
    if grant == "client_credentials":
        entry = reader.mapping(raw, path, ("kind",), ("grant",))
        return None if entry is None else {"kind": "oauth2", "grant": "client_credentials"}
    entry = reader.mapping(
        raw, path, ("kind",), ("grant", "refresh_token_env", "refresh_token_file")
    )
    if entry is None:
        return None
    if "refresh_token" in raw:
        reader.problem(
            f"{path}.refresh_token",
            "secrets are never written inline; use refresh_token_env or refresh_token_file",
        )
    reference = _reference(reader, entry, path, "refresh_token")
    return None if reference is None else {"kind": "oauth2", **reference}


def syncs(reader: Reader, top: Mapping[str, Any]) -> Iterable[SyncSpec]:
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
                    f"expected a connector slug, got {type_name(slug)}",
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


def check_duplicates(reader: Reader, spec: CatalogSpec) -> None:
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
