"""The fake stays honest: every method it offers exists on pymongo's async API with the same
sync/async shape and parameter names, so code that works on the fake calls the real client the
same way. (This checks the fake, not MongoDB.)"""

from __future__ import annotations

import inspect

import pytest
from mongo_fake import FakeAsyncClient, FakeAsyncCollection, FakeAsyncDatabase, FakeCursor
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.mongodb

PAIRS = [
    (FakeAsyncClient, AsyncMongoClient),
    (FakeAsyncDatabase, AsyncDatabase),
    (FakeAsyncCollection, AsyncCollection),
    (FakeCursor, AsyncCursor),
]


def _public(cls):
    return [n for n, v in vars(cls).items() if callable(v) and (not n.startswith("_") or n in ("__getitem__", "__aiter__"))]


@pytest.mark.parametrize("fake,real", PAIRS, ids=[f.__name__ for f, _ in PAIRS])
def test_fake_methods_match_pymongo(fake, real):
    for name in _public(fake):
        assert hasattr(real, name), f"{fake.__name__}.{name} does not exist on {real.__name__}"
        ours, theirs = getattr(fake, name), getattr(real, name)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), f"{name}: async shape differs"
        real_params = set(inspect.signature(theirs).parameters)
        for param in inspect.signature(ours).parameters.values():
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or param.name == "self":
                continue
            assert param.name in real_params or any(
                p.kind is p.VAR_KEYWORD for p in inspect.signature(theirs).parameters.values()
            ), f"{fake.__name__}.{name}({param.name}=...) is not a parameter of pymongo's {name}"


def test_command_cursors_have_the_methods_the_provider_uses():
    for name in ("to_list", "__aiter__", "close"):
        assert hasattr(AsyncCommandCursor, name) and hasattr(FakeCursor, name)
