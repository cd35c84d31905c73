"""Crash safety against the real server: SIGKILL at random points then resume; a server restart
during a migration is retried with backoff; a server that stays away gives exit 5 with the checkpoint."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REALDATA

from hybridrag_backends.errors import MigrationInterrupted
from hybridrag_backends.migration.verify import verify_store
from hybridrag_backends.provider import Record, StoreInfo, StoreKind
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.postgres
MODEL = "test-embed"
SOURCE = REALDATA / "spindigits__MultiRag__rag_storage"
SANDBOX = Path(__file__).resolve().parents[1] / "scripts" / "pg-sandbox"


def _cli(*args: str) -> list:
    return [sys.executable, "-m", "hybridrag_backends", "migrate", *args]


def test_sigkill_at_random_points_then_resume_ends_equal(pg_module_db, tmp_path):
    ws = f"crash_{uuid.uuid4().hex[:8]}"
    base = ["--from", str(SOURCE), "--to", f"{pg_module_db}?embedding_model={MODEL}", "--target-workspace", ws,
            "--batch-size", "1"]  # one record per commit: many crash points, and a copy long enough to land 5+ kills
    rng = random.Random(int(os.environ.get("HYBRIDRAG_CRASH_SEED", "1234")))
    kills, first, rc = 0, True, None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(30):
        args = base if first else [*base, "--resume"]
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        if kills < 6:
            time.sleep(rng.uniform(1.0, 2.2))  # start-up takes ~1.5 s, the whole run ~8 s
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                if _job_completed():  # the kill landed after COMPLETED was saved, while the process exited
                    rc = 0
                    break
                first = first and not _job_started()
                continue
        out, _ = proc.communicate(timeout=300)
        rc = proc.returncode
        if first and rc == 0:
            break
        assert rc == 0, out[-3000:]
        break
    assert kills >= 5, f"only {kills} kills landed while the migration ran"
    assert rc == 0

    async def compare():
        src = resolve_target(str(SOURCE))
        dst = resolve_target(f"{pg_module_db}?embedding_model={MODEL}", workspace=ws)
        async with src.provider.open(src.config) as s, dst.provider.open(dst.config) as d:
            for store in await s.list_stores():
                v = await verify_store(s, d, store)
                assert v.ok, (store.name, v.source_count, v.target_count, v.examples)

    asyncio.run(compare())


def _job_started() -> bool:
    home = Path(os.environ["HYBRIDRAG_HOME"])
    return any(home.rglob("*.json"))


def _job_completed() -> bool:
    from hybridrag_backends.migration import jobstore
    from hybridrag_backends.migration.job import MigrationStatus

    return any(job.status is MigrationStatus.COMPLETED for job in jobstore.list_jobs())


def _sandbox_ctl(action: str) -> None:
    subprocess.run([str(SANDBOX), action], check=True, capture_output=True, timeout=300)


needs_sandbox = pytest.mark.skipif(
    bool(os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL")) or os.geteuid() != 0,
    reason="restarts the server: only against the project's own sandbox (root, no HYBRIDRAG_TEST_POSTGRES_URL)",
)


@needs_sandbox
def test_server_restart_during_write_is_retried_then_completes(pg_url):
    ws = f"rs_{uuid.uuid4().hex[:8]}"
    t = resolve_target(f"{pg_url}?embedding_model={MODEL}", workspace=ws)
    store = StoreInfo("full_entities", StoreKind.KV)
    from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob

    job = MigrationJob(job_id=f"job-{ws}", database_name="x", source_backend="json", target_backend="postgres")
    job.checkpoints = [MigrationCheckpoint(store.name, None, 0, 2)]

    async def run():
        async with t.provider.open(t.config) as s:
            await s.prepare_target([store], job, force=False)
            await s.write_batch(store, [Record(store.name, "k1", {"entity_names": ["a"], "count": 1})], job)
            await asyncio.get_running_loop().run_in_executor(None, _sandbox_ctl, "restart")
            job.checkpoint(store.name).migrated_count = 2
            await s.write_batch(store, [Record(store.name, "k2", {"entity_names": ["b"], "count": 1})], job)
            assert await s.count(store) == 2
            saved = await s.load_job(job.job_id)
            assert saved.checkpoint(store.name).migrated_count == 2

    asyncio.run(run())


@needs_sandbox
def test_server_gone_gives_interrupted_with_checkpoint(pg_url):
    ws = f"gone_{uuid.uuid4().hex[:8]}"
    t = resolve_target(f"{pg_url}?embedding_model={MODEL}", workspace=ws)
    t.config.extra_options.update(retry_attempts=2, retry_backoff=0.2)
    store = StoreInfo("full_entities", StoreKind.KV)
    from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob

    job = MigrationJob(job_id=f"job-{ws}", database_name="x", source_backend="json", target_backend="postgres")
    job.checkpoints = [MigrationCheckpoint(store.name, "k1", 1, 2)]

    async def run():
        s = t.provider.open(t.config)
        await s.connect()
        try:
            await s.prepare_target([store], job, force=False)
            await s.write_batch(store, [Record(store.name, "k1", {"entity_names": ["a"], "count": 1})], job)
            await asyncio.get_running_loop().run_in_executor(None, _sandbox_ctl, "stop")
            job.checkpoint(store.name).migrated_count = 2
            with pytest.raises(MigrationInterrupted) as err:
                await s.write_batch(store, [Record(store.name, "k2", {"entity_names": ["b"], "count": 1})], job)
            assert err.value.exit_code == 5 and "checkpoint" in str(err.value)
        finally:
            await s.close()
            subprocess.run([str(SANDBOX), "start"], check=True, capture_output=True, timeout=300)
        async with t.provider.open(t.config) as s2:
            saved = await s2.load_job(job.job_id)
            assert saved.checkpoint(store.name).migrated_count == 1  # the committed batch, not the lost one
            assert await s2.count(store) == 1

    asyncio.run(run())
