"""Signed, expiring links to a consumer's connection page ("Get consumer link" in seed 2)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """HMAC-SHA256 over the consumer and the expiry; nothing is stored, nothing to revoke."""

    secret: bytes

    def _signature(self, external_id: str, expires: int) -> str:
        message = f"consumer-link:{external_id}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def path(self, external_id: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        signature = self._signature(external_id, expires)
        return f"/consumers/{quote(external_id, safe='')}?expires={expires}&signature={signature}"

    def verify(self, external_id: str, expires: str, signature: str, now: datetime) -> bool:
        """Whether the link is genuine and not yet expired."""
        if not expires.isdigit():
            return False
        expected = self._signature(external_id, int(expires))
        genuine = hmac.compare_digest(expected, signature)
        return genuine and datetime.fromtimestamp(int(expires), UTC) > now
