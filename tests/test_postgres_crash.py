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
from typing import Optional

import pytest

from conftest import REALDATA

from hybridrag_backends.errors import MigrationInterrupted
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
    url = f"{pg_module_db}?embedding_model={MODEL}"
    base = ["--from", str(SOURCE), "--to", url, "--target-workspace", ws,
            "--batch-size", "1"]  # one record per commit: many crash points
    rng = random.Random(int(os.environ.get("HYBRIDRAG_CRASH_SEED", "1234")))
    sizes, _, graph = _source_sizes()
    total = sum(sizes.values()) + graph.number_of_nodes() + graph.number_of_edges()
    points = sorted(rng.sample(range(10, total - 10), 6))  # committed records at which to kill
    kills, landed, rc = 0, [], None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(30):
        args = base if not _job() else [*base, "--resume"]
        started = time.time_ns()
        before = _committed(_job())
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        if kills < 6:
            # kill only once THIS run has committed more records (never during start-up), at the next
            # random point, so the kills spread over the stores
            wanted = max(points[kills], before + 1)
            job = _wait_for(proc, started, lambda j: j["status"] == "in_progress" and _committed(j) >= wanted)
            if job is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                after = _job()
                if after["status"] == "completed":  # the kill landed while the finished process exited
                    rc = 0
                    break
                assert after["status"] == "in_progress" and _committed(after) >= wanted
                kills += 1
                landed.append(_where(after))
                continue
        out, _ = proc.communicate(timeout=300)
        rc = proc.returncode
        assert rc == 0, out[-3000:]
        break
    print("kills landed at:", landed)
    assert kills >= 5, f"only {kills} kills landed while the migration copied"
    assert len(set(landed)) >= 2, landed  # in different stores, not all at one spot
    assert rc == 0
    _check_independently(url, ws)


def _check_independently(url: str, ws: str) -> None:
    """The target, read without the provider under test: LightRAG 1.5.7's own PG storages return every
    source record (test_postgres_migration's check), and plain SQL counts every table and the graph's
    vertices and edges equal to a plain parse of the source files (a resume that duplicated or lost a
    record shows here)."""
    import asyncpg

    from test_postgres_migration import _check_with_lightrag

    sizes, vector_dims, graph = _source_sizes()

    async def run():
        conn = await asyncpg.connect(url.split("?")[0])
        try:
            from hybridrag_backends_postgres import naming

            tables = {**naming.KV_TABLES, "doc_status": naming.DOC_STATUS_TABLE}
            for ns, table in tables.items():
                n = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE workspace = $1", ws)
                assert n == sizes.get(ns, 0), (ns, n, sizes.get(ns))
            for ns, dim in vector_dims.items():
                table = naming.vector_table(ns, MODEL, dim)  # the name LightRAG gives it
                assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE workspace = $1", ws) == sizes[ns], ns
            g = naming.quote_ident(naming.graph_name(ws))
            assert await conn.fetchval(f"SELECT count(*) FROM {g}.base") == graph.number_of_nodes()
            assert await conn.fetchval(f'SELECT count(*) FROM {g}."DIRECTED"') == graph.number_of_edges()
        finally:
            await conn.close()
        src = resolve_target(str(SOURCE))
        dst = resolve_target(url, workspace=ws)
        async with src.provider.open(src.config) as s:
            stores = await s.list_stores()
            dims = {st.namespace: st.embedding_dim for st in stores if st.kind is StoreKind.VECTOR}
            await _check_with_lightrag(s, dst.config, stores, dims, url)

    asyncio.run(run())


def _source_sizes() -> tuple:
    """A plain parse of the source: records per store, vector dimensions, the GraphML graph."""
    import json

    import networkx as nx

    sizes, vector_dims = {}, {}
    for path in SOURCE.glob("kv_store_*.json"):
        with open(path, encoding="utf-8") as fh:
            sizes[path.stem[len("kv_store_"):]] = len(json.load(fh))
    for path in SOURCE.glob("vdb_*.json"):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        sizes[path.stem[len("vdb_"):]] = len(data["data"])
        vector_dims[path.stem[len("vdb_"):]] = data["embedding_dim"]
    return sizes, vector_dims, nx.read_graphml(SOURCE / "graph_chunk_entity_relation.graphml")


def _job() -> Optional[dict]:
    """The one job of this test, as its job file says now (None before it exists)."""
    import json

    files = sorted(Path(os.environ["HYBRIDRAG_HOME"]).glob("jobs/*/job.json"))
    try:
        return json.loads(files[0].read_bytes()) if files else None
    except (OSError, ValueError):
        time.sleep(0.01)  # being replaced right now
        return _job()


def _committed(job: Optional[dict]) -> int:
    return sum(cp["migrated_count"] + cp["rejected_count"] for cp in job["checkpoints"]) if job else 0


def _where(job: dict) -> str:
    for cp in job["checkpoints"]:
        if not cp["done"]:
            return cp["store_name"]
    return "after the last store"


def _wait_for(proc, started_ns: int, condition) -> Optional[dict]:
    """The job file once THIS run (written after ``started_ns``) satisfies ``condition``; None if the run ended."""
    files = Path(os.environ["HYBRIDRAG_HOME"]) / "jobs"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        paths = sorted(files.glob("*/job.json"))
        if paths and paths[0].stat().st_mtime_ns >= started_ns:
            job = _job()
            if job is not None and condition(job):
                return job
        time.sleep(0.005)
    return None


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
