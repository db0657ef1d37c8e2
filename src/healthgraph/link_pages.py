"""What the pages behind signed links share: the check of the link, the headers, the one style,
the refusals, and how a connection's health reads. `consumer_page` and `sync_page` are the pages.

Plain HTML rendered on the server, reachable only through a genuine, unexpired signed link. Its
one <style> element is admitted by its hash and nothing else runs: the pages'
Content-Security-Policy allows no script at all. Their URLs carry the link's signature, so they
send no Referer and are never cached. Every text that comes from the database is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

from graphql_schema.context import Services
from graphql_schema.links import LinkSigner
from healthgraph.security_headers import page_headers, policy, style_hash
from store import domain

_STATUS_TEXT = {
    domain.ConnectionStatus.CONNECTED: ("Connected", "up"),
    domain.ConnectionStatus.CONNECTION_FAILURE: ("Connection failure", "down"),
    domain.ConnectionStatus.UNKNOWN: ("Not checked yet", "unknown"),
}

# Colours by class, not style attributes: a CSP hash admits a <style> element, not attributes.
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem} td,th{padding:.3rem .8rem}"
    " .up{color:#1a7f37} .down{color:#cf222e} .unknown{color:#6e7781}"
)
CONTENT_SECURITY_POLICY = policy(f"style-src {style_hash(STYLE)}")
HEADERS = {**page_headers(CONTENT_SECURITY_POLICY), "Cache-Control": "no-store"}

# Signed link parameters of `request` -> whether the link is genuine and unexpired.
Check = Callable[[LinkSigner, str, str, datetime], bool]


def genuine(request: Request, check: Check) -> bool:
    """Whether `request` carries a genuine, unexpired link, as `check` verifies it with the
    app's signer (none configured: no link is genuine)."""
    services: Services = request.app.state.services
    signer = services.link_signer
    return signer is not None and check(
        signer,
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
        datetime.now(UTC),
    )


def refused() -> HTMLResponse:
    """403 for a link that was tampered with or has expired; it says nothing of the account."""
    return HTMLResponse(
        "<!doctype html><title>Link expired</title>"
        "<p>This link is not valid or has expired. Ask for a new one.</p>",
        status_code=403,
        headers=HEADERS,
    )


def gone(what: str) -> HTMLResponse:
    """404 for a genuine link to something deleted since (`what`: plain text, escaped here)."""
    return HTMLResponse(
        f"<!doctype html><p>This {escape(what)} no longer exists.</p>", 404, headers=HEADERS
    )


def page(title: str, body: str) -> HTMLResponse:
    """The page: `title` is plain text (escaped here), `body` HTML already escaped."""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style>
</head><body>
{body}
</body></html>"""
    return HTMLResponse(html, headers=HEADERS)


def when(moment: datetime | None) -> str:
    """A moment as the pages write it, or "never"."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def status(connection: domain.Connection) -> tuple[str, str]:
    """(label, class) of a connection's health: a FAILED one failed to authenticate."""
    if connection.state is domain.ConnectionState.FAILED:
        return "Authentication failed", "down"
    return _STATUS_TEXT[connection.status]


def failure(connection: domain.Connection) -> str:
    """The failure reason and the last error, escaped (errors are masked of secrets already)."""
    reason = connection.failure_reason.value if connection.failure_reason else ""
    return f"{escape(reason)} {escape(connection.last_error or '')}"
