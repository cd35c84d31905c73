"""Crash safety of JSON -> MongoDB: SIGKILL the migration at random points (inside stores, at a
store boundary, during verification), resume each time, and end with a target equal to the source
and verification passing.

The server is the in-process fake (no MongoDB server here), so the migration runs in a child
process whose fake appends every applied write to an operation log and replays it on start: a
write survives the kill exactly when it was applied, like an acknowledged write on a server, and
bulk writes can be cut half-way as on a server. With HYBRIDRAG_TEST_MONGO_URI set the child uses
the real server instead."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from conftest import REALDATA, REPO
from mongo_fixtures import real_mongo_uri

pytestmark = [pytest.mark.mongodb, pytest.mark.slow]

SOURCE = REALDATA / "spindigits__MultiRag__rag_storage"
CHILD = """
import sys
sys.path.insert(0, {tests!r})
if {fake!r}:
    from mongo_fake import FakeServer
    from hybridrag_backends_mongodb.client import use_client_factory
    use_client_factory(FakeServer({log!r}).factory)
from hybridrag_backends.cli.main import main
main(sys.argv[1:])
"""


def _env(home: Path) -> dict:
    env = dict(os.environ, HYBRIDRAG_HOME=str(home), HYBRIDRAG_CONFIG=str(home / "registry.yaml"))
    env.pop("HYBRIDRAG_BACKENDS_DEBUG", None)
    return env


def _job(home: Path, newer_than_ns: int = 0) -> Optional[dict]:
    files = sorted((home / "jobs").glob("*/job.json"))
    try:
        if not files or files[0].stat().st_mtime_ns < newer_than_ns:
            return None
        return json.loads(files[0].read_bytes())
    except (OSError, ValueError):
        return None  # being replaced right now


def _committed(job: dict) -> int:
    return sum(cp["migrated_count"] + cp["rejected_count"] for cp in job["checkpoints"])


class Child:
    def __init__(self, tmp: Path, uri: str) -> None:
        self.home, self.log, self.uri = tmp / "home", tmp / "fake.oplog", uri
        self.script = tmp / "child.py"
        self.script.write_text(CHILD.format(tests=str(REPO / "tests"), fake=real_mongo_uri() is None, log=str(self.log)))

    def args(self, *extra: str) -> list:
        return [sys.executable, str(self.script), "migrate", "--from", str(SOURCE), "--to", self.uri,
                "--batch-size", "10", "--json", *extra]

    def run(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.args(*extra), env=_env(self.home), capture_output=True, text=True, timeout=300)

    def run_until(self, condition: Callable[[dict], bool], *extra: str):
        """Start a run and SIGKILL it once its own job file satisfies ``condition``."""
        started = time.time_ns()
        proc = subprocess.Popen(self.args(*extra), env=_env(self.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = None
        deadline = time.monotonic() + 300
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                job = _job(self.home, started)
                if job is not None and job["status"] == "in_progress" and condition(job):
                    seen = job
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.002)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, seen, out, err


def test_sigkill_at_random_points_then_resume(mongo_target, tmp_path):
    child = Child(tmp_path, mongo_target.uri)
    plan = json.loads(child.run("--dry-run").stdout)["plan"]
    counts = [s["records"] for s in plan["stores"]]
    total = sum(counts)
    rng = random.Random(5282026)
    # (about how many records are committed then, condition): five random points, and one store
    # boundary (fires right after that store is marked done)
    points = [(r, lambda job, r=r: _committed(job) >= r) for r in rng.sample(range(20, total - 20), 5)]
    boundary = rng.randrange(1, len(counts) - 1)
    points.append((sum(counts[: boundary + 1]), lambda job, i=boundary: job["checkpoints"][i]["done"]))
    points.sort(key=lambda p: p[0])
    kills = 0
    for _, condition in points:
        extra = ("--resume",) if (child.home / "jobs").exists() else ()
        code, seen, out, err = child.run_until(condition, *extra)
        assert mongo_target.password not in out + err
        assert seen is not None and code == -signal.SIGKILL, (code, err)
        kills += 1
    assert kills >= 5
    # one more while verifying (every store copied); the run may finish before the kill lands
    code, seen, out, err = child.run_until(lambda job: all(cp["done"] for cp in job["checkpoints"]), "--resume")
    if seen is not None:
        kills += 1
        final = child.run("--resume")
        code, out, err = final.returncode, final.stdout, final.stderr
    assert mongo_target.password not in out + err
    result_json = json.loads(out)
    assert code == 0, result_json.get("error")
    assert result_json["status"] == "completed" and result_json["verification"]["ok"] is True
    assert result_json["migrated_records"] == total

    # Independently of the child and of the provider's reader: LightRAG 1.5.7's own Mongo storages (and
    # plain driver reads for the vectors and counts) on the target (the fake replays the log), against a
    # plain parse of the source files.
    from hybridrag_backends_mongodb.client import use_client_factory
    from hybridrag_backends_mongodb.provider import MongoProvider

    previous = None
    if mongo_target.is_fake:
        from mongo_fake import FakeServer

        previous = use_client_factory(FakeServer(str(child.log)).factory)
    try:
        asyncio.run(_check_with_lightrag(MongoProvider(), MongoProvider().config_from_target(mongo_target.uri)))
    finally:
        if previous is not None:
            use_client_factory(previous)


async def _check_with_lightrag(provider, config) -> None:  # noqa: ANN001
    import numpy as np
    from lightrag.kg.shared_storage import initialize_share_data
    from mongo_realdata import lightrag_storage, load_records

    from hybridrag_backends.provider import GRAPH_NAMESPACE, StoreKind
    from hybridrag_backends_mongodb import layout

    initialize_share_data()
    data = load_records(SOURCE, "")
    async with provider.open(config) as session:  # only for its database handle
        db = session.db
        for store, records in data.items():
            keys = [r.key for r in records]
            if store.kind is StoreKind.KV:
                kv = lightrag_storage("MongoKVStorage", store.namespace, "", db)
                await kv.initialize()
                got = await kv.get_by_ids(keys)
                for r, doc in zip(records, got):
                    expected = {"create_time": 0, "update_time": 0, **r.payload, "_id": r.key}
                    assert doc == expected, (store.name, r.key)
                await kv.finalize()
            elif store.kind is StoreKind.DOC_STATUS:
                ds = lightrag_storage("MongoDocStatusStorage", "doc_status", "", db)
                await ds.initialize()
                for r in records:
                    assert await ds.get_by_id(r.key) == {**r.payload, "_id": r.key}, r.key
                await ds.finalize()
            elif store.kind is StoreKind.VECTOR:
                docs = {d["_id"]: d for d in await db[layout.collection_name("", store.namespace)].find({}).to_list(None)}
                assert sorted(docs) == sorted(keys), store.name
                for r in records:
                    assert np.array_equal(np.asarray(docs[r.key]["vector"], dtype=np.float32), r.vector), r.key
            if store.kind is not StoreKind.GRAPH_EDGES and store.kind is not StoreKind.GRAPH_NODES:
                collection = layout.collection_name("", store.namespace)
                assert await db[collection].count_documents({}) == len(records), store.name  # no duplicate
        nodes = next(v for s, v in data.items() if s.kind is StoreKind.GRAPH_NODES)
        edges = next(v for s, v in data.items() if s.kind is StoreKind.GRAPH_EDGES)
        graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, "", db)
        await graph.initialize()
        assert await graph.get_all_labels() == sorted(r.key for r in nodes)
        for r in edges:
            attrs = {k: v for k, v in r.payload.items() if k not in ("source", "target")}
            got = await graph.get_edge(r.payload["source"], r.payload["target"])
            assert got is not None and {k: got.get(k) for k in attrs} == attrs, r.key
        edge_collection = layout.collection_name("", GRAPH_NAMESPACE) + "_edges"
        assert await db[edge_collection].count_documents({}) == len(edges)  # a resume duplicated none
        await graph.finalize()
        jobs = await db["hybridrag_migration_jobs"].find({}).to_list(None)
    assert len(jobs) == 1 and jobs[0]["status"] == "completed", "every resume continued the same job"
