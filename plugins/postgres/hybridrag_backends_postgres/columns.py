"""How a record's payload maps to LightRAG's columns, and the overlay that makes it exact.

LightRAG reads fixed columns; a JSON record can hold more (RAG-Anything's extra fields, doc_status'
embedded ``content``), lack some, or hold a value a column changes (an ISO time string with another
offset, a string longer than a VARCHAR). Each field is written to its column in the form LightRAG
reads; whatever the column cannot give back exactly is kept in an overlay row
(``hybridrag_record_overlay``: ``{"set": {field: original}, "unset": [fields the source lacked]}``),
so PostgreSQL -> JSON gives back the source record while LightRAG reads its own columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import orjson

from . import naming

UTC = dt.timezone.utc
SEP = "<SEP>"
_MISSING = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Column:
    field: str
    column: str
    kind: str  # text | int | json | epoch | iso | seplist
    max_len: Optional[int] = None

    def to_db(self, value: Any) -> Any:
        """Column value for ``value`` (None when the column cannot hold it)."""
        if value is None:
            return None
        k = self.kind
        if k == "text":
            if not isinstance(value, str):
                return None
            return value[: self.max_len] if self.max_len else value
        if k == "int":
            return value if _is_int(value) and -(2**31) <= value < 2**31 else None
        if k == "json":
            return orjson.dumps(value).decode()
        if k == "epoch":
            # floats (some NanoVectorDB files) are kept too; LightRAG's TIMESTAMP(0) columns round them
            # to the second, and the overlay keeps the exact float for PostgreSQL -> JSON
            if not (_is_int(value) or isinstance(value, float)) or not 0 <= value < 2**37:
                return None
            return dt.datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        if k == "iso":
            if not isinstance(value, str):
                return None
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                return None
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            return parsed
        if k == "seplist":
            if not isinstance(value, str):
                return None
            return value.split(SEP)
        raise AssertionError(k)

    def from_db(self, value: Any) -> Any:
        """Payload value for a column value (``_MISSING`` for NULL)."""
        if value is None:
            return _MISSING
        k = self.kind
        if k in ("text", "int"):
            return value
        if k == "json":
            return orjson.loads(value)
        if k == "epoch":
            return int(value.replace(tzinfo=UTC).timestamp())
        if k == "iso":
            return value.replace(tzinfo=UTC).isoformat()
        if k == "seplist":
            return SEP.join(value)
        raise AssertionError(k)


def _ts() -> Tuple[Column, Column]:
    return Column("create_time", "create_time", "epoch"), Column("update_time", "update_time", "epoch")


def _counted(list_field: str) -> List[Column]:
    return [Column(list_field, list_field, "json"), Column("count", "count", "int"), *_ts()]


KV_COLUMNS: Dict[str, List[Column]] = {
    "full_docs": [
        Column("content", "content", "text"), Column("file_path", "doc_name", "text", 1024),
        Column("sidecar_location", "sidecar_location", "text"), Column("parse_format", "parse_format", "text", 32),
        Column("content_hash", "content_hash", "text"), Column("process_options", "process_options", "text"),
        Column("chunk_options", "chunk_options", "json"), Column("parse_engine", "parse_engine", "text"), *_ts(),
    ],
    "text_chunks": [
        Column("tokens", "tokens", "int"), Column("chunk_order_index", "chunk_order_index", "int"),
        Column("full_doc_id", "full_doc_id", "text", 256), Column("content", "content", "text"),
        Column("file_path", "file_path", "text"), Column("llm_cache_list", "llm_cache_list", "json"),
        Column("heading", "heading", "json"), Column("sidecar", "sidecar", "json"), *_ts(),
    ],
    "llm_response_cache": [
        Column("original_prompt", "original_prompt", "text"), Column("return", "return_value", "text"),
        Column("chunk_id", "chunk_id", "text", 255), Column("cache_type", "cache_type", "text", 32),
        Column("queryparam", "queryparam", "json"), *_ts(),
    ],
    "full_entities": _counted("entity_names"),
    "full_relations": _counted("relation_pairs"),
    "entity_chunks": _counted("chunk_ids"),
    "relation_chunks": _counted("chunk_ids"),
}
DOC_STATUS_COLUMNS = [
    Column("content_summary", "content_summary", "text", 255), Column("content_length", "content_length", "int"),
    Column("chunks_count", "chunks_count", "int"), Column("status", "status", "text", 64),
    Column("file_path", "file_path", "text"), Column("chunks_list", "chunks_list", "json"),
    Column("track_id", "track_id", "text", 255), Column("metadata", "metadata", "json"),
    Column("error_msg", "error_msg", "text"), Column("content_hash", "content_hash", "text"),
    Column("created_at", "created_at", "iso"), Column("updated_at", "updated_at", "iso"),
]
VECTOR_COLUMNS: Dict[str, List[Column]] = {
    "chunks": [
        Column("content", "content", "text"), Column("full_doc_id", "full_doc_id", "text", 256),
        Column("file_path", "file_path", "text"), Column("__created_at__", "create_time", "epoch"),
    ],
    "entities": [
        Column("entity_name", "entity_name", "text", 512), Column("content", "content", "text"),
        Column("source_id", "chunk_ids", "seplist"), Column("file_path", "file_path", "text"),
        Column("__created_at__", "create_time", "epoch"),
    ],
    "relationships": [
        Column("src_id", "source_id", "text", 512), Column("tgt_id", "target_id", "text", 512),
        Column("content", "content", "text"), Column("source_id", "chunk_ids", "seplist"),
        Column("file_path", "file_path", "text"), Column("__created_at__", "create_time", "epoch"),
    ],
}
# JSON fields with a fixed meaning that the tables cannot hold; reported, kept in the overlay.
KNOWN_LOSSY = {
    "doc_status": {"content": "LIGHTRAG_DOC_STATUS has no content column (LightRAG reads the text from full_docs)"},
}


def split(
    payload: Dict[str, Any], columns: List[Column], derived: Tuple[str, ...] = ()
) -> Tuple[Dict[str, Any], Optional[str]]:
    """Column values for ``payload`` and the overlay JSON (None when the columns hold it exactly).
    ``derived``: fields the server may fill in (VDB_CHUNKS.full_doc_id from text_chunks), unset
    in the overlay when the source lacks them."""
    values: Dict[str, Any] = {}
    overlay_set: Dict[str, Any] = {}
    unset: List[str] = []
    mapped = set()
    for col in columns:
        mapped.add(col.field)
        original = payload.get(col.field, _MISSING)
        db_value = None if original is _MISSING else col.to_db(original)
        values[col.column] = db_value
        back = col.from_db(db_value)
        if original is _MISSING:
            if back is not _MISSING or col.field in derived:
                unset.append(col.field)
        elif back is _MISSING or back != original or type(back) is not type(original):
            overlay_set[col.field] = original
    for name, value in payload.items():
        if name not in mapped:
            overlay_set[name] = value
    if not overlay_set and not unset:
        return values, None
    overlay: Dict[str, Any] = {}
    if overlay_set:
        overlay["set"] = overlay_set
    if unset:
        overlay["unset"] = unset
    return values, orjson.dumps(overlay).decode()


def join(row: Any, columns: List[Column], overlay: Optional[str]) -> Dict[str, Any]:
    payload: Dict[str, Any] = {}
    for col in columns:
        value = col.from_db(row[col.column])
        if value is not _MISSING:
            payload[col.field] = value
    return apply_overlay(payload, overlay)


def apply_overlay(payload: Dict[str, Any], overlay: Optional[str]) -> Dict[str, Any]:
    if overlay:
        o = orjson.loads(overlay)
        payload.update(o.get("set", {}))
        for name in o.get("unset", []):
            payload.pop(name, None)
    return payload


NUL = "\x00"


def _nul_in(value: Any) -> bool:
    """True when a NUL character is in ``value`` (strings, and keys and items of dicts and lists)."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_nul_in(k) or _nul_in(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_nul_in(v) for v in value)
    return False


NUL_REASON = "contains a NUL character (U+0000), which PostgreSQL text, jsonb and AGE's agtype cannot hold"


def refusal(namespace: str, kind: str, key: str, payload: Dict[str, Any]) -> Optional[str]:
    """Why a record cannot be written where LightRAG's tables (or AGE) would hold it, or None.

    ``kind``: "kv" (a standard KV or doc status table), "vector", "extra" (hybridrag_extra_kv: TEXT id,
    JSON payload), "graph". Fields kept only in the overlay (JSON, which holds any text) never refuse."""
    if NUL in key:
        return f"the key {NUL_REASON}"
    if kind == "graph":
        for name, value in payload.items():
            if _nul_in(name) or _nul_in(value):
                return f"field {name!r} {NUL_REASON}"
        return None
    if kind == "extra":
        return None
    limit = naming.KEY_MAX_CHARS_BY_NAMESPACE.get(namespace, naming.KEY_MAX_CHARS)
    if len(key) > limit:
        return (f"the key is {len(key)} characters long; LightRAG's {namespace} table holds keys of at most "
                f"{limit} (its id column is VARCHAR({limit}))")
    for col in columns_for(namespace, kind == "vector") or []:
        value = payload.get(col.field)
        if value is None or col.kind not in ("text", "json", "seplist"):
            continue  # other kinds keep an unusual value (a string in a number column) in the overlay
        held = col.to_db(value)
        if col.kind == "json":
            held = value
        if _nul_in(held):
            return f"field {col.field!r} {NUL_REASON}"
        if col.kind == "seplist" and held is not None:
            longest = max(held, key=len, default="")
            if len(longest) > naming.CHUNK_ID_MAX_CHARS:
                return (f"field {col.field!r} names a chunk id of {len(longest)} characters; LightRAG's "
                        f"{col.column} column holds at most {naming.CHUNK_ID_MAX_CHARS} (VARCHAR(255)[])")
    return None


def table_for(namespace: str) -> Optional[str]:
    if namespace == "doc_status":
        return naming.DOC_STATUS_TABLE
    return naming.KV_TABLES.get(namespace)


def columns_for(namespace: str, vector: bool = False) -> Optional[List[Column]]:
    if vector:
        return VECTOR_COLUMNS.get(namespace)
    if namespace == "doc_status":
        return DOC_STATUS_COLUMNS
    return KV_COLUMNS.get(namespace)
