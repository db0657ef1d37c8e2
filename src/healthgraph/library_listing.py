"""`healthgraph connectors list`: the connector library as a table, or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict

from store import library


def connector_library_text(category: str | None = None, *, as_json: bool = False) -> str:
    """The library's templates (of one category), one line each, or all their fields as JSON."""
    templates = [
        t for t in library.connector_templates() if category is None or t.category == category
    ]
    if as_json:
        return json.dumps([asdict(t) for t in templates], indent=2, default=str) + "\n"
    rows = [("TEMPLATE", "NAME", "CATEGORY", "AUTH", "PARAMS")]
    for template in templates:
        auth = "oauth2" if template.oauth2 else str(template.credential_kind)
        if template.oauth2 and template.oauth2.get("grant") == "client_credentials":
            auth += " (client credentials)"
        rows.append(
            (
                template.template,
                template.name,
                template.category,
                auth,
                ", ".join(param.name for param in template.params) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
