"""Keeping secrets out of error text: every error a probe returns passes through here."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

MAX_ERROR_CHARS = 300
MASK = "***"

# Userinfo and query strings of any URL an exception message happens to quote.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_URL_QUERY = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?#'\"]*)\?[^\s#'\"]*")


def display_url(url: str) -> str:
    """`url` without userinfo, query or fragment: safe to show in a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` on one line, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Redactor:
    """Masks known secret values, in the spellings they travel in, and URL userinfo/queries."""

    def __init__(self, secrets: Iterable[str]) -> None:
        spellings: set[str] = set()
        for secret in secrets:
            if secret:
                flat = " ".join(secret.split())
                spellings.update({secret, flat, quote(secret, safe=""), quote_plus(secret)})
        # Longest first, so a secret that contains another is masked whole.
        self._spellings = sorted(spellings, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for spelling in self._spellings:
            text = text.replace(spelling, MASK)
        text = _URL_USERINFO.sub(r"\1", text)
        return _URL_QUERY.sub(r"\1?" + MASK, text)


def url_secrets(url: str | None) -> list[str]:
    """The userinfo of `url` (user, password and the Basic header httpx derives from them)."""
    if not url:
        return []
    parts = urlsplit(url)
    user, password = parts.username, parts.password
    if user is None and password is None:
        return []
    pair = f"{unquote(user or '')}:{unquote(password or '')}"
    encoded = base64.b64encode(pair.encode()).decode("ascii")
    return [value for value in (password, unquote(password or ""), pair, encoded) if value]
