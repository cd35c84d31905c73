"""MongoDB session: every store of every real working dir written in LightRAG's collection layout,
read back exactly, resumed from any position, and read by LightRAG 1.5.7's own Mongo storages.

Runs against the in-process fake unless HYBRIDRAG_TEST_MONGO_URI names a real server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import realdata_workspaces
from mongo_realdata import by_key, load_records, new_job, write_all

from hybridrag_backends.migration.job import MigrationJob
from hybridrag_backends.provider import GRAPH_NAMESPACE, Record, StoreInfo, StoreKind
from hybridrag_backends_mongodb.provider import MongoProvider

pytestmark = pytest.mark.mongodb

WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{ws or '-'}" for d, ws in WORKSPACES]


async def _read_all(session, store, after=None, batch_size=37):
    records, rejected = [], []
    async for batch in session.read(store, after, batch_size):
        assert len(batch.records) + len(batch.rejected) <= batch_size
        records += batch.records
        rejected += batch.rejected
    return records, rejected


def _config(uri, workspace=""):
    return MongoProvider().config_from_target(uri, workspace=workspace)


def _assert_same(expected: Record, got: Record) -> None:
    assert got.key == expected.key
    assert got.payload == expected.payload, expected.key
    if expected.vector is None:
        assert got.vector is None
    else:
        assert got.vector.dtype == np.float32
        assert np.array_equal(got.vector, expected.vector), expected.key  # float32 -> double -> float32 exact


@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_realdata_round_trip_every_store(mongo_target, working_dir, workspace):
    data = load_records(working_dir, workspace)
    target_ws = workspace or "ws1"  # also exercise the <workspace>_<namespace> naming

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri, target_ws)) as session:
            job = new_job(data)
            await write_all(session, data, job, batch_size=40)
            stores = await session.list_stores()
            assert {s.name for s in stores} == {s.name for s in data}
            for store in stores:
                src = data[next(s for s in data if s.name == store.name)]
                assert await session.count(store) == len(src)
                got, rejected = await _read_all(session, store)
                assert not rejected
                assert [r.key for r in got] == sorted(r.key for r in got) or store.kind is StoreKind.GRAPH_EDGES
                expected = by_key(src)
                assert len(got) == len(expected)
                for record in got:
                    _assert_same(expected[record.key], record)
                if store.kind is StoreKind.VECTOR and src:
                    assert store.embedding_dim == src[0].vector.shape[0]
            assert (await session.load_job("job-test")).checkpoints[0].store_name == job.checkpoints[0].store_name

    asyncio.run(run())


def test_vectors_stored_as_doubles_equal_to_the_float32_values(mongo_target):
    rng = np.random.default_rng(7)
    vec = rng.standard_normal(1536).astype(np.float32)
    store = StoreInfo("entities", StoreKind.VECTOR, 1536)
    record = Record(store.name, "ent-1", {"entity_name": "A", "__created_at__": 1700000000}, vec)

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await session.prepare_target([store], new_job([store]), force=False)
            await session.write_batch(store, [record], new_job([store]))
            raw = await session.db["entities"].find_one({"_id": "ent-1"})
            assert raw["created_at"] == 1700000000 and "__created_at__" not in raw
            assert all(isinstance(x, float) for x in raw["vector"])
            assert raw["vector"] == [float(x) for x in vec]  # each double is exactly the float32 value
            (got,), _ = await _read_all(session, store)
            _assert_same(record, got)

    asyncio.run(run())


def test_resume_from_any_position_gives_the_rest_exactly(mongo_target):
    working_dir, workspace = WORKSPACES[0]
    data = load_records(working_dir, workspace)

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await write_all(session, data, new_job(data), batch_size=40)
            for store in await session.list_stores():
                full, _ = await _read_all(session, store, batch_size=1000)
                for cut in sorted({0, 1, len(full) // 2, len(full) - 1}):
                    if cut >= len(full):
                        continue
                    rest, _ = await _read_all(session, store, after=full[cut].position, batch_size=7)
                    assert [r.key for r in rest] == [r.key for r in full[cut + 1:]]

    asyncio.run(run())


def test_rewriting_a_batch_is_idempotent_and_reciprocal_edges_are_one(mongo_target):
    nodes = StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_NODES)
    edges = StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES)
    e1 = Record(edges.name, "A<SEP>B", {"weight": 1.0, "source_id": "c1<SEP>c2", "source": "B", "target": "A"})
    e2 = Record(edges.name, "A<SEP>B", {"weight": 2.0, "source_id": "c1", "source": "A", "target": "B"})

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            job = new_job([nodes, edges])
            await session.prepare_target([nodes, edges], job, force=False)
            for _ in range(2):
                await session.write_batch(edges, [e1], job)
            await session.write_batch(edges, [e1, e2], job)
            raw = await session.db[f"{GRAPH_NAMESPACE}_edges"].find({}).to_list(None)
            assert len(raw) == 1
            assert raw[0]["edge_lo"] == "A" and raw[0]["edge_hi"] == "B" and raw[0]["source_ids"] == ["c1"]
            (got,), _ = await _read_all(session, edges)
            _assert_same(e2, got)

    asyncio.run(run())


def test_unreadable_documents_are_rejected_with_their_reason(mongo_target):
    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await session.db.create_collection("entities")
            await session.db["entities"].insert_many([
                {"_id": "ent-0", "vector": [0.5, 0.25, 1.0]},
                {"_id": "ent-a", "vector": [0.5, 0.25]},
                {"_id": "ent-b", "vector": [0.5, 0.25, 1.0]},
                {"_id": "ent-d", "vector": [0.5, 0.25]},
                {"_id": "ent-c", "vector": "not a vector"},
                {"_id": 42, "vector": [1.0, 2.0]},
            ])
            (store,) = await session.list_stores()
            assert store.embedding_dim == 2
            good, rejected = await _read_all(session, store)
            assert [r.key for r in good] == ["ent-a", "ent-d"]  # the common dimension wins over the first
            reasons = {r.key: r.reason for r in rejected}
            assert "3 dimensions" in reasons["ent-b"] and "3 dimensions" in reasons["ent-0"]
            assert "ent-c" in reasons and "42" in reasons
            assert all(r.location.endswith(".entities") for r in rejected)

    asyncio.run(run())


def test_target_with_data_is_refused_unless_force_and_force_replaces(mongo_target):
    store = StoreInfo("full_docs", StoreKind.KV)
    old = Record(store.name, "doc-old", {"content": "old"})
    new = Record(store.name, "doc-new", {"content": "new"})

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await session.prepare_target([store], new_job([store]), force=False)
            await session.write_batch(store, [old], new_job([store]))
            job2 = MigrationJob("job-2", "src", "json", "mongodb")
            from hybridrag_backends.errors import TargetError

            with pytest.raises(TargetError, match="--force"):
                await session.prepare_target([store], job2, force=False)
            await session.prepare_target([store], job2, force=True)
            await session.write_batch(store, [new], job2)
            got, _ = await _read_all(session, store)
            assert [r.key for r in got] == ["doc-new"]
            # a resume of job2 keeps what it committed, even with --force
            await session.prepare_target([store], job2, force=True)
            assert [r.key for r in (await _read_all(session, store))[0]] == ["doc-new"]

    asyncio.run(run())


def test_an_unstorable_value_names_the_record(mongo_target):
    from hybridrag_backends.errors import TargetError

    store = StoreInfo("full_docs", StoreKind.KV)

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await session.prepare_target([store], new_job([store]), force=False)
            with pytest.raises(TargetError, match=r"doc-big.*cannot be stored"):
                await session.write_batch(store, [Record(store.name, "doc-ok", {"n": 1}), Record(store.name, "doc-big", {"n": 2**70})], new_job([store]))
            huge = Record(store.name, "doc-huge", {"content": "x" * (17 * 1024 * 1024)})
            with pytest.raises(TargetError, match=r"doc-huge.*16 MiB document limit"):
                await session.write_batch(store, [Record(store.name, "doc-ok", {"n": 1}), huge], new_job([store]))

    asyncio.run(run())


def test_a_record_the_server_refuses_is_named(mongo_target):
    from hybridrag_backends.errors import TargetError

    edges = StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES)
    kv = StoreInfo("full_docs", StoreKind.KV)

    async def run():
        async with MongoProvider().open(_config(mongo_target.uri)) as session:
            await session.prepare_target([edges, kv], new_job([edges, kv]), force=False)
            with pytest.raises(TargetError, match=r"'A<SEP>B'.*'source' and 'target'"):
                await session.write_batch(edges, [Record(edges.name, "A<SEP>B", {"source": "A"})], new_job([edges]))
            # a unique index someone added: the server refuses the second record of the batch
            await session.db["full_docs"].create_index([("slug", 1)], unique=True, name="slug_unique")
            batch = [Record(kv.name, "doc-1", {"slug": "s"}), Record(kv.name, "doc-2", {"slug": "s"})]
            with pytest.raises(TargetError, match=r"refused record 'doc-2' of store full_docs.*1 record\(s\) refused"):
                await session.write_batch(kv, batch, new_job([kv]))

    asyncio.run(run())
