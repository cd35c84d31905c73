"""``status`` figures for a MongoDB target: sizes, counts, latency, vector-search support.

LightRAG's MongoVectorDBStorage queries with Atlas ``$vectorSearch`` only and
exits at start when it cannot create its ``vectorSearch`` index; a server
without search indexes (MongoDB Community without mongot) cannot serve it, so
``status`` says so as a warning.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from hybridrag_backends.models import BackendType, StorageMetrics
from hybridrag_backends.provider import GRAPH_NAMESPACE, StoreKind
from hybridrag_backends.secrets import redact

from . import layout
from .session import MongoSession, coll_stats

VECTOR_SEARCH_FIX = (
    "LightRAG's MongoVectorDBStorage needs an Atlas Vector Search index and has no fallback; "
    "use MongoDB Atlas (or a server with mongot search support), or keep vectors in another "
    "vector storage (e.g. NanoVectorDBStorage or PGVectorStorage)"
)


async def _vector_search(session: MongoSession, vector_namespaces: List[str]) -> Dict[str, Any]:
    from pymongo.errors import PyMongoError

    result: Dict[str, Any] = {"supported": None, "indexes": {}}
    for ns in vector_namespaces:
        coll = session.db[layout.collection_name(session.workspace, ns)]
        try:
            indexes = await (await coll.list_search_indexes()).to_list(None)
        except PyMongoError as exc:
            result["supported"] = False
            result["error"] = redact(exc)
            return result
        result["supported"] = True
        wanted = layout.vector_index_name(session.workspace, ns)
        found = next((i for i in indexes if i.get("name") == wanted), None)
        result["indexes"][ns] = {
            "name": wanted,
            "status": found.get("status") if found else "missing",
            "queryable": bool(found.get("queryable")) if found else False,
        }
    return result


async def collect(session: MongoSession) -> StorageMetrics:
    metrics = StorageMetrics(backend_type=BackendType.MONGODB)
    start = time.perf_counter()
    await session.db.command("ping")
    metrics.connection_latency_ms = round((time.perf_counter() - start) * 1000, 2)

    build = await session.db.command("buildInfo")
    db_stats = await session.db.command("dbStats")
    stores = await session.list_stores()
    collections: Dict[str, Dict[str, int]] = {}
    for store in stores:
        name = layout.store_collection(session.workspace, store)
        count = await session.db[name].estimated_document_count()  # metadata: O(1), not a collection scan
        metrics.store_counts[store.name] = count
        sizes = await coll_stats(session.db[name])
        collections[name] = {**sizes, "count": count}
        metrics.file_sizes[name] = sizes.get("size", 0)
        metrics.total_size_bytes += sizes.get("storageSize", 0) + sizes.get("totalIndexSize", 0)

    by_name = metrics.store_counts
    metrics.doc_count = by_name.get("full_docs", by_name.get("doc_status", 0))
    metrics.chunk_count = by_name.get("text_chunks", by_name.get("chunks", 0))
    metrics.entity_count = by_name.get(f"{GRAPH_NAMESPACE}.nodes", by_name.get("entities", 0))
    metrics.relation_count = by_name.get(f"{GRAPH_NAMESPACE}.edges", by_name.get("relationships", 0))

    vector_namespaces = [s.namespace for s in stores if s.kind is StoreKind.VECTOR] or ["chunks"]
    search = await _vector_search(session, vector_namespaces)
    if search["supported"] is False:
        metrics.warnings.append(f"this MongoDB server cannot serve vector search ({search.get('error')}). {VECTOR_SEARCH_FIX}")
        metrics.health = "degraded"
    else:
        for ns, idx in search["indexes"].items():
            if not idx["queryable"]:
                metrics.warnings.append(
                    f"vector search index {idx['name']} for {ns} is {idx['status']}: LightRAG creates it on start; "
                    "queries fail until it is built and queryable"
                )
    metrics.details = {
        "database": session.database_name,
        "workspace": session.workspace,
        "server_version": build.get("version"),
        "db_stats": {k: db_stats.get(k) for k in ("collections", "objects", "dataSize", "storageSize", "indexSize")},
        "collections": collections,
        "vector_search": search,
    }
    return metrics

