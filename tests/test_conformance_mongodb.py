"""The MongoDB provider passes the conformance suite: against the in-process fake here (no MongoDB
server can be installed where this project is tested), against a real server when
HYBRIDRAG_TEST_MONGO_URI is set. The CLI and LightRAG-reader subprocesses of the suite run through
tests/mongo_fake_launcher.py, which gives them the fake (one database across processes, through its
operation log)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import realdata_workspaces
from mongo_fixtures import real_mongo_uri

from hybridrag_backends.plugins import get_provider
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance
from hybridrag_backends.testing.target import closed_port

pytestmark = [pytest.mark.mongodb, pytest.mark.slow]

LAUNCHER = Path(__file__).with_name("mongo_fake_launcher.py")
UNREACHABLE_TIMEOUT_MS = 300  # the real driver, against a closed local port


class TestMongoProvider(ProviderConformance):
    lightrag_dirs = realdata_workspaces()

    @pytest.fixture
    def conformance_target(self, mongo_target, tmp_path):
        from hybridrag_backends_mongodb.client import _pymongo_client, use_client_factory

        unreachable = f"mongodb://conformance:pw@127.0.0.1:{closed_port()}/{mongo_target.database}"
        serve = use_client_factory(None)  # the factory the mongo_target fixture installed

        def factory(uri, **options):
            # the fake answers any host: an unreachable server is the real driver against a closed port
            if uri.startswith(unreachable.split("/" + mongo_target.database)[0]):
                return _pymongo_client(uri, **{**options, "serverSelectionTimeoutMS": UNREACHABLE_TIMEOUT_MS,
                                                "connectTimeoutMS": UNREACHABLE_TIMEOUT_MS})
            return serve(uri, **options)

        use_client_factory(factory)
        yield ConformanceTarget(
            get_provider("mongodb"), mongo_target.uri, unreachable_target=unreachable,
            python=(sys.executable,) if real_mongo_uri() else (sys.executable, str(LAUNCHER)),
            env={"HYBRIDRAG_FAKE_MONGO_OPLOG": str(tmp_path / "fake-mongo.oplog")})
        use_client_factory(serve)
