"""PostgreSQL fixtures: a real server (scripts/pg-sandbox, or HYBRIDRAG_TEST_POSTGRES_URL) and
isolated databases / workspaces per test. In CI (CI=true) a server that cannot start fails the run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

SANDBOX = Path(__file__).resolve().parents[1] / "scripts" / "pg-sandbox"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); run scripts/pg-sandbox start as root "
                f"or set HYBRIDRAG_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a server with vector + age; the sandbox is started once per test run."""
    url = os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL")
    if url:
        return url
    if os.geteuid() != 0:
        _unavailable("scripts/pg-sandbox needs root")
    try:
        out = subprocess.run([str(SANDBOX), "start"], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/pg-sandbox start: {exc}")
    if out.returncode != 0:
        _unavailable(f"scripts/pg-sandbox start exited {out.returncode}: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def _fresh_database(pg_url: str, extensions: bool = True):
    """A new database (vector + age created unless ``extensions`` is false), dropped afterwards."""
    import asyncio

    name = f"hrb_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_url, f"CREATE DATABASE {name} TEMPLATE template0"))
    url = with_database(pg_url, name)
    try:
        if extensions:
            asyncio.run(_admin(url, "CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS age"))
        yield url
    finally:
        asyncio.run(_admin(pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def pg_module_db(pg_url):
    """A fresh database for one test module, dropped afterwards."""
    with _fresh_database(pg_url) as url:
        yield url


@pytest.fixture
def pg_fresh_db(pg_url):
    """A fresh database for one test (for checks that look at the whole database, e.g. its indexes)."""
    with _fresh_database(pg_url) as url:
        yield url


@pytest.fixture
def pg_bare_db(pg_url):
    """A fresh database without the vector and age extensions."""
    with _fresh_database(pg_url, extensions=False) as url:
        yield url


@pytest.fixture
def pg_workspace() -> str:
    """A fresh workspace name per test (tables are shared per database; rows are keyed by workspace)."""
    return f"ws_{uuid.uuid4().hex[:12]}"
