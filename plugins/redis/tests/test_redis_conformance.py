"""The Redis provider passes the conformance suite against a real redis-server, over every real
LightRAG working dir: JSON -> Redis+files -> JSON verified, a wrong-dimension vector rejected, and a
SIGKILLed CLI migration resumed 5 times ending equal under LightRAG's own Redis storages."""

from __future__ import annotations

import pytest
from redis_realdata import REALDATA_DIRS

from hybridrag_backends import get_provider
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance

pytest_plugins = ["redis_fixtures"]  # the fixtures (no conftest.py here: see redis_fixtures.py)


class TestRedisProvider(ProviderConformance):
    lightrag_dirs = REALDATA_DIRS

    @pytest.fixture
    def conformance_target(self, redis_url, redis_workspace, tmp_path):
        return ConformanceTarget(get_provider("redis"), f"{redis_url}?working_dir={tmp_path / 'files'}",
                                 workspace=redis_workspace)
