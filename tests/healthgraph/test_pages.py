"""The HTML pages and GraphiQL's files: strict security headers, every file from this host and
from this package (the pinned releases, checked by hash), and nothing at all while GraphiQL is
turned off."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from healthgraph.app import create_app
from healthgraph.graphiql import ASSETS
from healthgraph.settings import Settings
from store.domain import TokenScope
from tests.demo_server import Server
from tests.servers import running

GRAPHIQL_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HTML = {"Accept": "text/html"}


class References(HTMLParser):
    """Every URL a page loads (src, href), its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str | None]] = []  # (tag, url, integrity)
        self.inline: list[str] = []
        self.style_attributes = 0
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.style_attributes += "style" in values
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append((tag, values[name] or "", values.get("integrity")))
        self._open = tag if tag in ("script", "style") and not values.get("src") else None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.inline.append(f"<{self._open}>{data}")


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    async with running(create_app(Settings(database_url=f"sqlite:///{tmp_path}/hg.db"))) as url:
        yield url


async def test_graphiql_page_loads_only_files_of_this_host_with_strict_headers(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        page = await client.get("/graphql", headers=HTML)
        assert page.status_code == 200
        assert {k: page.headers.get(k) for k in _HEADER_NAMES} == {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": GRAPHIQL_CSP,
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
        }
        found = references(page.text)
        assert found.inline == [] and found.style_attributes == 0
        assert "http:" not in page.text and "https:" not in page.text
        kinds = {}
        for tag, url, integrity in found.urls:
            assert re.fullmatch(r"/graphiql/[a-z.-]+\.(js|css)", url), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff", url
            assert asset.content == (ASSETS / url.removeprefix("/graphiql/")).read_bytes()
            # Python's table of types says text/javascript, or application/javascript on
            # older systems: both are JavaScript to a browser under nosniff.
            kind = asset.headers["content-type"].replace(
                "application/javascript", "text/javascript"
            )
            kinds[url] = (tag, kind)
            if integrity is not None:  # the vendored releases: exactly the pinned files
                digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
                assert integrity == f"sha384-{digest}", url
    script, style = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
    assert kinds == {
        "/graphiql/graphiql.min.css": ("link", style),
        "/graphiql/plugin-explorer.css": ("link", style),
        "/graphiql/healthgraph-graphiql.css": ("link", style),
        "/graphiql/react.production.min.js": ("script", script),
        "/graphiql/react-dom.production.min.js": ("script", script),
        "/graphiql/graphiql.min.js": ("script", script),
        "/graphiql/plugin-explorer.umd.js": ("script", script),
        "/graphiql/healthgraph-graphiql.js": ("script", script),
    }
    assert len([i for _, _, i in found.urls if i]) == 6


_HEADER_NAMES = (
    "content-type",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


def test_the_vendored_files_come_with_their_licences_and_sources() -> None:
    readme = (ASSETS / "README.md").read_text()
    for package in (
        "react@18.2.0",
        "react-dom@18.2.0",
        "graphiql@3.8.3",
        "@graphiql/plugin-explorer@1.0.2",
        "graphiql-explorer@0.9.0",
    ):
        assert package in readme, package
    licences = sorted(p.name for p in (ASSETS / "licenses").iterdir())
    assert licences == [
        "graphiql-explorer.LICENSE",
        "graphiql.LICENSE",
        "react-dom.LICENSE",
        "react.LICENSE",
    ]
    for name in licences:
        assert (ASSETS / "licenses" / name).read_text().startswith("MIT License")


async def test_graphiql_off_serves_neither_page_nor_files(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hg.db", graphiql=False)
    async with (
        running(create_app(settings)) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        page = await client.get("/graphql", headers=HTML)
        asset = await client.get("/graphiql/graphiql.min.js")
    assert (page.status_code, page.json()) == (404, {"errors": [{"message": "Not Found"}]})
    assert asset.status_code == 404


def consumer_page_headers(response: httpx.Response) -> dict[str, str | None]:
    return {k: response.headers.get(k) for k in (*_HEADER_NAMES, "cache-control")}


async def test_the_consumer_page_sends_a_strict_policy(demo: Server) -> None:
    writer = await demo.token(TokenScope.WRITE)
    consumers = await demo.execute(writer, "{ consumers(first: 500) { nodes { id externalId } } }")
    acme = next(n["id"] for n in consumers["consumers"]["nodes"] if n["externalId"] == "acme-corp")
    link = await demo.execute(
        writer, "mutation($id: ID!) { consumerLink(consumerId: $id) { url } }", {"id": acme}
    )
    url = link["consumerLink"]["url"]
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        refused = await client.get(url.replace("signature=", "signature=x"))
    assert page.status_code == 200 and refused.status_code == 403
    styles = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    expected = {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": f"default-src 'none'; style-src 'sha256-{digest}'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
    }
    assert consumer_page_headers(page) == expected
    assert consumer_page_headers(refused) == expected
    found = references(page.text)
    assert found.urls == [] and found.style_attributes == 0
    assert [inline for inline in found.inline if inline.startswith("<script")] == []
    assert re.search(r'<td class="(up|down|unknown)">', page.text)
