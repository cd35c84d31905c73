"""The data generator: LightRAG 1.5.7's own storage classes open its output; same arguments, same bytes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from hybridrag_backends.devtools.generate import STANDARD_FILES, GenerateSpec, generate, main, parse_size, spec_for_size
from hybridrag_backends.devtools.layout import Layout

SMALL = GenerateSpec(docs=3, chunks_per_doc=2, entities=12, relations=20, dim=8, seed=7)


def _unique_pairs(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted(k for k in keys if keys.count(k) > 1)[:5]}"
    return dict(pairs)


def _load(directory: Path, name: str):
    """json.load that fails on a key written twice (a database keeps one per key)."""
    with open(directory / name, encoding="utf-8") as handle:
        return json.load(handle, object_pairs_hook=_unique_pairs)


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kb")
    generate(out, SMALL)
    return out


def test_writes_all_twelve_standard_files_with_the_requested_counts(small_kb: Path) -> None:
    assert sorted(p.name for p in small_kb.iterdir()) == sorted(STANDARD_FILES)
    assert len(_load(small_kb, "kv_store_full_docs.json")) == 3
    assert len(_load(small_kb, "kv_store_text_chunks.json")) == 6
    assert len(_load(small_kb, "kv_store_entity_chunks.json")) == 12
    assert len(_load(small_kb, "kv_store_relation_chunks.json")) == 20
    assert len(_load(small_kb, "kv_store_doc_status.json")) == 3
    graph = nx.read_graphml(small_kb / "graph_chunk_entity_relation.graphml")
    assert (graph.number_of_nodes(), graph.number_of_edges()) == (12, 20)
    assert not graph.is_directed()


def test_same_arguments_give_identical_bytes_and_another_seed_differs(small_kb: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", SMALL)
    generate(tmp_path / "other", GenerateSpec(**{**SMALL.__dict__, "seed": 8}))
    for name in STANDARD_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (small_kb / name).read_bytes(), name
    assert (tmp_path / "other" / "vdb_chunks.json").read_bytes() != (small_kb / "vdb_chunks.json").read_bytes()


def test_files_are_byte_for_byte_what_lightrag_serialisers_write(small_kb: Path) -> None:
    for name in STANDARD_FILES:
        raw = (small_kb / name).read_text(encoding="utf-8")
        if name.startswith("kv_store_"):  # lightrag.utils.write_json
            assert json.dumps(json.loads(raw), indent=2, ensure_ascii=False) == raw, name
        elif name.startswith("vdb_"):  # NanoVectorDB.save
            assert json.dumps(json.loads(raw), ensure_ascii=False) == raw, name
    graph = nx.read_graphml(small_kb / "graph_chunk_entity_relation.graphml")
    rewritten = small_kb.parent / "rewritten.graphml"
    # NetworkXStorage writes with nx.write_graphml, which is networkx's own writer (write_graphml_xml)
    # unless lxml is importable; lightrag-hku[api] (in the dev extra) pulls lxml in, whose writer differs
    # only in white space and empty elements. The generator writes the core install's form.
    nx.write_graphml_xml(graph, rewritten)
    assert rewritten.read_bytes() == (small_kb / "graph_chunk_entity_relation.graphml").read_bytes()


def test_cross_references_agree(small_kb: Path) -> None:
    chunks = _load(small_kb, "kv_store_text_chunks.json")
    docs = _load(small_kb, "kv_store_full_docs.json")
    entity_chunks = _load(small_kb, "kv_store_entity_chunks.json")
    relation_chunks = _load(small_kb, "kv_store_relation_chunks.json")
    cache = _load(small_kb, "kv_store_llm_response_cache.json")
    status = _load(small_kb, "kv_store_doc_status.json")
    graph = nx.read_graphml(small_kb / "graph_chunk_entity_relation.graphml")
    for key, chunk in chunks.items():
        assert key.startswith(chunk["full_doc_id"] + "-chunk-")
        assert chunk["content"] in docs[chunk["full_doc_id"]]["content"]
        # chunks with the same text share one cache entry, as in LightRAG (the key is the prompt's md5)
        assert all(k in cache and chunk["content"] in cache[k]["original_prompt"] for k in chunk["llm_cache_list"])
    assert all(key.split(":")[0] in ("default", "mix") and len(key.split(":")) == 3 for key in cache)
    for doc_id, row in status.items():
        assert row["chunks_list"] == [k for k, c in chunks.items() if c["full_doc_id"] == doc_id]
        assert row["content_length"] == len(docs[doc_id]["content"])
    assert set(graph.nodes) == set(entity_chunks)
    for name, row in entity_chunks.items():
        assert row["count"] == len(row["chunk_ids"]) and set(row["chunk_ids"]) <= set(chunks)
        assert graph.nodes[name]["source_id"].split("<SEP>") == row["chunk_ids"]
    assert {"<SEP>".join(sorted(e)) for e in graph.edges} == set(relation_chunks)
    mentioned = {n for row in _load(small_kb, "kv_store_full_entities.json").values() for n in row["entity_names"]}
    assert mentioned == set(entity_chunks)
    pairs = {tuple(p) for row in _load(small_kb, "kv_store_full_relations.json").values() for p in row["relation_pairs"]}
    assert {"<SEP>".join(p) for p in pairs} == set(relation_chunks)


def test_vectors_are_normalised_float32_rows_and_the_record_copy_matches(small_kb: Path) -> None:
    for store, expected in (("chunks", 6), ("entities", 12), ("relationships", 20)):
        vdb = _load(small_kb, f"vdb_{store}.json")
        matrix = np.frombuffer(base64.b64decode(vdb["matrix"]), dtype=np.float32).reshape(-1, vdb["embedding_dim"])
        assert vdb["embedding_dim"] == 8 and len(vdb["data"]) == matrix.shape[0] == expected
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
        for record, row in zip(vdb["data"], matrix):
            copy = np.frombuffer(zlib.decompress(base64.b64decode(record["vector"])), dtype=np.float16)
            assert np.allclose(copy, row, atol=1e-3)


def test_matrix_streamed_in_blocks_equals_one_base64_of_all_rows(tmp_path: Path) -> None:
    # 400 rows crosses the 384-row block boundary; dim 5 makes rows 20 bytes (not a multiple of 3)
    generate(tmp_path, GenerateSpec(docs=100, chunks_per_doc=4, entities=20, relations=0, dim=5))
    vdb = _load(tmp_path, "vdb_chunks.json")
    raw = base64.b64decode(vdb["matrix"], validate=True)
    assert len(raw) == 400 * 5 * 4 and base64.b64encode(raw).decode() == vdb["matrix"]


LIGHTRAG_READER = r"""
import asyncio, json, sys
import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer

class Chars:
    def encode(self, text): return [ord(c) for c in text]
    def decode(self, tokens): return "".join(map(chr, tokens))

async def embed(texts): return np.zeros((len(texts), DIM), dtype=np.float32)
async def llm(*args, **kwargs): return ""

async def main(working_dir, workspace, keys):
    rag = LightRAG(working_dir=working_dir, workspace=workspace, llm_model_func=llm,
                   embedding_func=EmbeddingFunc(embedding_dim=DIM, func=embed, model_name="generated"),
                   tokenizer=Tokenizer("chars", Chars()))
    await rag.initialize_storages()
    out = {}
    for ns in ("full_docs", "text_chunks", "llm_response_cache", "full_entities", "full_relations",
               "entity_chunks", "relation_chunks"):
        rows = await getattr(rag, ns).get_by_ids(keys[ns])
        out[ns] = dict(zip(keys[ns], rows))
    out["doc_status"] = await rag.doc_status.get_status_counts()
    for attr, ns in (("chunks_vdb", "chunks"), ("entities_vdb", "entities"), ("relationships_vdb", "relationships")):
        store = getattr(rag, attr)
        rows = await store.get_by_ids(keys[ns])
        vectors = await store.get_vectors_by_ids(keys[ns])
        out[ns] = {"found": [r["id"] for r in rows if r], "vectors": {k: list(map(float, v)) for k, v in vectors.items()}}
    graph = rag.chunk_entity_relation_graph
    out["nodes"] = sorted(n["id"] for n in await graph.get_all_nodes())
    out["edges"] = len(await graph.get_all_edges())
    first = out["nodes"][0]
    out["first_node"] = await graph.get_node(first)
    await rag.finalize_storages()
    print(json.dumps(out))

DIM = int(sys.argv[3])
asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())))
"""


@pytest.mark.parametrize("workspace", ["", "team_a"])
def test_lightrag_1_5_7_storage_classes_read_the_generated_dir(tmp_path: Path, workspace: str) -> None:
    spec = GenerateSpec(**{**SMALL.__dict__, "workspace": workspace})
    result = generate(tmp_path, spec)
    directory = result.directory
    kv_names = ("full_docs", "text_chunks", "llm_response_cache", "full_entities", "full_relations",
                "entity_chunks", "relation_chunks")
    keys = {ns: list(_load(directory, f"kv_store_{ns}.json")) for ns in kv_names}
    matrices = {}
    for ns in ("chunks", "entities", "relationships"):
        vdb = _load(directory, f"vdb_{ns}.json")
        keys[ns] = [r["__id__"] for r in vdb["data"]]
        matrices[ns] = np.frombuffer(base64.b64decode(vdb["matrix"]), dtype=np.float32).reshape(-1, spec.dim)
    # A subprocess: LightRAG's JSON storages share in-memory dicts per (namespace, workspace) in one process.
    proc = subprocess.run(
        [sys.executable, "-c", LIGHTRAG_READER, str(tmp_path), workspace, str(spec.dim)],
        input=json.dumps(keys), capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    for ns in kv_names:
        on_disk = _load(directory, f"kv_store_{ns}.json")
        for key in keys[ns]:
            got = seen[ns][key]
            assert got is not None, (ns, key)
            assert {k: v for k, v in got.items() if k in on_disk[key]} == on_disk[key], (ns, key)
    assert {k: v for k, v in seen["doc_status"].items() if v} == {"processed": 3}
    for ns, matrix in matrices.items():
        assert seen[ns]["found"] == keys[ns]
        for i, key in enumerate(keys[ns]):  # LightRAG serves the record's float16 copy: compare at that precision
            assert np.allclose(seen[ns]["vectors"][key], matrix[i], atol=1e-3), (ns, key)
    assert seen["nodes"] == sorted(_load(directory, "kv_store_entity_chunks.json"))
    assert seen["edges"] == 20
    assert seen["first_node"]["entity_id"] == seen["nodes"][0]


def test_target_size_reaches_the_target(tmp_path: Path) -> None:
    target = 3 * 1024 * 1024
    spec = spec_for_size(target, GenerateSpec(dim=64))
    total = generate(tmp_path, spec).total_bytes
    assert target <= total <= target * 1.25


def test_parse_size() -> None:
    assert parse_size("2GB") == 2 * 1024**3
    assert parse_size("1.5g") == int(1.5 * 1024**3)
    assert parse_size("500MB") == 500 * 1024**2
    assert parse_size("1234") == 1234


def test_layout_rejects_more_relations_than_distinct_pairs() -> None:
    with pytest.raises(ValueError, match="raise --entities"):
        Layout(docs=1, chunks_per_doc=1, entities=4, relations=5)


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    args = [str(tmp_path), "--docs", "2", "--chunks-per-doc", "1", "--dim", "4", "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds LightRAG files" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_cli_bad_values_give_one_line_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hybridrag_backends.devtools.generate", "/tmp/x", "--relations", "10", "--entities", "3"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "raise --entities" in proc.stderr
