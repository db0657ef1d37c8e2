"""The page a consumer link opens: that consumer's connections and what failed. Plain HTML,
rendered on the server, reachable only through a genuine, unexpired signed link.

Its one <style> element is admitted by its hash and nothing else runs: the page's
Content-Security-Policy allows no script at all. Its URL carries the link's signature, so it
sends no Referer and is never cached."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

from graphql_schema.context import Services
from healthgraph.database import Database
from healthgraph.security_headers import page_headers, policy, style_hash
from store import domain, queries
from store.filters import ConnectionFilter
from store.pagination import MAX_PAGE_SIZE, PageRequest

_STATUS_TEXT = {
    domain.ConnectionStatus.CONNECTED: ("Connected", "up"),
    domain.ConnectionStatus.CONNECTION_FAILURE: ("Connection failure", "down"),
    domain.ConnectionStatus.UNKNOWN: ("Not checked yet", "unknown"),
}


# Colours by class, not style attributes: a CSP hash admits a <style> element, not attributes.
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem} td,th{padding:.3rem .8rem}"
    " .up{color:#1a7f37} .down{color:#cf222e} .unknown{color:#6e7781}"
)
CONTENT_SECURITY_POLICY = policy(f"style-src {style_hash(_STYLE)}")
HEADERS = {**page_headers(CONTENT_SECURITY_POLICY), "Cache-Control": "no-store"}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


async def consumer_page(request: Request) -> HTMLResponse:
    services: Services = request.app.state.services
    database: Database = request.app.state.database
    external_id = request.path_params["external_id"]
    signer = services.link_signer
    genuine = signer is not None and signer.verify(
        external_id,
        request.query_params.get("expires", ""),
        request.query_params.get("signature", ""),
        datetime.now(UTC),
    )
    if not genuine:
        return HTMLResponse(
            "<!doctype html><title>Link expired</title>"
            "<p>This link is not valid or has expired. Ask for a new one.</p>",
            status_code=403,
            headers=HEADERS,
        )
    async with database.sessions() as session:
        consumer = (await queries.consumers_by_external_id(session, [external_id])).get(external_id)
        if consumer is None:
            return HTMLResponse(
                "<!doctype html><p>This account no longer exists.</p>", 404, headers=HEADERS
            )
        page = await queries.list_connections(
            session, ConnectionFilter(consumer_ids=(consumer.id,)), PageRequest(first=MAX_PAGE_SIZE)
        )
        connectors = await queries.connectors_by_id(session, {c.connector_id for c in page.items})
        summaries = await queries.use_summaries(session, [c.id for c in page.items])
        issues = (await queries.consumer_issues(session, [consumer.id]))[consumer.id]

    rows = []
    for connection in page.items:
        label, status_class = _STATUS_TEXT[connection.status]
        if connection.state is domain.ConnectionState.FAILED:
            label, status_class = "Authentication failed", "down"
        summary = summaries[connection.id]
        reason = connection.failure_reason.value if connection.failure_reason else ""
        rows.append(
            "<tr>"
            f"<td>{escape(connection.name)}</td>"
            f"<td>{escape(connectors[connection.connector_id].name)}</td>"
            f'<td class="{status_class}">{label}</td>'
            f"<td>{_when(connection.last_checked_at)}</td>"
            f"<td>{escape(', '.join(str(u) for u in summary.used_for))}</td>"
            f"<td>{summary.instance_health.healthy} of {summary.instance_health.total} healthy</td>"
            f"<td>{escape(reason)} {escape(connection.last_error or '')}</td>"
            "</tr>"
        )
    issue_items = (
        "".join(f"<li>{escape(issue.message)}</li>" for issue in issues) or "<li>None</li>"
    )
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(consumer.name)}: connections</title>
<style>{_STYLE}</style>
</head><body>
<h1>{escape(consumer.name)}</h1>
<h2>What might have failed</h2><ul>{issue_items or "<li>Nothing</li>"}</ul>
<h2>Connections</h2>
<table><thead><tr><th>Connection</th><th>Connector</th><th>Status</th><th>Last checked</th>
<th>Used for</th><th>Instance health</th><th>Failure</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
</body></html>"""
    return HTMLResponse(html, headers=HEADERS)
