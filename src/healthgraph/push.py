"""Push endpoints for the other side of the graph: an inbound connection calling in, and an
app reporting how a use ran. The same tokens, scopes and tenants as the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from graphql_schema.context import Services, Viewer
from graphql_schema.errors import ClientError
from graphql_schema.ids import decode_id
from healthgraph.database import Database
from store import commands, queries
from store.domain import TokenScope
from store.errors import NotFoundError, ValidationError

# The body size is limited in front of these endpoints (healthgraph.limits.BodySizeLimit, in
# app.py): a larger body is refused with 413 before it is read or the token is looked up.


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _owner_of(database: Database, kind: str, row_id: int) -> int | None:
    async with database.sessions() as session:
        if kind == "Connection":
            connection = (await queries.connections_by_id(session, [row_id])).get(row_id)
            return connection.consumer_id if connection else None
        use = (await queries.uses_by_id(session, [row_id])).get(row_id)
        owner = (await queries.connections_by_id(session, [use.connection_id])) if use else {}
        return owner[use.connection_id].consumer_id if use and owner else None


async def _target(request: Request, kind: str) -> int | JSONResponse:
    viewer: Viewer = request.scope["state"]["viewer"]
    try:
        viewer.require(TokenScope.WRITE)
        row_id = decode_id(request.path_params["id"], kind)
    except ClientError as exc:
        return _error(403 if "scope" in str(exc) else 400, str(exc))
    owner = await _owner_of(request.app.state.database, kind, row_id)
    if owner is None or not viewer.sees_consumer(owner):
        return _error(404, f"{kind} {request.path_params['id']!r} does not exist")
    return row_id


async def inbound_heartbeat(request: Request) -> JSONResponse:
    """POST /push/heartbeat/{id}: the inbound connection is alive, for one more interval."""
    row_id = await _target(request, "Connection")
    if isinstance(row_id, JSONResponse):
        return row_id
    database: Database = request.app.state.database
    try:
        async with database.sessions.begin() as session:
            record = await commands.record_inbound_heartbeat(session, row_id, at=datetime.now(UTC))
    except (ValidationError, NotFoundError) as exc:
        return _error(409 if isinstance(exc, ValidationError) else 404, str(exc))
    services: Services = request.app.state.services
    await services.broadcaster.publish([row_id])
    return JSONResponse({"status": record.status.value, "nextCheckAt": _iso(record.next_check_at)})


async def use_run(request: Request) -> JSONResponse:
    """POST /push/use-run/{id} with {"success": bool, "error": "..."}: how a use last ran."""
    row_id = await _target(request, "Use")
    if isinstance(row_id, JSONResponse):
        return row_id
    body = await request.body()
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return _error(400, "body: not valid JSON")
    if not isinstance(payload, dict) or set(payload) - {"success", "error"}:
        return _error(400, 'body: expected {"success": true|false, "error": "..."}')
    success, error = payload.get("success"), payload.get("error")
    if not isinstance(success, bool):
        return _error(400, "success: expected true or false")
    if error is not None and not isinstance(error, str):
        return _error(400, "error: expected a string or null")
    database: Database = request.app.state.database
    try:
        async with database.sessions.begin() as session:
            record = await commands.report_use_run(
                session, row_id, success=success, error=error, at=datetime.now(UTC)
            )
    except ValidationError as exc:
        return _error(400, str(exc))
    return JSONResponse({"status": record.status.value, "lastRunAt": _iso(record.last_run_at)})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
