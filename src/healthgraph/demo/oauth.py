"""The demo's own OAuth2 provider under /demo/oauth/…, so `make run` shows refreshes working.

It behaves as the strict providers do: 5-minute access tokens, refresh tokens that rotate on
every refresh, and a refresh token used twice revokes the whole grant. Its API answers like
QuickBooks' company info, and only to a live access token. The demo connects a few consumers
through it (the `quickbooks` library template pointed at this server) and, a little after
start, revokes one grant: that connection turns FAILED with AUTH, as a customer who
disconnected the app would.

State lives in memory: a restarted demo starts new grants (new seeds), which the catalog
applies as changed seeds.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ACCESS_SECONDS = 300
CLIENT_ID = "healthgraph-demo"
# Not a secret worth keeping: the demo's own provider, on this server, for the demo only.
CLIENT_SECRET = "demo-client-secret"  # noqa: S105


@dataclass
class _Grant:
    refresh_token: str
    revoked: bool = False
    used: set[str] = field(default_factory=set)


class DemoOAuthProvider:
    """Grants, tokens and the two endpoints; one per demo app."""

    def __init__(self, access_seconds: float = ACCESS_SECONDS) -> None:
        self.access_seconds = access_seconds
        self._grants: dict[str, _Grant] = {}  # by any refresh token it ever had
        self._access: dict[str, tuple[_Grant, float]] = {}
        self.seeds: list[str] = []  # the first refresh token of each grant, in order

    def new_grant(self) -> str:
        """A consumer connected: the grant's first refresh token (the catalog's seed)."""
        token = "demo-rt-" + secrets.token_urlsafe(18)
        self._grants[token] = _Grant(token)
        self.seeds.append(token)
        return token

    def revoke(self, refresh_token: str) -> None:
        """The consumer disconnected the app (the grant of any of its refresh tokens)."""
        grant = self._grants.get(refresh_token)
        if grant is not None:
            grant.revoked = True

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (unquote(user), unquote(password)) == (CLIENT_ID, CLIENT_SECRET)
        return (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET)

    async def token(self, request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's form parser needs python-multipart, for one urlencoded form.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        if not self._client_ok(request, form):
            return _error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "refresh_token":
            return _error(400, "unsupported_grant_type", "only refresh_token")
        used = form.get("refresh_token", "")
        grant = self._grants.get(used)
        if grant is None or grant.revoked:
            return _error(400, "invalid_grant", "the grant was revoked or never existed")
        if used != grant.refresh_token:
            grant.revoked = True  # reuse of a rotated token: the whole grant dies
            return _error(400, "invalid_grant", "refresh token reused; grant revoked")
        grant.used.add(used)
        grant.refresh_token = "demo-rt-" + secrets.token_urlsafe(18)
        self._grants[grant.refresh_token] = grant
        access = "demo-at-" + secrets.token_urlsafe(18)
        self._access[access] = (grant, time.monotonic() + self.access_seconds)
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": self.access_seconds,
                "refresh_token": grant.refresh_token,
                "x_refresh_token_expires_in": 100 * 86400,
            }
        )

    async def company_info(self, request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        found = self._access.get(token)
        if found is None or found[0].revoked or time.monotonic() > found[1]:
            return JSONResponse(
                {"fault": {"error": [{"message": "AuthenticationFailed", "code": "3200"}]}},
                status_code=401,
            )
        realm = request.path_params["realm"]
        return JSONResponse({"CompanyInfo": {"CompanyName": f"Demo company {realm}", "Id": realm}})

    def routes(self) -> list[Route]:
        return [
            Route("/demo/oauth/token", self.token, methods=["POST"]),
            Route(
                "/demo/oauth/v3/company/{realm}/companyinfo/{same}",
                self.company_info,
                methods=["GET"],
            ),
        ]


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)
