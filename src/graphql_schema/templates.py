"""The connector library over GraphQL: `connectorTemplates`, what `template:` can name."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graphql_schema.context import Info
from store import library


@strawberry.type(description="A value each connection of the template gives: {params.NAME}.")
class TemplateParam:
    name: str
    description: str


@strawberry.type(description="How the API authenticates each customer.")
class TemplateAuth:
    kind: str = strawberry.field(description="oauth2, or an API key's kind: bearer, basic, ...")
    token_url: str | None
    scopes: list[str]
    auth_method: str | None
    grant_type: str | None = strawberry.field(description="refresh_token or client_credentials.")
    rotates_refresh_token: bool
    header_or_parameter: str | None = strawberry.field(
        description="Where an API key goes (a header or query parameter name), if not the "
        "kind's usual place."
    )
    docs: str | None


@strawberry.type(description="A real SaaS API the library knows: a connector starts from it.")
class ConnectorTemplate:
    template: str
    name: str
    category: str
    docs: str = strawberry.field(description="The provider's documentation of the heartbeat.")
    auth: TemplateAuth
    params: list[TemplateParam]
    heartbeat: JSON = strawberry.field(
        description="The cheapest read-only request that proves the credentials work."
    )
    note: str | None

    @classmethod
    def from_record(cls, template: library.ConnectorTemplate) -> ConnectorTemplate:
        app = template.oauth2 or {}
        return cls(
            template=template.template,
            name=template.name,
            category=template.category,
            docs=template.docs,
            auth=TemplateAuth(
                kind="oauth2" if template.oauth2 else str(template.credential_kind),
                token_url=app.get("token_url"),
                scopes=list(app.get("scopes", [])),
                auth_method=app.get("auth_method"),
                grant_type=app.get("grant"),
                rotates_refresh_token=template.rotates_refresh_token,
                header_or_parameter=template.credential_name,
                docs=template.token_docs,
            ),
            params=[TemplateParam(name=p.name, description=p.description) for p in template.params],
            heartbeat=JSON(dict(template.heartbeat)),
            note=template.note,
        )


@strawberry.type
class TemplateQuery:
    @strawberry.field(description="The connector library, optionally one category of it.")
    def connector_templates(
        self, info: Info, category: str | None = None
    ) -> list[ConnectorTemplate]:
        return [
            ConnectorTemplate.from_record(template)
            for template in library.connector_templates()
            if category is None or template.category == category
        ]
