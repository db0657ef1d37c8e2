"""The catalog file: parsed into frozen specs, every problem reported with the entry's path.

Parsing never stops at the first problem: a user fixing a file wants the whole list at once.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from healthgraph.catalog import sections, sections_alerting
from healthgraph.catalog.entries import (
    ActivationSpec,
    CatalogSpec,
    ConnectionSpec,
    ConnectorSpec,
    ConsumerSpec,
    SyncSpec,
    UseKindSpec,
    UseSpec,
)
from healthgraph.catalog.reader import Reader
from healthgraph.catalog.references import check_references, resolve_secret
from healthgraph.errors import CatalogError

__all__ = [
    "ActivationSpec",
    "CatalogSpec",
    "ConnectionSpec",
    "ConnectorSpec",
    "ConsumerSpec",
    "SyncSpec",
    "UseKindSpec",
    "UseSpec",
    "check_references",
    "load_catalog_file",
    "parse_catalog",
    "resolve_secret",
]


def load_catalog_file(path: Path) -> CatalogSpec:
    """Read and parse a catalog file; raise CatalogError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError([f"{path}: cannot read the file ({exc.strerror})"]) from exc
    return parse_catalog(text, str(path))


def parse_catalog(text: str, source: str) -> CatalogSpec:
    """Parse catalog YAML; `source` names the file in messages."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise CatalogError(
            [f"{source}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from exc
    reader = Reader(source)
    if document is None:
        document = {}
    top = reader.mapping(
        document,
        "",
        (),
        ("use_kinds", "connectors", "consumers", "syncs", "webhooks", "maintenance"),
    )
    if top is None:
        raise CatalogError(reader.problems)
    spec = CatalogSpec(
        use_kinds=tuple(sections.use_kinds(reader, top)),
        connectors=tuple(sections.connectors(reader, top)),
        consumers=tuple(sections.consumers(reader, top)),
        syncs=tuple(sections.syncs(reader, top)),
        webhooks=tuple(sections_alerting.webhooks(reader, top)),
        maintenance=tuple(sections_alerting.maintenance(reader, top)),
    )
    sections.check_duplicates(reader, spec)
    sections_alerting.check_duplicates(reader, spec)
    if reader.problems:
        raise CatalogError(reader.problems)
    return spec
