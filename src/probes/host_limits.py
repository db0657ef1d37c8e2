"""Probes in flight per host, and which claimed checks still wait for their host's turn."""

from __future__ import annotations

import asyncio


class _HostSlots:
    """A host's semaphore and how many probes use it."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class HostLimits:
    """One semaphore per host, dropped when no probe uses it (there may be 100k hosts).

    `enter`/`leave` rather than a generator-based context manager: this runs for every check.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._hosts: dict[str, _HostSlots] = {}

    def enter(self, host: str) -> asyncio.Semaphore:
        slots = self._hosts.get(host)
        if slots is None:
            slots = self._hosts[host] = _HostSlots(self._limit)
        slots.users += 1
        return slots.semaphore

    def leave(self, host: str) -> None:
        slots = self._hosts[host]
        slots.users -= 1
        if not slots.users:
            del self._hosts[host]


class InFlight:
    """The checks a worker has claimed and not finished: waiting for their host's slot, or
    probing. One place keeps both counts, so they cannot drift apart."""

    __slots__ = ("_ids", "_waiting", "changed")

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._waiting = 0
        self.changed = asyncio.Event()  # set whenever a check finishes

    def __contains__(self, connection_id: int) -> bool:
        return connection_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def probing(self) -> int:
        return len(self._ids) - self._waiting

    def ids(self) -> list[int]:
        return sorted(self._ids)

    def claimed(self, connection_id: int) -> None:
        """Claimed: it waits for its host's slot."""
        self._ids.add(connection_id)
        self._waiting += 1

    def started(self) -> None:
        """One waiting check got its host's slot and probes now."""
        self._waiting -= 1

    def finished(self, connection_id: int, *, was_waiting: bool) -> None:
        """Done (its result buffered, or given up); `was_waiting` if it never started."""
        if was_waiting:
            self._waiting -= 1
        self._ids.discard(connection_id)
        self.changed.set()
