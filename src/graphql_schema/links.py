"""Signed, expiring links to a consumer's connection page ("Get consumer link" in seed 2) and to
its page for one sync activation ("Get sync link")."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

# What each kind of link signs, first in the message: a signature made for one never opens the
# other (the two prefixes differ at their first character, so no message of one kind can equal
# a message of the other).
CONSUMER_LINK = "consumer-link"
SYNC_LINK = "sync-link"


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """HMAC-SHA256 over the link's kind, what it opens and the expiry; nothing is stored,
    nothing to revoke."""

    secret: bytes

    def _signature(self, *parts: str | int) -> str:
        # A consumer link signs "consumer-link:<external id>:<expires>", as it always has. A
        # sync link signs "sync-link:<activation id>:<external id>:<expires>": the id and the
        # expiry are digits, so the external id between them (colons and all) is unambiguous.
        message = ":".join(str(part) for part in parts).encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _query(self, expires: int, *parts: str | int) -> str:
        return f"?expires={expires}&signature={self._signature(*parts, expires)}"

    def _genuine(self, expires: str, signature: str, now: datetime, *parts: str | int) -> bool:
        if not expires.isdigit():
            return False
        expected = self._signature(*parts, int(expires))
        genuine = hmac.compare_digest(expected, signature)
        return genuine and datetime.fromtimestamp(int(expires), UTC) > now

    def path(self, external_id: str, expires_at: datetime) -> str:
        """The consumer page's path and signed query, valid until `expires_at`."""
        expires = int(expires_at.timestamp())
        query = self._query(expires, CONSUMER_LINK, external_id)
        return f"/consumers/{quote(external_id, safe='')}{query}"

    def verify(self, external_id: str, expires: str, signature: str, now: datetime) -> bool:
        """Whether the consumer link is genuine and not yet expired."""
        return self._genuine(expires, signature, now, CONSUMER_LINK, external_id)

    def sync_path(self, external_id: str, activation_id: int, expires_at: datetime) -> str:
        """The path and signed query of the consumer's page for one sync activation."""
        expires = int(expires_at.timestamp())
        query = self._query(expires, SYNC_LINK, activation_id, external_id)
        return f"/consumers/{quote(external_id, safe='')}/syncs/{activation_id}{query}"

    def verify_sync(
        self, external_id: str, activation_id: int, expires: str, signature: str, now: datetime
    ) -> bool:
        """Whether the sync link is genuine, for this consumer and activation, and not expired."""
        return self._genuine(expires, signature, now, SYNC_LINK, activation_id, external_id)
