"""Verification runs while the target finishes when the target's records are final before ``finish_target``
(PostgreSQL: it only waits there for its index builds), and never hides an error of either.

The sessions are the real ones (real server, real JSON files); the only change is a wrapper around the
target's ``finish_target`` that makes it take a known time (or fail) and records when it ended, the way
``benchmarks/harness/child_migrate.py`` times it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from hybridrag_backends.devtools.generate import GenerateSpec, generate
from hybridrag_backends.errors import TargetError
from hybridrag_backends.migration.engine import ProgressListener, migrate
from hybridrag_backends.migration.job import MigrationStatus
from hybridrag_backends.targets import resolve_target

SPEC = GenerateSpec(docs=4, chunks_per_doc=2, entities=10, relations=12, dim=16)


class Events(ProgressListener):
    def __init__(self) -> None:
        self.at: dict = {}

    def verify_started(self, stores) -> None:  # noqa: ANN001
        self.at["verify_started"] = time.monotonic()

    def store_verified(self, result) -> None:  # noqa: ANN001
        self.at["last_verified"] = time.monotonic()


def _slow_finish(target, events: Events, seconds: float, fail: bool = False) -> None:  # noqa: ANN001
    """Wrap the provider's open so the target session's finish_target first waits ``seconds`` (then raises
    when ``fail``) and records when it returned."""
    provider = target.provider
    original = provider.open

    @contextlib.asynccontextmanager
    async def opened(config):  # noqa: ANN001
        async with original(config) as session:
            if config is target.config:
                finish = session.finish_target

                async def finish_target(job) -> None:  # noqa: ANN001
                    await asyncio.sleep(seconds)
                    if fail:
                        raise TargetError("index build failed (test)")
                    await finish(job)
                    events.at["finish_returned"] = time.monotonic()

                session.finish_target = finish_target
            yield session

    provider.open = opened


@pytest.mark.postgres
def test_postgres_target_is_verified_while_it_finishes(pg_fresh_db, tmp_path, monkeypatch):
    source = generate(tmp_path / "src", SPEC)
    target = resolve_target(f"{pg_fresh_db}?embedding_model=during&embedding_dim=16", workspace="w", for_write=True)
    events = Events()
    monkeypatch.setattr(target.provider, "open", target.provider.open)  # restored after the test
    _slow_finish(target, events, 2.0)
    result = asyncio.run(migrate(resolve_target(str(source.directory)), target, batch_size=20, progress=events))
    assert result.job.status is MigrationStatus.COMPLETED and result.job.verification["ok"]
    # every store was read back and compared before finish_target returned
    assert events.at["verify_started"] < events.at["last_verified"] < events.at["finish_returned"]


@pytest.mark.postgres
def test_a_failed_finish_fails_the_job_although_verification_passed(pg_fresh_db, tmp_path, monkeypatch):
    source = generate(tmp_path / "src", SPEC)
    target = resolve_target(f"{pg_fresh_db}?embedding_model=during&embedding_dim=16", workspace="w", for_write=True)
    events = Events()
    monkeypatch.setattr(target.provider, "open", target.provider.open)
    _slow_finish(target, events, 2.0, fail=True)
    with pytest.raises(TargetError, match="index build failed") as err:
        asyncio.run(migrate(resolve_target(str(source.directory)), target, batch_size=20, progress=events))
    assert "last_verified" in events.at  # verification ran (and passed) meanwhile
    assert err.value.job.status is MigrationStatus.FAILED


def test_json_target_finishes_before_it_is_verified(tmp_path, monkeypatch):
    """A target without records_final_before_finish (JSON moves files into place there) is verified after."""
    source = generate(tmp_path / "src", SPEC)
    target = resolve_target(str(tmp_path / "dst"), for_write=True)
    events = Events()
    monkeypatch.setattr(target.provider, "open", target.provider.open)
    _slow_finish(target, events, 0.5)
    result = asyncio.run(migrate(resolve_target(str(source.directory)), target, progress=events))
    assert result.job.status is MigrationStatus.COMPLETED and result.job.verification["ok"]
    assert events.at["finish_returned"] < events.at["verify_started"]
