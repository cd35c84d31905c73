"""Create the schema through LightRAG 1.5.7's own storage classes, so tables match what it reads.

LightRAG reads its connection settings from POSTGRES_* environment variables only, and keeps one
process-wide connection pool (ClientManager). We set the variables for the duration of the
initialisation (under a lock, restoring the old values after) and release the pool at the end.
A LightRAG instance in the same process that holds the pool to another database would be reused
by ClientManager: finalize it first (documented limitation of LightRAG's singleton).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Dict, Iterator, List, Optional

import numpy as np

from hybridrag_backends.models import BackendConfig

_env_lock = asyncio.Lock()


@contextlib.contextmanager
def environ_override(values: Dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block only (LightRAG reads its PG settings from there)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lightrag_env(config: BackendConfig) -> Dict[str, str]:
    from .provider import PostgresProvider

    env = PostgresProvider().env_vars(config)
    env.pop("POSTGRES_WORKSPACE", None)  # the workspace goes to the constructors
    env.pop("EMBEDDING_MODEL", None)
    env.pop("EMBEDDING_DIM", None)
    env["POSTGRES_MAX_CONNECTIONS"] = "4"
    return env


def _embedding_func(model: Optional[str], dim: int):
    from lightrag.utils import EmbeddingFunc

    async def _never(texts):  # schema creation embeds nothing
        return np.zeros((len(texts), dim), dtype=np.float32)

    return EmbeddingFunc(embedding_dim=dim, func=_never, model_name=model)


async def create_schema(
    config: BackendConfig, workspace: str, kv_namespaces: List[str], vectors: Dict[str, int], graph: bool
) -> Dict[str, str]:
    """Initialise LightRAG's storages; returns {vector namespace: table name} as LightRAG named them."""
    from lightrag.kg import postgres_impl as pg
    from lightrag.kg.shared_storage import initialize_share_data

    with contextlib.suppress(Exception):
        initialize_share_data()
    model = config.embedding_model
    global_config = {
        "embedding_batch_num": 32,
        "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2},
        "vector_storage": "PGVectorStorage",
        "working_dir": os.getcwd(),
    }
    dim0 = next(iter(vectors.values()), config.embedding_dim or 1024)
    storages = []
    for ns in kv_namespaces:
        cls = pg.PGDocStatusStorage if ns == "doc_status" else pg.PGKVStorage
        storages.append(cls(namespace=ns, workspace=workspace, global_config=global_config,
                            embedding_func=_embedding_func(model, dim0)))
    for ns, dim in vectors.items():
        storages.append(pg.PGVectorStorage(namespace=ns, workspace=workspace, global_config=global_config,
                                           embedding_func=_embedding_func(model, dim), meta_fields=set()))
    if graph:
        storages.append(pg.PGGraphStorage(namespace="chunk_entity_relation", workspace=workspace,
                                          global_config=global_config, embedding_func=_embedding_func(model, dim0)))
    tables: Dict[str, str] = {}
    quiet = logging.getLogger("lightrag")
    level = quiet.level
    async with _env_lock:
        with environ_override(lightrag_env(config)):
            quiet.setLevel(logging.CRITICAL)  # its table-migration probes log errors on a fresh database
            try:
                for s in storages:
                    await s.initialize()
                    if isinstance(s, pg.PGVectorStorage):
                        tables[s.namespace] = s.table_name
            finally:
                for s in storages:
                    with contextlib.suppress(Exception):
                        await s.finalize()
                quiet.setLevel(level)
    return tables
