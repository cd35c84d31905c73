"""Round trip: read every realdata workspace with the JSON session, write it to a new working dir with the
JSON session, then open the result with LightRAG 1.5.7's own storage classes and compare record by record
with what the reader gave (after the reader's documented normalisations)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import realdata_workspaces

from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob
from hybridrag_backends.provider import StoreKind, edge_key
from hybridrag_backends_json.provider import JsonProvider


def decode_record_vector(text: str) -> np.ndarray:
    """LightRAG 1.5.7's own decoding of a per-record ``vector`` (get_vectors_by_ids), as float32."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.float16).astype(np.float32)

# Runs in a child process: LightRAG's JSON storages share in-memory dicts per (namespace, workspace)
# and log a lot; every target gets its own workspace name so none collide.
LIGHTRAG_DUMP = r"""
import asyncio, base64, json, sys
import numpy as np
from lightrag.kg.shared_storage import initialize_share_data
from lightrag.kg.json_kv_impl import JsonKVStorage
from lightrag.kg.json_doc_status_impl import JsonDocStatusStorage
from lightrag.kg.nano_vector_db_impl import NanoVectorDBStorage
from lightrag.kg.networkx_impl import NetworkXStorage
from lightrag.utils import EmbeddingFunc

async def fail_embed(texts, **kw):
    raise AssertionError("reading must not embed")

async def dump(wd, ws, stores):
    cfg = {"working_dir": wd, "embedding_batch_num": 10, "max_graph_nodes": 100000,
           "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2}}
    out = {}
    for st in stores:
        ns, kind, dim = st["namespace"], st["kind"], st.get("dim")
        if kind in ("kv", "doc_status"):
            cls = JsonDocStatusStorage if kind == "doc_status" else JsonKVStorage
            s = cls(namespace=ns, workspace=ws, global_config=cfg, embedding_func=None)
            await s.initialize()
            keys = st["keys"]
            got = await s.get_by_ids(keys)
            out[st["name"]] = {"records": dict(zip(keys, got)), "missing": sorted(await s.filter_keys(set(keys))),
                               "size": len(s._data)}
        elif kind == "vector":
            ef = EmbeddingFunc(embedding_dim=dim, func=fail_embed)
            s = NanoVectorDBStorage(namespace=ns, workspace=ws, global_config=cfg, embedding_func=ef,
                                    meta_fields=set())
            await s.initialize()
            storage = await s.client_storage
            vecs = await s.get_vectors_by_ids([d["__id__"] for d in storage["data"]])
            out[st["name"]] = {
                "data": storage["data"],
                "matrix": base64.b64encode(np.asarray(storage["matrix"], dtype=np.float32).tobytes()).decode(),
                "packed": {k: base64.b64encode(np.asarray(v, dtype=np.float32).tobytes()).decode() for k, v in vecs.items()},
            }
        elif kind == "graph_nodes":
            s = NetworkXStorage(namespace=ns, workspace=ws, global_config=cfg, embedding_func=None)
            await s.initialize()
            out[st["name"]] = await s.get_all_nodes()
            out[ns + ".edges"] = await s.get_all_edges()
    return out

async def main():
    initialize_share_data()
    jobs = json.load(sys.stdin)
    print(json.dumps([await dump(*j) for j in jobs], default=str))

asyncio.run(main())
"""

WORKSPACES = realdata_workspaces()


async def _read_all(session, store):
    records, rejected = [], []
    async for batch in session.read(store, None, 64):
        records.extend(batch.records)
        rejected.extend(batch.rejected)
    return records, rejected


async def _copy(provider, src_cfg, dst_cfg):
    src, dst = provider.open(src_cfg), provider.open(dst_cfg)
    stores = await src.list_stores()
    job = MigrationJob("rt", "rt", "json", "json", checkpoints=[MigrationCheckpoint(s.name, None, 0, 0) for s in stores])
    await dst.prepare_target(stores, job, force=False)
    source = {}
    for store in stores:
        records, rejected = await _read_all(src, store)
        assert not rejected, rejected
        source[store.name] = records
        for i in range(0, len(records), 50):
            await dst.write_batch(store, records[i : i + 50], job)
        await dst.finish_store(store, job)
    await dst.finish_target(job)
    return stores, source, dst


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    out = tmp_path_factory.mktemp("json-roundtrip")
    provider = JsonProvider()
    cases, jobs = [], []
    for i, (wd, ws) in enumerate(WORKSPACES):
        src_cfg = provider.config_from_target(str(wd), workspace=ws)
        dst_cfg = provider.config_from_target(str(out), workspace=f"rt{i}")
        stores, source, dst = asyncio.run(_copy(provider, src_cfg, dst_cfg))
        cases.append((wd, ws, stores, source, dst_cfg))
        spec = []
        for s in stores:
            if s.kind is StoreKind.GRAPH_EDGES:
                continue
            spec.append({"name": s.name, "namespace": s.namespace, "kind": s.kind.value, "dim": s.embedding_dim,
                         "keys": [r.key for r in source[s.name]] if s.kind in (StoreKind.KV, StoreKind.DOC_STATUS) else None})
        jobs.append([str(out), f"rt{i}", spec])
    proc = subprocess.run([sys.executable, "-c", LIGHTRAG_DUMP], input=json.dumps(jobs), capture_output=True,
                          text=True, cwd=out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumps = json.loads(proc.stdout.strip().splitlines()[-1])
    return provider, cases, dumps


@pytest.mark.parametrize("case", range(len(WORKSPACES)), ids=[f"{d.name}:{w or '-'}" for d, w in WORKSPACES])
def test_lightrag_reads_back_every_record(round_trip, case):
    provider, cases, dumps = round_trip
    _, _, stores, source, _ = cases[case]
    dump = dumps[case]
    for store in stores:
        records = source[store.name]
        got = dump[store.name]
        if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
            assert got["missing"] == [] and got["size"] == len(records), store.name
            for rec in records:
                row = dict(got["records"][rec.key])
                assert row.pop("_id", rec.key) == rec.key
                expected = dict(rec.payload)
                if store.kind is StoreKind.KV:  # LightRAG's read fills these when a record lacks them
                    expected.setdefault("create_time", 0)
                    expected.setdefault("update_time", 0)
                assert row == expected, (store.name, rec.key)
        elif store.kind is StoreKind.VECTOR:
            data = got["data"]
            assert [d["__id__"] for d in data] == [r.key for r in records]
            matrix = np.frombuffer(base64.b64decode(got["matrix"]), dtype=np.float32).reshape(len(records), -1)
            for i, rec in enumerate(records):
                entry = {k: v for k, v in data[i].items() if k not in ("__id__", "vector")}
                assert entry == {k: v for k, v in rec.payload.items() if k != "vector"}, (store.name, rec.key)
                # nano-vectordb re-normalises rows on load: equal up to float32 rounding
                np.testing.assert_allclose(matrix[i], rec.vector / np.linalg.norm(rec.vector), rtol=0, atol=2e-7)
                packed = np.frombuffer(base64.b64decode(got["packed"][rec.key]), dtype=np.float32)
                if "vector" in rec.payload:
                    # the source's own per-record vector (not the normalised row) is what get_vectors_by_ids
                    # returns from the copy, exactly
                    assert np.array_equal(packed, decode_record_vector(rec.payload["vector"])), (store.name, rec.key)
                else:  # a source without one: regenerated from the row (float16)
                    assert np.array_equal(packed, rec.vector.astype(np.float16).astype(np.float32)), (store.name, rec.key)
        elif store.kind is StoreKind.GRAPH_NODES:
            nodes = {n.pop("id"): n for n in got}
            assert nodes == {r.key: r.payload for r in records}
        else:
            edges = {}
            for e in got:
                edges[edge_key(e["source"], e["target"])] = {k: v for k, v in e.items() if k not in ("source", "target")}
            expected = {r.key: {k: v for k, v in r.payload.items() if k not in ("source", "target")} for r in records}
            assert edges == expected


@pytest.mark.parametrize("case", range(len(WORKSPACES)), ids=[f"{d.name}:{w or '-'}" for d, w in WORKSPACES])
def test_reading_the_copy_gives_the_same_records(round_trip, case):
    """The reader on the written copy yields the source's records exactly, vectors equal as float32."""
    provider, cases, _ = round_trip
    _, _, stores, source, dst_cfg = cases[case]
    dst = provider.open(dst_cfg)
    assert asyncio.run(dst.list_stores()) == stores
    for store in stores:
        copied, rejected = asyncio.run(_read_all(dst, store))
        assert not rejected
        assert [r.key for r in copied] == [r.key for r in source[store.name]]
        for a, b in zip(copied, source[store.name]):
            if store.kind is StoreKind.VECTOR:
                assert a.vector.dtype == np.float32 and np.array_equal(a.vector, b.vector)
                if "vector" not in b.payload:  # an older file without the per-record field: the copy has one
                    regenerated = decode_record_vector(a.payload.pop("vector"))
                    assert np.array_equal(regenerated, b.vector.astype(np.float16).astype(np.float32))
            assert a.payload == b.payload
