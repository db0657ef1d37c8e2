"""OAuth2 and the library over GraphQL, with a real client against the running demo: a
connector from a template with its app, OAuth2 credentials that work at once through the
demo's provider, the request shape and params, and secrets that never come back."""

from __future__ import annotations

from typing import Any

import pytest

from store.domain import TokenScope
from tests.demo_server import Server
from tests.graphql_schema.test_mutations import errors_of

CREATE = """
mutation($input: CreateConnectorInput!) {
  createConnector(input: $input) {
    id slug name category template
    oauth2 { tokenUrl clientId scopes authMethod hasClientSecret }
  }
}
"""
CONNECT = """
mutation($input: CreateConnectionInput!) {
  createConnection(input: $input) {
    id params
    heartbeat { url headers body failureWhen { reason jsonPath equals status } hasCredentials }
  }
}
"""
CREDENTIALS = """
mutation($id: ID!, $c: CredentialsInput) {
  setConnectionCredentials(id: $id, credentials: $c) { heartbeat { hasCredentials } }
}
"""
CHECK = """
mutation($id: ID!) { checkConnectionNow(id: $id) { status state failureReason lastError } }
"""


async def _consumer(demo: Server, token: str) -> str:
    data = await demo.execute(token, "{ consumers(first: 1) { nodes { id } } }")
    consumer_id: str = data["consumers"]["nodes"][0]["id"]
    return consumer_id


async def test_a_connector_from_a_template_with_its_oauth2_app(demo: Server) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    base = demo.base_url
    made = await demo.execute(
        admin,
        CREATE,
        {
            "input": {
                "slug": "qbo-api",
                "template": "quickbooks",
                "heartbeat": {
                    "url": f"{base}/demo/oauth/v3/company/{{params.realm_id}}/companyinfo/"
                    "{params.realm_id}"
                },
                "oauth2": {
                    "clientId": "healthgraph-demo",
                    "clientSecret": "demo-client-secret",
                    "tokenUrl": f"{base}/demo/oauth/token",
                },
            }
        },
    )
    connector = made["createConnector"]
    assert {k: v for k, v in connector.items() if k != "id"} == {
        "slug": "qbo-api",
        "name": "QuickBooks Online",
        "category": "accounting",
        "template": "quickbooks",
        "oauth2": {
            "tokenUrl": f"{base}/demo/oauth/token",
            "clientId": "healthgraph-demo",
            "scopes": ["com.intuit.quickbooks.accounting"],
            "authMethod": "client_secret_basic",
            "hasClientSecret": True,
        },
    }
    connection = (
        await demo.execute(
            admin,
            CONNECT,
            {
                "input": {
                    "consumerId": await _consumer(demo, admin),
                    "connectorId": connector["id"],
                    "name": "QuickBooks via GraphQL",
                    "params": {"realm_id": "4620816365"},
                    "checkIntervalSeconds": 3600,
                }
            },
        )
    )["createConnection"]
    assert connection["params"] == {"realm_id": "4620816365"}
    assert connection["heartbeat"] == {
        "url": f"{base}/demo/oauth/v3/company/4620816365/companyinfo/4620816365",
        "headers": {"Accept": "application/json"},
        "body": None,
        "failureWhen": [],
        "hasCredentials": False,
    }
    # A consumer connects through the demo's provider: its refresh token, then a check.
    provider = demo.demo_oauth
    assert provider is not None
    seed = provider.new_grant()
    stored = await demo.execute(
        admin,
        CREDENTIALS,
        {"id": connection["id"], "c": {"kind": "OAUTH2", "refreshToken": seed}},
    )
    assert stored == {"setConnectionCredentials": {"heartbeat": {"hasCredentials": True}}}
    checked = await demo.execute(admin, CHECK, {"id": connection["id"]})
    assert checked == {
        "checkConnectionNow": {
            "status": "CONNECTED",
            "state": "ACTIVE",
            "failureReason": None,
            "lastError": None,
        }
    }
    # Revoked at the provider: AUTH, FAILED, and what to do.
    provider.revoke(seed)
    checked = await demo.execute(admin, CHECK, {"id": connection["id"]})
    assert checked["checkConnectionNow"] == {
        "status": "CONNECTION_FAILURE",
        "state": "FAILED",
        "failureReason": "AUTH",
        "lastError": "the OAuth2 grant is no longer valid (token endpoint 127.0.0.1: "
        "invalid_grant (the grant was revoked or never existed)); the consumer must reconnect",
    }


@pytest.mark.parametrize(
    ("variables", "errors"),
    [
        (
            {"input": {"slug": "x", "template": "quickbookz"}},
            [
                {
                    "message": "template: 'quickbookz' is not a connector template; see "
                    "`healthgraph connectors list` or Query.connectorTemplates",
                    "extensions": {"code": "BAD_USER_INPUT", "field": "template"},
                }
            ],
        ),
        (
            {"input": {"slug": "x", "name": "X"}},
            [
                {
                    "message": "category: must not be null",
                    "extensions": {"code": "BAD_USER_INPUT", "field": "category"},
                }
            ],
        ),
        (
            {
                "input": {
                    "slug": "x",
                    "template": "slack",
                    "oauth2": {"clientId": "a", "clientSecret": "CANARY-xyz", "authMethod": "pkce"},
                }
            },
            [
                {
                    "message": "oauth2.authMethod: must be one of client_secret_basic, "
                    "client_secret_post",
                    "extensions": {"code": "BAD_USER_INPUT", "field": "oauth2.authMethod"},
                }
            ],
        ),
        (
            {
                "input": {
                    "slug": "x",
                    "name": "X",
                    "category": "c",
                    "heartbeat": {
                        "url": "https://api.example.com/",
                        "headers": {"Authorization": "Bearer CANARY-xyz"},
                    },
                }
            },
            [
                {
                    "message": "heartbeat.headers.Authorization: is not allowed in a heartbeat; "
                    "secrets go in the connection's credentials",
                    "extensions": {
                        "code": "BAD_USER_INPUT",
                        "field": "heartbeat.headers.Authorization",
                    },
                }
            ],
        ),
    ],
)
async def test_bad_connectors_are_named_and_change_nothing(
    demo: Server, variables: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    admin = await demo.token(TokenScope.ADMIN)
    before = await demo.execute(admin, "{ connectors(first: 50) { totalCount } }")
    assert await errors_of(demo, admin, CREATE, variables) == errors
    assert await demo.execute(admin, "{ connectors(first: 50) { totalCount } }") == before


async def test_connector_templates_list_the_library(demo: Server, reader: str) -> None:
    data = await demo.execute(
        reader,
        """{ connectorTemplates(category: "accounting") {
               template name category docs
               auth { kind tokenUrl scopes authMethod grantType rotatesRefreshToken }
               params { name } } }""",
    )
    templates = {t["template"]: t for t in data["connectorTemplates"]}
    assert set(templates) == {"quickbooks", "xero", "sage", "netsuite", "freshbooks"}
    assert templates["xero"] == {
        "template": "xero",
        "name": "Xero",
        "category": "accounting",
        "docs": "https://developer.xero.com/documentation/api/accounting/organisation",
        "auth": {
            "kind": "oauth2",
            "tokenUrl": "https://identity.xero.com/connect/token",
            "scopes": ["offline_access", "accounting.settings.read"],
            "authMethod": "client_secret_basic",
            "grantType": "refresh_token",
            "rotatesRefreshToken": True,
        },
        "params": [{"name": "tenant_id"}],
    }
