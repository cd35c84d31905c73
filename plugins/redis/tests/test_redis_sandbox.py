"""The tests' redis-server: started once and reused (same URL), and a clear reason when it cannot start."""

from __future__ import annotations

import pytest
import redis_sandbox

pytest_plugins = ["redis_fixtures"]  # the fixtures (no conftest.py here: see redis_fixtures.py)


@pytest.fixture
def own_sandbox(tmp_path, monkeypatch):
    monkeypatch.setattr(redis_sandbox, "STATE", tmp_path / "redis-state")
    yield redis_sandbox
    redis_sandbox.stop()


def test_start_is_idempotent_and_stop_stops_it(own_sandbox, redis_url):  # redis_url: redis-server is installed
    first = own_sandbox.start()
    assert own_sandbox.start() == first and own_sandbox.url() == first
    pid = (own_sandbox.STATE / "redis.pid").read_text().strip()
    assert own_sandbox.start() == first and (own_sandbox.STATE / "redis.pid").read_text().strip() == pid
    own_sandbox.stop()
    assert own_sandbox.url() is None


def test_without_redis_server_the_reason_says_how_to_install_it(own_sandbox, monkeypatch):
    monkeypatch.setattr(redis_sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(redis_sandbox.Path, "exists", lambda self: False)
    with pytest.raises(redis_sandbox.Unavailable, match="apt-get install -y redis-server"):
        own_sandbox.start()
