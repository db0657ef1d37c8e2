"""GraphiQL renders in a real headless Chromium that can reach no host but this one: its editor
is on the page, its example query in it, and the browser reports nothing refused or failed
(a CSP violation, a missing file or a script error would each show up in its console)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from healthgraph.app import create_app
from healthgraph.settings import Settings
from tests.external_tools import missing
from tests.servers import running

INSTALL = Path(__file__).resolve().parents[2] / "scripts" / "install-chromium.sh"


def chromium() -> str:
    """Chromium's path, installed with apt when missing and possible (root); else skip, or
    fail in CI."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    installed = subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False
    )
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    missing(f"chromium is not installed and {INSTALL.name} could not: {installed.stderr.strip()}")
    raise AssertionError("unreachable")


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/hg.db", anonymous_read=True)
    async with running(create_app(settings)) as url:
        yield url


async def test_graphiql_renders_with_no_other_host(base_url: str, tmp_path: Path) -> None:
    browser = chromium()
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # No name resolves: a file from a CDN could not load even with a network.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--log-level=0",
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"{base_url}/graphql",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    dom, log = stdout.decode(), stderr.decode(errors="replace")
    assert process.returncode == 0, log[-3000:]
    # Rendered by GraphiQL itself: the page as served holds only <div id="graphiql">Loading…
    for rendered in (
        'class="graphiql-container"',
        'class="graphiql-query-editor"',
        'class="CodeMirror cm-s-graphiql',
        'class="graphiql-execute-button"',
    ):
        assert rendered in dom, rendered
    assert "Loading…" not in dom
    assert "activeConnections" in dom  # the example query, in the editor
    console = [line for line in log.splitlines() if re.search(r":CONSOLE[:(]", line)]
    assert console == []
