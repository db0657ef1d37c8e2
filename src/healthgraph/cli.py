"""`healthgraph` command line. Exit status: 0 success, 2 invalid input, 1 anything else."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette

from exporter import SelfMetrics, metrics_app, service_registry, serving
from healthgraph.catalog.apply import apply_catalog, needs_key_ring
from healthgraph.catalog.export import dump_yaml, export_catalog
from healthgraph.catalog.spec import CatalogSpec, load_catalog_file
from healthgraph.database import open_database
from healthgraph.errors import HealthgraphError, SettingsError
from healthgraph.keys import add_key_to_file, retire_old_keys
from healthgraph.library_listing import connector_library_text
from healthgraph.logs import configure_logging
from healthgraph.runtime import RuntimeTuning
from healthgraph.settings import Settings, load_settings
from healthgraph.worker import run_event_loop, run_until_signalled
from probes.guard import AddressGuard
from store.domain import StatusChange, TokenScope
from store.engine import create_engine
from store.errors import StoreError
from store.events import broadcaster_for
from store.keys import reencrypt_credentials
from store.migrate import current_revision, upgrade_database
from store.pagination import MAX_PAGE_SIZE, PageRequest
from store.tokens import TokenRecord, create_token, get_token, list_tokens, revoke_token

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2

log = logging.getLogger("healthgraph")


class _Rollback(Exception):
    """Raised inside a transaction to undo a dry run."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="healthgraph",
        description="Health of every connection between your product and third-party systems.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="API and scheduler in one process (the default)")
    serve.add_argument("--demo", action="store_true", help="load the demo catalog and its targets")
    api = commands.add_parser("api", help="the API only (stateless; run many against PostgreSQL)")
    for server in (serve, api):
        server.add_argument("--host", help="address to bind (HEALTHGRAPH_HOST, default 127.0.0.1)")
        server.add_argument(
            "--port", type=int, help="port to bind (HEALTHGRAPH_PORT, default 8000)"
        )
    commands.add_parser("worker", help="the heartbeat scheduler only (many on PostgreSQL)")

    keys = commands.add_parser("keys", help="credential encryption keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_commands.add_parser(
        "rotate",
        help="re-encrypt every credential under the newest key (embedded: generate it first)",
    )

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="migrate the schema to this version")

    apply = commands.add_parser("apply", help="make the catalog in the database match FILE")
    apply.add_argument("file", type=Path)
    apply.add_argument("--prune", action="store_true", help="delete what FILE no longer lists")
    apply.add_argument("--dry-run", action="store_true", help="report the changes, write nothing")

    export = commands.add_parser("export", help="write the catalog as YAML (no secrets)")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    connectors = commands.add_parser("connectors", help="the connector library")
    connectors_commands = connectors.add_subparsers(
        dest="connectors_command", required=True, metavar="ACTION"
    )
    listing = connectors_commands.add_parser(
        "list", help="the real SaaS APIs a catalog connector can name as its template"
    )
    listing.add_argument("--category", help="only this category (accounting, crm, ...)")
    listing.add_argument("--json", action="store_true", help="as JSON, with every field")

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="create a token and print it (only once)")
    create.add_argument("--scope", required=True, choices=["read", "write", "admin"])
    create.add_argument("--consumer", metavar="EXTERNAL_ID", help="limit the token to one consumer")
    create.add_argument("--name", default="", help="a note to recognise the token by")
    create.add_argument(
        "--expires-in-days", type=int, metavar="DAYS", help="expire after DAYS (default: never)"
    )
    listing = token_commands.add_parser(
        "list", help="every token, revoked ones too (never the token)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = token_commands.add_parser("revoke", help="refuse a token from its next request on")
    revoke.add_argument("id", type=int, metavar="ID", help="the token's id, as `token list` shows")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `healthgraph` console script."""
    args = _parser().parse_args(argv)
    try:
        serving = args.command in ("serve", "api")
        settings = load_settings(**({"host": args.host, "port": args.port} if serving else {}))
        configure_logging(settings.log_level)
        return _run(args, settings)
    except (HealthgraphError, StoreError) as exc:
        print(f"healthgraph: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (OperationalError, DBAPIError, OSError) as exc:
        # No SQL and no stack trace: the exception's class and first line say enough.
        reason = str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"healthgraph: cannot reach the database: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    match args.command:
        case "serve":
            return _serve(settings, demo=args.demo, scheduler=True)
        case "api":
            return _serve(settings, demo=False, scheduler=False)
        case "worker":
            run_event_loop(_worker(settings))
            return EXIT_OK
        case "keys":
            return asyncio.run(_keys_rotate(settings))
        case "db":
            return asyncio.run(_db_upgrade(settings))
        case "apply":
            spec = load_catalog_file(args.file)
            return asyncio.run(_apply(settings, spec, str(args.file), args.prune, args.dry_run))
        case "connectors":
            print(connector_library_text(args.category, as_json=args.json), end="")
            return EXIT_OK
        case "token":
            match args.token_command:
                case "list":
                    return asyncio.run(_token_list(settings, as_json=args.json))
                case "revoke":
                    return asyncio.run(_token_revoke(settings, args.id))
            return asyncio.run(_token_create(settings, args))
        case "export":
            text = asyncio.run(_export(settings))
            if args.output is None:
                sys.stdout.write(text)
            else:
                args.output.write_text(text, encoding="utf-8")
                print(f"wrote {args.output}", file=sys.stderr)
            return EXIT_OK
    raise AssertionError(args.command)


def _serve(settings: Settings, *, demo: bool, scheduler: bool) -> int:
    import uvicorn

    from healthgraph.app import create_app

    app = create_app(settings, demo=demo, scheduler=scheduler)
    print(f"healthgraph: serving on http://{settings.host}:{settings.port}", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return EXIT_OK


async def _worker(settings: Settings) -> None:
    broadcaster = broadcaster_for(settings.database_url, listen=False)
    await broadcaster.start()

    async def publish(changes: list[StatusChange]) -> None:
        await broadcaster.publish(change.connection_id for change in changes)

    registry = service_registry()
    metrics = metrics_app(registry=registry, token=settings.metrics_token)
    tuning = RuntimeTuning(settings.runtime_tuning)
    self_metrics = SelfMetrics(registry)
    try:
        await run_until_signalled(
            settings,
            on_changes=publish,
            observer=self_metrics,
            alongside=_worker_started(
                _metrics_server(metrics, settings.host, settings.worker_metrics_port), tuning
            ),
        )
    finally:
        tuning.stopped()
        await broadcaster.stop()


@asynccontextmanager
async def _worker_started(
    metrics_server: AbstractAsyncContextManager[None], tuning: RuntimeTuning
) -> AsyncIterator[None]:
    """The worker's metrics server, and its runtime tuning once start-up is done."""
    async with metrics_server:
        tuning.started()
        yield


@asynccontextmanager
async def _metrics_server(app: Starlette, host: str, port: int) -> AsyncIterator[None]:
    """The worker's own /metrics; a busy port is a settings problem, and said as one."""
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(serving(app, host, port))
        except OSError as exc:
            raise SettingsError(
                "HEALTHGRAPH_WORKER_METRICS_PORT",
                port,
                f"cannot listen on {host}:{port} ({exc.strerror}); give each worker its own port",
            ) from exc
        yield


async def _keys_rotate(settings: Settings) -> int:
    """With HEALTHGRAPH_SECRET_KEYS (new key first, old ones after) re-encrypt under the first;
    on the embedded key file, generate the new key too and retire the old ones afterwards."""
    database = await open_database(settings.database_url)
    try:
        if settings.secret_keys:
            count = await reencrypt_credentials(database.sessions, settings.key_ring())
            advice = "; the other keys of HEALTHGRAPH_SECRET_KEYS can now be removed"
        else:
            key_file = settings.key_file()
            settings.key_ring()  # the key file exists from here on
            count = await reencrypt_credentials(database.sessions, add_key_to_file(key_file))
            retire_old_keys(key_file)
            advice = f"; {key_file} now holds only the new key"
    finally:
        await database.close()
    print(f"re-encrypted {count} secrets under the newest key{advice}")
    return EXIT_OK


async def _db_upgrade(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        before = await current_revision(engine)
        await upgrade_database(engine)
        after = await current_revision(engine)
    finally:
        await engine.dispose()
    if before == after:
        print(f"database schema is current (revision {after})")
    else:
        print(f"database schema upgraded from {before or '(empty)'} to {after}")
    return EXIT_OK


async def _apply(
    settings: Settings, spec: CatalogSpec, source: str, prune: bool, dry_run: bool
) -> int:
    database = await open_database(settings.database_url)
    key_ring = settings.key_ring() if needs_key_ring(spec) else None
    try:
        try:
            async with database.sessions.begin() as session:
                report = await apply_catalog(
                    session,
                    spec,
                    source,
                    key_ring,
                    outbound=AddressGuard(settings.allow_targets),
                    prune=prune,
                )
                if dry_run:
                    raise _Rollback
        except _Rollback:
            pass
    finally:
        await database.close()
    for change in report.changes:
        print(change)
    suffix = " (dry run: nothing written)" if dry_run else ""
    print(f"{source}: {report.summary()}{suffix}")
    return EXIT_OK


async def _token_create(settings: Settings, args: argparse.Namespace) -> int:
    expires_at = None
    if args.expires_in_days is not None:
        if not 1 <= args.expires_in_days <= 3650:
            raise HealthgraphError(
                f"--expires-in-days: {args.expires_in_days} is out of range; use 1..3650"
            )
        expires_at = datetime.now(UTC) + timedelta(days=args.expires_in_days)
    database = await open_database(settings.database_url)
    try:
        async with database.sessions.begin() as session:
            token, _ = await create_token(
                session,
                scope=TokenScope(args.scope.upper()),
                consumer_external_id=args.consumer,
                name=args.name,
                expires_at=expires_at,
            )
    finally:
        await database.close()
    print(token)
    limited = f", limited to consumer {args.consumer!r}" if args.consumer else ""
    print(f"a {args.scope} token{limited}; it is shown only this once", file=sys.stderr)
    return EXIT_OK


TOKEN_COLUMNS = ("id", "name", "scope", "consumer", "created", "expires", "last used", "revoked")


def _minute(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


async def _token_list(settings: Settings, *, as_json: bool) -> int:
    """Every token as a table (times in UTC, to the minute) or as JSON lines."""
    database = await open_database(settings.database_url)
    records: list[TokenRecord] = []
    try:
        async with database.sessions() as session:
            page = PageRequest(first=MAX_PAGE_SIZE)
            while True:
                listed = await list_tokens(session, page)
                records += listed.items
                if not listed.has_next_page:
                    break
                page = PageRequest(first=MAX_PAGE_SIZE, after=listed.end_cursor)
    finally:
        await database.close()
    if as_json:
        for record in records:
            print(json.dumps(_token_json(record)))
        return EXIT_OK
    rows = [TOKEN_COLUMNS] + [
        (
            str(record.id),
            record.name or "-",
            record.scope.value.lower(),
            record.consumer_external_id or "(all)",
            _minute(record.created_at),
            _minute(record.expires_at),
            _minute(record.last_used_at),
            _minute(record.revoked_at),
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TOKEN_COLUMNS))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return EXIT_OK


def _token_json(record: TokenRecord) -> dict[str, object]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": record.id,
        "name": record.name,
        "scope": record.scope.value.lower(),
        "consumer": record.consumer_external_id,
        "created_at": moment(record.created_at),
        "expires_at": moment(record.expires_at),
        "last_used_at": moment(record.last_used_at),
        "revoked_at": moment(record.revoked_at),
    }


async def _token_revoke(settings: Settings, token_id: int) -> int:
    """Revoke token `token_id`; an unknown id is invalid input (NotFoundError, exit 2)."""
    database = await open_database(settings.database_url)
    try:
        async with database.sessions.begin() as session:
            before = await get_token(session, token_id)
            record = await revoke_token(session, token_id)
    finally:
        await database.close()
    if before.revoked_at is not None:
        print(f"token {token_id} was already revoked at {_minute(record.revoked_at)} UTC")
    else:
        print(f"revoked token {token_id}; it is refused from its next request on")
    return EXIT_OK


async def _export(settings: Settings) -> str:
    database = await open_database(settings.database_url)
    try:
        async with database.sessions() as session:
            return dump_yaml(await export_catalog(session))
    finally:
        await database.close()


if __name__ == "__main__":
    raise SystemExit(main())
