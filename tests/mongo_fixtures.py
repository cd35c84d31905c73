"""MongoDB test fixtures: a real server when HYBRIDRAG_TEST_MONGO_URI is set, else the in-process fake.

The same test modules run unchanged either way. Each test gets its own
database (dropped afterwards on a real server). ``mongo_target.is_fake`` says
which one ran; fake-backed results are never reported as server results.

    HYBRIDRAG_TEST_MONGO_URI='mongodb://user:pass@localhost:27017/?authSource=admin' \\
        .venv/bin/pytest -m mongodb
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest


MONGO_ENV = "HYBRIDRAG_TEST_MONGO_URI"
FAKE_PASSWORD = "fake-Secret-pw-8472"  # must never show up in output, logs, errors or the registry


def real_mongo_uri() -> Optional[str]:
    return os.environ.get(MONGO_ENV) or None


def with_database(uri: str, database: str) -> str:
    """``uri`` pointing at ``database``, keeping the auth database it had."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    if parts.username and "authSource" not in query:
        query["authSource"] = parts.path.lstrip("/") or "admin"
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, urlencode(query), ""))


@dataclass
class MongoTarget:
    uri: str  # carries a password (fake or real); use it only through the provider
    database: str
    factory: Callable[..., Any]  # the client factory the provider uses in this test
    server: Any = None  # the FakeServer, or None on a real server

    @property
    def is_fake(self) -> bool:
        return self.server is not None

    @property
    def password(self) -> str:
        """The secret in ``uri``: tests assert it never shows up."""
        from urllib.parse import unquote

        return unquote(urlsplit(self.uri).password or "") or FAKE_PASSWORD


@pytest.fixture
def mongo_client_factory():
    """The provider's client factory for this test: a fresh fake server, or pymongo for a real one."""
    from hybridrag_backends_mongodb.client import use_client_factory

    if real_mongo_uri():
        previous = use_client_factory(None)
        from hybridrag_backends_mongodb.client import _pymongo_client

        yield _pymongo_client, None
    else:
        from mongo_fake import FakeServer

        server = FakeServer()
        previous = use_client_factory(server.factory)
        yield server.factory, server
    use_client_factory(previous)


@pytest.fixture
def mongo_target(mongo_client_factory):
    factory, server = mongo_client_factory
    database = f"hr_test_{uuid.uuid4().hex[:12]}"
    real = real_mongo_uri()
    uri = with_database(real, database) if real else f"mongodb://hybridrag:{FAKE_PASSWORD}@fake-mongo.invalid:27017/{database}"
    yield MongoTarget(uri=uri, database=database, factory=factory, server=server)
    if real:
        import pymongo

        with pymongo.MongoClient(real, serverSelectionTimeoutMS=5000) as client:
            client.drop_database(database)


@pytest.fixture
def mongo_uri(mongo_target):
    return mongo_target.uri
