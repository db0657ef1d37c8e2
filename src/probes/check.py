"""One connection's check: decrypt its credentials, build the target, probe, never raise.

Shared by the scheduler, check-now in the API and the probe processes (probes.pool).
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime

from probes.errors import ProbeConfigError
from probes.oauth import TokenRefusal
from probes.redact import Redactor, clip, url_secrets
from probes.registry import ProbeFunction, run_probe
from probes.result import Credentials, ProbeResult
from probes.target import ProbeContext, ProbeTarget
from probes.token_broker import TokenBroker
from store.credentials import CredentialKind
from store.crypto import KeyRing, KeyRingError
from store.domain import CheckOutcome, FailureReason, HeartbeatSpec
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
    tokens: TokenBroker | None = None,
) -> CheckOutcome:
    """Probe one connection. Never raises: a probe that cannot run is a failed check.

    Used by the scheduler and by check-now. Such failures are reported as CONNECT (the check
    could not reach the target) with a message that says why; secrets are masked in it.
    OAuth2 connections present the access token `tokens` hands out; a 401 on a stored token
    refreshes it once and tries once more.
    """
    checked_at, started = datetime.now(UTC), time.perf_counter()
    credentials: Credentials | None = None
    url = due.heartbeat.get("url")
    try:
        credentials = _credentials(due, key_ring)
        spec = to_spec(due.heartbeat, due.external_id, due.params)
        if credentials is not None and credentials.kind is CredentialKind.OAUTH2:
            if tokens is None:
                raise ProbeConfigError("OAuth2 credentials need a token broker here")
            return await _check_with_token(due, spec, context, tokens, probe, checked_at)
        return outcome_from_result(await probe(ProbeTarget(spec, credentials), context))
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


async def _check_with_token(
    due: DueCheck,
    spec: HeartbeatSpec,
    context: ProbeContext,
    tokens: TokenBroker,
    probe: ProbeFunction,
    checked_at: datetime,
) -> CheckOutcome:
    granted = await tokens.access_token(due, context)
    if isinstance(granted, TokenRefusal):
        return _refused(granted, checked_at)
    result = await probe(
        ProbeTarget(spec, Credentials(CredentialKind.BEARER, granted.token)), context
    )
    if result.failure_reason is FailureReason.AUTH and not granted.refreshed:
        # The API refused a token we thought good (revoked, or expired early): one refresh.
        again = await tokens.access_token(due, context, rejected=granted.token)
        if isinstance(again, TokenRefusal):
            return _refused(again, checked_at)
        result = await probe(
            ProbeTarget(spec, Credentials(CredentialKind.BEARER, again.token)), context
        )
    return outcome_from_result(result)


def _refused(refusal: TokenRefusal, checked_at: datetime) -> CheckOutcome:
    """No access token: the token endpoint's failure is the check's (a dead grant is AUTH)."""
    return CheckOutcome(
        success=False,
        checked_at=checked_at,
        latency_ms=(datetime.now(UTC) - checked_at).total_seconds() * 1000.0,
        failure_reason=refusal.reason,
        error=clip(refusal.message),
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
