"""An in-process stand-in for a MongoDB server, for tests only.

No MongoDB server can be installed on the machines this suite was written on,
so the provider's logic is exercised against mongomock wrapped in the subset of
pymongo's ``AsyncMongoClient`` API the provider (and LightRAG's Mongo storages)
use. It is installed through the provider's single seam
(``hybridrag_backends_mongodb.client.use_client_factory``); the provider code
does not know which client it has. Results obtained here are fake-backed and are
never reported as results from a real server.

Faithfulness choices:
* every stored document goes through ``bson.encode``/``decode`` like the wire
  (so unencodable values fail and types come back as a server returns them);
* ``bulk_write`` applies its operations one by one (an unordered bulk write is
  not atomic on a server either) and reports failures as ``BulkWriteError``;
* search indexes are refused like a server without Atlas Search / mongot;
* with a ``log_path`` every applied write is appended to an operation log and
  replayed on start, so a SIGKILLed process loses nothing that was applied:
  the durability of an acknowledged write on a server.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any, Dict, List, Optional

import bson
import mongomock
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, CollectionInvalid, DocumentTooLarge, OperationFailure, PyMongoError
from pymongo.results import BulkWriteResult

FAKE_VERSION = "7.0.0-mongomock-fake"
MAX_BSON_SIZE = 16 * 1024 * 1024
_SEARCH_UNSUPPORTED = "Using Atlas Search Database Commands and the $listSearchIndexes aggregation stage requires additional configuration. (fake server: no search support)"


def _wire(doc: Any) -> Any:
    """What a round trip through BSON makes of ``doc`` (raises like the driver on bad values and on
    documents over the server's 16 MiB limit)."""
    data = bson.encode(doc)
    if len(data) > MAX_BSON_SIZE:
        raise DocumentTooLarge(f"BSON document too large ({len(data)} bytes) - the connected server supports BSON document sizes up to {MAX_BSON_SIZE} bytes.")
    return bson.decode(data)


class FakeServer:
    """One fake server's state; clients made by :meth:`factory` share it."""

    def __init__(self, log_path: Optional[str] = None, *, atlas_search: bool = False) -> None:
        self.sync = mongomock.MongoClient()
        self.log_path = log_path
        # atlas_search=True answers search-index commands like Atlas (indexes are READY at once;
        # $vectorSearch itself is not emulated). Default: refused, like MongoDB Community.
        self.atlas_search = atlas_search
        self.search_indexes: Dict[str, List[Dict[str, Any]]] = {}
        self.closed_clients = 0
        if log_path and os.path.exists(log_path):
            self._replay(log_path)

    def factory(self, uri: str, **options: Any) -> "FakeAsyncClient":
        return FakeAsyncClient(self, uri, options)

    # -- durability ---------------------------------------------------------------

    def log(self, db: str, coll: Optional[str], method: str, *args: Any, **kwargs: Any) -> None:
        if not self.log_path:
            return
        entry = pickle.dumps((db, coll, method, args, kwargs))
        with open(self.log_path, "ab") as fh:
            fh.write(len(entry).to_bytes(8, "big") + entry)

    def _replay(self, path: str) -> None:
        with open(path, "rb") as fh:
            data = fh.read()
        pos = 0
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos : pos + 8], "big")
            if pos + 8 + size > len(data):
                break
            db, coll, method, args, kwargs = pickle.loads(data[pos + 8 : pos + 8 + size])
            if method == "client_drop_database":
                self.sync.drop_database(db)
            else:
                target = self.sync[db] if coll is None else self.sync[db][coll]
                getattr(target, method)(*args, **kwargs)
            pos += 8 + size
        if pos < len(data):  # an entry cut by the kill was never acknowledged: drop it
            with open(path, "r+b") as fh:
                fh.truncate(pos)


class FakeCursor:
    def __init__(self, make) -> None:  # noqa: ANN001
        self._make = make
        self._sort: Any = None
        self._limit = 0
        self._items: Optional[List[Any]] = None

    def sort(self, key_or_list: Any, direction: Optional[int] = None) -> "FakeCursor":
        self._sort = [(key_or_list, direction or 1)] if isinstance(key_or_list, str) else list(key_or_list)
        return self

    def limit(self, limit: int) -> "FakeCursor":
        self._limit = limit
        return self

    def _load(self) -> List[Any]:
        if self._items is None:
            cur = self._make()
            if self._sort:
                cur = cur.sort(self._sort)
            if self._limit:
                cur = cur.limit(self._limit)
            self._items = list(cur)
        return self._items

    async def to_list(self, length: Optional[int] = None) -> List[Any]:
        items = self._load()
        return items if length is None else items[:length]

    def __aiter__(self):
        async def gen():
            for item in self._load():
                yield item

        return gen()

    async def close(self) -> None:
        return None


class FakeAsyncCollection:
    def __init__(self, server: FakeServer, db: str, name: str) -> None:
        self.server, self.db_name, self.name = server, db, name
        self.sync = server.sync[db][name]

    @property
    def full_name(self) -> str:
        return f"{self.db_name}.{self.name}"

    def _apply(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.sync, method)(*args, **kwargs)
        self.server.log(self.db_name, self.name, method, *args, **kwargs)
        return result

    # reads
    def find(self, filter: Optional[dict] = None, projection: Any = None, **kwargs: Any) -> FakeCursor:  # noqa: A002
        return FakeCursor(lambda: self.sync.find(filter or {}, projection))

    async def find_one(self, filter: Optional[dict] = None, projection: Any = None, **kwargs: Any) -> Any:  # noqa: A002
        return self.sync.find_one(filter or {}, projection)

    async def count_documents(self, filter: dict, limit: int = 0, **kwargs: Any) -> int:  # noqa: A002
        n = self.sync.count_documents(filter)
        return min(n, limit) if limit else n

    async def estimated_document_count(self, **kwargs: Any) -> int:
        return self.sync.estimated_document_count()

    async def aggregate(self, pipeline: List[dict], **kwargs: Any) -> FakeCursor:
        if pipeline and "$collStats" in pipeline[0]:
            docs = list(self.sync.find({}))
            size = sum(len(bson.encode(d)) for d in docs)
            n_idx = len(self.sync.index_information())
            stats = {"size": size, "storageSize": size, "totalIndexSize": 64 * n_idx * max(1, len(docs)), "count": len(docs)}
            return FakeCursor(lambda: iter([{"ns": self.full_name, "storageStats": stats}]))
        return FakeCursor(lambda: self.sync.aggregate(pipeline))

    # writes
    async def replace_one(self, filter: dict, replacement: dict, upsert: bool = False, **kwargs: Any) -> Any:  # noqa: A002
        return self._apply("replace_one", filter, _wire(replacement), upsert=upsert)

    async def update_one(self, filter: dict, update: Any, upsert: bool = False, **kwargs: Any) -> Any:  # noqa: A002
        return self._apply("update_one", filter, _wire(update) if isinstance(update, dict) else update, upsert=upsert)

    async def update_many(self, filter: dict, update: Any, upsert: bool = False, **kwargs: Any) -> Any:  # noqa: A002
        if isinstance(update, list):  # mongomock has no pipeline updates: fine only when nothing matches
            if self.sync.count_documents(filter):
                raise OperationFailure("fake server: pipeline updates are not supported", code=0)
            return _NoUpdate()
        return self._apply("update_many", filter, _wire(update), upsert=upsert)

    async def insert_one(self, document: dict, **kwargs: Any) -> Any:
        return self._apply("insert_one", _wire(document))

    async def insert_many(self, documents: List[dict], **kwargs: Any) -> Any:
        return self._apply("insert_many", [_wire(d) for d in documents])

    async def delete_one(self, filter: dict, **kwargs: Any) -> Any:  # noqa: A002
        return self._apply("delete_one", filter)

    async def delete_many(self, filter: dict, **kwargs: Any) -> Any:  # noqa: A002
        return self._apply("delete_many", filter)

    async def bulk_write(self, requests: List[Any], ordered: bool = True, **kwargs: Any) -> BulkWriteResult:
        docs = [_encoded_op(op) for op in requests]  # encode all first: the driver fails before sending
        errors: List[Dict[str, Any]] = []
        counts = {"nInserted": 0, "nUpserted": 0, "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": []}
        for index, (op, args) in enumerate(zip(requests, docs)):
            try:
                _count(counts, index, self._apply_op(op, args))
            except PyMongoError as exc:
                errors.append({"index": index, "code": getattr(exc, "code", None) or 2, "errmsg": str(exc)})
                if ordered:
                    break
        if errors:
            raise BulkWriteError({**counts, "writeErrors": errors, "writeConcernErrors": []})
        return BulkWriteResult({**counts, "writeErrors": [], "writeConcernErrors": []}, True)

    def _apply_op(self, op: Any, args: tuple) -> Any:
        if isinstance(op, ReplaceOne):
            return self._apply("replace_one", args[0], args[1], upsert=op._upsert)
        if isinstance(op, UpdateOne):
            return self._apply("update_one", args[0], args[1], upsert=op._upsert)
        if isinstance(op, UpdateMany):
            return self._apply("update_many", args[0], args[1], upsert=op._upsert)
        if isinstance(op, InsertOne):
            return self._apply("insert_one", args[0])
        if isinstance(op, DeleteOne):
            return self._apply("delete_one", args[0])
        if isinstance(op, DeleteMany):
            return self._apply("delete_many", args[0])
        raise TypeError(f"fake bulk_write: unsupported operation {op!r}")

    # indexes
    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        kwargs.pop("collation", None)  # mongomock cannot keep collations (a known limit of the fake)
        return self._apply("create_index", keys, **kwargs)

    async def list_indexes(self, **kwargs: Any) -> FakeCursor:
        return FakeCursor(lambda: iter(self.sync.list_indexes()))

    async def drop_index(self, name: str, **kwargs: Any) -> None:
        self._apply("drop_index", name)

    async def list_search_indexes(self, *args: Any, **kwargs: Any) -> FakeCursor:
        if not self.server.atlas_search:
            raise OperationFailure(_SEARCH_UNSUPPORTED, code=31082)
        found = list(self.server.search_indexes.get(self.full_name, []))
        return FakeCursor(lambda: iter(found))

    async def create_search_index(self, model: Any, **kwargs: Any) -> str:
        if not self.server.atlas_search:
            raise OperationFailure(_SEARCH_UNSUPPORTED, code=31082)
        doc = model.document
        entry = {"name": doc["name"], "type": doc.get("type", "search"), "status": "READY", "queryable": True,
                 "latestDefinition": doc["definition"]}
        self.server.search_indexes.setdefault(self.full_name, []).append(entry)
        return doc["name"]

    async def drop(self, **kwargs: Any) -> None:
        self.server.sync[self.db_name].drop_collection(self.name)
        self.server.log(self.db_name, None, "drop_collection", self.name)


class _NoUpdate:
    matched_count = modified_count = 0
    upserted_id = None


def _encoded_op(op: Any) -> tuple:
    if isinstance(op, (ReplaceOne, UpdateOne, UpdateMany)):
        doc = op._doc
        return (op._filter, _wire(doc) if isinstance(doc, dict) else doc)
    if isinstance(op, InsertOne):
        return (_wire(op._doc),)
    return (op._filter,)


def _count(counts: Dict[str, Any], index: int, result: Any) -> None:
    upserted = getattr(result, "upserted_id", None)
    if upserted is not None:
        counts["nUpserted"] += 1
        counts["upserted"].append({"index": index, "_id": upserted})
    else:
        counts["nMatched"] += getattr(result, "matched_count", 0) or 0
        counts["nModified"] += getattr(result, "modified_count", 0) or 0
        counts["nRemoved"] += getattr(result, "deleted_count", 0) or 0
        if getattr(result, "inserted_id", None) is not None:
            counts["nInserted"] += 1


class FakeAsyncDatabase:
    def __init__(self, server: FakeServer, name: str) -> None:
        self.server, self.name = server, name
        self.sync = server.sync[name]

    def __getitem__(self, name: str) -> FakeAsyncCollection:
        return FakeAsyncCollection(self.server, self.name, name)

    def get_collection(self, name: str, **kwargs: Any) -> FakeAsyncCollection:
        return self[name]

    @property
    def client(self) -> "FakeAsyncClient":
        return FakeAsyncClient(self.server, f"mongodb://fake/{self.name}", {})

    async def list_collection_names(self, **kwargs: Any) -> List[str]:
        return self.sync.list_collection_names()

    async def create_collection(self, name: str, **kwargs: Any) -> FakeAsyncCollection:
        if name in self.sync.list_collection_names():
            raise CollectionInvalid(f"collection {name} already exists")
        self.sync.create_collection(name)
        self.server.log(self.name, None, "create_collection", name)
        return self[name]

    async def drop_collection(self, name_or_collection: str, **kwargs: Any) -> None:
        self.sync.drop_collection(name_or_collection)
        self.server.log(self.name, None, "drop_collection", name_or_collection)

    async def command(self, command: Any, value: Any = None, **kwargs: Any) -> Dict[str, Any]:
        name = command if isinstance(command, str) else next(iter(command))
        low = name.lower()
        if low == "ping":
            return {"ok": 1.0}
        if low == "buildinfo":
            return {"version": FAKE_VERSION, "gitVersion": "fake", "ok": 1.0}
        if low == "dbstats":
            names = self.sync.list_collection_names()
            objects = sum(self.sync[n].count_documents({}) for n in names)
            size = sum(len(bson.encode(d)) for n in names for d in self.sync[n].find({}))
            return {"db": self.name, "collections": len(names), "objects": objects, "dataSize": size,
                    "storageSize": size, "indexSize": 0, "ok": 1.0}
        raise OperationFailure(f"fake server: command {name!r} is not implemented", code=59)


class FakeAsyncClient:
    def __init__(self, server: FakeServer, uri: str, options: Dict[str, Any]) -> None:
        # Parse like the real client so a malformed URI fails the same way.
        from pymongo.uri_parser_shared import _validate_uri

        parts = _validate_uri(re.sub(r"^mongodb\+srv://", "mongodb://", uri))
        self.server, self.options = server, options
        self.default_database = parts["database"]
        self.closed = False

    def __getitem__(self, name: str) -> FakeAsyncDatabase:
        return FakeAsyncDatabase(self.server, name)

    def get_database(self, name: Optional[str] = None, **kwargs: Any) -> FakeAsyncDatabase:
        return self[name or self.default_database or "test"]

    async def drop_database(self, name_or_database: str) -> None:
        self.server.sync.drop_database(name_or_database)
        self.server.log(name_or_database, None, "client_drop_database")

    async def server_info(self) -> Dict[str, Any]:
        return await self["admin"].command("buildInfo")

    async def close(self) -> None:
        self.closed = True
        self.server.closed_clients += 1
