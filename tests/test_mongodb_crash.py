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

    # Independently of the child's own verification: read the target back (replaying the log).
    from hybridrag_backends.migration.verify import verify as verify_stores
    from hybridrag_backends.targets import resolve_target
    from hybridrag_backends_mongodb.client import use_client_factory

    previous = None
    if mongo_target.is_fake:
        from mongo_fake import FakeServer

        previous = use_client_factory(FakeServer(str(child.log)).factory)
    try:
        source, target = resolve_target(str(SOURCE)), resolve_target(mongo_target.uri)

        async def check():
            async with source.provider.open(source.config) as a, target.provider.open(target.config) as b:
                stores = await a.list_stores()
                assert [s.name for s in await b.list_stores()] == [s.name for s in stores]
                result = await verify_stores(a, b, stores)
                jobs = await b.db["hybridrag_migration_jobs"].find({}).to_list(None)
                return result, jobs

        result, jobs = asyncio.run(check())
    finally:
        if previous is not None:
            use_client_factory(previous)
    assert result["ok"], result["failed_stores"]
    assert len(jobs) == 1 and jobs[0]["status"] == "completed", "every resume continued the same job"
