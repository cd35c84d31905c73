"""A key written twice in one JSON KV file: counted, digested, copied and reported the way LightRAG reads
it (json.load keeps the last value), and the plan says how many duplicates there were (issue 10, defect 6).
The independent readers are json.load and plain SQL on the columns LightRAG's PG storage reads."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends.cli.main import build_cli

SOURCE = REALDATA / "macking3__lucaOS__rag_storage"


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def with_duplicate(tmp_path: Path) -> tuple:
    """The real working dir with full_docs' first key written again at the end (a hand edit, a buggy
    writer): json.dump cannot write that, so the file is edited as text, as it would be."""
    src = tmp_path / "src"
    shutil.copytree(SOURCE, src)
    path = src / "kv_store_full_docs.json"
    path.chmod(0o644)
    text = path.read_text()
    first = next(iter(json.loads(text)))
    text = text.rstrip()[:-1].rstrip() + (
        f',\n  "{first}": {{\n    "content": "the second value wins",\n    "create_time": 2,\n    "update_time": 2\n  }}\n}}')
    path.write_text(text)
    with open(path, encoding="utf-8-sig") as fh:
        lightrag_view = json.load(fh)
    assert lightrag_view[first]["content"] == "the second value wins" and text.count(f'"{first}": ') == 2
    return src, first, lightrag_view


def test_json_to_json_keeps_the_last_value_once(tmp_path):
    src, key, expected = with_duplicate(tmp_path)
    dst = tmp_path / "dst"
    result = invoke("migrate", "--from", str(src), "--to", str(dst), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0, out["error"]
    plan = {s["store"]: s for s in out["plan"]["stores"]}
    assert plan["full_docs"]["duplicates"] == 1 and out["plan"]["total_duplicates"] == 1
    assert plan["full_docs"]["records"] == len(expected)  # LightRAG's count, not the lines in the file
    text = (dst / "kv_store_full_docs.json").read_text()
    assert text.count(f'"{key}": ') == 1
    with open(dst / "kv_store_full_docs.json", encoding="utf-8-sig") as fh:
        copy = json.load(fh)
    assert list(copy) == [k for k in expected if k != key] + [key]  # where the last value stands in the file
    assert {k: {f: v for f, v in copy[k].items() if f != "_id"} for k in copy} == \
           {k: {f: v for f, v in expected[k].items() if f != "_id"} for k in expected}
    dry = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "d2"), "--dry-run")
    assert "duplicates: 1 earlier entry of keys written more than once" in dry.stdout
    status = json.loads(invoke("status", str(src), "--json").stdout)["metrics"]
    assert status["store_counts"]["full_docs"] == len(expected)
    assert any("1 key(s) written more than once" in w for w in status["warnings"])
    assert status["health"] == "healthy"  # LightRAG reads it, every migration copies it: a note, not a fault


def test_json_to_postgres_verifies_and_lightrag_reads_the_last_value(tmp_path, pg_module_db):
    import asyncpg

    src, key, expected = with_duplicate(tmp_path)
    ws = f"dup_{uuid.uuid4().hex[:8]}"
    url = f"{pg_module_db}?embedding_model=dup-embed"
    result = invoke("migrate", "--from", str(src), "--to", url, "--target-workspace", ws, "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0, out["error"]
    v = out["verification"]["stores"]["full_docs"]
    assert v["ok"] and v["source_count"] == v["target_count"] == len(expected)

    async def rows():
        conn = await asyncpg.connect(pg_module_db)
        try:
            return {r["id"]: r["content"] for r in await conn.fetch(
                "SELECT id, content FROM lightrag_doc_full WHERE workspace = $1", ws)}
        finally:
            await conn.close()

    got = asyncio.run(rows())
    assert len(got) == len(expected) and got[key] == "the second value wins"
    checked = invoke("verify", str(src), url, "--target-workspace", ws)
    assert checked.exit_code == 0, checked.output


TRICKY_KEYS = ['plain', 'quote " inside', 'ends with backslash \\', 'colon ": space', 'back\\"slash "quote": ',
               'é ü 文本', '\U0001F600 emoji', 'plain', 'x' * 300, 'quote " inside', 'tab\there', 'newline\nin key']


@pytest.mark.parametrize("block", [7, 64, 4096], ids=lambda b: f"{b}-byte blocks")
def test_structure_scan_agrees_with_json_load_on_tricky_keys(tmp_path, monkeypatch, block):
    """Keys with escaped quotes, backslashes, ": " inside, non-ASCII and escapes, some written twice, and a
    non-object value, cut by block boundaries everywhere (small blocks): the scan counts LightRAG's records,
    the reader yields json.load's dict in its order."""
    from hybridrag_backends_json import kvscan
    from hybridrag_backends_json.session import JsonSession
    from hybridrag_backends.provider import StoreInfo, StoreKind

    monkeypatch.setattr(kvscan, "CHUNK", block)
    kvscan._CACHE.clear()
    entries = [(k, {"i": i}) for i, k in enumerate(TRICKY_KEYS)] + [("scalar", "not an object")]
    for ensure_ascii in (False, True):
        body = ",\n".join(f"  {json.dumps(k, ensure_ascii=ensure_ascii)}: "
                          + json.dumps(v, indent=2, ensure_ascii=ensure_ascii).replace("\n", "\n  ")
                          for k, v in entries)
        path = tmp_path / "kv_store_full_entities.json"
        path.write_text("{\n" + body + "\n}", encoding="utf-8")
        kvscan._CACHE.clear()
        with open(path, encoding="utf-8-sig") as fh:
            expected = json.load(fh)
        scan = kvscan.scan_kv(path)
        assert scan.method.startswith("fast")
        assert scan.records == len(expected) and scan.duplicate_keys == 2 and scan.not_object_count == 1
        assert [v[0] for v in scan.not_objects.values()] == ["scalar"]

        async def read():
            out, rejected = [], []
            async for batch in JsonSession(str(tmp_path)).read(StoreInfo("full_entities", StoreKind.KV), None, 3):
                out += batch.records
                rejected += batch.rejected
            return out, rejected

        records, rejected = asyncio.run(read())
        # each key once, where its last value stands in the file (json.load's dict keeps the first position)
        last_position = {k: i for i, (k, _) in enumerate(entries)}
        assert [r.key for r in records] == sorted((k for k in expected if k != "scalar"), key=last_position.get)
        assert [r.key for r in rejected] == ["scalar"]
        assert {r.key: r.payload for r in records} == {k: v for k, v in expected.items() if k != "scalar"}
