"""The one place a MongoDB client is made.

The provider talks to pymongo's native async client (``AsyncMongoClient``), the
driver LightRAG 1.5.7 uses (motor is deprecated upstream in its favour). Tests
swap the factory with :func:`use_client_factory` to run the same provider code
against an in-process fake when no server is available; nothing else in the
provider knows which client it has.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

ClientFactory = Callable[..., Any]

DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5000
APP_NAME = "hybridrag-backends"


def _pymongo_client(uri: str, **options: Any) -> Any:
    from pymongo import AsyncMongoClient

    return AsyncMongoClient(uri, **options)


_factory: ClientFactory = _pymongo_client


def use_client_factory(factory: Optional[ClientFactory]) -> ClientFactory:
    """Install ``factory`` (None restores pymongo); returns the previous one."""
    global _factory
    previous = _factory
    _factory = factory or _pymongo_client
    return previous


def make_client(uri: str, *, timeout_ms: int = DEFAULT_SERVER_SELECTION_TIMEOUT_MS) -> Any:
    """A client for ``uri`` (password already resolved) that gives up after ``timeout_ms``."""
    return _factory(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        appname=APP_NAME,
        tz_aware=False,
    )
