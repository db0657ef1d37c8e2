"""The write side: the only way anything is written to the catalog.

GraphQL mutations, `healthgraph apply`, the CLI and the push endpoints all call these, so each
rule (input limits, the outbound policy on heartbeat URLs, secret validation, rescheduling
when probe settings change) is written once and holds for every writer.

Each command takes the caller's session and leaves the transaction to the caller: it flushes,
never commits. Every check runs before the first write, and the writes are flushed inside a
SAVEPOINT, so a refused command leaves nothing half-written and the caller's transaction usable.
Commands return `store.domain` records, never ORM rows.
"""

from store.commands.base import UNSET, Unset
from store.commands.connections import (
    create_connection,
    delete_connection,
    first_due,
    record_inbound_heartbeat,
    set_catalog_credentials,
    set_connection_credentials,
    update_connection,
)
from store.commands.connectors import (
    create_connector,
    delete_connector,
    set_connector_oauth2,
    update_connector,
)
from store.commands.consumers import create_consumer, delete_consumer, update_consumer
from store.commands.syncs import (
    create_sync,
    create_sync_activation,
    delete_sync,
    delete_sync_activation,
    update_sync,
    update_sync_activation,
)
from store.commands.uses import (
    create_use,
    delete_use,
    delete_use_kind,
    report_use_run,
    update_use,
    upsert_use_kind,
)
from store.credentials import REDACTED
from store.validation import (
    DEFAULT_CHECK_INTERVAL_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    MAX_CHECK_INTERVAL_SECONDS,
    MAX_EMAIL_LENGTH,
    MAX_FAILURE_THRESHOLD,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    MIN_CHECK_INTERVAL_SECONDS,
    MIN_FAILURE_THRESHOLD,
)

__all__ = [
    "DEFAULT_CHECK_INTERVAL_SECONDS",
    "DEFAULT_FAILURE_THRESHOLD",
    "MAX_CHECK_INTERVAL_SECONDS",
    "MAX_EMAIL_LENGTH",
    "MAX_FAILURE_THRESHOLD",
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "MIN_CHECK_INTERVAL_SECONDS",
    "MIN_FAILURE_THRESHOLD",
    "REDACTED",
    "UNSET",
    "Unset",
    "create_connection",
    "create_connector",
    "create_consumer",
    "create_sync",
    "create_sync_activation",
    "create_use",
    "delete_connection",
    "delete_connector",
    "delete_consumer",
    "delete_sync",
    "delete_sync_activation",
    "delete_use",
    "delete_use_kind",
    "first_due",
    "record_inbound_heartbeat",
    "report_use_run",
    "set_catalog_credentials",
    "set_connection_credentials",
    "set_connector_oauth2",
    "update_connection",
    "update_connector",
    "update_consumer",
    "update_sync",
    "update_sync_activation",
    "update_use",
    "upsert_use_kind",
]
