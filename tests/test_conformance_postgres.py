"""The PostgreSQL provider passes the conformance suite against the real server (scripts/pg-sandbox)."""

from __future__ import annotations

import pytest
from conftest import realdata_workspaces

from hybridrag_backends.plugins import get_provider
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class TestPostgresProvider(ProviderConformance):
    lightrag_dirs = realdata_workspaces()

    @pytest.fixture
    def conformance_target(self, pg_module_db, pg_workspace):
        # LightRAG names vector tables after the embedding model: the target must say it
        return ConformanceTarget(get_provider("postgres"), f"{pg_module_db}?embedding_model=conformance",
                                 workspace=pg_workspace)
