"""Waiting in tests: for a condition that something else makes true, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    seconds: float = 30,
    what: str = "the condition",
    *,
    step: float = 0.05,
) -> None:
    """Poll `condition` until it holds; fail naming `what` when `seconds` pass.

    For state that another process or the database changes, which no event announces. The
    deadline is a failure bound, never a measurement: keep it generous (a busy 2-core CI
    machine runs two test workers beside the code under test).
    """
    try:
        async with asyncio.timeout(seconds):
            while not await condition():  # noqa: ASYNC110 - polling processes and databases
                await asyncio.sleep(step)
    except TimeoutError:
        raise AssertionError(f"not within {seconds} s: {what}") from None
