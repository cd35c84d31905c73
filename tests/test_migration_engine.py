"""Engine unit tests on a small in-memory backend that implements the stream interface for real.

The end-to-end tests against the JSON provider are in test_migration_json*.py; these pin the
engine's own rules: checkpoints, rejects, resume exactness, refusals, stop, verification.
"""

from __future__ import annotations

import asyncio
from typing import Dict, List, Optional

import networkx as nx
import numpy as np
import pytest

from hybridrag_backends.errors import (
    MigrationInterrupted,
    NotFoundError,
    SourceError,
    TargetError,
    ValidationFailure,
    VerificationFailed,
)
from hybridrag_backends.migration import jobstore
from hybridrag_backends.migration.engine import migrate
from hybridrag_backends.migration.job import MigrationStatus
from hybridrag_backends.migration.verify import canonical
from hybridrag_backends.models import BackendConfig
from hybridrag_backends.provider import (
    NULL_VALUED_FIELDS,
    BackendProvider,
    BackendSession,
    ReadBatch,
    Record,
    RejectedRecord,
    StoreInfo,
    StoreKind,
)
from hybridrag_backends.targets import ResolvedTarget
from hybridrag_backends_json.provider import JsonProvider

DATABASES: Dict[str, Dict[str, Dict[str, tuple]]] = {}
FAIL_WRITES_AFTER: Dict[str, int] = {}  # location -> batches accepted before the next write fails

STORES = [
    StoreInfo("full_docs", StoreKind.KV),
    StoreInfo("entities", StoreKind.VECTOR, embedding_dim=4),
    StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES),
]


class MemorySession(BackendSession):
    def __init__(self, location: str) -> None:
        self.location = location
        self.db = DATABASES.setdefault(location, {})

    async def list_stores(self) -> List[StoreInfo]:
        return [s for s in STORES if s.name in self.db]

    async def count(self, store: StoreInfo) -> int:
        return len(self.db.get(store.name, {}))

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000):
        batch = ReadBatch()
        for key in sorted(self.db.get(store.name, {})):
            if after is not None and key <= after:
                continue
            payload, vector = self.db[store.name][key]
            if payload == "corrupt":
                raise SourceError(f"{self.location}/{store.name}: unreadable at key {key!r}")
            if not isinstance(payload, dict):
                batch.rejected.append(RejectedRecord(store.name, key, "record is not an object", f"key {key}", key))
            else:
                batch.records.append(Record(store.name, key, dict(payload), vector))
            batch.cursor = key
            if len(batch.records) + len(batch.rejected) >= batch_size:
                yield batch
                batch = ReadBatch()
        if batch.records or batch.rejected:
            yield batch

    async def is_empty(self) -> bool:
        return not any(self.db.values())

    async def prepare_target(self, stores, job, *, force: bool) -> None:
        for store in stores:
            cp = job.checkpoint(store.name)
            if cp is None or cp.last_key is None:
                self.db[store.name] = {}
            else:  # drop anything written after the committed checkpoint
                self.db[store.name] = {k: v for k, v in self.db.get(store.name, {}).items() if k <= cp.last_key}

    async def write_batch(self, store: StoreInfo, records: List[Record], job) -> None:
        left = FAIL_WRITES_AFTER.get(self.location)
        if left is not None:
            if left == 0:
                # half the batch lands before the failure: the engine must not count it
                for r in records[: len(records) // 2]:
                    self.db[store.name][r.key] = (r.payload, r.vector)
                raise ConnectionError("server went away")
            FAIL_WRITES_AFTER[self.location] = left - 1
        for r in records:
            self.db[store.name][r.key] = (r.payload, r.vector)


class MemoryProvider(BackendProvider):
    name = "memory"

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        return BackendConfig(backend_type="memory", working_dir=target)

    def describe(self, config: BackendConfig) -> str:
        return f"memory:{config.working_dir}"

    def storage_classes(self, config):
        return {}

    def env_vars(self, config):
        return {}

    async def validate(self, config):
        return []

    async def metrics(self, config):
        raise NotImplementedError

    def open(self, config: BackendConfig) -> BackendSession:
        return MemorySession(self.describe(config))


def target(name: str) -> ResolvedTarget:
    provider = MemoryProvider()
    return ResolvedTarget(provider, provider.config_from_target(name))


@pytest.fixture(autouse=True)
def _clean():
    DATABASES.clear()
    FAIL_WRITES_AFTER.clear()
    yield


def fill(name: str, n: int = 50) -> None:
    db = DATABASES.setdefault(f"memory:{name}", {})
    rng = np.random.default_rng(1)
    db["full_docs"] = {f"doc-{i:04d}": ({"content": f"text {i}", "n": i}, None) for i in range(n)}
    db["entities"] = {
        f"ent-{i:04d}": ({"entity_name": f"E{i}"}, rng.random(4, dtype=np.float32)) for i in range(n)
    }
    db["chunk_entity_relation.nodes"] = {f"E{i}": ({"entity_type": "x"}, None) for i in range(n)}


def same_content(a: str, b: str) -> bool:
    da, db = DATABASES[f"memory:{a}"], DATABASES[f"memory:{b}"]
    if set(da) != set(db):
        return False
    for store in da:
        good = {k: v for k, v in da[store].items() if isinstance(v[0], dict)}
        if set(good) != set(db[store]):
            return False
        for k, (payload, vec) in good.items():
            p2, v2 = db[store][k]
            if payload != p2 or (vec is not None and not np.array_equal(vec, v2)):
                return False
    return True


def run(coro):
    return asyncio.run(coro)


def test_copy_checkpoints_and_verifies():
    fill("a")
    result = run(migrate(target("a"), target("b"), batch_size=7))
    job = result.job
    assert job.status is MigrationStatus.COMPLETED
    assert job.migrated_records == job.total_records == 150
    assert [cp.store_name for cp in job.checkpoints] == ["full_docs", "entities", "chunk_entity_relation.nodes"]
    assert all(cp.done and cp.migrated_count == 50 for cp in job.checkpoints)
    assert job.checkpoints[0].last_key == "doc-0049"
    assert job.verification["ok"] is True
    assert same_content("a", "b")
    assert jobstore.load(job.job_id).status is MigrationStatus.COMPLETED


def test_same_location_refused_and_nonempty_target_needs_force():
    fill("a")
    with pytest.raises(ValidationFailure, match="same place"):  # a pre-flight refusal: exit 2, no job
        run(migrate(target("a"), target("a")))
    assert jobstore.list_jobs() == []
    fill("b", 3)
    with pytest.raises(TargetError, match="already holds data"):
        run(migrate(target("a"), target("b")))
    assert run(migrate(target("a"), target("b"), force=True)).job.status is MigrationStatus.COMPLETED
    assert same_content("a", "b")


def test_dry_run_writes_nothing():
    fill("a")
    result = run(migrate(target("a"), target("b"), dry_run=True))
    assert result.job is None
    assert [s.count for s in result.plan.stores] == [50, 50, 50]
    assert not any(DATABASES.get("memory:b", {}).values())
    assert jobstore.list_jobs() == []


def test_failed_write_is_not_counted_and_resume_is_exact():
    fill("a", 100)
    FAIL_WRITES_AFTER["memory:b"] = 3  # the 4th batch fails half-written
    with pytest.raises(TargetError, match="server went away") as info:
        run(migrate(target("a"), target("b"), batch_size=10))
    job = info.value.job
    assert job.status is MigrationStatus.FAILED
    saved = jobstore.load(job.job_id)
    assert saved.checkpoint("full_docs").migrated_count == 30
    assert saved.checkpoint("full_docs").last_key == "doc-0029"
    FAIL_WRITES_AFTER.clear()
    resumed = run(migrate(target("a"), target("b"), batch_size=10, resume=""))
    assert resumed.job.job_id == job.job_id
    assert resumed.job.status is MigrationStatus.COMPLETED
    assert resumed.job.migrated_records == 300
    assert resumed.job.verification["ok"]
    assert same_content("a", "b")


def test_rejects_are_recorded_and_job_not_completed():
    fill("a")
    DATABASES["memory:a"]["full_docs"]["doc-0010"] = (["not", "an", "object"], None)
    with pytest.raises(SourceError, match="1 record.*rejected.*doc-0010") as info:
        run(migrate(target("a"), target("b"), batch_size=8))
    job = info.value.job
    assert job.status is MigrationStatus.FAILED
    assert job.migrated_records == 149 and job.failed_records == 1
    assert job.verification["ok"]  # everything else arrived intact
    rejects = jobstore.read_rejects(job.job_id)
    assert rejects == [{"store": "full_docs", "key": "doc-0010", "reason": "record is not an object", "location": "key doc-0010",
                       "side": "source"}]
    # accepting the loss completes the job
    ok = run(migrate(target("a"), target("c"), batch_size=8, allow_rejects=True))
    assert ok.job.status is MigrationStatus.COMPLETED and ok.job.failed_records == 1


def test_source_error_fails_job_with_good_records_accounted():
    fill("a")
    DATABASES["memory:a"]["entities"]["ent-0025"] = ("corrupt", None)
    with pytest.raises(SourceError, match="ent-0025") as info:
        run(migrate(target("a"), target("b"), batch_size=5))
    job = jobstore.load(info.value.job.job_id)
    assert job.status is MigrationStatus.FAILED
    assert "ent-0025" in job.last_error
    assert job.checkpoint("full_docs").done
    assert job.checkpoint("entities").migrated_count == 25  # the five batches before the bad record
    assert job.migrated_records == 75


def test_stop_pauses_after_committed_batch_then_resumes():
    fill("a", 40)

    class StopAfter:
        def __init__(self):
            self.seen = 0

        async def go(self):
            stop = asyncio.Event()
            from hybridrag_backends.migration.engine import ProgressListener

            outer = self

            class L(ProgressListener):
                def batch(self, store, cp):
                    outer.seen += 1
                    if outer.seen == 3:
                        stop.set()

            return await migrate(target("a"), target("b"), batch_size=6, progress=L(), stop=stop)

    with pytest.raises(MigrationInterrupted) as info:
        run(StopAfter().go())
    job = jobstore.load(info.value.job.job_id)
    assert job.status is MigrationStatus.PAUSED
    assert job.checkpoint("full_docs").migrated_count == 18
    done = run(migrate(target("a"), target("b"), batch_size=6, resume=job.job_id))
    assert done.job.status is MigrationStatus.COMPLETED
    assert same_content("a", "b")


def test_resume_refused_when_source_changed_and_when_nothing_to_resume():
    fill("a")
    with pytest.raises(NotFoundError):
        run(migrate(target("a"), target("b"), resume=""))
    FAIL_WRITES_AFTER["memory:b"] = 1
    with pytest.raises(TargetError):
        run(migrate(target("a"), target("b"), batch_size=10))
    FAIL_WRITES_AFTER.clear()
    DATABASES["memory:a"]["full_docs"]["doc-9999"] = ({"content": "new"}, None)
    with pytest.raises(SourceError, match="changed since"):
        run(migrate(target("a"), target("b"), resume=""))


def test_verification_mismatch_names_store_and_key():
    fill("a", 10)

    class Lossy(MemorySession):
        async def write_batch(self, store, records, job):
            await super().write_batch(store, records, job)
            if store.name == "entities":
                payload, vec = self.db["entities"]["ent-0003"]
                self.db["entities"]["ent-0003"] = (payload, vec + np.float32(1e-3))

    class LossyProvider(MemoryProvider):
        def open(self, config):
            return Lossy(self.describe(config))

    provider = LossyProvider()
    dst = ResolvedTarget(provider, provider.config_from_target("b"))
    with pytest.raises(VerificationFailed, match=r"entities.*ent-0003") as info:
        run(migrate(target("a"), dst))
    job = jobstore.load(info.value.job.job_id)
    assert job.status is MigrationStatus.FAILED
    assert job.verification["failed_stores"] == ["entities"]
    assert job.verification["stores"]["full_docs"]["ok"]


def test_rejects_of_an_uncommitted_batch_are_not_duplicated_on_resume():
    fill("a", 30)
    DATABASES["memory:a"]["full_docs"]["doc-0010"] = ("not an object", None)
    FAIL_WRITES_AFTER["memory:b"] = 1  # the batch holding doc-0010 (keys 8..15) fails to commit
    with pytest.raises(TargetError) as info:
        run(migrate(target("a"), target("b"), batch_size=8))
    job_id = info.value.job.job_id
    assert jobstore.load(job_id).options["rejects_bytes"] == 0
    assert len(jobstore.read_rejects(job_id)) == 1  # appended, but not committed
    FAIL_WRITES_AFTER.clear()
    done = run(migrate(target("a"), target("b"), batch_size=8, resume="", allow_rejects=True))
    assert done.job.status is MigrationStatus.COMPLETED
    assert [r["key"] for r in jobstore.read_rejects(job_id)] == ["doc-0010"]
    assert done.job.failed_records == 1 and done.job.migrated_records == 89


def test_cancel_during_a_write_pauses_without_counting_that_batch():
    """What a second Ctrl-C does: the batch in flight is abandoned, the job PAUSED at the last commit."""
    fill("a", 40)

    class Slow(MemorySession):
        writes = 0

        async def write_batch(self, store, records, job):
            Slow.writes += 1
            if Slow.writes == 3:
                self.db[store.name][records[0].key] = (records[0].payload, None)  # partly written
                await asyncio.sleep(30)
            await super().write_batch(store, records, job)

    class SlowProvider(MemoryProvider):
        def open(self, config):
            return Slow(self.describe(config))

    provider = SlowProvider()
    dst = ResolvedTarget(provider, provider.config_from_target("b"))

    async def go():
        task = asyncio.ensure_future(migrate(target("a"), dst, batch_size=5))
        while Slow.writes < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        return await task

    with pytest.raises(MigrationInterrupted) as info:
        run(go())
    job = jobstore.load(info.value.job.job_id)
    assert job.status is MigrationStatus.PAUSED
    assert job.checkpoint("full_docs").migrated_count == 10 and job.migrated_records == 10
    done = run(migrate(target("a"), target("b"), batch_size=5, resume=""))
    assert done.job.status is MigrationStatus.COMPLETED and done.job.migrated_records == 120
    assert same_content("a", "b")


def test_null_attributes_a_graphml_target_cannot_hold_are_reported_before_copying(tmp_path):
    fill("a", 5)
    DATABASES["memory:a"]["chunk_entity_relation.nodes"]["E1"] = ({"entity_type": "x", "description": None}, None)
    provider = JsonProvider()
    dst = ResolvedTarget(provider, provider.config_from_target(str(tmp_path / "kb")))
    result = run(migrate(target("a"), dst))
    lossy = {s.store.name: s.lossy_fields for s in result.plan.stores}
    assert NULL_VALUED_FIELDS in lossy["chunk_entity_relation.nodes"] and not lossy["full_docs"]
    assert result.job.status is MigrationStatus.COMPLETED and result.job.verification["ok"] is True
    graph = nx.read_graphml(tmp_path / "kb" / "graph_chunk_entity_relation.graphml")
    assert graph.nodes["E1"] == {"entity_type": "x"} and graph.number_of_nodes() == 5
    # only null values are left out of the comparison: any other difference still fails it
    marker = {NULL_VALUED_FIELDS: "no null"}
    assert canonical(Record("s", "k", {"a": None, "b": 1}), marker) == canonical(Record("s", "k", {"b": 1}), marker)
    assert canonical(Record("s", "k", {"a": 0, "b": 1}), marker) != canonical(Record("s", "k", {"b": 1}), marker)


def test_job_records_mask_messages_and_keep_record_keys_exactly():
    """A job is redacted field by field (issue 10, defect 1): the old text-level redaction turned the
    checkpoint key ``pwd=hunter2`` into ``pwd=***`` and ate the rest of the compact JSON."""
    import orjson

    from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob

    job = MigrationJob("j", "kb", "json", "postgres")
    job.checkpoints = [MigrationCheckpoint("full_docs", "pwd=hunter2", 3, 3)]
    job.verification = {"ok": False, "stores": {"full_docs": {"examples": ["password=x (content differs)"]}}}
    job.options["notes"] = ["connect with PGPASSWORD=Zq9secret"]
    job.last_error = "cannot connect to postgresql://me:Zq9secret@db/kb password=Zq9secret"
    saved = orjson.loads(orjson.dumps(job.to_dict()))  # what the job file / row / document holds
    assert saved["checkpoints"][0]["last_key"] == "pwd=hunter2"
    assert saved["verification"]["stores"]["full_docs"]["examples"] == ["password=x (content differs)"]
    assert "Zq9secret" not in orjson.dumps(saved).decode()
    assert saved["last_error"] == "cannot connect to postgresql://me:***@db/kb password=***"
    assert MigrationJob.from_dict(saved).checkpoint("full_docs").last_key == "pwd=hunter2"
