"""The subprocess side of the independent reader (:mod:`.lightrag_reader`): open LightRAG 1.5.7's own
storage classes and return what they give for every key asked for.

``python -m hybridrag_backends.testing.lightrag_dump`` reads a JSON request on stdin (the classes,
working dir, workspace, embedding model, and per store its kind, dimension and keys) and prints one
JSON line, last, on stdout. The environment carries the provider's ``env_vars()``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import sys
from typing import Any, Dict, Optional

import numpy as np

from ..provider import edge_key

CLASS_KEY = {"kv": "kv_storage", "doc_status": "doc_status_storage", "vector": "vector_storage",
             "graph_nodes": "graph_storage", "graph_edges": "graph_storage"}
EDGE_ENDPOINTS = (("source", "target"), ("src_id", "tgt_id"), ("source_node_id", "target_node_id"),
                  ("src", "tgt"), ("start", "end"))


def _b64(vector: Any) -> Optional[str]:
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode("ascii")


def _storage_class(name: str):  # noqa: ANN202
    from lightrag.kg import STORAGES

    module = importlib.import_module(STORAGES[name], package="lightrag")
    return getattr(module, name)


async def _dump(request: Dict[str, Any]) -> Dict[str, Any]:
    from lightrag.kg.shared_storage import initialize_share_data
    from lightrag.utils import EmbeddingFunc

    initialize_share_data()

    async def no_embedding(texts, **_):  # noqa: ANN001, ANN202
        raise AssertionError("reading must not embed anything")

    classes = request["classes"]
    gc = {"working_dir": request["working_dir"], "embedding_batch_num": 16, "max_graph_nodes": 10**7,
          "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2},
          "vector_storage": classes["vector_storage"]}
    workspace = request["workspace"]
    out: Dict[str, Any] = {}
    opened = []
    graph = None
    try:
        for st in request["stores"]:
            kind, name, keys = st["kind"], st["name"], st["keys"]
            ef = EmbeddingFunc(embedding_dim=st.get("dim") or 8, func=no_embedding, model_name=request["embedding_model"])
            cls = _storage_class(classes[CLASS_KEY[kind]])
            if kind in ("kv", "doc_status"):
                storage = cls(namespace=st["namespace"], workspace=workspace, global_config=gc, embedding_func=ef)
                opened.append(storage)
                await storage.initialize()
                got = await storage.get_by_ids(keys)
                out[name] = {"records": dict(zip(keys, got))}
            elif kind == "vector":
                storage = cls(namespace=st["namespace"], workspace=workspace, global_config=gc, embedding_func=ef,
                              meta_fields=set())
                opened.append(storage)
                await storage.initialize()
                vectors = await storage.get_vectors_by_ids(keys)
                metas = await storage.get_by_ids(keys)
                entry: Dict[str, Any] = {
                    "vectors": {k: _b64(vectors.get(k)) for k in keys},
                    "records": {k: (m if isinstance(m, dict) else None) for k, m in zip(keys, metas)},
                }
                if hasattr(storage, "client_storage"):  # NanoVectorDB: its float32 matrix, row by row
                    client = await storage.client_storage
                    rows = np.asarray(client["matrix"], dtype=np.float32).reshape(len(client["data"]), -1) \
                        if len(client["data"]) else np.zeros((0, 0), np.float32)
                    entry["matrix"] = {d["__id__"]: _b64(rows[i]) for i, d in enumerate(client["data"])}
                out[name] = entry
            else:
                if graph is None:
                    graph = cls(namespace=st["namespace"], workspace=workspace, global_config=gc, embedding_func=ef)
                    opened.append(graph)
                    await graph.initialize()
                if kind == "graph_nodes":
                    out[name] = {"records": {k: await graph.get_node(k) for k in keys},
                                 "labels": sorted(await graph.get_all_labels())}
                else:
                    records = {}
                    for key, (src, tgt) in zip(keys, st["pairs"]):
                        records[key] = await graph.get_edge(src, tgt)
                    pairs = set()
                    for edge in await graph.get_all_edges():
                        for a, b in EDGE_ENDPOINTS:
                            if a in edge and b in edge:
                                pairs.add(edge_key(str(edge[a]), str(edge[b])))
                                break
                        else:
                            pairs.add(f"(no endpoints in {sorted(edge)})")
                    out[name] = {"records": records, "all": sorted(pairs)}
    finally:
        for storage in opened:
            try:
                await storage.finalize()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
    return out


def main() -> None:
    request = json.load(sys.stdin)
    result = asyncio.run(_dump(request))
    sys.stdout.write("\n" + json.dumps(result, default=str, ensure_ascii=False))



if __name__ == "__main__":
    main()
