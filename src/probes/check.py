"""One connection's check: decrypt its credentials, build the target, probe, never raise.

Shared by the scheduler, check-now in the API and the probe processes (probes.pool).
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime

from probes.errors import ProbeConfigError
from probes.redact import Redactor, clip, url_secrets
from probes.registry import ProbeFunction, run_probe
from probes.result import Credentials, ProbeResult
from probes.target import ProbeContext, ProbeTarget
from store.crypto import KeyRing, KeyRingError
from store.domain import CheckOutcome, FailureReason
from store.heartbeat import to_spec
from store.scheduling import DueCheck

log = logging.getLogger(__name__)


def outcome_from_result(result: ProbeResult) -> CheckOutcome:
    return CheckOutcome(
        success=result.success,
        checked_at=result.checked_at,
        latency_ms=result.latency_ms,
        failure_reason=result.failure_reason,
        error=result.error,
        http_status=result.http_status,
        tls_cert_expires_at=result.tls_cert_expires_at,
    )


async def check_connection(
    due: DueCheck,
    context: ProbeContext,
    key_ring: KeyRing | None,
    *,
    probe: ProbeFunction = run_probe,
) -> CheckOutcome:
    """Probe one connection. Never raises: a probe that cannot run is a failed check.

    Used by the scheduler and by check-now. Such failures are reported as CONNECT (the check
    could not reach the target) with a message that says why; secrets are masked in it.
    """
    checked_at, started = datetime.now(UTC), time.perf_counter()
    credentials: Credentials | None = None
    url = due.heartbeat.get("url")
    try:
        credentials = _credentials(due, key_ring)
        target = ProbeTarget(
            spec=to_spec(due.heartbeat, due.external_id, due.params), credentials=credentials
        )
        return outcome_from_result(await probe(target, context))
    except (ProbeConfigError, KeyRingError) as exc:
        message = f"cannot run the check: {exc}"
    except Exception as exc:  # a bug in one probe must not stop the other checks
        message = f"the probe failed unexpectedly ({type(exc).__name__}); see the worker log"
        redact = _redactor(url, credentials)
        # Frames only, and the message masked: an exception's text may quote a secret.
        log.error(
            "probe of connection %d raised %s: %s\n%s",
            due.connection_id,
            type(exc).__name__,
            redact(clip(str(exc))),
            "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
        )
    return CheckOutcome(
        success=False,
        checked_at=checked_at,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        failure_reason=FailureReason.CONNECT,
        error=clip(_redactor(url, credentials)(message)),
    )


def _credentials(due: DueCheck, key_ring: KeyRing | None) -> Credentials | None:
    if due.credentials_ciphertext is None:
        return None
    if key_ring is None:
        raise KeyRingError("the connection has stored credentials but no key ring was given")
    return Credentials.from_secret(key_ring.decrypt(due.credentials_ciphertext))


def _redactor(url: object, credentials: Credentials | None) -> Redactor:
    secrets = url_secrets(url if isinstance(url, str) else None)
    if credentials is not None:
        secrets.extend(credentials.secrets())
    return Redactor(secrets)
