"""Access tokens for OAuth2 connections: the stored one while it is good, otherwise a refresh
that only one holder runs at a time, saved before its token is used (store.oauth has the why).

One broker per process and event loop. Within it, concurrent checks of one connection share
one refresh (an in-process single flight); across threads, processes and workers, the grant's
refresh lease in the database decides who refreshes, and the others wait for its answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from probes.batched_writes import BatchedWrites
from probes.oauth import OAuthClient, TokenAnswer, TokenRefusal, request_token
from probes.target import ProbeContext
from store import oauth
from store.crypto import KeyRing, KeyRingError
from store.domain import FailureReason
from store.oauth import OAuthGrant
from store.scheduling import DueCheck

log = logging.getLogger(__name__)

# A token that expires within this is refreshed before it is used, not after a 401.
EXPIRY_MARGIN = timedelta(seconds=60)
_ROUNDS = 6  # re-reads after another holder's refresh, or a grant replaced meanwhile
_POLL_SECONDS = 0.05
_holders = count(1)


class RefreshObserver(Protocol):
    """Told of every refresh (the exporter's self-metrics implement it)."""

    def refresh_finished(self, connector: str, result: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = field(repr=False)
    refreshed: bool  # obtained by a refresh during this request (a 401 on it is final)


def _holder_id() -> str:
    pid = f":{os.getpid()}:{next(_holders)}"
    return socket.gethostname()[: 64 - len(pid)] + pid


def _gone(holder: str) -> bool:
    """Whether `holder` was a process of this machine that no longer runs (killed mid-refresh:
    its lease need not be waited out). Holders are "host:pid:n" (`_holder_id`)."""
    try:
        name, pid_text, _ = holder.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if name != socket.gethostname()[: len(name)] or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


@dataclass(frozen=True, slots=True)
class _KnownToken:
    token: str = field(repr=False)
    expires_at: datetime | None


def _usable(grant: OAuthGrant, now: datetime, rejected: str | None) -> bool:
    return (
        grant.access_token is not None
        and grant.access_token != rejected
        and (
            grant.access_token_expires_at is None
            or grant.access_token_expires_at > now + EXPIRY_MARGIN
        )
    )


class TokenBroker:
    """Hands out access tokens for OAuth2 connections; see the module docstring."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        key_ring: KeyRing,
        *,
        observer: RefreshObserver | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.holder = _holder_id()
        self._sessions = sessions
        self._key_ring = key_ring
        self._observer = observer
        self._clock = clock
        self._flights: dict[tuple[int, str | None], asyncio.Future[AccessToken | TokenRefusal]]
        self._flights = {}
        self._known: dict[int, _KnownToken] = {}
        self._writes = BatchedWrites(sessions)

    async def access_token(
        self, due: DueCheck, context: ProbeContext, *, rejected: str | None = None
    ) -> AccessToken | TokenRefusal:
        """A token to present for `due`, or why there is none. `rejected`: a token the API
        just refused with 401 (it is refreshed even if it has not expired)."""
        key = (due.connection_id, rejected)
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            result = await self._obtain(due, context, rejected)
            flight.set_result(result)
            return result
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no warning when nobody else waited
            raise
        finally:
            del self._flights[key]

    async def _read(self, connection_id: int) -> OAuthGrant | None:
        async with self._sessions() as session:
            grant = await oauth.load_grant(session, connection_id, self._key_ring)
        self._remember(connection_id, grant)
        return grant

    def _remember(self, connection_id: int, grant: OAuthGrant | None) -> None:
        if grant is None or grant.access_token is None or grant.dead_reason is not None:
            self._known.pop(connection_id, None)
        else:
            self._known[connection_id] = _KnownToken(
                grant.access_token, grant.access_token_expires_at
            )

    def _known_token(self, connection_id: int, rejected: str | None) -> str | None:
        """The access token this process last read or saved, while it is good: most checks
        need no read of the grant at all."""
        known = self._known.get(connection_id)
        if known is None or known.token == rejected:
            return None
        expires_at = known.expires_at
        if expires_at is not None and expires_at <= self._clock() + EXPIRY_MARGIN:
            return None
        return known.token

    async def _obtain(
        self, due: DueCheck, context: ProbeContext, rejected: str | None
    ) -> AccessToken | TokenRefusal:
        known = self._known_token(due.connection_id, rejected)
        if known is not None:
            return AccessToken(known, refreshed=False)
        for _ in range(_ROUNDS):
            grant = await self._read(due.connection_id)
            if grant is None:
                return TokenRefusal(
                    FailureReason.AUTH,
                    "no OAuth2 grant is stored for this connection; set its credentials",
                )
            if grant.dead_reason is not None:
                return _dead(grant.dead_reason)
            if _usable(grant, self._clock(), rejected):
                assert grant.access_token is not None
                return AccessToken(grant.access_token, refreshed=False)
            if not await self._writes.run(functools.partial(self._lease, due, grant)):
                await self._wait_for_refresh(due.connection_id, grant.generation, grant)
                continue
            outcome: AccessToken | TokenRefusal | None = None
            try:
                outcome = await self._refresh(due, grant, context)
            finally:
                # A saved answer gave the lease back with the tokens, in one write.
                if not (isinstance(outcome, AccessToken) and outcome.refreshed):
                    await self._release(due.connection_id)
            if outcome is not None:
                return outcome
        return TokenRefusal(
            FailureReason.CONNECT,
            "no access token: the grant kept changing while it was refreshed; it is tried again "
            "at the next check",
        )

    async def _lease(self, due: DueCheck, grant: OAuthGrant, session: AsyncSession) -> bool:
        """Take the refresh lease on the generation read (taken: the grant is still as read)."""
        now = self._clock()
        lease = functools.partial(
            oauth.take_refresh_lease,
            session,
            due.connection_id,
            holder=self.holder,
            now=now,
            generation=grant.generation,
        )
        if await lease():
            return True
        other = await oauth.lease_holder(session, due.connection_id, now=now)
        if other is None or not _gone(other):
            return False
        log.info(
            "connection %d: taking over the refresh of %s, which is gone",
            due.connection_id,
            other,
        )
        return await lease(dead_holder=other)

    async def _refresh(
        self, due: DueCheck, grant: OAuthGrant, context: ProbeContext
    ) -> AccessToken | TokenRefusal | None:
        """Holding the lease on `grant` as read: refresh, save, and say what came of it (None:
        read again)."""
        try:
            client = self._client(due)
        except (KeyRingError, ValueError) as exc:
            return TokenRefusal(FailureReason.CONNECT, f"cannot ask for a token: {exc}")
        if grant.grant_type == "refresh_token" and grant.refresh_token is None:
            return _dead("no refresh token is stored")
        answer = await request_token(
            context,
            client,
            grant_type=grant.grant_type,
            refresh_token=grant.refresh_token,
        )
        if isinstance(answer, TokenAnswer):
            return await self._save(due, grant, answer)
        if answer.dead_grant and grant.grant_type == "refresh_token":
            return await self._bury(due, grant, answer)
        self._observe(due, answer.reason.value.lower())
        return answer

    def _client(self, due: DueCheck) -> OAuthClient:
        app = due.oauth2
        if not app:
            raise ValueError(f"connector {due.connector_slug!r} has no OAuth2 app")
        if due.client_secret_ciphertext is None:
            raise ValueError(f"connector {due.connector_slug!r} has no client secret")
        secret = self._key_ring.decrypt(due.client_secret_ciphertext)["client_secret"]
        return OAuthClient(
            token_url=oauth.token_url_for(app, due.external_id, due.params),
            client_id=str(app["client_id"]),
            client_secret=str(secret),
            auth_method=str(app.get("auth_method", "client_secret_basic")),
            scopes=tuple(app.get("scopes", ())),
        )

    async def _save(
        self, due: DueCheck, grant: OAuthGrant, answer: TokenAnswer
    ) -> AccessToken | None:
        now = self._clock()
        access_token_expires_at = _after(now, answer.expires_in)
        saved = await self._writes.run(
            functools.partial(
                oauth.save_refreshed_tokens,
                connection_id=due.connection_id,
                holder=self.holder,
                used_generation=grant.generation,
                refresh_token=answer.refresh_token,
                access_token=answer.access_token,
                access_token_expires_at=access_token_expires_at,
                refresh_token_expires_at=_after(now, answer.refresh_token_expires_in),
                now=now,
                key_ring=self._key_ring,
            )
        )
        if not saved:
            # New credentials replaced the grant while we asked: this answer is nobody's.
            log.info("connection %d: refreshed a grant replaced meanwhile", due.connection_id)
            return None
        self._known[due.connection_id] = _KnownToken(answer.access_token, access_token_expires_at)
        self._observe(due, "ok")
        return AccessToken(answer.access_token, refreshed=True)

    async def _bury(
        self, due: DueCheck, grant: OAuthGrant, answer: TokenRefusal
    ) -> TokenRefusal | None:
        """`invalid_grant` and the like: the grant is dead, unless it was saved anew meanwhile
        by someone whose lease we outlived (then read again)."""

        async def bury(session: AsyncSession) -> bool:
            if not await oauth.refresh_token_unchanged(
                session, due.connection_id, generation=grant.generation
            ):
                return False
            await oauth.mark_grant_dead(
                session,
                due.connection_id,
                holder=self.holder,
                generation=grant.generation,
                reason=answer.message,
                now=self._clock(),
            )
            return True

        if not await self._writes.run(bury):
            return None
        self._known.pop(due.connection_id, None)
        self._observe(due, "dead_grant")
        return _dead(answer.message)

    async def _release(self, connection_id: int) -> None:
        try:
            await self._writes.run(
                functools.partial(
                    oauth.release_refresh_lease, connection_id=connection_id, holder=self.holder
                )
            )
        except Exception:  # it expires by itself; never hide the refresh's own outcome
            log.warning("connection %d: could not release the refresh lease", connection_id)

    async def _wait_for_refresh(
        self, connection_id: int, generation: int, seen: OAuthGrant
    ) -> None:
        """Another holder is refreshing: wait (at most its lease) until its answer is saved or
        the lease is gone."""
        deadline = self._clock() + timedelta(seconds=oauth.REFRESH_LEASE_SECONDS)
        while self._clock() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
            grant = await self._read(connection_id)
            if (
                grant is None
                or grant.generation != generation
                or grant.access_token != seen.access_token
                or grant.dead_reason is not None
            ):
                return
            async with self._sessions() as session:
                if not await oauth.refresh_leased(session, connection_id, now=self._clock()):
                    return

    def _observe(self, due: DueCheck, result: str) -> None:
        if self._observer is None:
            return
        try:
            self._observer.refresh_finished(due.connector_slug, result)
        except Exception:  # metrics never fail a check
            log.exception("refresh observer failed")


def _dead(why: str) -> TokenRefusal:
    return TokenRefusal(
        FailureReason.AUTH,
        f"the OAuth2 grant is no longer valid ({why}); the consumer must reconnect",
        dead_grant=True,
    )


def _after(now: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else now + timedelta(seconds=seconds)
