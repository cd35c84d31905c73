"""JSON -> MongoDB -> JSON through the migration engine and the ``migrate`` CLI, for every real
working dir and workspace, with verification passing; LightRAG 1.5.7's Mongo storages, handed the
database the migration wrote, return the source's records (as the JSON reader gives them) for every
key, node and edge. Fake-backed unless HYBRIDRAG_TEST_MONGO_URI is set."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from conftest import realdata_workspaces
from mongo_realdata import lightrag_storage

from hybridrag_backends.migration.verify import verify as verify_stores
from hybridrag_backends.provider import GRAPH_NAMESPACE, StoreKind
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.mongodb

WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{ws or '-'}" for d, ws in WORKSPACES]


def migrate(secret: str, *args: str) -> dict:
    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["migrate", *args, "--batch-size", "64", "--json"])
    assert secret not in result.output
    out = json.loads(result.output)
    assert result.exit_code == 0, out.get("error")
    assert out["status"] == "completed" and out["verification"]["ok"] is True
    return out


async def _records(session, store):
    out = {}
    async for batch in session.read(store, None, 500):
        assert not batch.rejected
        out.update((r.key, r) for r in batch.records)
    return out


async def _lightrag_reads_what_the_source_has(source, target) -> int:
    from lightrag.kg.shared_storage import initialize_share_data

    initialize_share_data()
    ws = target.config.workspace

    checked = 0
    async with source.provider.open(source.config) as src, target.provider.open(target.config) as dst:
        for store in await src.list_stores():
            expected = await _records(src, store)
            if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
                cls = "MongoKVStorage" if store.kind is StoreKind.KV else "MongoDocStatusStorage"
                kv = lightrag_storage(cls, store.namespace, ws, dst.db)
                await kv.initialize()
                for key, r in expected.items():
                    doc = await kv.get_by_id(key)
                    assert doc is not None, (store.name, key)
                    doc.pop("_id")
                    if store.kind is StoreKind.KV:  # LightRAG's defaults for records without them
                        for f in ("create_time", "update_time"):
                            if f not in r.payload and doc.get(f) == 0:
                                doc.pop(f)
                    assert doc == r.payload, (store.name, key)
                    checked += 1
                await kv.finalize()
            elif store.kind is StoreKind.GRAPH_NODES:
                graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, ws, dst.db)
                await graph.initialize()
                for key, r in expected.items():
                    node = await graph.get_node(key)
                    if r.payload.get("source_id"):
                        assert node.pop("source_ids") == r.payload["source_id"].split("<SEP>")
                    assert node == r.payload, key
                    checked += 1
                await graph.finalize()
            elif store.kind is StoreKind.GRAPH_EDGES:
                graph = lightrag_storage("MongoGraphStorage", GRAPH_NAMESPACE, ws, dst.db)
                await graph.initialize()
                for key, r in expected.items():
                    src_id, tgt_id = r.payload["source"], r.payload["target"]
                    edge = await graph.get_edge(tgt_id, src_id)  # undirected: either direction
                    attrs = {k: v for k, v in r.payload.items() if k not in ("source", "target")}
                    assert (edge.pop("source_node_id"), edge.pop("target_node_id")) == (src_id, tgt_id)
                    assert (edge.pop("edge_lo"), edge.pop("edge_hi")) == tuple(sorted((src_id, tgt_id)))
                    if attrs.get("source_id"):
                        assert edge.pop("source_ids") == attrs["source_id"].split("<SEP>")
                    assert edge == attrs, key
                    checked += 1
                await graph.finalize()
    return checked


@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_json_to_mongodb_to_json(mongo_target, tmp_path, working_dir, workspace, monkeypatch, _isolated_home):
    monkeypatch.delenv("MONGODB_WORKSPACE", raising=False)
    ws_args = ["--workspace", workspace] if workspace else []
    there = migrate(mongo_target.password, "--from", str(working_dir), "--to", mongo_target.uri, *ws_args)
    back_dir = tmp_path / "back"
    back = migrate(mongo_target.password, "--from", mongo_target.uri, "--to", str(back_dir), *ws_args)
    assert back["migrated_records"] == there["migrated_records"] == there["plan"]["total_records"]
    for path in [p for p in _isolated_home.rglob("*") if p.is_file()] + [p for p in back_dir.rglob("*") if p.is_file()]:
        assert mongo_target.password.encode() not in path.read_bytes(), path  # job files, rejects, logs

    source = resolve_target(str(working_dir), workspace=workspace or None)
    target = resolve_target(mongo_target.uri, workspace=workspace or None)
    final = resolve_target(str(back_dir), workspace=workspace or None)

    async def end_to_end():
        async with source.provider.open(source.config) as a, final.provider.open(final.config) as b:
            stores = await a.list_stores()
            assert [s.name for s in await b.list_stores()] == [s.name for s in stores]
            # NanoVectorDB's per-record float16 vector does not survive MongoDB (declared lossy there: one
            # float32 vector per record); every other field and the float32 vectors must
            b.holds_record_vectors = lambda store: False
            return await verify_stores(a, b, stores)

    result = asyncio.run(end_to_end())
    assert result["ok"], result["failed_stores"]
    assert asyncio.run(_lightrag_reads_what_the_source_has(source, target)) == there["migrated_records"] - sum(
        s["records"] for s in there["plan"]["stores"] if s["kind"] == "vector")


def _cli(*args: str):
    from hybridrag_backends.cli.main import build_cli

    return CliRunner().invoke(build_cli(), list(args))


def test_mongodb_to_another_workspace_and_force(mongo_target, tmp_path):
    working_dir, ws = WORKSPACES[0]
    migrate(mongo_target.password, "--from", str(working_dir), "--to", mongo_target.uri, "--target-workspace", "a")
    copy = migrate(mongo_target.password, "--from", mongo_target.uri, "--workspace", "a", "--to", mongo_target.uri,
                   "--target-workspace", "b")
    assert copy["verification"]["ok"] and copy["migrated_records"] > 0

    again = _cli("migrate", "--from", str(working_dir), "--to", mongo_target.uri, "--target-workspace", "b", "--json")
    assert again.exit_code == 3 and "--force" in json.loads(again.stdout)["error"]
    assert mongo_target.password not in again.output
    forced = migrate(mongo_target.password, "--from", str(working_dir), "--to", mongo_target.uri, "--target-workspace", "b", "--force")
    assert forced["migrated_records"] == copy["migrated_records"]

    same = _cli("migrate", "--from", mongo_target.uri, "--workspace", "b", "--to", mongo_target.uri, "--json")
    assert same.exit_code == 2 and "same place" in json.loads(same.stdout)["error"]


def test_rejected_mongo_documents_are_named_and_counted(mongo_target, tmp_path):
    from hybridrag_backends_mongodb.provider import MongoProvider

    provider = MongoProvider()
    config = provider.config_from_target(mongo_target.uri)

    async def seed():
        async with provider.open(config) as session:
            await session.db["full_docs"].insert_many([{"_id": "doc-1", "content": "a"}, {"_id": 7, "content": "b"}])
            await session.db["entities"].insert_many([
                {"_id": "ent-1", "entity_name": "A", "created_at": 1, "vector": [0.5, 0.5]},
                {"_id": "ent-2", "entity_name": "B", "created_at": 1, "vector": [0.5, 0.5, 0.5]},
            ])

    asyncio.run(seed())
    result = _cli("migrate", "--from", mongo_target.uri, "--to", str(tmp_path / "out"), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 2 and out["failed_records"] == 2 and out["migrated_records"] == 2
    assert "rejected" in out["error"] and out["status"] == "failed"
    rejects = [json.loads(line) for line in open(out["rejects_file"], encoding="utf-8")]
    assert {(r["store"], r["key"]) for r in rejects} == {("full_docs", "7"), ("entities", "ent-2")}
    assert any("2 dimensions" in r["reason"] or "3 dimensions" in r["reason"] for r in rejects)
    resumed = _cli("migrate", "--from", mongo_target.uri, "--to", str(tmp_path / "out"), "--resume", "--allow-rejects", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "completed"
