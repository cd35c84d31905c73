"""LightRAG 1.5.7's MongoDB collection layout (``lightrag/kg/mongo_impl.py``), both ways.

* collections ``<workspace>_<namespace>`` (``<namespace>`` without a workspace);
  graph edges in ``<graph collection>_edges``;
* KV / doc status documents ``{_id: key, ...payload}``;
* vector documents ``{_id, created_at, meta fields..., vector: [double]}``
  (the record's ``__created_at__`` is LightRAG's ``created_at``);
* nodes ``{_id: entity name, ...attributes, source_ids}`` and edges
  ``{source_node_id, target_node_id, edge_lo, edge_hi, ...attributes, source_ids}``
  (``_id`` is a server ObjectId), unique on ``(edge_lo, edge_hi)``.

``source_ids`` is derived by LightRAG from ``source_id`` (split on ``<SEP>``):
the writer adds it the same way and the reader drops it when it is exactly
that derivation, so records round-trip unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from hybridrag_backends.provider import Record, StoreInfo, StoreKind, edge_key

GRAPH_FIELD_SEP = "<SEP>"  # lightrag.constants.GRAPH_FIELD_SEP
JOBS_COLLECTION = "hybridrag_migration_jobs"
EDGE_STRUCTURAL_FIELDS = ("source_node_id", "target_node_id", "edge_lo", "edge_hi")

# The partial filter LightRAG puts on its edge index; queries repeat it so the planner can use the index.
EDGE_PARTIAL_FILTER = {
    "edge_lo": {"$exists": True, "$type": "string"},
    "edge_hi": {"$exists": True, "$type": "string"},
}


def collection_name(workspace: str, namespace: str) -> str:
    return f"{workspace}_{namespace}" if workspace else namespace


def store_collection(workspace: str, store: StoreInfo) -> str:
    name = collection_name(workspace, store.namespace)
    return f"{name}_edges" if store.kind is StoreKind.GRAPH_EDGES else name


def _derived_source_ids(attrs: Dict[str, Any]) -> Optional[List[str]]:
    source_id = attrs.get("source_id")
    if isinstance(source_id, str) and source_id:
        return source_id.split(GRAPH_FIELD_SEP)
    return None


# -- record -> document ----------------------------------------------------------


def kv_document(record: Record) -> Dict[str, Any]:
    doc = {k: v for k, v in record.payload.items() if k != "_id"}
    doc["_id"] = record.key
    return doc


def vector_document(record: Record) -> Dict[str, Any]:
    doc = {k: v for k, v in record.payload.items() if k not in ("_id", "__id__", "__created_at__", "vector", "created_at")}
    doc["_id"] = record.key
    if "__created_at__" in record.payload:
        doc["created_at"] = record.payload["__created_at__"]
    if record.vector is not None:
        # float32 -> Python float (an exact double); reading back as float32 is lossless.
        doc["vector"] = np.asarray(record.vector, dtype=np.float32).tolist()
    return doc


def node_document(record: Record) -> Dict[str, Any]:
    doc = {k: v for k, v in record.payload.items() if k != "_id"}
    derived = _derived_source_ids(doc)
    if derived is not None and "source_ids" not in doc:
        doc["source_ids"] = derived
    doc["_id"] = record.key
    return doc


def edge_document(record: Record) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(filter, replacement) for an edge; the filter is LightRAG's canonical pair."""
    attrs = {k: v for k, v in record.payload.items() if k not in ("_id", "source", "target") + EDGE_STRUCTURAL_FIELDS}
    source, target = record.payload.get("source"), record.payload.get("target")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ValueError("an edge record needs string 'source' and 'target' endpoints")
    lo, hi = sorted((source, target))
    derived = _derived_source_ids(attrs)
    if derived is not None and "source_ids" not in attrs:
        attrs["source_ids"] = derived
    doc = {**attrs, "source_node_id": source, "target_node_id": target, "edge_lo": lo, "edge_hi": hi}
    return {"edge_lo": lo, "edge_hi": hi}, doc


# -- document -> record ------------------------------------------------------------


def kv_record(store: str, doc: Dict[str, Any]) -> Record:
    key = doc["_id"]
    return Record(store=store, key=key, payload={k: v for k, v in doc.items() if k != "_id"})


def vector_record(store: str, doc: Dict[str, Any]) -> Record:
    payload = {k: v for k, v in doc.items() if k not in ("_id", "vector", "created_at")}
    if "created_at" in doc:
        payload["__created_at__"] = doc["created_at"]
    raw = doc.get("vector")
    vector = np.asarray(raw, dtype=np.float32) if raw is not None else None
    return Record(store=store, key=doc["_id"], payload=payload, vector=vector)


def _drop_derived(attrs: Dict[str, Any]) -> Dict[str, Any]:
    if "source_ids" in attrs and attrs["source_ids"] == _derived_source_ids(attrs):
        del attrs["source_ids"]
    return attrs


def node_record(store: str, doc: Dict[str, Any]) -> Record:
    attrs = _drop_derived({k: v for k, v in doc.items() if k != "_id"})
    return Record(store=store, key=doc["_id"], payload=attrs)


def edge_record(store: str, doc: Dict[str, Any]) -> Record:
    attrs = _drop_derived({k: v for k, v in doc.items() if k not in ("_id",) + EDGE_STRUCTURAL_FIELDS})
    source, target = doc["source_node_id"], doc["target_node_id"]
    attrs["source"] = source
    attrs["target"] = target
    return Record(store=store, key=edge_key(source, target), payload=attrs)


# -- indexes LightRAG creates (names and options exactly as mongo_impl.py) ----------


def doc_status_indexes(workspace: str) -> List[Dict[str, Any]]:
    """MongoDocStatusStorage.create_and_migrate_indexes_if_not_exists, same names and options."""
    p = f"{workspace}_" if workspace else ""
    zh = {"locale": "zh", "numericOrdering": True}
    return [
        {"name": f"{p}status_updated_at", "keys": [("status", 1), ("updated_at", -1)]},
        {"name": f"{p}status_created_at", "keys": [("status", 1), ("created_at", -1)]},
        {"name": f"{p}updated_at", "keys": [("updated_at", -1)]},
        {"name": f"{p}created_at", "keys": [("created_at", -1)]},
        {"name": f"{p}id", "keys": [("_id", 1)]},
        {"name": f"{p}track_id", "keys": [("track_id", 1)]},
        {"name": f"{p}file_path_zh_collation", "keys": [("file_path", 1)], "collation": zh},
        {"name": f"{p}status_file_path_zh_collation", "keys": [("status", 1), ("file_path", 1)], "collation": zh},
        {
            "name": f"{p}content_hash",
            "keys": [("content_hash", 1)],
            "partialFilterExpression": {"content_hash": {"$exists": True, "$type": "string", "$gt": ""}},
        },
        {"name": f"{p}status_created_at_id_asc", "keys": [("status", 1), ("created_at", 1), ("_id", 1)]},
    ]


def edge_indexes(workspace: str) -> List[Dict[str, Any]]:
    """MongoGraphStorage.create_edge_indexes_and_migrate_if_not_exists: its index is also its
    "migration done" flag, so LightRAG skips its legacy-edge migration on data we wrote."""
    p = f"{workspace}_" if workspace else ""
    return [
        {
            "name": f"{p}edge_endpoints_unique",
            "keys": [("edge_lo", 1), ("edge_hi", 1)],
            "unique": True,
            "partialFilterExpression": EDGE_PARTIAL_FILTER,
        }
    ]


def vector_index_name(workspace: str, namespace: str) -> str:
    """MongoVectorDBStorage's Atlas ``vectorSearch`` index name."""
    return f"vector_knn_index_{collection_name(workspace, namespace)}" if workspace else "vector_knn_index"
