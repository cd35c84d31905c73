"""Records built straight from a real LightRAG working dir (json / base64 / networkx), for the
MongoDB tests that exercise the Mongo session on its own, independent of the JSON provider."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Dict, List, Tuple

import networkx as nx
import numpy as np

from hybridrag_backends.provider import GRAPH_NAMESPACE, Record, StoreInfo, StoreKind, edge_key


def load_records(working_dir: Path, workspace: str) -> Dict[StoreInfo, List[Record]]:
    base = working_dir / workspace if workspace else working_dir
    out: Dict[StoreInfo, List[Record]] = {}
    for path in sorted(base.glob("kv_store_*.json")):
        ns = path.stem[len("kv_store_"):]
        kind = StoreKind.DOC_STATUS if ns == "doc_status" else StoreKind.KV
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        store = StoreInfo(ns, kind)
        out[store] = [Record(store.name, k, {f: v for f, v in rec.items() if f != "_id"}) for k, rec in data.items()]
    for path in sorted(base.glob("vdb_*.json")):
        ns = path.stem[len("vdb_"):]
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        dim = data["embedding_dim"]
        matrix = np.frombuffer(base64.b64decode(data["matrix"]), dtype=np.float32).reshape(-1, dim) if data["matrix"] else np.zeros((0, dim), np.float32)
        store = StoreInfo(ns, StoreKind.VECTOR, dim)
        out[store] = [
            Record(store.name, row["__id__"], {f: v for f, v in row.items() if f not in ("__id__", "vector")}, matrix[i].copy())
            for i, row in enumerate(data["data"])
        ]
    graph_file = base / f"graph_{GRAPH_NAMESPACE}.graphml"
    if graph_file.exists():
        g = nx.read_graphml(graph_file)
        nodes, edges = StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_NODES), StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES)
        out[nodes] = [Record(nodes.name, str(n), dict(a)) for n, a in g.nodes(data=True)]
        out[edges] = [Record(edges.name, edge_key(str(s), str(t)), {**a, "source": str(s), "target": str(t)}) for s, t, a in g.edges(data=True)]
    return out


def by_key(records: List[Record]) -> Dict[str, Record]:
    return {r.key: r for r in records}


def split(records: List[Record], size: int) -> List[List[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def stores_sorted(data: Dict[StoreInfo, List[Record]]) -> List[Tuple[StoreInfo, List[Record]]]:
    return sorted(data.items(), key=lambda kv: kv[0].sort_key())
