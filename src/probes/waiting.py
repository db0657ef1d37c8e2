"""Waiting for whichever comes first: one of some events, or a number of seconds."""

from __future__ import annotations

import asyncio


async def first_of(*events: asyncio.Event, seconds: float) -> None:
    """Wait until any of `events` is set, or `seconds` pass."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
