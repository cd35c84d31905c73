"""Fixtures of the Redis plugin's tests: a real redis-server (started by the tests) and test data."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import redis_sandbox
from hybridrag_backends.testing import lightrag_dirs, service_unavailable

# The project's real LightRAG working dirs (read-only), beside the checkout unless HYBRIDRAG_REALDATA says.
REALDATA = Path(os.environ.get("HYBRIDRAG_REALDATA", redis_sandbox.CHECKOUT.parent / "shared" / "realdata"))
REALDATA_DIRS = lightrag_dirs(REALDATA)


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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Jobs and the registry go to a temp dir, never the user's ~/.hybridrag."""
    home = tmp_path_factory.mktemp("hybridrag-home")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(home))
    monkeypatch.setenv("HYBRIDRAG_CONFIG", str(home / "registry.yaml"))
    monkeypatch.delenv("REDIS_WORKSPACE", raising=False)  # LightRAG would let it override every workspace
