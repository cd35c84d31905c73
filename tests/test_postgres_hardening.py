"""Issue 10 against the real server: a record key that reads like a password pair is copied and kept as
it is, and the job row stays valid JSON (defect 1); a record PostgreSQL cannot hold (a NUL character, a
key longer than LightRAG's id column) is a named reject while everything else copies and verifies
(defect 7). Every outcome is read back with plain SQL, not through the provider under test."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.migration import jobstore
from hybridrag_backends.provider import Record, StoreInfo, StoreKind
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.postgres
MODEL = "test-embed"
SOURCE = REALDATA / "spindigits__MultiRag__rag_storage"


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _dump(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)


def _source_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SOURCE, src)
    for p in src.iterdir():
        p.chmod(0o644)
    return src


async def _sql(url: str, query: str, *args):
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def sql(url: str, query: str, *args):
    return asyncio.run(_sql(url, query, *args))


# -- defect 1: a key like "pwd=hunter2" -------------------------------------------------------------


def test_a_key_that_reads_like_a_password_pair_is_copied_exactly_and_the_job_row_stays_json(pg_module_db, tmp_path):
    src = _source_copy(tmp_path)
    docs = _load(src / "kv_store_full_docs.json")
    content = next(iter(docs.values()))["content"]
    docs["pwd=hunter2"] = {"content": content + " (copy)", "file_path": "pwd=hunter2.txt"}
    _dump(src / "kv_store_full_docs.json", docs)
    url = f"{pg_module_db}?embedding_model={MODEL}"
    ws1, ws2 = f"pw1_{uuid.uuid4().hex[:8]}", f"pw2_{uuid.uuid4().hex[:8]}"

    first = invoke("migrate", "--from", str(src), "--to", url, "--target-workspace", ws1, "--json")
    assert first.exit_code == 0, first.stdout + first.stderr
    # the review's repro: PostgreSQL -> PostgreSQL one record per batch, so the job row is saved with the
    # key as the checkpoint; it failed with "invalid input syntax for type json" (exit 3)
    second = invoke("migrate", "--from", url, "--workspace", ws1, "--to", url, "--target-workspace", ws2,
                    "--batch-size", "1", "--json")
    out = json.loads(second.stdout)
    assert second.exit_code == 0, out["error"]
    assert out["verification"]["ok"] is True

    for ws in (ws1, ws2):
        rows = sql(url, "SELECT content, doc_name FROM lightrag_doc_full WHERE workspace = $1 AND id = $2",
                   ws, "pwd=hunter2")
        assert [(r["content"], r["doc_name"]) for r in rows] == [(content + " (copy)", "pwd=hunter2.txt")]
    row = sql(url, "SELECT job::text AS job, checkpoints::text AS cps FROM hybridrag_migration_jobs WHERE job_id = $1",
              out["job_id"])[0]
    job = json.loads(row["job"])  # plain parse of what PostgreSQL holds
    full_docs = next(cp for cp in job["checkpoints"] if cp["store_name"] == "full_docs")
    assert full_docs["last_key"] == "pwd=hunter2"  # the largest key in id order: data, kept exactly
    assert json.loads(row["cps"]) == job["checkpoints"]
    password = urlsplit(pg_module_db).password
    assert password and password not in row["job"]
    assert password not in (jobstore.job_dir(out["job_id"]) / jobstore.JOB_FILE).read_text()


# -- defect 7: what PostgreSQL cannot hold ----------------------------------------------------------


def test_key_limits_are_lightrags_id_columns():
    """The limits the provider refuses by are the ones LightRAG 1.5.7's own DDL declares."""
    from lightrag.kg.postgres_impl import TABLES

    from hybridrag_backends_postgres import naming

    tables = {**naming.KV_TABLES, "doc_status": naming.DOC_STATUS_TABLE, **naming.VECTOR_BASE_TABLES}
    assert len(tables) == 11
    for namespace, table in tables.items():
        declared = int(re.search(r"\bid\s+VARCHAR\((\d+)\)", TABLES[table]["ddl"], re.IGNORECASE).group(1))
        assert naming.KEY_MAX_CHARS_BY_NAMESPACE.get(namespace, naming.KEY_MAX_CHARS) == declared, namespace
    for table in ("LIGHTRAG_VDB_ENTITY", "LIGHTRAG_VDB_RELATION"):
        assert re.search(rf"chunk_ids\s+VARCHAR\({naming.CHUNK_ID_MAX_CHARS}\)\[\]", TABLES[table]["ddl"])


def test_screen_refuses_exactly_what_postgresql_cannot_hold(pg_url):
    target = resolve_target(f"{pg_url}?embedding_model={MODEL}&embedding_dim=4", workspace="screen")
    session = target.provider.open(target.config)  # screen() needs no connection
    kv = StoreInfo("entity_chunks", StoreKind.KV)
    records = [
        Record(kv.name, "k" * 512, {"chunk_ids": ["c"], "count": 1}),  # VARCHAR(512) here
        Record(kv.name, "k" * 513, {"chunk_ids": ["c"], "count": 1}),
        Record(kv.name, "nul", {"chunk_ids": ["c\x00d"], "count": 1}),  # jsonb
    ]
    kept, refused = session.screen(kv, records)
    assert [r.key for r in kept] == ["k" * 512]
    assert [(r.key, r.side) for r in refused] == [("k" * 513, "target"), ("nul", "target")]
    assert "513 characters" in refused[0].reason and "VARCHAR(512)" in refused[0].reason
    assert "NUL" in refused[1].reason and "'chunk_ids'" in refused[1].reason
    extra = StoreInfo("parse_cache", StoreKind.KV)  # hybridrag_extra_kv: TEXT id, JSON payload
    assert session.screen(extra, [Record(extra.name, "x" * 999, {"v": "a\x00b"})])[1] == []
    vec = StoreInfo("entities", StoreKind.VECTOR, embedding_dim=4)
    ok = np.ones(4, dtype=np.float32)
    kept, refused = session.screen(vec, [
        Record(vec.name, "a", {"entity_name": "A", "source_id": "chunk-1"}, vector=ok),
        Record(vec.name, "b", {"entity_name": "B", "source_id": "chunk-1<SEP>" + "c" * 256}, vector=ok),
        Record(vec.name, "c", {"entity_name": "C"}, vector=np.array([1, np.nan, 0, 0], dtype=np.float32)),
        Record(vec.name, "d", {"entity_name": "D"}, vector=None),
        Record(vec.name, "e", {"entity_name": "E" * 600 + "\x00"}, vector=ok),  # NUL cut off by VARCHAR(512)...
    ])
    assert [r.key for r in kept] == ["a", "e"]  # ...and the overlay (JSON) keeps the whole name
    assert [r.key for r in refused] == ["b", "c", "d"]
    nodes = StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES)
    kept, refused = session.screen(nodes, [Record(nodes.name, "n" * 300, {"d": "x"}),
                                           Record(nodes.name, "m", {"d": "x\x00"})])
    assert [r.key for r in kept] == ["n" * 300] and [r.key for r in refused] == ["m"]


def test_nul_values_and_overlong_keys_are_named_rejects_and_everything_else_copies(pg_module_db, tmp_path):
    src = _source_copy(tmp_path)
    docs = _load(src / "kv_store_full_docs.json")
    nul_doc = sorted(docs)[0]
    docs[nul_doc]["content"] += "\x00 after a NUL"  # json.dump writes it as \u0000, which json.load reads
    _dump(src / "kv_store_full_docs.json", docs)
    entities = _load(src / "kv_store_full_entities.json")
    long_key = "e" * 256  # LIGHTRAG_FULL_ENTITIES.id is VARCHAR(255)
    entities[long_key] = {"entity_names": ["A"], "count": 1}
    _dump(src / "kv_store_full_entities.json", entities)
    entity_chunks = _load(src / "kv_store_entity_chunks.json")
    allowed_key = "c" * 400  # LIGHTRAG_ENTITY_CHUNKS.id is VARCHAR(512): this one fits
    entity_chunks[allowed_key] = {"chunk_ids": ["chunk-x"], "count": 1}
    _dump(src / "kv_store_entity_chunks.json", entity_chunks)
    url = f"{pg_module_db}?embedding_model={MODEL}"
    ws_strict, ws_lenient = f"nul_{uuid.uuid4().hex[:8]}", f"nul_{uuid.uuid4().hex[:8]}"

    # without --allow-rejects: exit 2, one line naming the first reject with its file, key and reason
    strict = invoke("migrate", "--from", str(src), "--to", url, "--target-workspace", ws_strict)
    assert strict.exit_code == 2, strict.output
    error = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "2 record(s) were rejected" in error[0]
    assert f"store full_docs, key {nul_doc!r} at {src / 'kv_store_full_docs.json'}" in error[0]
    assert "NUL character" in error[0] and "--allow-rejects" in error[0]

    lenient = invoke("migrate", "--from", str(src), "--to", url, "--target-workspace", ws_lenient,
                     "--allow-rejects", "--json")
    out = json.loads(lenient.stdout)
    assert lenient.exit_code == 0, out["error"]
    assert out["verification"]["ok"] is True and out["failed_records"] == 2
    rejects = jobstore.read_rejects(out["job_id"])
    assert sorted((r["store"], r["key"], r["location"], r["side"]) for r in rejects) == [
        ("full_docs", nul_doc, str(src / "kv_store_full_docs.json"), "target"),
        ("full_entities", long_key, str(src / "kv_store_full_entities.json"), "target"),
    ]
    assert "256 characters" in next(r["reason"] for r in rejects if r["key"] == long_key)

    # plain SQL: every other record of those stores is there, the refused ones are not
    for ws in (ws_strict, ws_lenient):
        for table, source_keys, refused in (
            ("lightrag_doc_full", docs, {nul_doc}),
            ("lightrag_full_entities", entities, {long_key}),
            ("lightrag_entity_chunks", entity_chunks, set()),
        ):
            got = {r["id"] for r in sql(url, f"SELECT id FROM {table} WHERE workspace = $1", ws)}
            assert got == set(source_keys) - refused, (ws, table)
    content = sql(url, "SELECT content FROM lightrag_doc_full WHERE workspace = $1 AND id = $2",
                  ws_lenient, sorted(docs)[1])[0]["content"]
    assert content == docs[sorted(docs)[1]]["content"]
