"""Helpers for the migration tests: a small LightRAG working dir written the way LightRAG writes it,
an independent reader of working dirs (plain json / base64 / networkx, not the provider under
test), and a runner for the CLI in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import networkx as nx
import numpy as np

KV_STORES = ("full_docs", "text_chunks", "llm_response_cache", "full_entities", "full_relations",
             "entity_chunks", "relation_chunks", "doc_status")


def write_working_dir(path: Path, *, docs: int = 20, chunks_per_doc: int = 3, entities: int = 40,
                      relations: int = 60, dim: int = 32, seed: int = 7) -> Path:
    """A complete, current-format (lightrag-hku 1.5.7) working dir with deterministic content."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    t0 = 1767225600

    def dump_kv(name: str, data: Dict) -> None:
        with open(path / f"kv_store_{name}.json", "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)

    def dump_vdb(name: str, rows: List[Dict]) -> None:
        matrix = rng.standard_normal((len(rows), dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        data = {"embedding_dim": dim, "data": rows, "matrix": base64.b64encode(matrix.tobytes()).decode()}
        with open(path / f"vdb_{name}.json", "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False)

    doc_ids = [f"doc-{i:05d}" for i in range(docs)]
    chunk_ids = [f"chunk-{i:05d}" for i in range(docs * chunks_per_doc)]
    dump_kv("full_docs", {d: {"content": f"Document {i} — text «{i}»", "file_path": f"f{i}.txt",
                              "create_time": t0 + i, "update_time": t0 + i, "_id": d} for i, d in enumerate(doc_ids)})
    dump_kv("text_chunks", {c: {"tokens": 10 + i % 7, "content": f"chunk {i} 文本", "chunk_order_index": i % chunks_per_doc,
                                "full_doc_id": doc_ids[i // chunks_per_doc], "file_path": "f.txt",
                                "llm_cache_list": [], "create_time": t0, "update_time": t0, "_id": c}
                            for i, c in enumerate(chunk_ids)})
    dump_kv("llm_response_cache", {f"default:extract:{i:032x}": {"return": f"answer {i}", "cache_type": "extract",
                                                                  "chunk_id": chunk_ids[i % len(chunk_ids)],
                                                                  "original_prompt": f"prompt {i}", "queryparam": None,
                                                                  "create_time": t0, "update_time": t0,
                                                                  "_id": f"default:extract:{i:032x}"}
                                   for i in range(docs * 2)})
    ent_names = [f"Entity {i}" for i in range(entities)]
    pairs = sorted({tuple(sorted((ent_names[i % entities], ent_names[(i * 7 + 1) % entities])))
                    for i in range(relations)} - {(n, n) for n in ent_names})
    dump_kv("full_entities", {d: {"entity_names": ent_names[i::docs], "count": len(ent_names[i::docs]),
                                  "create_time": t0, "update_time": t0, "_id": d} for i, d in enumerate(doc_ids)})
    dump_kv("full_relations", {d: {"relation_pairs": [list(p) for p in pairs[i::docs]], "count": len(pairs[i::docs]),
                                   "create_time": t0, "update_time": t0, "_id": d} for i, d in enumerate(doc_ids)})
    dump_kv("entity_chunks", {n: {"chunk_ids": [chunk_ids[i % len(chunk_ids)]], "count": 1, "create_time": t0,
                                  "update_time": t0, "_id": n} for i, n in enumerate(ent_names)})
    dump_kv("relation_chunks", {f"{a}<SEP>{b}": {"chunk_ids": [chunk_ids[0]], "count": 1, "create_time": t0,
                                                 "update_time": t0, "_id": f"{a}<SEP>{b}"} for a, b in pairs})
    dump_kv("doc_status", {d: {"status": "processed", "content_summary": f"Document {i}", "content_length": 20,
                               "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
                               "file_path": f"f{i}.txt", "track_id": "t", "metadata": {}, "chunks_count": chunks_per_doc,
                               "chunks_list": chunk_ids[i * chunks_per_doc:(i + 1) * chunks_per_doc], "_id": d}
                           for i, d in enumerate(doc_ids)})
    dump_vdb("chunks", [{"__id__": c, "__created_at__": t0, "content": f"chunk {i} 文本",
                         "full_doc_id": doc_ids[i // chunks_per_doc], "file_path": "f.txt"} for i, c in enumerate(chunk_ids)])
    dump_vdb("entities", [{"__id__": f"ent-{i:032x}", "__created_at__": t0, "entity_name": n, "content": f"{n} is x",
                           "source_id": chunk_ids[0], "file_path": "f.txt"} for i, n in enumerate(ent_names)])
    dump_vdb("relationships", [{"__id__": f"rel-{i:032x}", "__created_at__": t0, "src_id": a, "tgt_id": b,
                                "source_id": chunk_ids[0], "content": f"{a} relates to {b}", "file_path": "f.txt"}
                               for i, (a, b) in enumerate(pairs)])
    graph = nx.Graph()
    for n in ent_names:
        graph.add_node(n, entity_id=n, entity_type="concept", description=f"{n} is x", source_id=chunk_ids[0],
                       file_path="f.txt", created_at=t0)
    for a, b in pairs:
        graph.add_edge(a, b, weight=1.0, description=f"{a} relates to {b}", keywords="k", source_id=chunk_ids[0],
                       file_path="f.txt", created_at=t0)
    nx.write_graphml(graph, path / "graph_chunk_entity_relation.graphml")
    return path


def read_working_dir(path: Path) -> Dict[str, object]:
    """Every store of a working dir, independently of the provider: KV dicts (without ``_id``), vdb rows
    by id with their float32 matrix row, graph nodes and edges (undirected, as sorted pairs)."""
    out: Dict[str, object] = {}
    for f in sorted(path.glob("kv_store_*.json")):
        with open(f, encoding="utf-8-sig") as fh:
            data = json.load(fh)
        out[f.name] = {k: {kk: vv for kk, vv in v.items() if kk != "_id"} if isinstance(v, dict) else v
                       for k, v in data.items()}
    for f in sorted(path.glob("vdb_*.json")):
        with open(f, encoding="utf-8-sig") as fh:
            data = json.load(fh)
        dim = data["embedding_dim"]
        matrix = np.frombuffer(base64.b64decode(data["matrix"]), dtype=np.float32).reshape(-1, dim) if data["matrix"] else np.zeros((0, dim), np.float32)
        rows = {}
        for i, row in enumerate(data["data"]):
            meta = {k: v for k, v in row.items() if k not in ("__id__", "vector")}
            rows[row["__id__"]] = (meta, matrix[i].tobytes())
        out[f.name] = {"embedding_dim": dim, "rows": rows}
    for f in sorted(path.glob("graph_*.graphml")):
        g = nx.read_graphml(f)
        out[f.name] = {
            "nodes": {n: dict(a) for n, a in g.nodes(data=True)},
            "edges": {tuple(sorted((u, v))): dict(a) for u, v, a in g.edges(data=True)},
        }
    return out


REPO = Path(__file__).resolve().parents[1]


def cli_env(home: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["HYBRIDRAG_HOME"] = str(home)
    env["HYBRIDRAG_CONFIG"] = str(home / "registry.yaml")
    env.pop("HYBRIDRAG_BACKENDS_DEBUG", None)
    return env


def cli_args(*args: str) -> List[str]:
    return [sys.executable, "-m", "hybridrag_backends", *args]


def run_cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(*args), env=cli_env(home), capture_output=True, text=True, timeout=timeout)


def only_job_file(home: Path) -> Optional[Path]:
    files = sorted((home / "jobs").glob("*/job.json"))
    return files[0] if files else None


def test_independent_reader_sees_generated_dir(tmp_path):
    data = read_working_dir(write_working_dir(tmp_path / "wd", docs=3, entities=5, relations=6, dim=8))
    assert len(data["kv_store_full_docs.json"]) == 3
    assert len(data["vdb_entities.json"]["rows"]) == 5
    assert len(data["graph_chunk_entity_relation.graphml"]["nodes"]) == 5
