"""The page a consumer link opens: that consumer's connections and what failed (the shared
protections are in `healthgraph.link_pages`)."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

from healthgraph.database import Database
from healthgraph.link_pages import failure, genuine, gone, page, refused, status, when
from store import queries
from store.filters import ConnectionFilter
from store.pagination import MAX_PAGE_SIZE, PageRequest


async def consumer_page(request: Request) -> HTMLResponse:
    """GET /consumers/{external_id}: 403 unless the consumer link is genuine and unexpired."""
    database: Database = request.app.state.database
    external_id = request.path_params["external_id"]
    if not genuine(
        request,
        lambda signer, expires, signature, now: signer.verify(external_id, expires, signature, now),
    ):
        return refused()
    async with database.sessions() as session:
        consumer = (await queries.consumers_by_external_id(session, [external_id])).get(external_id)
        if consumer is None:
            return gone("account")
        connections = await queries.list_connections(
            session, ConnectionFilter(consumer_ids=(consumer.id,)), PageRequest(first=MAX_PAGE_SIZE)
        )
        connectors = await queries.connectors_by_id(
            session, {c.connector_id for c in connections.items}
        )
        summaries = await queries.use_summaries(session, [c.id for c in connections.items])
        issues = (await queries.consumer_issues(session, [consumer.id]))[consumer.id]

    rows = []
    for connection in connections.items:
        label, status_class = status(connection)
        summary = summaries[connection.id]
        rows.append(
            "<tr>"
            f"<td>{escape(connection.name)}</td>"
            f"<td>{escape(connectors[connection.connector_id].name)}</td>"
            f'<td class="{status_class}">{label}</td>'
            f"<td>{when(connection.last_checked_at)}</td>"
            f"<td>{escape(', '.join(str(u) for u in summary.used_for))}</td>"
            f"<td>{summary.instance_health.healthy} of {summary.instance_health.total} healthy</td>"
            f"<td>{failure(connection)}</td>"
            "</tr>"
        )
    issue_items = (
        "".join(f"<li>{escape(issue.message)}</li>" for issue in issues) or "<li>None</li>"
    )
    return page(
        f"{consumer.name}: connections",
        f"""<h1>{escape(consumer.name)}</h1>
<h2>What might have failed</h2><ul>{issue_items or "<li>Nothing</li>"}</ul>
<h2>Connections</h2>
<table><thead><tr><th>Connection</th><th>Connector</th><th>Status</th><th>Last checked</th>
<th>Used for</th><th>Instance health</th><th>Failure</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>""",
    )
