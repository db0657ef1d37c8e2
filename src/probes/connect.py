"""Opening a stream to guard-validated addresses only (the TCP and TLS probes' pinning)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence


async def open_pinned(
    addresses: Sequence[str],
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the first of `addresses` that accepts; numeric hosts, so no lookup happens.

    A TLS failure is final: the certificate is the name's, not one address's.
    """
    last: OSError | None = None
    for address in addresses:
        try:
            return await asyncio.open_connection(
                address,
                port,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context else None,
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            last = exc
    if last is None:
        raise OSError("no address to connect to")
    raise last


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close without caring whether the peer already went away."""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
