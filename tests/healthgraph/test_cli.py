"""The `healthgraph` command as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from store.migrate import head_revision
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.healthgraph.test_catalog import BASE
from tests.servers import free_port


def healthgraph(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
    full_env.update(env, HEALTHGRAPH_LOG_LEVEL="WARNING")
    return subprocess.run(
        [sys.executable, "-m", "healthgraph.cli", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"HEALTHGRAPH_DATABASE_URL": f"sqlite:///{tmp_path}/hg.db"}


def test_apply_twice_then_export(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASE)

    first = healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == f"{catalog}: 13 created, 0 updated, 0 deleted"

    second = healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path)
    assert (second.returncode, second.stdout) == (0, f"{catalog}: no changes\n")

    exported = healthgraph("export", env=sqlite_env, cwd=tmp_path)
    assert exported.returncode == 0
    assert exported.stdout.startswith("use_kinds:\n- kind: hypersync\n  label: Hypersyncs\n")
    (tmp_path / "exported.yaml").write_text(exported.stdout)
    again = healthgraph(
        "apply", "--prune", str(tmp_path / "exported.yaml"), env=sqlite_env, cwd=tmp_path
    )
    assert (again.returncode, again.stdout.splitlines()[-1]) == (
        0,
        f"{tmp_path / 'exported.yaml'}: no changes",
    )


def test_dry_run_reports_and_writes_nothing(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASE)
    dry = healthgraph("apply", "--dry-run", str(catalog), env=sqlite_env, cwd=tmp_path)
    assert dry.returncode == 0
    assert dry.stdout.splitlines()[0] == "created use kind 'hypersync'"
    assert (
        dry.stdout.splitlines()[-1]
        == f"{catalog}: 13 created, 0 updated, 0 deleted (dry run: nothing written)"
    )
    exported = healthgraph("export", env=sqlite_env, cwd=tmp_path)
    assert exported.stdout == "use_kinds: []\nconnectors: []\nconsumers: []\nsyncs: []\n"


def test_invalid_file_exits_2_names_every_problem_and_writes_nothing(
    tmp_path: Path, sqlite_env: dict[str, str]
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        BASE.replace("connector: drive", "connector: dropbox").replace(
            "check_interval_seconds: 60", "check_interval_seconds: -5"
        )
    )
    result = healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"healthgraph: {catalog}: consumers[0].connections[0].check_interval_seconds: -5 is out of range; use 1..86400\n"
    )
    # Shape problems come first; references are checked once the shape is right.
    catalog.write_text(BASE.replace("connector: drive", "connector: dropbox"))
    result = healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown connector 'dropbox'; define it under connectors" in result.stderr
    assert "Traceback" not in result.stderr
    exported = healthgraph("export", env=sqlite_env, cwd=tmp_path)
    assert exported.stdout == "use_kinds: []\nconnectors: []\nconsumers: []\nsyncs: []\n"

    missing = healthgraph("apply", str(tmp_path / "nope.yaml"), env=sqlite_env, cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        2,
        f"healthgraph: {tmp_path / 'nope.yaml'}: cannot read the file (No such file or directory)\n",
    )


def test_bad_settings_and_usage_exit_2(tmp_path: Path) -> None:
    bad_port = healthgraph("export", env={"HEALTHGRAPH_PORT": "eighty"}, cwd=tmp_path)
    assert (bad_port.returncode, bad_port.stderr) == (
        2,
        "healthgraph: HEALTHGRAPH_PORT: expected a port number 1..65535 (got 'eighty')\n",
    )
    usage = healthgraph("frobnicate", env={}, cwd=tmp_path)
    assert usage.returncode == 2
    assert "invalid choice: 'frobnicate'" in usage.stderr


def test_unreachable_database_exits_1_without_a_traceback(tmp_path: Path) -> None:
    result = healthgraph(
        "export",
        env={"HEALTHGRAPH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("healthgraph: cannot reach the database: ")
    assert "Traceback" not in result.stderr


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


def test_postgresql_needs_db_upgrade_first(tmp_path: Path, postgres_url: str) -> None:
    env = {"HEALTHGRAPH_DATABASE_URL": postgres_url}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASE)

    head = head_revision()
    refused = healthgraph("apply", str(catalog), env=env, cwd=tmp_path)
    assert (refused.returncode, refused.stderr) == (
        2,
        f"healthgraph: the database schema is at revision (empty), this version needs {head}; "
        "run `healthgraph db upgrade` first\n",
    )
    upgraded = healthgraph("db", "upgrade", env=env, cwd=tmp_path)
    assert (upgraded.returncode, upgraded.stdout) == (
        0,
        f"database schema upgraded from (empty) to {head}\n",
    )
    current = healthgraph("db", "upgrade", env=env, cwd=tmp_path)
    assert (current.returncode, current.stdout) == (
        0,
        f"database schema is current (revision {head})\n",
    )
    applied = healthgraph("apply", str(catalog), env=env, cwd=tmp_path)
    assert (applied.returncode, applied.stdout.splitlines()[-1]) == (
        0,
        f"{catalog}: 13 created, 0 updated, 0 deleted",
    )


def test_serve_demo_answers_healthz_promptly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "healthgraph.cli", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        healthz = None
        while time.monotonic() - started < 30 and process.poll() is None:
            try:
                healthz = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert healthz is not None, process.stderr.read() if process.stderr else ""
        assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
        readyz = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert readyz.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "healthgraph.db").exists()


def test_token_create_prints_a_working_token_once(
    tmp_path: Path, sqlite_env: dict[str, str]
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASE)
    assert healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path).returncode == 0

    created = healthgraph(
        "token", "create", "--scope", "read", "--consumer", "acme", env=sqlite_env, cwd=tmp_path
    )
    assert created.returncode == 0
    token = created.stdout.strip()
    assert token.startswith("hg_")
    assert len(token) > 40
    assert (
        created.stderr == "a read token, limited to consumer 'acme'; it is shown only this once\n"
    )
    assert token not in (tmp_path / "hg.db").read_bytes().decode("latin-1")

    unknown = healthgraph(
        "token", "create", "--scope", "admin", "--consumer", "nobody", env=sqlite_env, cwd=tmp_path
    )
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "healthgraph: consumer 'nobody' does not exist\n",
    )
    bad_scope = healthgraph("token", "create", "--scope", "root", env=sqlite_env, cwd=tmp_path)
    assert bad_scope.returncode == 2
    assert "invalid choice: 'root'" in bad_scope.stderr
    bad_expiry = healthgraph(
        "token", "create", "--scope", "read", "--expires-in-days", "0", env=sqlite_env, cwd=tmp_path
    )
    assert (bad_expiry.returncode, bad_expiry.stderr) == (
        2,
        "healthgraph: --expires-in-days: 0 is out of range; use 1..3650\n",
    )


def test_keys_rotate_on_the_embedded_key_file(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        BASE.replace(
            "        check_interval_seconds: 60\n",
            "        check_interval_seconds: 60\n        credentials: {kind: bearer, token_env: ACME_TOKEN}\n",
        )
    )
    env = {**sqlite_env, "ACME_TOKEN": "canary-rotate-5e2a"}
    assert healthgraph("apply", str(catalog), env=env, cwd=tmp_path).returncode == 0
    key_file = tmp_path / "healthgraph.key"
    old_key = key_file.read_text().strip()

    rotated = healthgraph("keys", "rotate", env=sqlite_env, cwd=tmp_path)
    assert (rotated.returncode, rotated.stdout) == (
        0,
        f"re-encrypted 1 secrets under the newest key; {key_file} now holds only the new key\n",
    )
    new_key = key_file.read_text().strip()
    assert new_key != old_key
    assert len(new_key.splitlines()) == 1
    assert "canary-rotate-5e2a" not in rotated.stdout + rotated.stderr
    # Still the same secret, now only under the new key: a second apply sees no change.
    again = healthgraph("apply", str(catalog), env=env, cwd=tmp_path)
    assert again.stdout == f"{catalog}: no changes\n"


def test_a_second_worker_on_one_sqlite_file_is_refused(
    tmp_path: Path, sqlite_env: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHGRAPH_")} | sqlite_env
    first = subprocess.Popen(
        [sys.executable, "-m", "healthgraph.cli", "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / "hg.db.worker.lock"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not lock.exists():
            time.sleep(0.05)
        time.sleep(0.5)
        second = healthgraph("worker", env=sqlite_env, cwd=tmp_path)
        assert second.returncode == 2
        assert second.stderr == (
            f"healthgraph: another healthgraph worker already uses {tmp_path / 'hg.db'}; SQLite "
            "supports exactly one worker — use PostgreSQL for more\n"
        )
    finally:
        first.terminate()
        assert first.wait(timeout=20) == 0


def _minute(iso: str | None) -> list[str]:
    return [iso[:10], iso[11:16]] if iso else ["-"]


def test_token_list_and_revoke(tmp_path: Path, sqlite_env: dict[str, str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(BASE)
    assert healthgraph("apply", str(catalog), env=sqlite_env, cwd=tmp_path).returncode == 0
    ops = ("token", "create", "--scope", "admin", "--name", "ops")
    acme = ("token", "create", "--scope", "read", "--consumer", "acme", "--expires-in-days", "30")
    secrets = [
        healthgraph(*args, env=sqlite_env, cwd=tmp_path).stdout.strip() for args in (ops, acme)
    ]

    revoked = healthgraph("token", "revoke", "2", env=sqlite_env, cwd=tmp_path)
    assert (revoked.returncode, revoked.stdout) == (
        0,
        "revoked token 2; it is refused from its next request on\n",
    )
    again = healthgraph("token", "revoke", "2", env=sqlite_env, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.startswith("token 2 was already revoked at ")
    unknown = healthgraph("token", "revoke", "99", env=sqlite_env, cwd=tmp_path)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (
        2,
        "",
        "healthgraph: token 99 does not exist\n",
    )
    not_a_number = healthgraph("token", "revoke", "two", env=sqlite_env, cwd=tmp_path)
    assert not_a_number.returncode == 2
    assert "argument ID: invalid int value: 'two'" in not_a_number.stderr

    as_json = healthgraph("token", "list", "--json", env=sqlite_env, cwd=tmp_path)
    assert as_json.returncode == 0
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [
        {k: v for k, v in r.items() if k not in ("created_at", "expires_at", "revoked_at")}
        for r in records
    ] == [
        {"id": 1, "name": "ops", "scope": "admin", "consumer": None, "last_used_at": None},
        {"id": 2, "name": "", "scope": "read", "consumer": "acme", "last_used_at": None},
    ]
    assert records[0]["expires_at"] is None and records[0]["revoked_at"] is None
    assert records[1]["expires_at"] > records[1]["created_at"]
    assert (
        again.stdout
        == f"token 2 was already revoked at {' '.join(_minute(records[1]['revoked_at']))} UTC\n"
    )

    table = healthgraph("token", "list", env=sqlite_env, cwd=tmp_path)
    assert (table.returncode, table.stderr) == (0, "")
    header, *lines = table.stdout.splitlines()
    assert [part.strip() for part in header.split("  ") if part.strip()] == [
        "id",
        "name",
        "scope",
        "consumer",
        "created",
        "expires",
        "last used",
        "revoked",
    ]
    assert [line.split() for line in lines] == [
        ["1", "ops", "admin", "(all)", *_minute(records[0]["created_at"]), "-", "-", "-"],
        [
            "2",
            "-",
            "read",
            "acme",
            *_minute(records[1]["created_at"]),
            *_minute(records[1]["expires_at"]),
            "-",
            *_minute(records[1]["revoked_at"]),
        ],
    ]
    # Columns line up under their headings.
    for heading in ("scope", "consumer", "created"):
        assert {line[header.index(heading) - 2 : header.index(heading)] for line in lines} == {"  "}
    for secret in secrets:
        assert secret not in table.stdout and secret not in as_json.stdout
