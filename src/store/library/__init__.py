"""The connector library: real SaaS APIs shipped as data (connectors.yaml, sourced in
SOURCES.md), and what makes a connector of one.

A catalog connector that says `template: quickbooks` (or a `createConnector` with
`template: "quickbooks"`) starts from the entry's name, category, heartbeat and OAuth2 app, and
overrides what it gives: its own `name`, `heartbeat` fields (field by field), `oauth2` fields
(the client id and secret are always its own). The library is loaded and checked against the
same rules as any heartbeat (store.heartbeat) the first time it is used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from store.credentials import CREDENTIAL_KINDS
from store.domain import FailureReason
from store.errors import NotFoundError, ValidationError
from store.heartbeat import merge, merged_problems, placeholders

LIBRARY_FILE = "connectors.yaml"
APP_FROM_TEMPLATE = ("token_url", "scopes", "auth_method")


@dataclass(frozen=True, slots=True)
class TemplateParam:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class TemplateExample:
    """One answer the provider documents, and the failure reason it must be classified as
    (None: a success). Replayed from a local fake by the tests."""

    status: int
    reason: FailureReason | None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True, slots=True)
class ConnectorTemplate:
    template: str
    name: str
    category: str
    docs: str
    heartbeat: dict[str, Any]
    params: tuple[TemplateParam, ...]
    examples: tuple[TemplateExample, ...]
    # OAuth2: token_url, scopes, auth_method, grant (the app's client id and secret are the
    # user's own); or None for an API key of `credential_kind`.
    oauth2: dict[str, Any] | None
    credential_kind: str | None
    credential_name: str | None  # the header or query parameter an API key goes in
    rotates_refresh_token: bool = False
    token_docs: str | None = None
    note: str | None = None


class LibraryError(Exception):
    """The shipped library is inconsistent: a bug of the release, not of the user."""


@functools.cache
def connector_templates() -> tuple[ConnectorTemplate, ...]:
    """Every template of the library, in the file's order (checked once)."""
    text = resources.files(__package__).joinpath(LIBRARY_FILE).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    templates = tuple(_template(entry) for entry in document["connectors"])
    names = [t.template for t in templates]
    if len(set(names)) != len(names):
        raise LibraryError("the connector library lists a template twice")
    return templates


def connector_template(name: str) -> ConnectorTemplate:
    """The template called `name`, or NotFoundError listing what there is."""
    for template in connector_templates():
        if template.template == name:
            return template
    raise NotFoundError("connector template", name)


def template_names() -> tuple[str, ...]:
    return tuple(t.template for t in connector_templates())


def _template(entry: Mapping[str, Any]) -> ConnectorTemplate:
    name = entry["template"]
    heartbeat = dict(entry["heartbeat"])
    heartbeat.setdefault("kind", "http")
    problems = merged_problems(heartbeat)
    if problems:
        raise LibraryError(f"template {name!r}: heartbeat.{problems[0][0]}: {problems[0][1]}")
    params = tuple(TemplateParam(p["name"], p["description"]) for p in entry.get("params") or ())
    missing = placeholders(heartbeat) - {p.name for p in params}
    if missing:
        raise LibraryError(f"template {name!r} uses undeclared params {sorted(missing)}")
    auth = entry["auth"]
    app = auth.get("oauth2")
    credentials = auth.get("credentials")
    if (app is None) == (credentials is None):
        raise LibraryError(f"template {name!r}: auth needs exactly one of oauth2, credentials")
    if credentials is not None and credentials["kind"] not in CREDENTIAL_KINDS:
        raise LibraryError(f"template {name!r}: unknown credentials kind")
    return ConnectorTemplate(
        template=name,
        name=entry["name"],
        category=entry["category"],
        docs=entry["docs"],
        heartbeat=heartbeat,
        params=params,
        examples=tuple(
            TemplateExample(
                status=example["status"],
                reason=FailureReason(example["reason"]) if example["reason"] else None,
                headers=dict(example.get("headers") or {}),
                body=example.get("body"),
            )
            for example in entry["examples"]
        ),
        oauth2=None
        if app is None
        else {
            **{key: app[key] for key in APP_FROM_TEMPLATE if key in app},
            "grant": app.get("grant", "refresh_token"),
        },
        credential_kind=None if credentials is None else credentials["kind"],
        credential_name=None if credentials is None else credentials.get("name"),
        rotates_refresh_token=bool(app and app.get("rotates_refresh_token")),
        token_docs=app.get("docs") if app else None,
        note=entry.get("note"),
    )


@dataclass(frozen=True, slots=True)
class ResolvedConnector:
    """What a connector made from a template is: the template's fields under the user's."""

    name: str
    category: str
    heartbeat: dict[str, Any]
    oauth2: dict[str, Any] | None  # token_url, scopes, auth_method, client_id (if given)


def resolve(
    template_name: str,
    *,
    name: str | None = None,
    category: str | None = None,
    heartbeat: Mapping[str, Any] | None = None,
    oauth2: Mapping[str, Any] | None = None,
) -> ResolvedConnector:
    """The connector `template_name` makes with these overrides (heartbeat and oauth2 field by
    field). ValidationError naming `template` when there is no such template."""
    try:
        template = connector_template(template_name)
    except NotFoundError:
        raise ValidationError(
            "template",
            template_name,
            f"{template_name!r} is not a connector template; see `healthgraph connectors "
            "list` or Query.connectorTemplates",
        ) from None
    app = None
    if template.oauth2 is not None or oauth2:
        base = {k: v for k, v in (template.oauth2 or {}).items() if k in APP_FROM_TEMPLATE}
        app = {**base, **(oauth2 or {})}
    return ResolvedConnector(
        name=name or template.name,
        category=category or template.category,
        heartbeat=merge(template.heartbeat, heartbeat or {}),
        oauth2=app,
    )


def overrides_of(
    template_name: str,
    *,
    name: str,
    category: str,
    heartbeat: Mapping[str, Any],
    oauth2: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What a stored connector made from `template_name` changes of it (for `export`): the
    inverse of `resolve`, so that exporting and applying again changes nothing."""
    template = connector_template(template_name)
    out: dict[str, Any] = {}
    if name != template.name:
        out["name"] = name
    if category != template.category:
        out["category"] = category
    changed = {k: v for k, v in heartbeat.items() if template.heartbeat.get(k) != v}
    if changed:
        out["heartbeat"] = changed
    if oauth2:
        base = template.oauth2 or {}
        app = {k: v for k, v in oauth2.items() if base.get(k) != v}
        if app:
            out["oauth2"] = app
    return out
