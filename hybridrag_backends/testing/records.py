"""Sample records for the stream checks, and record-by-record comparison with messages that say what broke.

The sample is a small LightRAG knowledge base made by the project's generator and read back through
the JSON provider (so every record is in the shape every reader gives), plus, in every store kind,
records with non-ASCII keys and text (several scripts, emoji, a combining accent, quotes, backslashes,
control characters) and one large record, and an extra KV namespace (``parse_cache``, as RAG-Anything
adds) with nested lists.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import orjson

from ..provider import NULL_VALUED_FIELDS, Record, StoreInfo, StoreKind, edge_key

SAMPLE_DIM = 16
UNICODE_TEXT = (
    "Zürich — 東京 — Москва — العربية — עברית — 🚀🎉 — e\u0301 — tab\tnew\nline — quotes \"' — "
    "back\\slash — <xml attr=\"1\">&amp;</xml> — ∑∞≠ — 한국어"
)
UNICODE_KEY = "ünïcødé 文档 🚀 Ωmega"
LARGE_BYTES = {StoreKind.KV: 1_200_000}  # the other kinds get 150 kB
EXTRA_KV_NAMESPACE = "parse_cache"


@functools.lru_cache(maxsize=None)
def _generated(dim: int) -> Dict[StoreInfo, List[Record]]:
    from ..devtools.generate import GenerateSpec, generate
    from ..plugins import get_provider

    folder = Path(tempfile.mkdtemp(prefix="hrb-conformance-sample-"))
    generate(folder, GenerateSpec(docs=4, chunks_per_doc=3, entities=14, relations=20, dim=dim, seed=14))
    json_provider = get_provider("json")

    async def read() -> Dict[StoreInfo, List[Record]]:
        async with json_provider.open(json_provider.config_from_target(str(folder))) as session:
            out = {}
            for store in await session.list_stores():
                records: List[Record] = []
                async for batch in session.read(store, None, 1000):
                    assert not batch.rejected, batch.rejected
                    records.extend(batch.records)
                out[store] = records
            return out

    return asyncio.run(read())


def sample_stores(dim: int = SAMPLE_DIM) -> Dict[StoreInfo, List[Record]]:
    """Every store of the sample, sorted like a migration copies them; fresh copies on every call."""
    data = {store: [_clone(r) for r in records] for store, records in _generated(dim).items()}
    for store, records in data.items():
        records.extend(_special_records(store, records))
    extra = StoreInfo(EXTRA_KV_NAMESPACE, StoreKind.KV)
    data[extra] = [
        Record(extra.name, f"{i:032x}", {"content_list": [{"type": "text", "text": f"page {i} {UNICODE_TEXT}", "page_idx": i},
                                                          {"type": "image", "img_path": f"/img/{i}.png", "page_idx": i}],
                                         "create_time": 1767225600 + i, "update_time": 1767225600 + i})
        for i in range(3)
    ]
    return {s: data[s] for s in sorted(data, key=StoreInfo.sort_key)}


def _clone(record: Record) -> Record:
    vector = None if record.vector is None else np.array(record.vector, dtype=np.float32)
    return Record(record.store, record.key, copy.deepcopy(record.payload), vector)


def _text_field(payload: Dict[str, Any]) -> str:
    for name in ("content", "description", "content_summary", "return", "entity_name"):
        if isinstance(payload.get(name), str):
            return name
    return "content"


def _special_records(store: StoreInfo, records: List[Record]) -> List[Record]:
    """A non-ASCII record and a large one, shaped like the store's first record."""
    if not records:
        return []
    first = records[0]
    field = _text_field(first.payload)
    size = LARGE_BYTES.get(store.kind, 150_000)
    large_text = (UNICODE_TEXT + " ") * (size // len((UNICODE_TEXT + " ").encode("utf-8")) + 1)
    out = []
    for tag, text in (("unicode", UNICODE_TEXT), ("large", large_text)):
        payload = copy.deepcopy(first.payload)
        payload[field] = text
        rng = np.random.default_rng(len(out) + 7)
        vector = None if first.vector is None else rng.standard_normal(first.vector.shape[0]).astype(np.float32)
        if store.kind is StoreKind.GRAPH_EDGES:
            # an edge between the special nodes (the nodes store gets them with the same keys)
            src, tgt = f"{UNICODE_KEY} unicode", f"{UNICODE_KEY} large"
            if tag == "large":
                src, tgt = f"{UNICODE_KEY} large", str(records[0].payload.get("source"))
            payload.update(source=src, target=tgt)
            key = edge_key(src, tgt)
        else:
            key = f"{UNICODE_KEY} {tag}"
            if store.kind is StoreKind.GRAPH_NODES and "entity_id" in payload:
                payload["entity_id"] = key
        out.append(Record(store.name, key, payload, vector))
    return out


def special_keys(records: Sequence[Record]) -> List[str]:
    return [r.key for r in records if UNICODE_KEY in r.key]


def first_store(data: Dict[StoreInfo, List[Record]], kind: StoreKind, namespace: Optional[str] = None) -> StoreInfo:
    for store in data:
        if store.kind is kind and (namespace is None or store.namespace == namespace):
            return store
    raise LookupError(f"the sample has no {kind.value} store")


def stores_needed(kind: StoreKind, data: Dict[StoreInfo, List[Record]]) -> List[StoreInfo]:
    """The stores a check of ``kind`` writes: edges need their nodes first."""
    preferred = {StoreKind.KV: "full_docs", StoreKind.DOC_STATUS: "doc_status", StoreKind.VECTOR: "entities"}
    store = first_store(data, kind, preferred.get(kind))
    if kind is StoreKind.GRAPH_EDGES:
        return [first_store(data, StoreKind.GRAPH_NODES, store.namespace), store]
    return [store]


# -- comparing ------------------------------------------------------------------------


def comparable(payload: Dict[str, Any], lossy: Dict[str, str]) -> Dict[str, Any]:
    """The payload as a reader of a backend with these lossy fields can give it back."""
    if not lossy:
        return payload
    drop_nulls = NULL_VALUED_FIELDS in lossy
    return {k: v for k, v in payload.items() if k not in lossy and not (drop_nulls and v is None)}


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _json_equal(a: Any, b: Any) -> bool:
    try:
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return a == b


def vector_problem(expected: Optional[np.ndarray], got: Any) -> Optional[Tuple[str, str]]:
    """Why ``got`` is not ``expected`` as a 1-D float32 vector: (what, detail), or None."""
    if expected is None:
        return None if got is None else ("has a vector, the written record had none", "")
    if got is None:
        return ("vector missing", "")
    if not isinstance(got, np.ndarray) or got.dtype != np.float32 or got.ndim != 1:
        kind = type(got).__name__ + (f" {got.dtype} of shape {got.shape}" if isinstance(got, np.ndarray) else "")
        return ("vector is not a 1-D float32 numpy array", kind)
    want = np.asarray(expected, dtype=np.float32)
    if got.shape != want.shape:
        return ("vector has another dimension", f"{got.shape[0]} read, {want.shape[0]} written")
    if np.array_equal(got, want):
        return None
    diff = f"max difference {float(np.max(np.abs(got - want))):.3g}"
    if np.array_equal(got, want.astype(np.float16).astype(np.float32)):
        return ("vector differs as float32: it equals the float16 rounding of what was written "
                "(vectors must be kept as float32)", diff)
    return ("vector differs as float32", diff)


def record_problems(store: StoreInfo, expected: Sequence[Record], got: Sequence[Record], lossy: Dict[str, str],
                    limit: int = 8) -> List[str]:
    """Differences between the records written and the records read back, one line per kind of
    difference (how many records, the first as the example), at most ``limit`` lines."""
    found: Dict[str, List[str]] = {}

    def note(what: str, key: str, detail: str = "") -> None:
        found.setdefault(what, []).append(f"{key!r}" + (f": {detail}" if detail else ""))

    want = {r.key: r for r in expected}
    seen: Dict[str, int] = {}
    for record in got:
        seen[record.key] = seen.get(record.key, 0) + 1
    for key, n in seen.items():
        if n > 1:
            note(f"read {n} times", key)
    for key in want:
        if key not in seen:
            note("written but not read back", key)
    for key in seen:
        if key not in want:
            note("read back but never written", key)
    for record in got:
        if record.key not in want or seen.get(record.key, 0) != 1:
            continue
        source = want[record.key]
        a, b = comparable(source.payload, lossy), comparable(record.payload, lossy)
        for name in a:
            if name not in b:
                note(f"field {name!r} was written but is missing when read back", record.key)
            elif not _json_equal(a[name], b[name]):
                note(f"field {name!r} reads back different", record.key, f"{_short(b[name])} instead of {_short(a[name])}")
        for name in b:
            if name not in a:
                note(f"field {name!r} was not written but is read back", record.key, _short(b[name]))
        problem = vector_problem(source.vector, record.vector)
        if problem:
            note(problem[0], record.key, problem[1])
    lines = [f"store {store.name}: {len(keys)} of {len(want)} records: {what} (e.g. {keys[0]})"
             for what, keys in found.items()]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more kinds of difference"]
    return lines

