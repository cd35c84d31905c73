"""A plain reader of LightRAG JSON working dirs (json, base64, networkx): no provider code involved.

It reads the current layout (what the JSON provider writes, and LightRAG 1.5.7 itself), which is
all the suite needs: sources it generates and working dirs the JSON provider wrote. Records come
back in the stream interface's shape (KV without ``_id``, vector metadata without ``__id__`` /
``vector``, edges keyed by :func:`~hybridrag_backends.provider.edge_key` with their endpoints as
``source`` / ``target``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..provider import NULL_VALUED_FIELDS, StoreInfo, StoreKind, edge_key

Entry = Tuple[Dict[str, Any], Optional[np.ndarray]]
SourceStores = Dict[StoreInfo, Dict[str, Entry]]


def read_working_dir(folder: Path) -> SourceStores:
    """Every store in ``folder`` (a working dir, or a workspace's folder in one)."""
    out: SourceStores = {}
    for path in sorted(folder.glob("kv_store_*.json")):
        namespace = path.stem[len("kv_store_"):]
        kind = StoreKind.DOC_STATUS if namespace == "doc_status" else StoreKind.KV
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
        out[StoreInfo(namespace, kind)] = {
            key: ({k: v for k, v in value.items() if k != "_id"}, None) for key, value in data.items()
        }
    for path in sorted(folder.glob("vdb_*.json")):
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
        dim = int(data["embedding_dim"])
        raw = base64.b64decode(data["matrix"]) if data.get("matrix") else b""
        matrix = np.frombuffer(raw, dtype=np.float32).reshape(-1, dim)
        rows: Dict[str, Entry] = {}
        for i, row in enumerate(data["data"]):
            # the per-record "vector" (base64 of zlib of float16) stays: it is what LightRAG's
            # get_vectors_by_ids() serves, and real files do not always hold the float16 of the matrix row
            meta = {k: v for k, v in row.items() if k != "__id__"}
            rows[row["__id__"]] = (meta, matrix[i].copy())
        out[StoreInfo(path.stem[len("vdb_"):], StoreKind.VECTOR, dim)] = rows
    for path in sorted(folder.glob("graph_*.graphml")):
        import networkx as nx

        graph = nx.read_graphml(path)
        namespace = path.stem[len("graph_"):]
        out[StoreInfo(namespace, StoreKind.GRAPH_NODES)] = {str(n): (dict(a), None) for n, a in graph.nodes(data=True)}
        out[StoreInfo(namespace, StoreKind.GRAPH_EDGES)] = {
            edge_key(str(s), str(t)): ({**a, "source": str(s), "target": str(t)}, None) for s, t, a in graph.edges(data=True)
        }
    return {s: out[s] for s in sorted(out, key=StoreInfo.sort_key)}


def without(stores: SourceStores, lossy: Dict[str, Dict[str, str]]) -> Dict[str, Dict[str, Any]]:
    """Stores as comparable plain data: payloads minus the fields a backend cannot hold (``lossy``:
    store name -> lossy_fields), vectors as float32 bytes; edges compared as undirected pairs."""
    out: Dict[str, Dict[str, Any]] = {}
    for info, records in stores.items():
        drop = lossy.get(info.name, {})
        nulls = NULL_VALUED_FIELDS in drop
        rows = {}
        for key, (payload, vector) in records.items():
            kept = {k: v for k, v in payload.items() if k not in drop and not (nulls and v is None)}
            if info.kind is StoreKind.GRAPH_EDGES:  # which end is "source" is not kept by every backend
                ends = sorted((kept.pop("source", ""), kept.pop("target", "")))
                kept["(ends)"] = ends
            rows[key] = (json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str),
                         None if vector is None else np.asarray(vector, dtype=np.float32).tobytes())
        out[info.name] = rows
    return out
