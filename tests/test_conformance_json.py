"""The JSON provider (LightRAG's default files) passes the conformance suite."""

from __future__ import annotations

import pytest
from conftest import realdata_workspaces

from hybridrag_backends.plugins import get_provider
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance


class TestJsonProvider(ProviderConformance):
    lightrag_dirs = realdata_workspaces()

    @pytest.fixture
    def conformance_target(self, tmp_path):
        return ConformanceTarget(get_provider("json"), str(tmp_path / "kb"))
