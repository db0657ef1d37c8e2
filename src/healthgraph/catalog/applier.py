"""One apply's state and the way it calls a command: what the commands refused, by path."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import KeyRing
from store.errors import ConflictError, NotFoundError, ValidationError
from store.outbound import OutboundPolicy

T = TypeVar("T")


@dataclass
class ApplyReport:
    changes: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        if not self.changed:
            return "no changes"
        return f"{self.created} created, {self.updated} updated, {self.deleted} deleted"

    def create(self, what: str) -> None:
        self.created += 1
        self.changes.append(f"created {what}")

    def update(self, what: str, fields: list[str]) -> None:
        if fields:
            self.updated += 1
            self.changes.append(f"updated {what}: {', '.join(fields)}")

    def delete(self, what: str) -> None:
        self.deleted += 1
        self.changes.append(f"deleted {what}")


class RememberedPolicy:
    """The outbound policy, asked once per origin for the whole file (many connections share
    a host)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._answers: dict[str, str | None] = {}

    async def refusal(self, url: str) -> str | None:
        if url not in self._answers:
            self._answers[url] = await self._policy.refusal(url)
        return self._answers[url]


def differences(wanted: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` whose value differs from `stored`'s."""
    return {name: value for name, value in wanted.items() if stored[name] != value}


@dataclass
class Applier:
    """One apply: the session its commands write in, what they refused, and the ids of what
    the file names (stored, or created by this apply)."""

    session: AsyncSession
    source: str
    outbound: OutboundPolicy
    key_ring: KeyRing | None
    # Secrets the file references, read: by (consumer external id, connection name), and the
    # connectors' client secrets by slug.
    secrets: Mapping[tuple[str, str], dict[str, str]]
    client_secrets: Mapping[str, str]
    report: ApplyReport = field(default_factory=ApplyReport)
    problems: list[str] = field(default_factory=list)
    connector_ids: dict[str, int] = field(default_factory=dict)
    consumer_ids: dict[str, int] = field(default_factory=dict)

    async def run(self, path: str, command: Awaitable[T]) -> T | None:
        """The command's result, or None after recording its refusal under `path`."""
        try:
            return await command
        except ValidationError as exc:
            message = str(exc) if isinstance(exc, ConflictError) else exc.problem
            self.problems.append(f"{self.source}: {path}.{exc.field}: {message}")
        except NotFoundError as exc:
            self.problems.append(f"{self.source}: {path}: {exc}")
        return None

    async def succeeds(self, path: str, command: Awaitable[object]) -> bool:
        """Whether the command went through (its refusal is recorded under `path`)."""
        return await self.run(path, command) is not None
