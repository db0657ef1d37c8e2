"""The demo: a catalog and the endpoints its heartbeats call, served by the app itself."""

from __future__ import annotations

from importlib.resources import files

from healthgraph.catalog.spec import CatalogSpec, parse_catalog


def demo_catalog(base_url: str) -> CatalogSpec:
    """The shipped demo catalog with its heartbeats pointed at `base_url` (this server)."""
    text = files("healthgraph.demo").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(text.replace("$DEMO_BASE_URL", base_url.rstrip("/")), "demo catalog")
