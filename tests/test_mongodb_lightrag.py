"""LightRAG 1.5.7's own MongoKVStorage, MongoDocStatusStorage and MongoGraphStorage, handed the
same client's database the provider wrote through, return every key, node and edge as the source
has it; their initialize() finds the collections and indexes it would create and adds nothing.

The storages get the database through their own seam: ``storage.db`` is set before
``initialize()`` (which only calls ClientManager when it is None). Fake-backed unless
HYBRIDRAG_TEST_MONGO_URI is set."""

from __future__ import annotations

import asyncio

import pytest
from conftest import realdata_workspaces
from mongo_realdata import lightrag_storage, load_records, new_job, stores_sorted, write_all

from hybridrag_backends.migration.job import MigrationJob
from hybridrag_backends.provider import GRAPH_NAMESPACE, StoreKind
from hybridrag_backends_mongodb import layout
from hybridrag_backends_mongodb.provider import MongoProvider

pytestmark = pytest.mark.mongodb

WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{ws or '-'}" for d, ws in WORKSPACES]


@pytest.fixture(autouse=True)
def _lightrag_env(monkeypatch):
    monkeypatch.delenv("MONGODB_WORKSPACE", raising=False)  # it would override the workspace we pass
    from lightrag.kg.shared_storage import initialize_share_data

    initialize_share_data()


async def _index_names(db, name):
    return sorted(i["name"] for i in await (await db[name].list_indexes()).to_list(None))


@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_lightrag_mongo_storages_read_every_record(mongo_target, working_dir, workspace):
    data = load_records(working_dir, workspace)
    config = MongoProvider().config_from_target(mongo_target.uri, workspace=workspace)

    async def run():
        async with MongoProvider().open(config) as session:
            await write_all(session, data, new_job(data, "job-lr"), batch_size=64)
            db = session.db
            checked = 0
            for store, records in stores_sorted(data):
                if store.kind is StoreKind.KV:
                    kv = lightrag_storage("MongoKVStorage", store.namespace, workspace, db)
                    await kv.initialize()
                    for r in records:
                        expected = {**r.payload, "_id": r.key}
                        expected.setdefault("create_time", 0)  # LightRAG's default for old records
                        expected.setdefault("update_time", 0)
                        assert await kv.get_by_id(r.key) == expected, (store.name, r.key)
                        checked += 1
                    assert len([d for d in await kv.get_by_ids([r.key for r in records]) if d]) == len(records)
                    await kv.finalize()
                elif store.kind is StoreKind.DOC_STATUS:
                    name = layout.collection_name(workspace, "doc_status")
                    before = await _index_names(db, name)
                    ds = lightrag_storage("MongoDocStatusStorage", "doc_status", workspace, db)
                    await ds.initialize()
                    assert await _index_names(db, name) == before  # LightRAG found every index it wants
                    for r in records:
                        assert await ds.get_by_id(r.key) == {**r.payload, "_id": r.key}
                        checked += 1
                    statuses = {}
                    for r in records:
                        statuses[r.payload["status"]] = statuses.get(r.payload["status"], 0) + 1
                    assert await ds.get_status_counts() == statuses
                    await ds.finalize()
            if any(s.kind is StoreKind.GRAPH_NODES for s in data):
                nodes = next(v for s, v in data.items() if s.kind is StoreKind.GRAPH_NODES)
                edges = next(v for s, v in data.items() if s.kind is StoreKind.GRAPH_EDGES)
                edge_coll = layout.collection_name(workspace, GRAPH_NAMESPACE) + "_edges"
                before = await _index_names(db, edge_coll)
                graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, workspace, db)
                await graph.initialize()  # skips its legacy-edge migration: the unique index is there
                assert await _index_names(db, edge_coll) == before
                for r in nodes:
                    expected = dict(r.payload)
                    if expected.get("source_id"):
                        expected["source_ids"] = expected["source_id"].split("<SEP>")
                    assert await graph.get_node(r.key) == expected, r.key
                    checked += 1
                for r in edges:
                    attrs = {k: v for k, v in r.payload.items() if k not in ("source", "target")}
                    src, tgt = r.payload["source"], r.payload["target"]
                    expected = {**attrs, "source_node_id": src, "target_node_id": tgt,
                                "edge_lo": min(src, tgt), "edge_hi": max(src, tgt)}
                    if attrs.get("source_id"):
                        expected["source_ids"] = attrs["source_id"].split("<SEP>")
                    assert await graph.get_edge(src, tgt) == expected, r.key
                    assert await graph.has_edge(tgt, src)
                    checked += 1
                assert await graph.get_all_labels() == sorted(r.key for r in nodes)
                await graph.finalize()
            assert checked > 0

    asyncio.run(run())


def test_our_indexes_are_the_ones_lightrag_creates(mongo_target):
    """LightRAG's initialize() on an empty database creates the reference set of indexes."""
    from hybridrag_backends.provider import StoreInfo

    stores = [StoreInfo("doc_status", StoreKind.DOC_STATUS), StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_NODES),
              StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES)]

    async def indexes(db, name):
        return sorted((i["name"], tuple(dict(i["key"]).items()), bool(i.get("unique"))) for i in await (await db[name].list_indexes()).to_list(None))

    async def run():
        for ws in ("", "team_a"):
            config = MongoProvider().config_from_target(mongo_target.uri, workspace=ws)
            async with MongoProvider().open(config) as session:
                await session.prepare_target(stores, MigrationJob(f"job-{ws}", "src", "json", "mongodb"), force=False)
                ref_db = session.client[mongo_target.database + "_ref"]
                ds = lightrag_storage("MongoDocStatusStorage", "doc_status", ws, ref_db)
                graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, ws, ref_db)
                await ds.initialize()
                await graph.initialize()
                for ns in ("doc_status", GRAPH_NAMESPACE, GRAPH_NAMESPACE + "_edges"):
                    name = layout.collection_name(ws, ns)
                    assert name in await session.db.list_collection_names()
                    assert await indexes(session.db, name) == await indexes(ref_db, name), name
                await ds.finalize()
                await graph.finalize()
                if ws:
                    await session.client.drop_database(ref_db.name)

    asyncio.run(run())


def test_data_written_by_lightrag_reads_back_as_records(mongo_target):
    """The other direction: what LightRAG's own Mongo storages write is read by the session as the
    records LightRAG was given (its create_time/update_time and derived source_ids aside)."""
    ws = "lr"
    config = MongoProvider().config_from_target(mongo_target.uri, workspace=ws)

    async def run():
        async with MongoProvider().open(config) as session:
            db = session.db
            kv = lightrag_storage("MongoKVStorage", "text_chunks", ws, db)
            ds = lightrag_storage("MongoDocStatusStorage", "doc_status", ws, db)
            graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, ws, db)
            for s in (kv, ds, graph):
                await s.initialize()
            chunks = {f"doc-1-chunk-{i:03d}": {"content": f"text {i}", "tokens": i, "chunk_order_index": i,
                                                "full_doc_id": "doc-1", "file_path": "a.txt", "llm_cache_list": []}
                      for i in range(25)}
            await kv.upsert({k: dict(v) for k, v in chunks.items()})
            await ds.upsert({"doc-1": {"status": "processed", "content_summary": "s", "content_length": 9,
                                       "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00",
                                       "file_path": "a.txt", "chunks_count": 25, "chunks_list": list(chunks)}})
            await graph.upsert_nodes_batch([("Alice", {"entity_id": "Alice", "entity_type": "person", "source_id": "c1<SEP>c2"}),
                                            ("Bob", {"entity_id": "Bob", "entity_type": "person", "source_id": "c2"})])
            await graph.upsert_edges_batch([("Bob", "Alice", {"weight": 2.0, "description": "knows", "source_id": "c2"}),
                                            ("Alice", "Carol", {"weight": 1.0, "description": "met", "source_id": "c3"})])
            for s in (kv, ds, graph):
                await s.finalize()

            stores = {s.name: s for s in await session.list_stores()}
            assert set(stores) == {"text_chunks", "doc_status", f"{GRAPH_NAMESPACE}.nodes", f"{GRAPH_NAMESPACE}.edges"}

            async def read(name):
                out = {}
                async for batch in session.read(stores[name], None, 10):
                    assert not batch.rejected
                    out.update((r.key, r.payload) for r in batch.records)
                return out

            got = await read("text_chunks")
            assert {k: {f: v for f, v in p.items() if f not in ("create_time", "update_time")} for k, p in got.items()} == chunks
            assert (await read("doc_status"))["doc-1"]["chunks_count"] == 25
            nodes = await read(f"{GRAPH_NAMESPACE}.nodes")
            assert nodes["Alice"] == {"entity_id": "Alice", "entity_type": "person", "source_id": "c1<SEP>c2"}
            assert nodes["Carol"] == {}  # LightRAG's placeholder for an edge endpoint
            edges = await read(f"{GRAPH_NAMESPACE}.edges")
            assert edges == {
                "Alice<SEP>Bob": {"weight": 2.0, "description": "knows", "source_id": "c2", "source": "Bob", "target": "Alice"},
                "Alice<SEP>Carol": {"weight": 1.0, "description": "met", "source_id": "c3", "source": "Alice", "target": "Carol"},
            }

    asyncio.run(run())


def test_vector_storage_on_a_search_capable_server(mongo_target):
    """On a server with search indexes (the fake in its Atlas mode), status first warns that LightRAG's
    vector index is missing, LightRAG's MongoVectorDBStorage creates it on start and returns every
    vector bit for bit (float32 -> double -> float32) with its meta fields; then status is healthy.
    $vectorSearch queries themselves are not emulated by the fake."""
    import numpy as np
    from lightrag.utils import EmbeddingFunc

    if mongo_target.is_fake:
        mongo_target.server.atlas_search = True
    working_dir, ws_src = next((d, w) for d, w in WORKSPACES if d.name.startswith("macking3"))
    data = {s: r for s, r in load_records(working_dir, ws_src).items() if s.kind is StoreKind.VECTOR}
    ws = "vec"
    provider = MongoProvider()
    config = provider.config_from_target(mongo_target.uri, workspace=ws)
    meta = {"chunks": {"full_doc_id", "content", "file_path"},
            "entities": {"entity_name", "source_id", "content", "file_path"},
            "relationships": {"src_id", "tgt_id", "source_id", "content", "file_path"}}

    async def run():
        async with provider.open(config) as session:
            await write_all(session, data, new_job(data, "job-lr"), batch_size=64)
        before = await provider.metrics(config)
        search = before.details["vector_search"]
        if not search["supported"]:
            pytest.skip("this MongoDB server has no search indexes: LightRAG's vector storage cannot run on it")
        assert all(i["status"] == "missing" for i in search["indexes"].values())
        assert any("LightRAG creates it on start" in w for w in before.warnings)
        async with provider.open(config) as session:
            for store, records in data.items():
                dim = store.embedding_dim

                async def never(texts, **kwargs):  # reading needs no embeddings
                    raise AssertionError("embedding called")

                vdb = _vdb(store.namespace, ws, session.db, EmbeddingFunc(embedding_dim=dim, func=never), meta[store.namespace])
                await vdb.initialize()
                vectors = await vdb.get_vectors_by_ids([r.key for r in records])
                for r in records:
                    assert np.array_equal(np.asarray(vectors[r.key], dtype=np.float32), r.vector), r.key
                    doc = await vdb.get_by_id(r.key)
                    assert doc["created_at"] == r.payload["__created_at__"]
                    assert {k: doc[k] for k in meta[store.namespace] if k in r.payload} == {
                        k: v for k, v in r.payload.items() if k in meta[store.namespace]}
                await vdb.finalize()
        after = await provider.metrics(config)
        assert after.health == "healthy" and not after.warnings, after.warnings

    asyncio.run(run())


def _vdb(namespace, workspace, db, embedding_func, meta_fields):
    from lightrag.kg.mongo_impl import MongoVectorDBStorage

    global_config = {"embedding_batch_num": 16, "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2}}
    vdb = MongoVectorDBStorage(namespace=namespace, global_config=global_config, embedding_func=embedding_func,
                               workspace=workspace, meta_fields=meta_fields)
    vdb.db = db
    return vdb
