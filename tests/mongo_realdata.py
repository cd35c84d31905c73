"""Records built straight from a real LightRAG working dir (json / base64 / networkx), for the
MongoDB tests that exercise the Mongo session on its own, independent of the JSON provider,
and the steps those tests share: writing them through a session, reading them with LightRAG."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import networkx as nx
import numpy as np

from hybridrag_backends.migration.job import MigrationCheckpoint, MigrationJob
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


def new_job(stores: Iterable[StoreInfo], job_id: str = "job-test") -> MigrationJob:
    job = MigrationJob(job_id, "src", "json", "mongodb", source="src", target="dst")
    job.checkpoints = [MigrationCheckpoint(s.name, None, 0, 0) for s in stores]
    return job


async def write_all(session, data: Dict[StoreInfo, List[Record]], job: MigrationJob, batch_size: int) -> None:  # noqa: ANN001
    """Write every store of ``data`` through the session's writing interface, as the engine does."""
    await session.prepare_target([s for s, _ in stores_sorted(data)], job, force=False)
    for store, records in stores_sorted(data):
        for batch in split(records, batch_size):
            await session.write_batch(store, batch, job)
        await session.finish_store(store, job)
    await session.finish_target(job)


def lightrag_storage(cls_name: str, namespace: str, workspace: str, db):  # noqa: ANN001, ANN201
    """One of LightRAG 1.5.7's own Mongo storages (``MongoKVStorage``...) on ``db``."""
    from lightrag.kg import mongo_impl

    storage = getattr(mongo_impl, cls_name)(namespace=namespace, global_config={}, embedding_func=None, workspace=workspace)
    storage.db = db  # LightRAG's own seam: initialize() asks its ClientManager only when db is None
    return storage
