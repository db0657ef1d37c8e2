"""Database URLs as users write them, and SQLite's pragmas."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from store.engine import async_url, create_engine
from store.errors import DatabaseUrlError


def test_async_url_picks_the_async_driver() -> None:
    assert async_url("sqlite:///data/hg.db").render_as_string() == "sqlite+aiosqlite:///data/hg.db"
    assert (
        async_url("postgresql://hg:secret@db:5432/hg").render_as_string(hide_password=False)
        == "postgresql+asyncpg://hg:secret@db:5432/hg"
    )
    assert async_url("postgres://db/hg").drivername == "postgresql+asyncpg"
    assert async_url("postgresql+asyncpg://db/hg").drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/hg", "unsupported database 'mysql'"),
        ("not a url", "not a URL"),
        ("sqlite://", "an in-memory SQLite database is not shared; name a file"),
        ("sqlite+pysqlcipher:///x.db", "unsupported SQLite driver 'pysqlcipher'"),
    ],
)
def test_async_url_rejects_what_it_cannot_serve(url: str, problem: str) -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        async_url(url)
    assert str(caught.value) == (
        f"database URL {url!r}: {problem}; "
        "use sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


async def test_sqlite_files_get_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/nested/dir/hg.db")
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await engine.dispose()
    assert (journal, foreign_keys) == ("wal", 1)
    assert (tmp_path / "nested/dir/hg.db").exists()
