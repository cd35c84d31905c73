"""JSON writer: exact resume from a checkpoint, atomic files, non-empty targets, force."""

from __future__ import annotations

import asyncio
import copy
import json

import numpy as np
import pytest
from conftest import REALDATA

from hybridrag_backends.errors import TargetError
from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob
from hybridrag_backends.provider import Record, StoreInfo, StoreKind
from hybridrag_backends_json.session import JsonSession
from hybridrag_backends_json.writer import LOCK_FILE

SRC = REALDATA / "macking3__lucaOS__rag_storage"


def new_job(stores):
    return MigrationJob("job1", "db", "json", "json", checkpoints=[MigrationCheckpoint(s.name, None, 0, 0) for s in stores])


async def read_all(session, store):
    out = []
    async for b in session.read(store, None, 1000):
        out.extend(b.records)
    return out


async def source_records():
    src = JsonSession(str(SRC))
    stores = await src.list_stores()
    return stores, {s.name: await read_all(src, s) for s in stores}


def commit(job, store, records):
    cp = job.checkpoint(store.name)
    cp.migrated_count += len(records)
    cp.last_key = records[-1].cursor


async def copy_with_crashes(tmp_path):
    """Write every store in batches of 5; after each store's 2nd batch, "crash": keep only the job as
    saved after the 1st batch, write one more uncommitted batch, then resume in a new session."""
    stores, data = await source_records()
    target = tmp_path / "t"
    job = new_job(stores)
    dst = JsonSession(str(target))
    await dst.prepare_target(stores, job, force=False)
    for store in stores:
        recs = data[store.name]
        batches = [recs[i : i + 5] for i in range(0, len(recs), 5)]
        done = 0
        if len(batches) >= 3:
            await dst.write_batch(store, batches[0], job)
            commit(job, store, batches[0])
            saved = copy.deepcopy(job)  # what the engine saved
            await dst.write_batch(store, batches[1], job)  # never checkpointed: must vanish
            job = saved
            dst = JsonSession(str(target))
            await dst.prepare_target(stores, job, force=False)
            done = 1
        for batch in batches[done:]:
            await dst.write_batch(store, batch, job)
            commit(job, store, batch)
        await dst.finish_store(store, job)
        job.checkpoint(store.name).done = True
        # no half-written file under a LightRAG name, ever
        for p in target.iterdir():
            if not p.name.startswith("."):
                json.loads(p.read_text()) if p.suffix == ".json" else None
    await dst.finish_target(job)
    await dst.close()
    return stores, data, target


def test_resume_truncates_uncommitted_bytes_and_copies_exactly(tmp_path):
    stores, data, target = asyncio.run(copy_with_crashes(tmp_path))
    # no leftovers, but the (empty) lock file filelock keeps on purpose
    assert sorted(p.name for p in target.iterdir()) == sorted([LOCK_FILE, *(p.name for p in SRC.iterdir())])
    assert (target / LOCK_FILE).stat().st_size == 0
    copy_session = JsonSession(str(target))
    for store in stores:
        got = asyncio.run(read_all(copy_session, store))
        want = data[store.name]
        assert [r.key for r in got] == [r.key for r in want], store.name
        assert [r.payload for r in got] == [r.payload for r in want]
        if store.kind is StoreKind.VECTOR:
            assert all(np.array_equal(a.vector, b.vector) for a, b in zip(got, want))


def test_crash_after_the_file_was_moved_into_place(tmp_path):
    store = StoreInfo("full_docs", StoreKind.KV)
    recs = [Record("full_docs", f"d{i}", {"content": str(i)}, cursor=str(i)) for i in range(3)]
    job = new_job([store])

    async def go():
        dst = JsonSession(str(tmp_path))
        await dst.prepare_target([store], job, force=False)
        await dst.write_batch(store, recs, job)
        commit(job, store, recs)
        saved = copy.deepcopy(job)
        await dst.finish_store(store, job)  # replaced... and the process dies before done is saved
        await dst.close()  # dying, the process loses its OS file lock: close() drops it here
        again = JsonSession(str(tmp_path))
        await again.prepare_target([store], saved, force=False)
        await again.finish_store(store, saved)
        await again.finish_target(saved)
        await again.close()

    asyncio.run(go())
    data = json.loads((tmp_path / "kv_store_full_docs.json").read_text())
    assert list(data) == ["d0", "d1", "d2"] and data["d1"] == {"content": "1", "_id": "d1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "kv_store_full_docs.json"]


def test_files_are_written_like_lightrag(tmp_path):
    kv, ds = StoreInfo("text_chunks", StoreKind.KV), StoreInfo("doc_status", StoreKind.DOC_STATUS)
    job = new_job([kv, ds])

    async def go():
        dst = JsonSession(str(tmp_path), "ws")
        await dst.prepare_target([kv, ds], job, force=False)
        await dst.write_batch(kv, [Record("text_chunks", "c1", {"content": "é\n", "tokens": [1, 2]})], job)
        await dst.write_batch(ds, [Record("doc_status", "d1", {"status": "processed"})], job)
        for s in (kv, ds):
            await dst.finish_store(s, job)
        await dst.finish_target(job)

    asyncio.run(go())
    text = (tmp_path / "ws" / "kv_store_text_chunks.json").read_text(encoding="utf-8")
    assert text == json.dumps({"c1": {"content": "é\n", "tokens": [1, 2], "_id": "c1"}}, indent=2, ensure_ascii=False)
    assert json.loads((tmp_path / "ws" / "kv_store_doc_status.json").read_text()) == {"d1": {"status": "processed"}}


def test_empty_stores_are_written_as_lightrag_expects(tmp_path):
    stores = [StoreInfo("full_docs", StoreKind.KV), StoreInfo("chunks", StoreKind.VECTOR, 8),
              StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES), StoreInfo("chunk_entity_relation", StoreKind.GRAPH_EDGES)]
    job = new_job(stores)

    async def go():
        dst = JsonSession(str(tmp_path))
        await dst.prepare_target(stores, job, force=False)
        for s in stores:
            await dst.finish_store(s, job)
        await dst.finish_target(job)

    asyncio.run(go())
    assert json.loads((tmp_path / "kv_store_full_docs.json").read_text()) == {}
    assert json.loads((tmp_path / "vdb_chunks.json").read_text()) == {"embedding_dim": 8, "data": [], "matrix": ""}
    import networkx as nx

    assert nx.read_graphml(tmp_path / "graph_chunk_entity_relation.graphml").number_of_nodes() == 0


def test_wrong_dimension_vector_is_a_target_error(tmp_path):
    store = StoreInfo("chunks", StoreKind.VECTOR, 4)
    job = new_job([store])

    async def go():
        dst = JsonSession(str(tmp_path))
        await dst.prepare_target([store], job, force=False)
        await dst.write_batch(store, [Record("chunks", "c1", {}, vector=np.ones(3, dtype=np.float32))], job)

    with pytest.raises(TargetError, match="'c1' has dimension"):
        asyncio.run(go())


def test_non_empty_target_needs_force_and_force_replaces(tmp_path):
    (tmp_path / "kv_store_full_docs.json").write_text('{"old": {}}')
    (tmp_path / "vdb_entities.json").write_text('{"embedding_dim": 2, "data": [], "matrix": ""}')
    store = StoreInfo("full_docs", StoreKind.KV)

    async def go(force):
        job = new_job([store])
        async with JsonSession(str(tmp_path)) as dst:
            assert not await dst.is_empty()
            await dst.prepare_target([store], job, force=force)
            await dst.write_batch(store, [Record("full_docs", "new", {"content": "x"})], job)
            # until the store is finished the old file is untouched
            assert json.loads((tmp_path / "kv_store_full_docs.json").read_text()) == {"old": {}}
            await dst.finish_store(store, job)
            await dst.finish_target(job)

    with pytest.raises(TargetError, match="is not empty; use --force to replace it"):
        asyncio.run(go(False))
    asyncio.run(go(True))
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "kv_store_full_docs.json"]
    assert list(json.loads((tmp_path / "kv_store_full_docs.json").read_text())) == ["new"]


def test_crash_after_an_empty_store_was_moved_into_place(tmp_path):
    """The first store is empty: no batch, no checkpoint position, only the done marker says it was ours."""
    empty, full = StoreInfo("full_docs", StoreKind.KV), StoreInfo("text_chunks", StoreKind.KV)
    job = new_job([empty, full])

    async def go():
        dst = JsonSession(str(tmp_path))
        await dst.prepare_target([empty, full], job, force=False)
        await dst.finish_store(empty, job)  # ...and the process dies before the job is saved
        await dst.close()  # dying, the process loses its OS file lock: close() drops it here
        async with JsonSession(str(tmp_path)) as again:
            await again.prepare_target([empty, full], job, force=False)  # not "target is not empty"
            await again.finish_store(empty, job)
            await again.write_batch(full, [Record("text_chunks", "c", {"content": "x"}, cursor="0")], job)
            await again.finish_store(full, job)
            await again.finish_target(job)

    asyncio.run(go())
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "kv_store_full_docs.json", "kv_store_text_chunks.json"]


def test_graphml_writer_keeps_what_networkx_reads_and_refuses_what_xml_cannot_hold(tmp_path):
    import networkx as nx

    nodes, edges = StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES), StoreInfo("chunk_entity_relation", StoreKind.GRAPH_EDGES)
    job = new_job([nodes, edges])
    tricky = 'a<b>&"c"\r\n\tend '

    async def go(bad=False):
        dst = JsonSession(str(tmp_path))
        await dst.prepare_target([nodes, edges], job, force=True)
        await dst.write_batch(nodes, [Record(nodes.name, "A&<x>\n", {"description": tricky, "created_at": 5, "truncate": ""}),
                                      Record(nodes.name, "B", {"flag": True})], job)
        payload = {"weight": 1.5, "source": "A&<x>\n", "target": "B", "keywords": "bell\x07" if bad else "k"}
        await dst.write_batch(edges, [Record(edges.name, "k", payload)], job)
        for s in (nodes, edges):
            await dst.finish_store(s, job)
        await dst.finish_target(job)

    asyncio.run(go())
    g = nx.read_graphml(tmp_path / "graph_chunk_entity_relation.graphml")
    assert dict(g.nodes(data=True)) == {"A&<x>\n": {"description": tricky, "created_at": 5, "truncate": ""}, "B": {"flag": True}}
    assert g.edges["A&<x>\n", "B"] == {"weight": 1.5, "keywords": "k"}
    job = new_job([nodes, edges])
    with pytest.raises(TargetError, match=r"edge 'k': attribute 'keywords' holds the character '\\x07'"):
        asyncio.run(go(bad=True))
