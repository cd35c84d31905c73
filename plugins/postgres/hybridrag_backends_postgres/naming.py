"""LightRAG 1.5.7's PostgreSQL naming rules (kg/postgres_impl.py), in one place.

* tables per namespace (NAMESPACE_TABLE_MAP); vector tables get ``_<model>_<dim>d``
  (model lower-cased, ``[^a-z0-9_]`` -> ``_``), names over 63 characters are refused;
* the AGE graph is the namespace for the ``default`` workspace, else ``<workspace>_<namespace>``.
"""

from __future__ import annotations

import re
from typing import Optional

from hybridrag_backends.errors import ConfigError

KV_TABLES = {
    "full_docs": "LIGHTRAG_DOC_FULL",
    "text_chunks": "LIGHTRAG_DOC_CHUNKS",
    "llm_response_cache": "LIGHTRAG_LLM_CACHE",
    "full_entities": "LIGHTRAG_FULL_ENTITIES",
    "full_relations": "LIGHTRAG_FULL_RELATIONS",
    "entity_chunks": "LIGHTRAG_ENTITY_CHUNKS",
    "relation_chunks": "LIGHTRAG_RELATION_CHUNKS",
}
DOC_STATUS_TABLE = "LIGHTRAG_DOC_STATUS"
VECTOR_BASE_TABLES = {
    "chunks": "LIGHTRAG_VDB_CHUNKS",
    "entities": "LIGHTRAG_VDB_ENTITY",
    "relationships": "LIGHTRAG_VDB_RELATION",
}
# LightRAG's id columns: VARCHAR(255), except VARCHAR(512) for these two (kg/postgres_impl.py TABLES).
KEY_MAX_CHARS = 255
KEY_MAX_CHARS_BY_NAMESPACE = {"entity_chunks": 512, "relation_chunks": 512}
# VDB_ENTITY / VDB_RELATION.chunk_ids is VARCHAR(255)[]: one element per chunk id in source_id.
CHUNK_ID_MAX_CHARS = 255
# Stores LightRAG has no table for (e.g. RAG-Anything's parse_cache) and the field overlay.
EXTRA_KV_TABLE = "hybridrag_extra_kv"
OVERLAY_TABLE = "hybridrag_record_overlay"
JOBS_TABLE = "hybridrag_migration_jobs"
PG_MAX_IDENTIFIER = 63


def model_suffix(model: Optional[str], dim: int) -> Optional[str]:
    if not model or not model.strip():
        return None
    return f"{re.sub(r'[^a-zA-Z0-9_]', '_', model.strip().lower())}_{dim}d"


def vector_table(namespace: str, model: Optional[str], dim: int) -> str:
    base = VECTOR_BASE_TABLES[namespace]
    suffix = model_suffix(model, dim)
    name = f"{base}_{suffix}" if suffix else base
    if len(name) > PG_MAX_IDENTIFIER:
        raise ConfigError("embedding_model", model, f"makes the table name {name} longer than 63 characters")
    return name


def graph_name(workspace: str, namespace: str = "chunk_entity_relation") -> str:
    ns = re.sub(r"[^a-zA-Z0-9_]", "_", namespace)
    ws = (workspace or "").strip()
    if ws and ws.lower() != "default":
        return f"{re.sub(r'[^a-zA-Z0-9_]', '_', ws)}_{ns}"
    return ns


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
