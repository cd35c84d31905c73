"""The Redis provider passes the conformance suite against a real redis-server, over every real
LightRAG working dir: JSON -> Redis+files -> JSON verified, a wrong-dimension vector rejected, and a
SIGKILLed CLI migration resumed 5 times ending equal under LightRAG's own Redis storages."""

from __future__ import annotations

import pytest
from redis_fixtures import REALDATA_DIRS

from hybridrag_backends import get_provider
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance


class TestRedisProvider(ProviderConformance):
    lightrag_dirs = REALDATA_DIRS

    @pytest.fixture
    def conformance_target(self, redis_url, redis_workspace, tmp_path):
        return ConformanceTarget(get_provider("redis"), f"{redis_url}?working_dir={tmp_path / 'files'}",
                                 workspace=redis_workspace)
