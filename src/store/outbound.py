"""Where heartbeats may be sent: the policy every write of a heartbeat URL is checked against.

The store cannot resolve names or know the deployment's allowlist; the composition root hands
the commands an `OutboundPolicy` (the probes' address guard), so a URL refused at connect time
is refused when it is saved too, whoever saves it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from store.errors import ValidationError


class OutboundPolicy(Protocol):
    async def refusal(self, url: str) -> str | None:
        """Why nothing may be sent to `url` (e.g. it resolves to a private address), or None."""
        ...


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _origin(url: str) -> str:
    """Scheme, host and port of `url`, placeholders filled with a sample value."""
    parts = urlsplit(_PLACEHOLDER.sub("x", url))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


async def check_targets(policy: OutboundPolicy, targets: Iterable[tuple[str, str]]) -> None:
    """Ask `policy` about each (field, url); ValidationError on the first refused one.

    The policy judges addresses, so each distinct origin is asked once. A placeholder left in
    a template's host (`{external_id}.localhost`) is judged with a sample value: a name that
    resolves nowhere passes here and is judged again where the connection fills it in, and
    at connect time.
    """
    asked: dict[str, str | None] = {}
    for field, url in targets:
        origin = _origin(url)
        if origin not in asked:
            asked[origin] = await policy.refusal(origin)
        refusal = asked[origin]
        if refusal is not None:
            raise ValidationError(field, url, refusal)
