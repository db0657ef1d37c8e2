"""One probe run: its clock, and the only way a probe builds its result.

Routing every result through here means no probe can forget to redact or clip an error.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from probes.redact import Redactor, clip, url_secrets
from probes.result import ProbeResult
from probes.target import ProbeTarget
from store.domain import FailureReason


class Attempt:
    """Started when created; `succeeded`/`failed` stamp the latency and redact the error."""

    def __init__(self, target: ProbeTarget) -> None:
        self.checked_at = datetime.now(UTC)
        self._started = time.perf_counter()
        self._target = target

    def redact(self, text: str) -> str:
        """`text` with the target's secrets masked (built only for failures: most checks pass)."""
        secrets = url_secrets(self._target.spec.url)
        if self._target.credentials is not None:
            secrets.extend(self._target.credentials.secrets())
        return Redactor(secrets)(text)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000.0

    def succeeded(
        self, *, http_status: int | None = None, tls_cert_expires_at: datetime | None = None
    ) -> ProbeResult:
        return ProbeResult(
            success=True,
            checked_at=self.checked_at,
            latency_ms=self.elapsed_ms(),
            failure_reason=None,
            error=None,
            http_status=http_status,
            tls_cert_expires_at=tls_cert_expires_at,
        )

    def failed(
        self,
        reason: FailureReason,
        error: str,
        *,
        http_status: int | None = None,
        tls_cert_expires_at: datetime | None = None,
    ) -> ProbeResult:
        return ProbeResult(
            success=False,
            checked_at=self.checked_at,
            latency_ms=self.elapsed_ms(),
            failure_reason=reason,
            # Flatten before masking (a secret split by a newline is still a secret), clip after.
            error=clip(self.redact(" ".join(error.split()))),
            http_status=http_status,
            tls_cert_expires_at=tls_cert_expires_at,
        )
