"""The demo: a catalog and the endpoints its heartbeats call, served by the app itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files

from healthgraph.catalog.spec import CatalogSpec, parse_catalog
from healthgraph.demo.oauth import CLIENT_SECRET, DemoOAuthProvider

OAUTH_SEEDS = 4  # DEMO_OAUTH_SEED_1..4 in catalog.yaml (tools/make_demo_catalog.py)


def demo_catalog(base_url: str, today: date | None = None) -> CatalogSpec:
    """The shipped demo catalog with its heartbeats pointed at `base_url` (this server) and
    its maintenance window holding from `today` (the current UTC date) for 30 days."""
    text = files("healthgraph.demo").joinpath("catalog.yaml").read_text(encoding="utf-8")
    start = today or datetime.now(UTC).date()
    for placeholder, value in (
        ("$DEMO_BASE_URL", base_url.rstrip("/")),
        ("$DEMO_TODAY", f"{start.isoformat()}T00:00:00Z"),
        ("$DEMO_IN_30_DAYS", f"{(start + timedelta(days=30)).isoformat()}T00:00:00Z"),
    ):
        text = text.replace(placeholder, value)
    return parse_catalog(text, "demo catalog")


def demo_environ(provider: DemoOAuthProvider) -> dict[str, str]:
    """The secrets the demo catalog names by reference: the demo provider's client secret and
    a fresh grant's refresh token per OAuth2 connection."""
    environ = {"DEMO_OAUTH_CLIENT_SECRET": CLIENT_SECRET}
    for n in range(1, OAUTH_SEEDS + 1):
        environ[f"DEMO_OAUTH_SEED_{n}"] = provider.new_grant()
    return environ


def without_secrets(spec: CatalogSpec) -> CatalogSpec:
    """`spec` without what needs a key ring: connectors with a client secret and connections
    with credentials (the demo on a database without HEALTHGRAPH_SECRET_KEYS)."""
    kept = tuple(c for c in spec.connectors if c.client_secret_ref is None)
    slugs = {c.slug for c in kept}
    return replace(
        spec,
        connectors=kept,
        consumers=tuple(
            replace(
                consumer,
                connections=tuple(
                    c
                    for c in consumer.connections
                    if c.credentials is None and c.connector in slugs
                ),
            )
            for consumer in spec.consumers
        ),
    )
