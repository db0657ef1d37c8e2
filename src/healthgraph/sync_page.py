"""The page a sync link opens ("Get sync link" in seed 2): one consumer's activation of one sync,
with each step, each required connector and the consumer's connections to it, and the issue
as the "by syncs" issue column words it. The shared protections are in `link_pages`."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

from healthgraph.database import Database
from healthgraph.link_pages import failure, genuine, gone, page, refused, status, when
from store import domain, queries
from store.filters import ConnectionFilter
from store.pagination import MAX_PAGE_SIZE, PageRequest

_STEP_NAMES = {
    domain.SyncStep.CONNECTION: "Connection",
    domain.SyncStep.MAPPING: "Mapping",
    domain.SyncStep.CONFIGURATION: "Configuration",
}


async def sync_page(request: Request) -> HTMLResponse:
    """GET /consumers/{external_id}/syncs/{activation_id}: 403 unless the sync link is genuine
    and unexpired, 404 when the activation is gone or no longer this consumer's."""
    database: Database = request.app.state.database
    external_id: str = request.path_params["external_id"]
    activation_id: int = request.path_params["activation_id"]
    if not genuine(
        request,
        lambda signer, expires, signature, now: signer.verify_sync(
            external_id, activation_id, expires, signature, now
        ),
    ):
        return refused()
    async with database.sessions() as session:
        consumer = (await queries.consumers_by_external_id(session, [external_id])).get(external_id)
        activations = await queries.sync_activations_by_id(session, [activation_id])
        activation = activations.get(activation_id)
        # The link names both: an activation that is not this consumer's (any more) is gone.
        if consumer is None or activation is None or activation.consumer_id != consumer.id:
            return gone("sync activation")
        sync = (await queries.syncs_by_id(session, [activation.sync_id]))[activation.sync_id]
        required = (await queries.required_connector_ids(session, [sync.id])).get(sync.id, ())
        connectors = await queries.connectors_by_id(session, required)
        connections = await queries.list_connections(
            session,
            ConnectionFilter(consumer_ids=(consumer.id,), connector_ids=required),
            PageRequest(first=MAX_PAGE_SIZE),
        )
        # The same (active, issue) as the GraphQL fields `active` and `issue` read.
        _, issue = (await queries.sync_activations_state(session, [activation.id]))[activation.id]

    return page(
        f"{consumer.name}: {sync.name}",
        f"""<h1>{escape(sync.name)}</h1>
<p>Sync activation of {escape(consumer.name)}</p>
<h2>What might have failed</h2>{_issue(issue)}
<h2>Steps</h2>
<table><thead><tr><th>Step</th><th>Status</th><th>Detail</th></tr></thead>
<tbody>{"".join(_step_row(step) for step in activation.steps)}</tbody></table>
<h2>Required connections</h2>
<table><thead><tr><th>Connector</th><th>Connection</th><th>Status</th><th>Last checked</th>
<th>Failure</th></tr></thead>
<tbody>{_requirement_rows(required, connectors, connections.items)}</tbody></table>""",
    )


def _issue(issue: domain.Issue | None) -> str:
    # The GraphQL `issue.message`, word for word, so the page and the issue column agree.
    if issue is None:
        return '<p class="up">Nothing: the sync is active</p>'
    return f'<p class="down">{escape(issue.message)}</p>'


def _step_row(step: domain.StepState) -> str:
    label, status_class = ("Complete", "up") if step.complete else ("Incomplete", "down")
    return (
        f"<tr><td>{_STEP_NAMES[step.step]}</td>"
        f'<td class="{status_class}">{label}</td>'
        f"<td>{escape(step.detail or '')}</td></tr>"
    )


def _requirement_rows(
    required: tuple[int, ...],
    connectors: dict[int, domain.Connector],
    connections: tuple[domain.Connection, ...],
) -> str:
    """A row per connection of the consumer to each required connector, in the sync's order;
    "Missing" for a required connector it has no connection to."""
    rows = []
    for connector_id in required:
        name = escape(connectors[connector_id].name)
        mine = [c for c in connections if c.connector_id == connector_id]
        if not mine:
            rows.append(
                f'<tr><td>{name}</td><td></td><td class="down">Missing</td><td></td><td></td></tr>'
            )
        for connection in mine:
            label, status_class = status(connection)
            rows.append(
                f"<tr><td>{name}</td><td>{escape(connection.name)}</td>"
                f'<td class="{status_class}">{label}</td>'
                f"<td>{when(connection.last_checked_at)}</td>"
                f"<td>{failure(connection)}</td></tr>"
            )
    return "".join(rows)
