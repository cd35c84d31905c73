"""Fixtures of the Redis plugin's tests: a real redis-server (started by the tests), fresh workspaces.

Test modules load them with ``pytest_plugins = ["redis_fixtures"]``. There is no conftest.py in this
folder on purpose: run from the repository root, it would be a second module named ``conftest``
beside ``tests/conftest.py``, which the core's tests import by that name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import redis_sandbox
from hybridrag_backends.testing import service_unavailable


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis server: HYBRIDRAG_TEST_REDIS_URL, or a local redis-server the tests start (once; reused)."""
    url = os.environ.get("HYBRIDRAG_TEST_REDIS_URL")
    if url:
        return url
    try:
        url = redis_sandbox.start()
    except redis_sandbox.Unavailable as exc:
        service_unavailable("redis-server", str(exc))
        raise  # not reached: skip / fail raise
    import redis

    with redis.Redis.from_url(url) as client:  # the sandbox is this checkout's: start each run empty
        client.flushdb()
    return url


@pytest.fixture
def redis_workspace() -> str:
    """A fresh workspace per test: every key of it is new (the server is shared)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def hybridrag_home(tmp_path_factory, monkeypatch) -> Path:
    """Jobs and the registry in a temp dir, never the user's ~/.hybridrag (for tests that migrate)."""
    home = tmp_path_factory.mktemp("hybridrag-home")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(home))
    monkeypatch.setenv("HYBRIDRAG_CONFIG", str(home / "registry.yaml"))
    return home
