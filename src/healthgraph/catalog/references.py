"""What the file refers to: names that must exist (in the file or the database), and the
secrets it names by reference, read from the environment or a file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from healthgraph.catalog.entries import CatalogSpec
from healthgraph.errors import CatalogError
from store.credentials import CREDENTIAL_SHAPES, CredentialKind
from store.domain import Direction
from store.heartbeat import merge


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


def resolve_value(
    reference: Mapping[str, str], name: str, path: str, environ: Mapping[str, str] | None = None
) -> str:
    """The secret `name` a reference ({name_env: X} or {name_file: path}) points at, from the
    environment or a file. Raises CatalogError naming the variable or file, never the value."""
    env = os.environ if environ is None else environ
    if f"{name}_env" in reference:
        variable = reference[f"{name}_env"]
        if not env.get(variable):
            raise CatalogError([f"{path}.{name}_env: environment variable {variable} is not set"])
        return env[variable]
    file_name = reference[f"{name}_file"]
    try:
        value = Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CatalogError(
            [f"{path}.{name}_file: cannot read {file_name} ({exc.strerror})"]
        ) from exc
    if not value:
        raise CatalogError([f"{path}.{name}_file: {file_name} is empty"])
    return value


def resolve_secret(
    reference: Mapping[str, str], path: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The credentials a reference points at, read from the environment or files.

    Raises CatalogError naming the variable or file, never the value.
    """
    kind = reference["kind"]
    if kind == CredentialKind.OAUTH2:
        if reference.get("grant") == "client_credentials":
            return {"kind": kind, "grant": "client_credentials"}
        seed = resolve_value(reference, "refresh_token", path, environ)
        return {"kind": kind, "grant": "refresh_token", "refresh_token": seed}
    shape = CREDENTIAL_SHAPES[CredentialKind(kind)]
    secret: dict[str, str] = {"kind": kind, **{name: reference[name] for name in shape.plain}}
    for name in shape.secret:
        secret[name] = resolve_value(reference, name, path, environ)
    return secret
