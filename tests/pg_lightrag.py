"""Open a workspace with LightRAG 1.5.7's own PG storage classes (test helper, not a fixture)."""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Iterator

import numpy as np

from hybridrag_backends.models import BackendConfig


@contextlib.contextmanager
def lightrag_env(config: BackendConfig) -> Iterator[None]:
    from hybridrag_backends_postgres.lightrag_schema import environ_override
    from hybridrag_backends_postgres.provider import PostgresProvider

    env = PostgresProvider().env_vars(config)
    env["POSTGRES_MAX_CONNECTIONS"] = "4"
    with environ_override(env):
        yield


def lookup_embedding(dim: int, model: str, table: Dict[str, np.ndarray] | None = None):
    """An EmbeddingFunc that looks texts up (query vectors), so no model runs."""
    from lightrag.utils import EmbeddingFunc

    table = table if table is not None else {}

    async def embed(texts, **_):
        return np.stack([table.get(t, np.zeros(dim, dtype=np.float32)) for t in texts]).astype(np.float32)

    return EmbeddingFunc(embedding_dim=dim, func=embed, model_name=model), table


async def open_storages(config: BackendConfig, model: str, dims: Dict[str, int]) -> dict:
    from lightrag.kg import postgres_impl as pg
    from lightrag.kg.shared_storage import initialize_share_data

    with contextlib.suppress(Exception):
        initialize_share_data()
    ws = config.postgres_workspace
    gc = {"embedding_batch_num": 32, "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": -1.0},
          "vector_storage": "PGVectorStorage", "working_dir": os.getcwd()}
    d0 = next(iter(dims.values()), 8)
    ef0, _ = lookup_embedding(d0, model)
    out: dict = {}
    from hybridrag_backends.provider import STANDARD_KV_NAMESPACES

    for ns in STANDARD_KV_NAMESPACES:
        out[ns] = pg.PGKVStorage(namespace=ns, workspace=ws, global_config=gc, embedding_func=ef0)
    out["doc_status"] = pg.PGDocStatusStorage(namespace="doc_status", workspace=ws, global_config=gc, embedding_func=ef0)
    for ns, dim in dims.items():
        ef, table = lookup_embedding(dim, model)
        s = pg.PGVectorStorage(namespace=ns, workspace=ws, global_config=gc, embedding_func=ef, meta_fields=set())
        s.lookup = table
        out[ns] = s
    out["graph"] = pg.PGGraphStorage(namespace="chunk_entity_relation", workspace=ws, global_config=gc, embedding_func=ef0)
    for s in out.values():
        await s.initialize()
    return out


async def close_storages(storages: dict) -> None:
    for s in storages.values():
        with contextlib.suppress(Exception):
            await s.finalize()


def result_id(namespace: str, key, payload: dict):
    """What identifies a search result of LightRAG's vector query (entities: the name; relations: the pair)."""
    if namespace == "entities":
        return payload.get("entity_name")
    if namespace == "relationships":
        return (payload.get("src_id"), payload.get("tgt_id"))
    return key


async def check_top10(storage, namespace: str, records: dict, queries: int = 20, seed: int = 7) -> None:
    """LightRAG's top-10 (``storage.query`` through its own SQL) equals brute-force cosine over ``records``
    (key -> Record with ``vector`` and ``payload``) for ``queries`` query vectors near stored ones; only exact
    ties at the 10th place may swap. ``storage`` comes from :func:`open_storages` (its lookup embeds)."""
    keys = list(records)
    matrix = np.stack([records[k].vector for k in keys])
    norm = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    for qi in range(queries):
        q = (matrix[rng.integers(len(keys))] + rng.normal(0, 0.05, matrix.shape[1])).astype(np.float32)
        storage.lookup[f"q{qi}"] = q
        res = await storage.query(f"q{qi}", top_k=10)
        scores = norm @ (q / np.linalg.norm(q))
        kth = np.sort(scores)[::-1][min(10, len(keys)) - 1]
        best: dict = {}
        for i, k in enumerate(keys):
            ident = result_id(namespace, k, records[k].payload)
            best[ident] = max(best.get(ident, -9.0), float(scores[i]))
        assert len(res) == min(10, len(best)), (namespace, qi)
        exact_top = {i for i, v in best.items() if v > kth + 1e-5}
        got_ids = {result_id(namespace, r.get("id"), r) for r in res}
        assert exact_top <= got_ids, (namespace, qi)
        assert all(best[i] >= kth - 1e-5 for i in got_ids), (namespace, qi)
