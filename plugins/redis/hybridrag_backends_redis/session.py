"""The stream interface on Redis + files: KV and doc status stores in Redis, the rest delegated.

The vector and graph stores are the JSON provider's (LightRAG's NanoVectorDB and NetworkX files in
the same working dir): this session holds a session of the JSON provider, obtained through the
public plugin API, and forwards every call about those stores to it. The engine sees one backend.

Reading a Redis store: its keys are listed with SCAN (``<final_namespace>:*``) and sorted, so the
order is deterministic and the record id is the resume cursor; values come in batches with MGET.
Memory: the ids of one store (not the values) are held while it is read.

Writing a Redis store: each batch is one MULTI/EXEC transaction that SETs the records (JSON, as
LightRAG's ``upsert`` writes them) and the job, with its checkpoint, in the ``hybridrag_backends:jobs``
hash: the checkpoint is committed with the batch. SET replaces, so writing a batch again after a
crash changes nothing. A batch of a delegated store is written by the JSON session, then the job
(holding the JSON writer's file positions) is saved in Redis.
"""

from __future__ import annotations

import bisect
import json
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import orjson

from hybridrag_backends import BackendConfig, BackendSession, MigrationJob, ReadBatch, Record, RejectedRecord, StoreInfo, StoreKind
from hybridrag_backends.errors import ConnectionFailure, SourceError, TargetError
from hybridrag_backends.secrets import redact, resolve_uri_refs

from . import layout

REDIS_KINDS = (StoreKind.KV, StoreKind.DOC_STATUS)
SCAN_COUNT = 1000
DELETE_BATCH = 500


def encode(value: Any) -> bytes:
    """A record as LightRAG's ``json.dumps`` would store it (orjson, stdlib for what it cannot say)."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # big ints, lone surrogates
        return json.dumps(value).encode("ascii")


class RedisSession(BackendSession):
    def __init__(self, config: BackendConfig, target: layout.RedisTarget, files: BackendSession) -> None:
        self.config = config
        self.target = target
        self.workspace = config.workspace or ""
        self.files = files  # the JSON provider's session on working_dir / workspace
        self.client: Any = None
        self._file_stores: List[StoreInfo] = []

    @property
    def where(self) -> str:
        return f"redis {self.target.host}:{self.target.port}/{self.target.db}"

    # -- connection ---------------------------------------------------------------

    async def connect(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        uri = resolve_uri_refs(self.target.uri, field="extra_options.uri")
        self.client = aioredis.Redis.from_url(uri, socket_connect_timeout=5, socket_timeout=60)
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            await self.close()
            raise ConnectionFailure(f"cannot reach Redis at {self.where}: {redact(exc)}; start redis-server "
                                    f"or fix host, port and password") from None
        await self.files.connect()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()
        await self.files.close()

    # -- finding stores ---------------------------------------------------------------

    async def _namespaces(self) -> Dict[str, int]:
        """Records per LightRAG namespace of this workspace (one SCAN over the workspace's keys)."""
        pattern = f"{layout.glob_escape(self.workspace)}_*" if self.workspace else "*"
        prefixes: Dict[str, int] = {}
        async for raw in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
            prefix, sep, _ = raw.decode("utf-8", "replace").partition(":")
            if sep:
                prefixes[prefix] = prefixes.get(prefix, 0) + 1
        return {ns: prefixes[layout.final_namespace(self.workspace, ns)]
                for ns in layout.namespaces_in(prefixes, self.workspace)}

    async def list_stores(self) -> List[StoreInfo]:
        stores = [StoreInfo(ns, StoreKind.DOC_STATUS if ns == "doc_status" else StoreKind.KV)
                  for ns in await self._namespaces()]
        stores += [s for s in await self.files.list_stores() if s.kind not in REDIS_KINDS]
        return sorted(stores, key=StoreInfo.sort_key)

    async def count(self, store: StoreInfo) -> int:
        if store.kind not in REDIS_KINDS:
            return await self.files.count(store)
        return len(await self._ids(store))

    async def _ids(self, store: StoreInfo) -> List[str]:
        """The store's record ids, sorted (code point order = the keys' UTF-8 byte order)."""
        start = len(layout.final_namespace(self.workspace, store.namespace)) + 1
        pattern = layout.records_pattern(self.workspace, store.namespace)
        ids = []
        async for raw in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
            ids.append(raw[start:].decode("utf-8", "surrogateescape"))
        return sorted(set(ids))  # SCAN may return a key twice while the keyspace is resized

    def store_location(self, store: StoreInfo) -> str:
        """Where a store is read from (the engine names it beside a record a target refuses)."""
        if store.kind in REDIS_KINDS:
            return f"{self.where} keys {layout.records_pattern(self.workspace, store.namespace)}"
        location = getattr(self.files, "store_location", None)
        return str(location(store)) if location else f"{self.config.working_dir} store {store.name}"

    def fingerprint(self) -> Dict[str, Any]:
        """The file part's sizes and mtimes (the engine refuses to resume when the source changed)."""
        fingerprint = getattr(self.files, "fingerprint", None)
        return {"files": fingerprint() if fingerprint else None}

    # -- reading ------------------------------------------------------------------------

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000) -> AsyncIterator[ReadBatch]:
        if store.kind not in REDIS_KINDS:
            async for batch in self.files.read(store, after, batch_size):
                yield batch
            return
        from redis.exceptions import RedisError

        position = after
        try:
            ids = await self._ids(store)
            begin = bisect.bisect_right(ids, after) if after is not None else 0
            for i in range(begin, len(ids), batch_size):
                chunk = ids[i : i + batch_size]
                keys = [layout.record_key(self.workspace, store.namespace, id_) for id_ in chunk]
                values = await self.client.mget(keys)
                batch = ReadBatch()
                for id_, key, raw in zip(chunk, keys, values):
                    item = await self._record(store, id_, key, raw)
                    (batch.records if isinstance(item, Record) else batch.rejected).append(item)
                    position = id_
                batch.cursor = position
                yield batch
        except (RedisError, OSError) as exc:
            raise SourceError(f"reading {store.name} from {self.where} after key {position!r}: {redact(exc)}; "
                              f"check the server, then resume the job") from None

    async def _record(self, store: StoreInfo, id_: str, key: bytes, raw: Optional[bytes]) -> "Record | RejectedRecord":
        where = f"{self.where} key {key.decode('utf-8', 'replace')}"
        if raw is None:
            kind = (await self.client.type(key)).decode()
            reason = ("the key was deleted while the store was read" if kind == "none"
                      else f"a Redis {kind}, not a LightRAG record (a JSON string)")
            return RejectedRecord(store.name, id_, reason, where, id_)
        try:
            id_.encode("utf-8")
            payload = orjson.loads(raw)
        except (UnicodeEncodeError, orjson.JSONDecodeError) as exc:
            return RejectedRecord(store.name, id_, f"not a JSON record ({exc})", where, id_)
        if not isinstance(payload, dict):
            return RejectedRecord(store.name, id_, f"a JSON {type(payload).__name__}, not a record object", where, id_)
        payload.pop("_id", None)  # LightRAG's copy of the key
        return Record(store.name, id_, payload, cursor=id_)

    def lossy_fields(self, store: StoreInfo) -> Dict[str, str]:
        return {} if store.kind in REDIS_KINDS else self.files.lossy_fields(store)

    # -- writing ------------------------------------------------------------------------

    async def is_empty(self) -> bool:
        if await self._namespaces():
            return False
        return not [s for s in await self.files.list_stores() if s.kind not in REDIS_KINDS]

    async def lock_target(self, job_id: str) -> None:
        """The file part claims its folder the JSON provider's way (where the core has that contract)."""
        lock = getattr(self.files, "lock_target", None)
        if lock is not None:
            await lock(job_id)

    def screen(self, store: StoreInfo, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
        """Redis holds any JSON record; the file stores are screened by the JSON session when it can."""
        screen = getattr(self.files, "screen", None)
        if store.kind in REDIS_KINDS or screen is None:
            return records, []
        return screen(store, records)

    async def prepare_target(self, stores: List[StoreInfo], job: MigrationJob, *, force: bool) -> None:
        from redis.exceptions import RedisError

        ours = [s for s in stores if s.kind in REDIS_KINDS]
        self._file_stores = [s for s in stores if s.kind not in REDIS_KINDS]
        try:
            if await self.load_job(job.job_id) is None:  # saved here on the first run: none means fresh
                present = await self._namespaces()
                if present and not force:
                    raise TargetError(
                        f"{self.where} workspace {self.workspace or '(default)'!r} already holds LightRAG data "
                        f"({', '.join(sorted(present))}); choose another database or workspace, or pass --force")
                if force:  # replace: LightRAG's standard stores and the incoming ones
                    for ns in set(layout.REDIS_NAMESPACES) | {s.namespace for s in ours} | set(present):
                        await self._delete(layout.records_pattern(self.workspace, ns),
                                           *layout.sidecar_patterns(self.workspace, ns))
            if self._file_stores:
                await self.files.prepare_target(self._file_stores, job, force=force)
            await self.save_job(job)
        except (RedisError, OSError) as exc:
            raise TargetError(f"preparing {self.where} failed: {redact(exc)}") from None

    async def _delete(self, *patterns: str) -> None:
        for pattern in patterns:
            doomed: List[bytes] = []
            async for key in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
                doomed.append(key)
                if len(doomed) >= DELETE_BATCH:
                    await self.client.unlink(*doomed)
                    doomed = []
            if doomed:
                await self.client.unlink(*doomed)

    async def write_batch(self, store: StoreInfo, records: List[Record], job: MigrationJob) -> None:
        if store.kind not in REDIS_KINDS:
            await self.files.write_batch(store, records, job)
            await self.save_job(job)  # now holding the file positions of this batch
            return
        from redis.exceptions import RedisError

        stamp_id = store.kind is StoreKind.KV  # as RedisKVStorage.upsert; the doc status storage does not
        async with self.client.pipeline(transaction=True) as pipe:
            for r in records:
                value = {**r.payload, "_id": r.key} if stamp_id else r.payload
                pipe.set(layout.record_key(self.workspace, store.namespace, r.key), encode(value))
            pipe.hset(layout.JOBS_KEY, job.job_id, self._job_json(job))
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                raise TargetError(f"writing {store.name} to {self.where} failed: {redact(exc)}; the batch was not "
                                  f"committed: resume the job when the server is back") from None

    async def finish_store(self, store: StoreInfo, job: MigrationJob) -> None:
        if store.kind is StoreKind.DOC_STATUS:
            # LightRAG's scheduling index is derived from the rows; it rebuilds it on initialize() when absent
            await self._delete(*layout.sidecar_patterns(self.workspace, store.namespace))
        elif store.kind not in REDIS_KINDS:
            await self.files.finish_store(store, job)
        await self.save_job(job)

    async def finish_target(self, job: MigrationJob) -> None:
        if self._file_stores:
            await self.files.finish_target(job)

    # -- jobs kept in the target ------------------------------------------------------

    @staticmethod
    def _job_json(job: MigrationJob) -> bytes:
        data = job.to_dict()
        if data.get("last_error"):
            data["last_error"] = redact(data["last_error"])
        return orjson.dumps(data)

    async def load_job(self, job_id: str) -> Optional[MigrationJob]:
        raw = await self.client.hget(layout.JOBS_KEY, job_id)
        return MigrationJob.from_dict(orjson.loads(raw)) if raw else None

    async def save_job(self, job: MigrationJob) -> None:
        await self.client.hset(layout.JOBS_KEY, job.job_id, self._job_json(job))
