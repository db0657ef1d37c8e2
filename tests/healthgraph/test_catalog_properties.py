"""Properties of the catalog parser: whatever a file holds, `parse_catalog` returns a spec or
raises CatalogError listing problems that each name the file (the CLI turns that into exit
status 2); it never raises anything else, which would be a traceback and exit status 1."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from healthgraph.catalog.spec import CatalogSpec, parse_catalog
from healthgraph.errors import CatalogError

FAST = settings(max_examples=250, derandomize=True, database=None, deadline=None)
SOURCE = "catalog.yaml"

# Keys the parser knows, so generated documents get past the top level into the entries.
KEYS = st.sampled_from(
    [
        "use_kinds", "connectors", "consumers", "syncs", "kind", "label", "slug", "name",
        "category", "heartbeat", "url", "method", "expected_status", "timeout_seconds",
        "external_id", "email", "connections", "connector", "direction", "state",
        "check_interval_seconds", "failure_threshold", "credentials", "token_env", "uses",
        "requires", "activations", "consumer", "steps", "mapping", "json_path", "body_regex",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["http", "tcp", "outbound", "active", "https://api.example.com/x", "GET"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def assert_parses_or_names_its_problems(text: str) -> CatalogSpec | None:
    refused: CatalogError | None = None
    try:
        return parse_catalog(text, SOURCE)
    except CatalogError as exc:
        refused = exc
    assert refused.problems, repr(refused)
    for problem in refused.problems:
        assert isinstance(problem, str) and problem.startswith(f"{SOURCE}:"), problem
        assert "Traceback" not in problem
    return None


@settings(FAST, max_examples=150)
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_any_structure_parses_or_is_refused_with_named_problems(document: dict[str, Any]) -> None:
    assert_parses_or_names_its_problems(yaml.safe_dump(document, allow_unicode=True))


@FAST
@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_named_problems(text: str) -> None:
    assert_parses_or_names_its_problems(text)


SLUGS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=15).map(
    lambda tail: f"s{tail}"
)


@settings(FAST, max_examples=60)
@given(st.lists(SLUGS, min_size=1, max_size=5, unique=True), st.integers(1, 86_400))
def test_a_valid_catalog_parses_to_what_it_lists(slugs: list[str], interval: int) -> None:
    document = {
        "connectors": [
            {
                "slug": slug,
                "name": slug.title(),
                "category": "accounting",
                "heartbeat": {"kind": "http", "url": f"https://api.{slug}.example/health"},
            }
            for slug in slugs
        ],
        "consumers": [
            {
                "external_id": "acme",
                "name": "Acme",
                "connections": [
                    {"name": f"Acme {slug}", "connector": slug, "check_interval_seconds": interval}
                    for slug in slugs
                ],
            }
        ],
    }
    spec = assert_parses_or_names_its_problems(yaml.safe_dump(document))
    assert spec is not None
    assert [c.slug for c in spec.connectors] == slugs
    assert [c.name for c in spec.consumers[0].connections] == [f"Acme {s}" for s in slugs]
