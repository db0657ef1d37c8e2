"""Fixtures of the exporter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from healthgraph.database import Database, open_database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """One SQLite database, for tests of HTTP behaviour that the backend cannot change."""
    database = await open_database(f"sqlite:///{tmp_path / 'healthgraph.db'}")
    try:
        yield database
    finally:
        await database.close()
