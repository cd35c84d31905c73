"""The Redis plugin's fixtures (redis_fixtures.py): a real redis-server started by the tests."""

from redis_fixtures import _isolated_home, redis_url, redis_workspace  # noqa: F401 - pytest fixtures
