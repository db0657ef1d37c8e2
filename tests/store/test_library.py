"""The connector library: what it covers, and every template's documented answers replayed from
a local fake of the provider (base URL overridden) through the real HTTP probe, each classified
to the reason the library says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes import Credentials, ProbeContext, ProbeTarget
from probes.http import probe_http
from store.credentials import CredentialKind
from store.heartbeat import to_spec
from store.library import ConnectorTemplate, TemplateExample, connector_templates, resolve

TEMPLATES = connector_templates()
REQUIRED = {
    "quickbooks", "xero", "sage", "netsuite", "salesforce", "hubspot", "pipedrive",
    "google_drive", "dropbox", "box", "onedrive", "microsoft_graph", "jira", "zendesk",
    "servicenow", "github", "gitlab", "slack", "microsoft_teams", "shopify", "stripe",
    "bamboohr", "notion", "asana", "okta",
}  # fmt: skip


def test_the_library_covers_the_brief() -> None:
    names = {t.template for t in TEMPLATES}
    assert len(TEMPLATES) >= 25
    assert names >= REQUIRED, REQUIRED - names
    assert {
        "accounting", "crm", "storage", "ticketing", "hr", "ecommerce", "communication",
        "payments",
    } <= {t.category for t in TEMPLATES}  # fmt: skip
    for template in TEMPLATES:
        assert template.docs.startswith("https://"), template.template
        reasons = [example.reason for example in template.examples]
        assert None in reasons and "AUTH" in reasons, template.template
        if template.oauth2 is not None:
            assert template.oauth2["token_url"].startswith(("https://", "{params.")), template
            assert template.oauth2["auth_method"] in ("client_secret_basic", "client_secret_post")


def test_xero_and_quickbooks_say_what_the_issue_needs() -> None:
    xero = resolve("xero", oauth2={"client_id": "app"})
    assert xero.heartbeat["headers"]["xero-tenant-id"] == "{params.tenant_id}"
    assert xero.oauth2 == {
        "token_url": "https://identity.xero.com/connect/token",
        "scopes": ["offline_access", "accounting.settings.read"],
        "auth_method": "client_secret_basic",
        "client_id": "app",
    }
    quickbooks = next(t for t in TEMPLATES if t.template == "quickbooks")
    assert quickbooks.rotates_refresh_token and [p.name for p in quickbooks.params] == ["realm_id"]


@dataclass
class Replay:
    """A local stand-in for the provider: answers with the queued examples, records requests."""

    answers: list[TemplateExample] = field(default_factory=list)
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (request.method, request.path_qs, dict(request.headers), await request.read())
        )
        example = self.answers.pop(0)
        body = example.body
        text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        headers = dict(example.headers)
        if body is not None and not isinstance(body, str):
            headers.setdefault("Content-Type", "application/json")
        return web.Response(status=example.status, text=text, headers=headers)


@pytest.fixture
async def replay() -> AsyncIterator[tuple[Replay, str]]:
    state = Replay()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def _sample_params(template: ConnectorTemplate) -> dict[str, str]:
    """A value per param; one the URL starts with is a whole origin (a Salesforce instance)."""
    url = str(template.heartbeat["url"])
    return {
        p.name: "https://acme.example.invalid"
        if url.startswith(f"{{params.{p.name}}}")
        else f"sample-{p.name}"
        for p in template.params
    }


def _credentials(template: ConnectorTemplate) -> Credentials:
    if template.oauth2 is not None or template.credential_kind == "bearer":
        return Credentials(CredentialKind.BEARER, token="library-token")
    if template.credential_kind == "basic":
        return Credentials(CredentialKind.BASIC, username="library-user", password="library-pass")
    kind = CredentialKind(str(template.credential_kind))
    return Credentials(kind, name=template.credential_name, value="library-key")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.template)
async def test_every_template_classifies_its_documented_answers(
    template: ConnectorTemplate, replay: tuple[Replay, str]
) -> None:
    state, base_url = replay
    spec = to_spec(template.heartbeat, "acme", _sample_params(template))
    assert spec.url is not None
    parts = urlsplit(spec.url)
    local = base_url + parts.path + (f"?{parts.query}" if parts.query else "")
    target = ProbeTarget(spec.__class__(**{**_fields(spec), "url": local}), _credentials(template))
    async with ProbeContext.create(allow=["127.0.0.1/32"]) as context:
        for example in template.examples:
            state.answers.append(example)
            result = await probe_http(target, context)
            assert (result.failure_reason, result.http_status) == (
                example.reason,
                example.status,
            ), (template.template, example, result.error)
    method, _, headers, body = state.seen[0]
    assert method == spec.method
    for name, value in spec.headers:
        assert headers[name] == value, (template.template, name)
    if spec.body is not None:
        assert body.decode() == spec.body


def _fields(spec: Any) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__slots__}
