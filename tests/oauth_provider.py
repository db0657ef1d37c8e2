"""A strict local OAuth2 provider, as real ones behave where it hurts.

- Refresh tokens rotate on every refresh (QuickBooks, Xero): the old one dies at once.
- Reuse detection (OAuth 2.1 §4.3.1): a refresh token used again revokes the whole grant.
- Access tokens expire after `access_seconds`; the API answers 401 after that.
- The client must authenticate as the app says (basic or post); a wrong secret is
  `invalid_client`.
- Error bodies echo what they were sent, as several real endpoints do, so a caller that does not
  scrub leaks.

It counts what happened: refreshes per grant, reuses, revocations. A test drives faults with
`fail_next` (answer 503, 429 or hang the next token requests).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

CLIENT_ID = "healthgraph-test-client"
CLIENT_SECRET = "client-secret-4c0ffee-CANARY"


@dataclass
class Grant:
    id: int
    refresh_token: str
    revoked: bool = False
    refreshes: int = 0
    used_tokens: set[str] = field(default_factory=set)
    refreshed_at: list[float] = field(default_factory=list)  # time.monotonic() of each


class OAuthProvider:
    """The provider's state and its aiohttp app (token endpoint and a protected API)."""

    def __init__(
        self,
        *,
        access_seconds: float = 300.0,
        rotate: bool = True,
        auth_method: str = "client_secret_basic",
        refresh_token_expires_in: int | None = None,
    ) -> None:
        self.access_seconds = access_seconds
        self.rotate = rotate
        self.auth_method = auth_method
        self.refresh_token_expires_in = refresh_token_expires_in
        self.grants: dict[int, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        self._access: dict[str, tuple[Grant, float]] = {}
        self.reuses = 0
        self.token_requests = 0
        self.api_requests = 0
        self.faults: list[str] = []  # "503", "429", "hang", "garbage"
        self.results: Counter[str] = Counter()
        # Called once a successful refresh's answer is on the wire (a test kills its caller).
        self.after_refresh: Callable[[], None] | None = None

    # --- set up and inspect -----------------------------------------------------------------

    def new_grant(self) -> str:
        """A new grant, as after a consumer connected: its first refresh token."""
        grant = Grant(id=len(self.grants) + 1, refresh_token=_token("rt"))
        self.grants[grant.id] = grant
        self._by_refresh[grant.refresh_token] = grant
        return grant.refresh_token

    def grant_of(self, refresh_token: str) -> Grant:
        return self._by_refresh[refresh_token]

    def revoke(self, grant: Grant) -> None:
        """The consumer disconnected the app at the provider."""
        grant.revoked = True

    def issued(self) -> set[str]:
        """Every token it ever handed out or was seeded with (none may leak)."""
        tokens = set(self._access)
        for grant in self.grants.values():
            tokens |= grant.used_tokens | {grant.refresh_token}
        return {token for token in tokens if token}

    def fail_next(self, *faults: str) -> None:
        self.faults.extend(faults)

    def issue_access_token(self, grant: Grant, seconds: float | None = None) -> str:
        token = _token("at")
        self._access[token] = (grant, time.monotonic() + (seconds or self.access_seconds))
        return token

    # --- the app --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/api/whoami", self._whoami)
        return app

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        if self.auth_method == "client_secret_post":
            return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return unquote(user) == CLIENT_ID and unquote(password) == CLIENT_SECRET

    async def _token(self, request: web.Request) -> web.StreamResponse:
        answer = await self._answer(request)
        if self.after_refresh is None or answer.status != 200:
            return answer
        # Sent here, whole, before the hook runs: "right after the provider answered".
        streamed = web.StreamResponse(status=answer.status, headers=answer.headers)
        await streamed.prepare(request)
        assert isinstance(answer.body, bytes)
        await streamed.write(answer.body)
        await streamed.write_eof()
        self.after_refresh()
        return streamed

    async def _answer(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = dict(await request.post())
        if self.faults:
            fault = self.faults.pop(0)
            self.results[fault] += 1
            if fault == "hang":
                await asyncio.sleep(3600)
            if fault == "garbage":
                return web.Response(status=200, text="<html>not json</html>")
            status = int(fault)
            return web.json_response(
                {"error": "temporarily_unavailable", "error_description": f"got {form}"},
                status=status,
                headers={"Retry-After": "1"} if status == 429 else None,
            )
        if not self._client_ok(request, {k: str(v) for k, v in form.items()}):
            self.results["invalid_client"] += 1
            return _error(401, "invalid_client", f"bad client for {form.get('client_secret')}")
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            grant = self.grants.setdefault(0, Grant(id=0, refresh_token=""))
            self.results["client_credentials"] += 1
            return web.json_response(
                {
                    "access_token": self.issue_access_token(grant),
                    "token_type": "Bearer",
                    "expires_in": self.access_seconds,
                }
            )
        used = str(form.get("refresh_token", ""))
        grant = self._by_refresh.get(used)
        if grant is None:
            self.results["unknown"] += 1
            return _error(400, "invalid_grant", f"unknown refresh token {used}")
        if grant.revoked:
            self.results["revoked"] += 1
            return _error(400, "invalid_grant", f"grant revoked; token {used}")
        if used != grant.refresh_token:
            # Reuse of a rotated token: the whole grant dies (what a race costs for real).
            self.reuses += 1
            grant.revoked = True
            self.results["reuse"] += 1
            return _error(400, "invalid_grant", f"refresh token {used} was already used")
        grant.refreshes += 1
        grant.refreshed_at.append(time.monotonic())
        answer: dict[str, object] = {
            "access_token": self.issue_access_token(grant),
            "token_type": "Bearer",
            "expires_in": self.access_seconds,
        }
        if self.rotate:
            grant.used_tokens.add(used)
            grant.refresh_token = _token("rt")
            self._by_refresh[grant.refresh_token] = grant
            answer["refresh_token"] = grant.refresh_token
        if self.refresh_token_expires_in is not None:
            answer["x_refresh_token_expires_in"] = self.refresh_token_expires_in
        self.results["ok"] += 1
        return web.json_response(answer)

    async def _whoami(self, request: web.Request) -> web.Response:
        self.api_requests += 1
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        found = self._access.get(token)
        if found is None or not header.startswith("Bearer "):
            return web.json_response({"error": "invalid_token"}, status=401)
        grant, expires = found
        if grant.revoked or time.monotonic() > expires:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"ok": True, "grant": grant.id})


def _token(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
