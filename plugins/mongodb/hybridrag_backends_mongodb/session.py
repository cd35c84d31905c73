"""Stream interface on MongoDB: read and write LightRAG's collections in batches.

Reads: one query per batch, ``_id > after`` sorted by ``_id`` (edges: the
``(edge_lo, edge_hi)`` pair, LightRAG's unique index), ``limit(batch_size)``:
memory is bounded by one batch and a lost cursor costs nothing.

Writes: unordered bulk upserts keyed like LightRAG (``_id``; edges the
canonical endpoint pair), then the job with its checkpoint is saved in the
``hybridrag_migration_jobs`` collection. The two are not one transaction
(standalone servers have none); a crash between them makes the resume rewrite
the same batch, which upserts leave unchanged.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import numpy as np
import orjson

from hybridrag_backends.errors import ConnectionFailure, SourceError, TargetError
from hybridrag_backends.jsonvalues import screen_json_only
from hybridrag_backends.migration.job import MigrationJob
from hybridrag_backends.models import BackendConfig
from hybridrag_backends.provider import (
    BackendSession,
    ReadBatch,
    Record,
    RejectedRecord,
    StoreInfo,
    StoreKind,
)
from hybridrag_backends.secrets import redact

from . import layout
from .client import make_client
from .stores import find_stores
from .uri import DEFAULT_DATABASE, resolve_uri

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's BSON document size limit
DIM_SAMPLE = 1000  # documents looked at to find a vector store's dimension

_LOSSY_ID = {"_id": "MongoDB keeps the record key in _id; a payload field of that name cannot be stored"}
_LOSSY = {
    StoreKind.KV: _LOSSY_ID,
    StoreKind.DOC_STATUS: _LOSSY_ID,
    StoreKind.VECTOR: {
        **_LOSSY_ID,
        "vector": "LightRAG's Mongo layout holds the float32 embedding in 'vector'; a per-record copy is dropped",
        "created_at": "LightRAG's Mongo layout stores __created_at__ as created_at; a separate created_at is dropped",
    },
    StoreKind.GRAPH_NODES: _LOSSY_ID,
    StoreKind.GRAPH_EDGES: {
        **_LOSSY_ID,
        **{f: "a structural field of LightRAG's Mongo edge documents" for f in layout.EDGE_STRUCTURAL_FIELDS},
    },
}


async def coll_stats(coll: Any) -> Dict[str, int]:
    """size / storageSize / totalIndexSize / count of a collection via ``$collStats`` (the collStats
    command is deprecated); empty when the server refuses (e.g. missing privileges)."""
    from pymongo.errors import PyMongoError

    try:
        cursor = await coll.aggregate([{"$collStats": {"storageStats": {}}}])
        stats = (await cursor.to_list(None) or [{}])[0].get("storageStats", {})
    except PyMongoError:
        return {}
    return {k: int(stats.get(k, 0)) for k in ("size", "storageSize", "totalIndexSize", "count")}


class MongoSession(BackendSession):
    def __init__(self, config: BackendConfig, *, timeout_ms: int = 5000) -> None:
        self.config = config
        self.workspace = config.workspace or ""
        self.database_name = config.mongo_database or DEFAULT_DATABASE
        self.timeout_ms = timeout_ms
        self.client: Any = None
        self.db: Any = None

    # -- connection -------------------------------------------------------------

    async def connect(self) -> None:
        if self.client is not None:
            return
        from pymongo.errors import PyMongoError

        uri = resolve_uri(self.config.mongo_uri or "")
        try:
            self.client = make_client(uri, timeout_ms=self.timeout_ms)
            self.db = self.client[self.database_name]
            await self.db.command("ping")
        except PyMongoError as exc:
            await self.close()
            raise ConnectionFailure(
                f"cannot reach MongoDB at {redact(self.config.mongo_uri)}: {redact(exc)}; "
                "check that the server is running, the host and port, and the credentials"
            ) from None

    async def close(self) -> None:
        client, self.client, self.db = self.client, None, None
        if client is not None:
            await client.close()

    def _collection(self, store: StoreInfo) -> Any:
        return self.db[layout.store_collection(self.workspace, store)]

    def _where(self, store: StoreInfo) -> str:
        return f"{self.database_name}.{layout.store_collection(self.workspace, store)}"

    # -- reading ----------------------------------------------------------------

    async def list_stores(self) -> List[StoreInfo]:
        names = set(await self.db.list_collection_names())
        stores: List[StoreInfo] = []
        for namespace, kind in find_stores(names, self.workspace):
            dim = await self._vector_dim(namespace) if kind is StoreKind.VECTOR else None
            stores.append(StoreInfo(namespace, kind, dim))
        return sorted(stores, key=StoreInfo.sort_key)

    async def _vector_dim(self, namespace: str) -> Optional[int]:
        """The most common vector length among the first documents: one odd record must not
        make every other one look wrong."""
        pipeline = [
            {"$match": {"vector": {"$type": "array"}}},
            {"$sort": {"_id": 1}},
            {"$limit": DIM_SAMPLE},
            {"$group": {"_id": {"$size": "$vector"}, "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": 1},
        ]
        cursor = await self.db[layout.collection_name(self.workspace, namespace)].aggregate(pipeline)
        found = await cursor.to_list(None)
        return int(found[0]["_id"]) if found else None

    async def count(self, store: StoreInfo) -> int:
        return await self._collection(store).count_documents({})

    async def store_bytes(self, store: StoreInfo) -> Optional[int]:
        """Data size of the store's collection (for the migration plan), None when the server won't say."""
        stats = await coll_stats(self._collection(store))
        return stats.get("size") if stats else None

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000) -> AsyncIterator[ReadBatch]:
        from pymongo.errors import PyMongoError

        coll = self._collection(store)
        position = after
        try:
            if store.kind is StoreKind.GRAPH_EDGES:
                await self._refuse_legacy_edges(store, coll)
            while True:
                query = self._edge_query(position) if store.kind is StoreKind.GRAPH_EDGES else self._id_query(position)
                sort = [("edge_lo", 1), ("edge_hi", 1)] if store.kind is StoreKind.GRAPH_EDGES else [("_id", 1)]
                docs = await coll.find(query).sort(sort).limit(batch_size).to_list(None)
                if not docs:
                    return
                batch = ReadBatch()
                for doc in docs:
                    position = self._position(store, doc)
                    item = self._to_record(store, doc, position)
                    (batch.records if isinstance(item, Record) else batch.rejected).append(item)
                batch.cursor = position
                yield batch
                if len(docs) < batch_size:
                    break
            if store.kind is not StoreKind.GRAPH_EDGES:
                async for batch in self._non_string_ids(store, coll, position, batch_size):
                    yield batch
        except PyMongoError as exc:
            raise SourceError(
                f"reading {self._where(store)} after position {position!r} failed: {redact(exc)}; "
                "check the server, then resume the job"
            ) from None

    async def _non_string_ids(self, store: StoreInfo, coll: Any, position: Optional[str], batch_size: int) -> AsyncIterator[ReadBatch]:
        """Documents whose _id is not a string (not written by LightRAG) cannot be keyed: reject them,
        named, streaming from one cursor so memory stays one batch."""
        batch = ReadBatch(cursor=position)
        async for doc in coll.find({"_id": {"$not": {"$type": "string"}}}, {"_id": 1}).sort("_id", 1):
            batch.rejected.append(RejectedRecord(
                store.name, repr(doc["_id"]), "_id is not a string, so it is not a LightRAG key", self._where(store), position))
            if len(batch.rejected) >= batch_size:
                yield batch
                batch = ReadBatch(cursor=position)
        if batch.rejected:
            yield batch

    @staticmethod
    def _id_query(position: Optional[str]) -> Dict[str, Any]:
        return {"_id": {"$gt": position}} if position is not None else {"_id": {"$type": "string"}}

    @staticmethod
    def _edge_query(position: Optional[str]) -> Dict[str, Any]:
        if position is None:
            return dict(layout.EDGE_PARTIAL_FILTER)
        lo, hi = json.loads(position)
        after = {"$or": [{"edge_lo": {"$gt": lo}}, {"edge_lo": lo, "edge_hi": {"$gt": hi}}]}
        return {"$and": [layout.EDGE_PARTIAL_FILTER, after]}

    @staticmethod
    def _position(store: StoreInfo, doc: Dict[str, Any]) -> str:
        if store.kind is StoreKind.GRAPH_EDGES:
            return json.dumps([doc["edge_lo"], doc["edge_hi"]], ensure_ascii=False)
        return doc["_id"]

    def _to_record(self, store: StoreInfo, doc: Dict[str, Any], position: str) -> "Record | RejectedRecord":
        try:
            if store.kind is StoreKind.VECTOR:
                record = layout.vector_record(store.name, doc)
                if record.vector is not None:
                    if record.vector.ndim != 1 or not np.all(np.isfinite(record.vector)):
                        raise ValueError("'vector' is not a flat array of finite numbers")
                    if store.embedding_dim is not None and record.vector.shape[0] != store.embedding_dim:
                        raise ValueError(f"vector has {record.vector.shape[0]} dimensions, the store {store.embedding_dim}")
            elif store.kind is StoreKind.GRAPH_NODES:
                record = layout.node_record(store.name, doc)
            elif store.kind is StoreKind.GRAPH_EDGES:
                record = layout.edge_record(store.name, doc)
            else:
                record = layout.kv_record(store.name, doc)
            orjson.dumps(record.payload)  # BSON-only values (ObjectId, Decimal128, bytes) have no record form
        except (KeyError, TypeError, ValueError) as exc:
            return RejectedRecord(store.name, str(doc.get("_id")), f"unreadable document: {exc}", self._where(store), position)
        record.cursor = position
        return record

    async def _refuse_legacy_edges(self, store: StoreInfo, coll: Any) -> None:
        legacy = await coll.count_documents({"$or": [{"edge_lo": {"$not": {"$type": "string"}}}, {"edge_hi": {"$not": {"$type": "string"}}}]})
        if legacy:
            raise SourceError(
                f"{self._where(store)} has {legacy} edge document(s) without edge_lo/edge_hi (written before "
                "LightRAG 1.5.7); start LightRAG 1.5.7 once on this database so it migrates them, then run again"
            )

    def screen(self, store: StoreInfo, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
        """Lone surrogates (BSON strings are UTF-8), integers beyond 64 bits (BSON has int64), and the
        JSON reader's NaN / Infinity, kept out to be safe (see hybridrag_backends.jsonvalues)."""
        return screen_json_only(store.name, records)

    def looked_for(self) -> str:
        return f"LightRAG collections of workspace {self.workspace or '(none)'!r} in database {self.database_name!r}"

    def lossy_fields(self, store: StoreInfo) -> Dict[str, str]:
        return dict(_LOSSY[store.kind])

    # -- writing ----------------------------------------------------------------

    async def is_empty(self) -> bool:
        for store in await self.list_stores():
            if await self._collection(store).find_one({}, {"_id": 1}) is not None:
                return False
        return True

    async def prepare_target(self, stores: List[StoreInfo], job: MigrationJob, *, force: bool) -> None:
        from pymongo.errors import PyMongoError

        try:
            # The job is saved here on its first run, so finding it means a resume: keep what is committed.
            if await self.load_job(job.job_id) is None:
                if force:
                    # Replace: empty the standard stores and the incoming ones (indexes stay, as
                    # LightRAG's drop() does); other collections in the database are not ours to empty.
                    incoming = {s.name for s in stores}
                    for store in await self.list_stores():
                        if store.standard or store.name in incoming:
                            await self._collection(store).delete_many({})
                elif not await self.is_empty():
                    raise TargetError(
                        f"MongoDB database {self.database_name!r} workspace {self.workspace or '(none)'!r} already "
                        "holds LightRAG data; choose another database or workspace, or pass --force to replace it"
                    )
            await self._create_collections(stores)
            await self.save_job(job)
        except PyMongoError as exc:
            raise TargetError(f"preparing MongoDB database {self.database_name!r} failed: {redact(exc)}") from None

    async def _create_collections(self, stores: List[StoreInfo]) -> None:
        """Collections and indexes as LightRAG's initialize() makes them (Atlas search indexes
        excepted: LightRAG creates those itself on start, where the server supports them)."""
        names = set(await self.db.list_collection_names())
        wanted = {layout.store_collection(self.workspace, s): s for s in stores}
        graph = [s for s in stores if s.kind in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES)]
        for s in graph:  # LightRAG's graph storage always opens both collections
            base = layout.collection_name(self.workspace, s.namespace)
            wanted.setdefault(base, StoreInfo(s.namespace, StoreKind.GRAPH_NODES))
            wanted.setdefault(f"{base}_edges", StoreInfo(s.namespace, StoreKind.GRAPH_EDGES))
        for name, store in wanted.items():
            if name not in names:
                await self.db.create_collection(name)
            specs = []
            if store.kind is StoreKind.DOC_STATUS:
                specs = layout.doc_status_indexes(self.workspace)
            elif store.kind is StoreKind.GRAPH_EDGES:
                specs = layout.edge_indexes(self.workspace)
            if specs:
                await self._ensure_indexes(self.db[name], specs)

    @staticmethod
    async def _ensure_indexes(coll: Any, specs: List[Dict[str, Any]]) -> None:
        existing = {idx.get("name") for idx in await (await coll.list_indexes()).to_list(None)}
        for spec in specs:
            if spec["name"] not in existing:
                options = {k: v for k, v in spec.items() if k != "keys"}
                await coll.create_index(spec["keys"], **options)

    async def write_batch(self, store: StoreInfo, records: List[Record], job: MigrationJob) -> None:
        from bson.errors import BSONError
        from pymongo.errors import BulkWriteError, PyMongoError

        keys: List[str] = []
        try:
            keys, ops = self._operations(store, records)
            if ops:
                await self._collection(store).bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = (exc.details or {}).get("writeErrors") or [{}]
            first = errors[0]
            key = keys[first["index"]] if first.get("index", len(keys)) < len(keys) else "?"
            raise TargetError(
                f"MongoDB refused record {key!r} of store {store.name} ({self._where(store)}): "
                f"{redact(first.get('errmsg', exc))} ({len(errors)} record(s) refused in this batch)"
            ) from None
        except PyMongoError as exc:
            raise TargetError(f"writing {self._where(store)} failed: {redact(exc)}; resume the job when the server is back") from None
        except (BSONError, ValueError, TypeError, OverflowError) as exc:  # a record BSON cannot hold
            raise TargetError(f"{self._where(store)}: {self._unstorable(store, records) or exc}") from None
        await self.save_job(job)

    def _operations(self, store: StoreInfo, records: List[Record]) -> Tuple[List[str], List[Any]]:
        """(record keys, upserts) in the same order."""
        from pymongo import ReplaceOne

        if store.kind is not StoreKind.GRAPH_EDGES:
            return [r.key for r in records], [ReplaceOne({"_id": r.key}, self._document(store, r), upsert=True) for r in records]
        # Both directions of an undirected edge are one document: the last wins, as in LightRAG.
        by_pair: Dict[tuple, Tuple[str, Any]] = {}
        for r in records:
            flt, doc = layout.edge_document(r)
            by_pair[(flt["edge_lo"], flt["edge_hi"])] = (r.key, ReplaceOne(flt, doc, upsert=True))
        return [k for k, _ in by_pair.values()], [op for _, op in by_pair.values()]

    def _document(self, store: StoreInfo, record: Record) -> Dict[str, Any]:
        if store.kind is StoreKind.VECTOR:
            return layout.vector_document(record)
        if store.kind is StoreKind.GRAPH_NODES:
            return layout.node_document(record)
        return layout.kv_document(record)

    def _unstorable(self, store: StoreInfo, records: List[Record]) -> Optional[str]:
        import bson

        for r in records:
            try:
                size = len(bson.encode(layout.edge_document(r)[1] if store.kind is StoreKind.GRAPH_EDGES else self._document(store, r)))
            except Exception as exc:  # noqa: BLE001 - naming the record is the point
                return f"record {r.key!r} cannot be stored in MongoDB ({type(exc).__name__}: {exc})"
            if size > MAX_DOCUMENT_BYTES:
                return f"record {r.key!r} is {size} bytes as BSON, over MongoDB's 16 MiB document limit"
        return None

    # -- jobs kept in the target database ------------------------------------------

    async def load_job(self, job_id: str) -> Optional[MigrationJob]:
        doc = await self.db[layout.JOBS_COLLECTION].find_one({"_id": job_id})
        return MigrationJob.from_dict(json.loads(doc["job"])) if doc else None

    async def save_job(self, job: MigrationJob) -> None:
        data = job.to_dict()  # messages redacted field by field; record keys kept as they are
        # Stored as one JSON string: checkpoint store names contain dots, which MongoDB field names avoid.
        doc = {"_id": job.job_id, "status": data["status"], "job": json.dumps(data, ensure_ascii=False, default=str)}
        await self.db[layout.JOBS_COLLECTION].replace_one({"_id": job.job_id}, doc, upsert=True)
