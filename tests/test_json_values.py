"""JSON that LightRAG's json.load accepts and strict JSON does not (NaN, Infinity, integers beyond 64 bits,
escaped lone surrogates): read and copied exactly, rejected by name where a target cannot hold it, with
the true byte offset; status / validate do not call such a file healthy. Issue 10, defects 3 and 4.

The independent reader in these tests is Python's own json.load (what LightRAG 1.5.7 uses), with a
parse_constant hook only to tell NaN from NaN (NaN != NaN)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.errors import SourceError
from hybridrag_backends.migration import jobstore
from hybridrag_backends.provider import StoreInfo, StoreKind
from hybridrag_backends_json.session import JsonSession

LONE_KEY = "surrogate-\ud800-key"
EXOTIC = {
    LONE_KEY: {"content": "a key with a lone surrogate", "create_time": 1, "update_time": 1},
    "nan-doc": {"content": "x", "score": float("nan"), "create_time": 1, "update_time": 1},
    "inf-doc": {"content": "y", "score": float("inf"), "neg": float("-inf"), "create_time": 1, "update_time": 1},
    "big-doc": {"content": "z", "big": 2**70, "small": -(2**70), "create_time": 1, "update_time": 1},
    "lone-value": {"content": "value \udc00 here", "create_time": 1, "update_time": 1},
}


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def load(path: Path) -> dict:
    """LightRAG's reader (lightrag.utils.load_json: utf-8-sig + json.load)."""
    with open(path, encoding="utf-8-sig") as fh:
        return json.load(fh)


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same type (2**70 must not come back as a float)."""
    if isinstance(a, float):  # the reader's NaN / Infinity are a float subclass (orjson refuses it)
        return isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def exotic_source(tmp_path: Path, *, padding: int = 400) -> Path:
    """A real working dir whose full_docs gets the exotic records far into the file (after ``padding``
    ordinary ones, beyond ijson's first read buffer), written as Python's json.dump writes them."""
    src = tmp_path / "src"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", src)
    for p in src.iterdir():
        p.chmod(0o644)
    path = src / "kv_store_full_docs.json"
    docs = load(path)
    for i in range(padding):
        docs[f"pad-{i:05d}"] = {"content": "p" * 600, "create_time": 1, "update_time": 1}
    docs.update(EXOTIC)
    path.write_text(json.dumps(docs, indent=2, ensure_ascii=True), encoding="utf-8")  # \ud800 needs ensure_ascii
    return src


def read_store(folder: Path, store: StoreInfo, batch_size: int = 50):
    async def go():
        records, rejected = [], []
        async for batch in JsonSession(str(folder)).read(store, None, batch_size):
            records += batch.records
            rejected += batch.rejected
        return records, rejected

    return asyncio.run(go())


FULL_DOCS = StoreInfo("full_docs", StoreKind.KV)


def test_reader_yields_what_json_load_reads(tmp_path):
    src = exotic_source(tmp_path)
    expected = load(src / "kv_store_full_docs.json")
    records, rejected = read_store(src, FULL_DOCS)
    assert not rejected
    assert [r.key for r in records] == list(expected)  # the lone-surrogate key exactly, not "surrogate-?-key"
    for r in records:
        want = {k: v for k, v in expected[r.key].items() if k != "_id"}
        assert same(want, r.payload), r.key
    by_key = {r.key: r for r in records}
    assert LONE_KEY in by_key and by_key["big-doc"].payload["big"] == 2**70
    assert by_key["lone-value"].payload["content"] == "value \udc00 here"


def test_records_after_the_fast_path_stopped_come_from_the_exact_path_without_duplicates(tmp_path):
    # no surrogate escape: ijson's C backend reads until the NaN, then the exact path takes over
    path = tmp_path / "kv_store_full_docs.json"
    docs = {f"d{i:04d}": {"content": "c" * 500, "n": i} for i in range(1500)}
    docs["d0900"]["score"] = float("nan")
    docs["d1200"]["big"] = 2**70
    path.write_text(json.dumps(docs, indent=2))
    records, rejected = read_store(tmp_path, FULL_DOCS, batch_size=100)
    assert not rejected and [r.key for r in records] == list(docs)
    assert math.isnan(records[900].payload["score"]) and records[1200].payload["big"] == 2**70
    # resuming after record 1000 (a cursor from the fast path) continues exactly there
    async def resume():
        out = []
        async for batch in JsonSession(str(tmp_path)).read(FULL_DOCS, "1000", 100):
            out += batch.records
        return out

    assert [r.key for r in asyncio.run(resume())] == list(docs)[1001:]


def test_invalid_json_is_located_at_its_true_byte_offset(tmp_path):
    # what json.load refuses too: the error names the file, the byte and the last good key
    path = tmp_path / "kv_store_full_docs.json"
    text = json.dumps({f"k{i}": {"v": "x" * 100} for i in range(300)}, indent=2)
    bad = text.index('"k250"') + 14  # inside the value of k250
    path.write_text(text[:bad] + "NaX" + text[bad + 3:])
    with pytest.raises(json.JSONDecodeError) as independent:
        load(path)
    assert independent.value.pos == bad  # the file is ASCII: characters are bytes
    with pytest.raises(SourceError) as err:
        read_store(tmp_path, FULL_DOCS)
    assert f"kv_store_full_docs.json: invalid JSON at byte {bad}, after key 'k249'" in str(err.value)


def test_vdb_with_nan_and_lone_surrogate_reads_like_json_load(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = [{"__id__": "e0", "__created_at__": float("nan"), "content": "ok"},
            {"__id__": "e\ud800", "__created_at__": 1, "content": "lone \udfff"},
            {"__id__": "e2", "__created_at__": 2, "content": "fine"}]
    path = tmp_path / "vdb_entities.json"
    path.write_text(json.dumps({"embedding_dim": 4, "data": data, "matrix": base64.b64encode(rows.tobytes()).decode()}))
    records, rejected = read_store(tmp_path, StoreInfo("entities", StoreKind.VECTOR, 4))
    assert not rejected and [r.key for r in records] == ["e0", "e\ud800", "e2"]
    assert math.isnan(records[0].payload["__created_at__"]) and records[1].payload["content"] == "lone \udfff"
    for r, row in zip(records, rows):
        assert np.array_equal(r.vector, row)


def test_json_to_json_copies_them_exactly_and_lightrag_reads_the_copy(tmp_path):
    src = exotic_source(tmp_path)
    dst = tmp_path / "dst"
    result = invoke("migrate", "--from", str(src), "--to", str(dst), "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0, out["error"]
    assert out["failed_records"] == 0 and out["verification"]["ok"]
    a, b = load(src / "kv_store_full_docs.json"), load(dst / "kv_store_full_docs.json")
    assert list(a) == list(b)
    assert all(same({k: v for k, v in a[key].items() if k != "_id"}, {k: v for k, v in b[key].items() if k != "_id"})
               for key in a)
    # and `verify` agrees, at any time later
    again = invoke("verify", str(src), str(dst))
    assert again.exit_code == 0, again.output


def test_status_and_validate_do_not_call_such_a_file_healthy(tmp_path):
    src = exotic_source(tmp_path, padding=10)
    offset = (src / "kv_store_full_docs.json").read_bytes().index(b'"surrogate-\\ud800-key"')
    status = invoke("status", str(src), "--json")
    assert status.exit_code == 2
    metrics = json.loads(status.stdout)["metrics"]
    assert metrics["health"] == "degraded"
    warning = next(w for w in metrics["warnings"] if "only JSON files can store" in w)
    assert "kv_store_full_docs.json: 5 record(s)" in warning and f"at byte {offset}" in warning
    validate = invoke("validate", str(src), "--json")
    assert validate.exit_code == 2
    checks = {c["name"]: c for c in json.loads(validate.stdout)["checks"]}
    assert not checks["files well-formed"]["ok"] and "kv_store_full_docs.json: 5 record(s)" in checks["files well-formed"]["detail"]
    # the same database without those records is healthy
    clean = tmp_path / "clean"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", clean)
    assert invoke("status", str(clean), "--json").exit_code == 0
    assert invoke("validate", str(clean)).exit_code == 0


def test_status_finds_a_record_that_is_not_an_object(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", src)
    path = src / "kv_store_text_chunks.json"
    path.chmod(0o644)
    chunks = load(path)
    chunks["broken"] = "not an object"
    text = json.dumps(chunks, indent=2, ensure_ascii=False)
    path.write_text(text)
    metrics = json.loads(invoke("status", str(src), "--json").stdout)["metrics"]
    assert metrics["health"] == "degraded"
    at = text.encode().index(b'"broken"')
    assert any(f"key 'broken' at byte {at}, a str" in w for w in metrics["warnings"]), metrics["warnings"]
    # and migrate does reject exactly that record, by name
    result = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "dst"), "--json")
    assert result.exit_code == 2
    rejects = jobstore.read_rejects(json.loads(result.stdout)["job_id"])
    assert [(r["key"], r["location"].rsplit(" ", 1)[-1]) for r in rejects] == [("broken", str(at))]


def test_per_record_vector_field_is_copied_as_written(tmp_path):
    """LightRAG's get_vectors_by_ids decodes each record's own ``vector`` field, which is not a copy of the
    (normalised) matrix row: a JSON copy keeps it as it was (the regenerated one would differ)."""
    src = REALDATA / "macking3__lucaOS__rag_storage"
    dst = tmp_path / "dst"
    assert invoke("migrate", "--from", str(src), "--to", str(dst)).exit_code == 0
    differing = 0
    for name in ("vdb_entities.json", "vdb_relationships.json", "vdb_chunks.json"):
        a, b = load(src / name), load(dst / name)
        matrix = np.frombuffer(base64.b64decode(a["matrix"]), dtype=np.float32).reshape(-1, a["embedding_dim"])
        for i, (x, y) in enumerate(zip(a["data"], b["data"])):
            decoded = np.frombuffer(zlib.decompress(base64.b64decode(y["vector"])), dtype=np.float16)
            assert np.array_equal(decoded, np.frombuffer(zlib.decompress(base64.b64decode(x["vector"])), dtype=np.float16))
            differing += not np.array_equal(decoded, matrix[i].astype(np.float16))
    assert differing > 0  # the real data has records whose field is not the row: the test can tell


@pytest.mark.mongodb
def test_mongodb_rejects_them_by_name_and_verifies_the_rest(tmp_path, mongo_target):
    """MongoDB (the in-process fake unless HYBRIDRAG_TEST_MONGO_URI is set: the refusal is decided before
    anything reaches the driver) cannot store lone surrogates or integers beyond 64 bits, and keeps NaN out
    too: each is a named reject with file, escaped key and byte offset; the rest is copied and verified."""
    src = exotic_source(tmp_path, padding=10)
    raw = (src / "kv_store_full_docs.json").read_bytes()
    result = invoke("migrate", "--from", str(src), "--to", mongo_target.uri, "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 2 and out["verification"]["ok"], out["error"]
    assert mongo_target.password not in result.output
    rejects = {r["key"]: r for r in jobstore.read_rejects(out["job_id"])}
    assert set(rejects) == {"surrogate-\\ud800-key", "nan-doc", "inf-doc", "big-doc", "lone-value"}
    at = raw.index(b'"nan-doc"')
    assert rejects["nan-doc"]["location"] == f"{src / 'kv_store_full_docs.json'} at byte {at}"
    assert "field big holds the integer 1180591620717411303424 (beyond 64 bits)" in rejects["big-doc"]["reason"]
    assert out["verification"]["stores"]["full_docs"]["rejected"] == 5


def test_validate_looks_into_vector_files_too(tmp_path):
    """validate (the thorough check) names a vector record holding a lone surrogate or NaN; status leaves the
    part before the matrix (mostly base64) alone and checks the same texts in the KV stores."""
    src = tmp_path / "src"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", src)
    path = src / "vdb_entities.json"
    path.chmod(0o644)
    vdb = load(path)
    vdb["data"][3]["content"] = "lone \ud800 surrogate"
    vdb["data"][5]["__created_at__"] = float("nan")
    path.write_text(json.dumps(vdb))  # ensure_ascii, as Python would write it
    raw = path.read_bytes()
    key = vdb["data"][3]["__id__"]
    checks = {c["name"]: c for c in json.loads(invoke("validate", str(src), "--json").stdout)["checks"]}
    detail = checks["files well-formed"]["detail"]
    assert not checks["files well-formed"]["ok"]
    at = raw.index(b'{"__id__": "' + key.encode())  # the record's own offset
    assert f"vdb_entities.json: 2 record(s) hold values only JSON files can store (first: key {key!r} at byte {at}" in detail
