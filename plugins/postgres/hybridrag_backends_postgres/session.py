"""The stream interface on PostgreSQL: keyset-paginated reads, COPY-based idempotent writes.

Writes: each batch is COPYed into a session temp table and merged with INSERT ... ON CONFLICT
(workspace, id) DO UPDATE, its overlay rows replaced, and the job row (the checkpoint) upserted,
all in one transaction. A lost connection (server restart) is retried with backoff; when the
server stays away the batch is rolled back and MigrationInterrupted (exit 5) is raised, with the
checkpoint of the last committed batch in the job row.

Reads: ``ORDER BY id WHERE id > $after LIMIT n`` per table (graph: by AGE graphid), so memory is
bounded by the batch size. Payloads come back in the JSON reader's shape (see columns.py).

As a migration source (``begin_snapshot``, as pg_dump does): a connection of its own opens a REPEATABLE
READ, READ ONLY transaction, exports its snapshot and holds it until the session closes; every read (the
plan's stores and counts, each page of the copy, any re-read at verification) runs in a short
transaction that adopts it (``SET TRANSACTION SNAPSHOT``). So the copy is the database as of that
moment, and ``content_stamp()`` (the snapshot id plus a token of this session) lets the engine sum the
source side of verification while copying. The reads' table locks last one page, as without a
snapshot (the holder touches no table), so a target loading into the same database is never blocked;
holding the snapshot does keep VACUUM from removing rows deleted after it, and another session's CREATE
INDEX CONCURRENTLY in that database from finishing, until the session ends (so a target in the same
database is read without a snapshot, as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple

import asyncpg
import numpy as np
import orjson

from hybridrag_backends.errors import ConnectionFailure, MigrationInterrupted, SourceError, TargetBusy, TargetError
from hybridrag_backends.jsonvalues import screen_json_only
from hybridrag_backends.migration.job import MigrationJob
from hybridrag_backends.models import BackendConfig
from hybridrag_backends.provider import (
    GRAPH_NAMESPACE, STANDARD_KV_NAMESPACES, BackendSession, Check, ReadBatch, Record, RejectedRecord, StoreInfo,
    StoreKind,
)
from hybridrag_backends.secrets import redact

from . import columns as cols
from . import graph as age
from . import naming, ownschema
from . import vector_index as vix
from .connect import connect, where
from .lightrag_schema import create_schema

RETRYABLE = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, ConnectionError, OSError, ConnectionFailure,
)
PER_RECORD_VECTOR = "vector"  # NanoVectorDB's per-record float16 copy (see migration/verify.py)
PER_RECORD_VECTOR_LOST = (
    "PostgreSQL keeps one float32 vector per record (content_vector, compared exactly), which LightRAG also "
    "returns from get_vectors_by_ids; NanoVectorDB's per-record float16 'vector' field is not kept apart"
)


# every connection of a session: LightRAG's table names unqualified, AGE's functions without a prefix
SEARCH_PATH_SQL = "SET search_path = public, ag_catalog"


class PostgresSession(BackendSession):
    # finish_target only waits for the index builds (own connections) and runs ANALYZE on one of its own:
    # the engine verifies, on self.conn, meanwhile
    records_final_before_finish = True

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.ws = config.postgres_workspace
        self.graph = naming.graph_name(self.ws)
        self.conn: Optional[asyncpg.Connection] = None
        self.lock_conn: Optional[asyncpg.Connection] = None
        self.vector_tables: Dict[str, str] = {}
        self._stages: set = set()
        self._vertex_ids = age.VertexIds()
        self._new_vertices: Dict[str, str] = {}
        extra = config.extra_options or {}
        self.retry_attempts = int(extra.get("retry_attempts", 6))
        self.retry_backoff = float(extra.get("retry_backoff", 0.5))
        # vector index builds run on their own connections while the next stores load
        self._vector_dims: Dict[str, int] = {}
        self._target_stores: List[StoreInfo] = []  # what prepare_target was given: finish_target analyzes their tables
        self._builds: Dict[str, "asyncio.Task[None]"] = {}
        self._build_slots = asyncio.Semaphore(max(1, int(extra.get("index_builds", 1))))
        # per vector table: the index strategy of this run (vector_index.Choice.to_dict())
        self._index_choices: Dict[str, Dict[str, Any]] = {}
        self._writers: List[Tuple[asyncpg.Connection, set]] = []  # incremental loads: extra connections
        # as a migration source: the connection holding the snapshot every read adopts, and its stamp
        self._snapshot_conn: Optional[asyncpg.Connection] = None
        self._snapshot_id: Optional[str] = None
        self._snapshot_stamp: Optional[Dict[str, str]] = None

    # -- connections -----------------------------------------------------------

    async def connect(self) -> None:
        self.conn = await connect(self.config)
        await self.conn.execute(SEARCH_PATH_SQL)
        self._stages = set()

    async def begin_snapshot(self, *, target: Optional[BackendSession] = None) -> None:
        """Read from one point in time until the session closes (see the module docstring). Read as
        before, statement by statement and with no stamp (verification then reads the source again), from
        a server or role that cannot export a snapshot, and when ``target`` writes into this same
        database: its CREATE INDEX CONCURRENTLY waits for every older snapshot of the database to end,
        so it would wait for this one, held until the migration ends."""
        if self._snapshot_conn is not None:
            return
        if isinstance(target, PostgresSession) and await self._same_database(target):
            return
        holder = await connect(self.config, vectors=False)
        try:
            # as pg_dump does: a server-wide idle_in_transaction_session_timeout must not end the holder
            await holder.execute("SET idle_in_transaction_session_timeout = 0")
            await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            exported = await holder.fetchval("SELECT pg_export_snapshot()")
        except asyncpg.PostgresError:
            await holder.close()
            return
        if not re.fullmatch(r"[0-9A-Fa-f-]+", exported or ""):  # interpolated below: only what the server gives
            await holder.close()
            return
        self._snapshot_conn, self._snapshot_id = holder, exported
        # the id alone may be given to a later snapshot of the server: the token makes it this session's
        self._snapshot_stamp = {"snapshot": exported, "session": uuid.uuid4().hex}

    async def _same_database(self, other: "PostgresSession") -> bool:
        """Whether both sessions' connections reach one database of one server (however the URLs name it)."""
        if self.conn is None or other.conn is None:
            return True  # cannot tell: the safe side
        query = "SELECT current_database(), current_setting('port'), pg_postmaster_start_time()::text"
        return tuple(await self.conn.fetchrow(query)) == tuple(await other.conn.fetchrow(query))

    def content_stamp(self) -> Optional[Dict[str, str]]:
        """The snapshot this session reads from (see ``begin_snapshot``), None outside one."""
        return dict(self._snapshot_stamp) if self._snapshot_stamp else None

    @contextlib.asynccontextmanager
    async def _in_snapshot(self) -> AsyncIterator[None]:
        """The reads in this block see the session's snapshot, in a transaction of their own (so their
        table locks end with the block); without a snapshot, as they are."""
        if self._snapshot_id is None:
            yield
            return
        async with self.conn.transaction(isolation="repeatable_read", readonly=True):
            await self.conn.execute(f"SET TRANSACTION SNAPSHOT '{self._snapshot_id}'")
            yield

    async def close(self) -> None:
        if self._snapshot_conn is not None:
            with contextlib.suppress(Exception):
                await self._snapshot_conn.close(timeout=5)
            if not self._snapshot_conn.is_closed():
                self._snapshot_conn.terminate()
        self._snapshot_conn = self._snapshot_id = self._snapshot_stamp = None
        for task in self._builds.values():
            task.cancel()  # asyncpg sends the server a cancel request; the build is rolled back
        for task in self._builds.values():
            with contextlib.suppress(BaseException):
                await task
        self._builds = {}
        for c in (self.conn, self.lock_conn, *(w for w, _ in self._writers)):
            if c is not None and not c.is_closed():
                try:
                    await c.close(timeout=5)
                except Exception:
                    c.terminate()
        self.conn = self.lock_conn = None
        self._writers = []

    async def _lock_workspace(self) -> None:
        """One migration per workspace: a session-level advisory lock on a dedicated connection."""
        if self.lock_conn is not None and not self.lock_conn.is_closed():
            return
        self.lock_conn = await connect(self.config, vectors=False)
        got = await self.lock_conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext('hybridrag_backends:migrate:' || current_database() || ':' || $1))",
            self.ws,
        )
        if not got:
            await self.lock_conn.close()
            self.lock_conn = None
            holder = await self._running_job()
            raise TargetBusy(
                f"another migration{f' (job {holder})' if holder else ''} is writing into workspace {self.ws!r} "
                f"of {where(self.config)}; wait for it to finish (see 'hybridrag-backends jobs') or use another "
                f"--target-workspace"
            )

    async def _running_job(self) -> Optional[str]:
        """The newest in-progress job of this workspace, as its job row says (None when unknown)."""
        try:
            if not await self._table_exists(naming.JOBS_TABLE):
                return None
            return await self.conn.fetchval(
                f"SELECT job_id FROM {naming.JOBS_TABLE} WHERE workspace = $1 AND status = 'in_progress' "
                f"ORDER BY created_at DESC LIMIT 1", self.ws)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return None

    async def lock_target(self, job_id: str) -> None:
        await self._lock_workspace()

    # -- discovery -------------------------------------------------------------

    async def _table_exists(self, table: str) -> bool:
        return bool(await self.conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table.lower()}"))

    async def _has_rows(self, table: str) -> bool:
        return await self._table_exists(table) and bool(
            await self.conn.fetchval(f"SELECT 1 FROM {table} WHERE workspace = $1 LIMIT 1", self.ws))

    async def _vector_tables_for_read(self) -> Dict[str, Tuple[str, int]]:
        found: Dict[str, Tuple[str, int]] = {}
        for ns, base in naming.VECTOR_BASE_TABLES.items():
            if self.config.embedding_model and self.config.embedding_dim:
                names = [naming.vector_table(ns, self.config.embedding_model, self.config.embedding_dim).lower()]
            else:
                names = [r["relname"] for r in await self.conn.fetch(
                    "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE $1 "
                    "AND relnamespace = 'public'::regnamespace", base.lower() + "%")]
            present = [n for n in names if await self._has_rows(n)]
            if len(present) > 1:
                raise SourceError(
                    f"workspace {self.ws!r} has several vector tables for {ns} ({', '.join(sorted(present))}); "
                    f"choose one with ?embedding_model=NAME&embedding_dim=N in the URL")
            if present:
                dim = await self.conn.fetchval(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'content_vector'",
                    present[0])
                found[ns] = (present[0], int(dim))
        return found

    async def list_stores(self) -> List[StoreInfo]:
        async with self._in_snapshot():
            return await self._list_stores()

    async def _list_stores(self) -> List[StoreInfo]:
        stores: List[StoreInfo] = []
        for ns, table in naming.KV_TABLES.items():
            if await self._has_rows(table):
                stores.append(StoreInfo(ns, StoreKind.KV))
        if await self._table_exists(naming.EXTRA_KV_TABLE):
            for r in await self.conn.fetch(
                    f"SELECT DISTINCT namespace FROM {naming.EXTRA_KV_TABLE} WHERE workspace = $1", self.ws):
                stores.append(StoreInfo(r["namespace"], StoreKind.KV))
        if await self._has_rows(naming.DOC_STATUS_TABLE):
            stores.append(StoreInfo("doc_status", StoreKind.DOC_STATUS))
        for ns, (table, dim) in (await self._vector_tables_for_read()).items():
            self.vector_tables[ns] = table
            stores.append(StoreInfo(ns, StoreKind.VECTOR, embedding_dim=dim))
        if await age.count(self.conn, self.graph, "base"):
            stores.append(StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_NODES))
        if await age.count(self.conn, self.graph, "DIRECTED"):
            stores.append(StoreInfo(GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES))
        return sorted(stores, key=StoreInfo.sort_key)

    def _table(self, store: StoreInfo) -> str:
        if store.kind is StoreKind.VECTOR:
            dim = store.embedding_dim or self.config.embedding_dim
            if store.namespace not in self.vector_tables and self.config.embedding_model and dim:
                self.vector_tables[store.namespace] = naming.vector_table(store.namespace, self.config.embedding_model, dim)
            if store.namespace not in self.vector_tables:
                raise SourceError(
                    f"no vector table known for {store.namespace}; add ?embedding_model=NAME&embedding_dim=N to the URL")
            return self.vector_tables[store.namespace]
        return cols.table_for(store.namespace) or naming.EXTRA_KV_TABLE

    async def count(self, store: StoreInfo) -> int:
        async with self._in_snapshot():
            return await self._count(store)

    async def _count(self, store: StoreInfo) -> int:
        if store.kind is StoreKind.GRAPH_NODES:
            return await age.count(self.conn, self.graph, "base")
        if store.kind is StoreKind.GRAPH_EDGES:
            return await age.count(self.conn, self.graph, "DIRECTED")
        table = self._table(store)
        if table == naming.EXTRA_KV_TABLE:
            return int(await self.conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE workspace = $1 AND namespace = $2", self.ws, store.namespace))
        if not await self._table_exists(table):
            return 0
        return int(await self.conn.fetchval(f"SELECT count(*) FROM {table} WHERE workspace = $1", self.ws))

    # -- reading ---------------------------------------------------------------

    async def _overlays(self, store: StoreInfo, keys: List[str]) -> Dict[str, str]:
        if not keys or not await self._table_exists(naming.OVERLAY_TABLE):
            return {}
        rows = await self.conn.fetch(
            f"SELECT id, overlay::text AS o FROM {naming.OVERLAY_TABLE} WHERE workspace = $1 AND store = $2 AND id = ANY($3::text[])",
            self.ws, store.name, keys)
        return {r["id"]: r["o"] for r in rows}

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000) -> AsyncIterator[ReadBatch]:
        try:
            while True:
                async with self._in_snapshot():
                    records = await self._read_page(store, after, batch_size)
                if not records:
                    return
                after = records[-1].position
                yield ReadBatch(records=records, cursor=after)
                if len(records) < batch_size:
                    return
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            raise SourceError(
                f"reading {store.name} from {where(self.config)} workspace {self.ws!r} after key {after!r}: "
                f"{type(exc).__name__}: {redact(exc)}") from exc

    async def _read_page(self, store: StoreInfo, after: Optional[str], n: int) -> List[Record]:
        if store.kind is StoreKind.GRAPH_NODES:
            rows = await age.read_nodes(self.conn, self.graph, after, n)
            overlays = await self._overlays(store, [p["entity_id"] for _, p in rows])
            return [Record(store.name, p["entity_id"], cols.apply_overlay(p, overlays.get(p["entity_id"])), cursor=gid)
                    for gid, p in rows]
        if store.kind is StoreKind.GRAPH_EDGES:
            # edges never have overlay rows (see _write): their properties are the record
            return [Record(store.name, _edge_key(src, tgt), {**props, "source": src, "target": tgt}, cursor=gid)
                    for gid, src, tgt, props in await age.read_edges(self.conn, self.graph, after, n)]
        table = self._table(store)
        cond = "AND t.id > $2" if after is not None else ""
        args: List[Any] = [self.ws] + ([after] if after is not None else [])
        if table == naming.EXTRA_KV_TABLE:
            args.append(store.namespace)
            rows = await self.conn.fetch(
                f"SELECT t.id, t.payload::text AS payload FROM {table} t WHERE t.workspace = $1 {cond} "
                f"AND t.namespace = ${len(args)} ORDER BY t.id LIMIT {int(n)}", *args)
            return [Record(store.name, r["id"], orjson.loads(r["payload"])) for r in rows]
        vector = store.kind is StoreKind.VECTOR
        spec = cols.columns_for(store.namespace, vector)
        select = ", ".join(f"t.{c.column}" + ("::text" if c.kind == "json" else "") for c in spec)
        if vector:
            select += ", t.content_vector"
        rows = await self.conn.fetch(
            f"SELECT t.id, {select} FROM {table} t WHERE t.workspace = $1 {cond} ORDER BY t.id LIMIT {int(n)}", *args)
        overlays = await self._overlays(store, [r["id"] for r in rows])
        out = []
        for r in rows:
            payload = cols.join(r, spec, overlays.get(r["id"]))
            vec = _as_float32(r["content_vector"]) if vector else None
            out.append(Record(store.name, r["id"], payload, vector=vec))
        return out

    def lossy_fields(self, store: StoreInfo) -> Dict[str, str]:
        if store.kind is StoreKind.VECTOR:
            return {PER_RECORD_VECTOR: PER_RECORD_VECTOR_LOST}
        return {}

    def looked_for(self) -> str:
        return (f"rows of workspace {self.ws!r} in the LIGHTRAG_* tables, and nodes in the AGE graph "
                f"{self.graph!r}, of {where(self.config)}")

    async def check_target(self, stores: List[StoreInfo], *, sizes: Dict[str, Optional[int]]) -> List[Check]:
        """Server version, extensions, privileges (the checks of ``validate``), and what the vector
        stores need: a LightRAG table for their namespace, the embedding model that names it, and the
        dimension LightRAG will read with."""
        from .health import validate

        checks = await validate(self.config)
        vectors = [s for s in stores if s.kind is StoreKind.VECTOR]
        if not vectors:
            return checks
        no_table = [s.namespace for s in vectors if s.namespace not in naming.VECTOR_BASE_TABLES]
        checks.append(Check(
            "vector stores have LightRAG tables", not no_table, ", ".join(no_table) or ", ".join(s.name for s in vectors),
            f"LightRAG's PostgreSQL storage has no table for {', '.join(no_table)}; migrate to a JSON target instead"
            if no_table else ""))
        model = self.config.embedding_model
        checks.append(Check(
            "embedding model", bool(model), model or "not set",
            "" if model else "LightRAG names PostgreSQL vector tables after the embedding model: add "
            "?embedding_model=NAME (the model_name of your LightRAG EmbeddingFunc) to the target URL, or "
            "--embedding-model to 'db register'"))
        dims = {s.name: s.embedding_dim or self.config.embedding_dim for s in vectors}
        unknown = sorted(n for n, d in dims.items() if not d)
        wrong = sorted(n for n, d in dims.items() if d and self.config.embedding_dim and d != self.config.embedding_dim)
        detail = ", ".join(f"{n}: {d}" for n, d in dims.items())
        fix = ""
        if unknown:
            fix = "the source does not say the dimension: add ?embedding_dim=N to the target URL"
        elif wrong:
            fix = (f"the target is configured for embedding_dim={self.config.embedding_dim} but "
                   f"{', '.join(wrong)} hold other dimensions; LightRAG would not find those tables: set "
                   f"embedding_dim to the source's dimension")
        checks.append(Check("embedding dimension", not fix, detail, fix))
        return checks

    # -- writing ---------------------------------------------------------------

    async def is_empty(self) -> bool:
        for table in [*naming.KV_TABLES.values(), naming.DOC_STATUS_TABLE, naming.EXTRA_KV_TABLE]:
            if await self._has_rows(table):
                return False
        if await self._vector_tables_for_read():
            return False
        return not await age.count(self.conn, self.graph, "base")

    def copy_order(self, stores: List[StoreInfo]) -> List[StoreInfo]:
        # text_chunks first (VDB_CHUNKS takes chunk_order_index / tokens from it), then the vector
        # stores, whose index builds (most of the time of a load) then overlap the remaining stores.
        def rank(s: StoreInfo) -> int:
            if s.kind is StoreKind.KV and s.namespace == "text_chunks":
                return 0
            return 1 if s.kind is StoreKind.VECTOR else 2
        return sorted(stores, key=rank)  # stable: the rest keep their order (nodes before edges)

    async def _require_extensions(self) -> None:
        from .health import validate

        failed = [c for c in await validate(self.config) if not c.ok]
        if failed:
            raise TargetError("; ".join(f"{c.detail} (fix: {c.fix})" for c in failed))

    async def prepare_target(self, stores: List[StoreInfo], job: MigrationJob, *, force: bool) -> None:
        await self._require_extensions()
        await self._lock_workspace()
        await ownschema.ensure(self.conn)
        vectors: Dict[str, int] = {}
        for s in stores:
            if s.kind is StoreKind.VECTOR:
                if s.namespace not in naming.VECTOR_BASE_TABLES:
                    raise TargetError(f"vector store {s.namespace!r} has no LightRAG PostgreSQL table; migrate it to JSON")
                dim = s.embedding_dim or self.config.embedding_dim
                if not dim:
                    raise TargetError(f"the embedding dimension of {s.namespace} is unknown; add ?embedding_dim=N to the target URL")
                if not self.config.embedding_model:
                    raise TargetError(
                        "LightRAG names PostgreSQL vector tables after the embedding model; add "
                        "?embedding_model=NAME (the model_name your LightRAG EmbeddingFunc uses) to the target URL")
                vectors[s.namespace] = dim
            elif s.kind in (StoreKind.KV, StoreKind.DOC_STATUS) and s.namespace not in naming.KV_TABLES and s.namespace != "doc_status":
                pass  # extra KV store: hybridrag_extra_kv
        self._vector_dims = vectors
        self._target_stores = list(stores)
        await self._refuse_index_type_change(vectors)
        graph = any(s.kind in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES) for s in stores)
        self.vector_tables = await create_schema(
            self.config, self.ws, [*STANDARD_KV_NAMESPACES, "doc_status"], vectors, graph)
        fresh = not any(cp.migrated_count or cp.done for cp in job.checkpoints)
        if force and fresh:
            await self._clear_workspace()
        await self._prepare_vector_indexes(stores, job)

    async def _clear_workspace(self) -> None:
        async with self.conn.transaction():
            for table in [*naming.KV_TABLES.values(), naming.DOC_STATUS_TABLE, naming.EXTRA_KV_TABLE,
                          naming.OVERLAY_TABLE, *self.vector_tables.values()]:
                if await self._table_exists(table):
                    await self.conn.execute(f"DELETE FROM {table} WHERE workspace = $1", self.ws)
            if await age.graph_exists(self.conn, self.graph):
                g = naming.quote_ident(self.graph)
                await self.conn.execute(f'DELETE FROM {g}."DIRECTED"')
                await self.conn.execute(f"DELETE FROM {g}.base")

    # -- vector indexes (vector_index.py: the layout and the strategies) ------------

    async def _refuse_index_type_change(self, vectors: Dict[str, int]) -> None:
        """LightRAG's initialize() drops a table's vector index of the other type (hnsw <-> ivfflat) and
        builds its own over every workspace's rows: refuse before it runs when others use the table."""
        for ns, dim in vectors.items():
            table = naming.vector_table(ns, self.config.embedding_model, dim)
            state = await vix.inspect(self.conn, table, self.config.vector_index_type)
            if state.other_kind and state.shared is None and any(n for w, n in state.rows.items() if w != self.ws):
                raise TargetError(
                    f"{state.table} has a {state.other_kind} vector index that other workspaces use; with "
                    f"vector_index_type={self.config.vector_index_type} LightRAG would drop it and rebuild it over "
                    f"the whole table: add ?vector_index_type={state.other_kind} to the target URL")

    async def _choose_indexes(self, todo: List[Tuple[StoreInfo, int]], saved: Dict[str, Any]) -> List[tuple]:
        """(store, table, Choice, TableIndexes) per vector store with ``new_rows`` to load. The strategy:
        the index_strategy option (--index-strategy), else the one the job started with, else auto."""
        requested = str((self.config.extra_options or {}).get("index_strategy") or "").strip().lower()
        out = []
        for store, new_rows in todo:
            dim = store.embedding_dim or self.config.embedding_dim
            table = self.vector_tables.get(store.namespace) or naming.vector_table(
                store.namespace, self.config.embedding_model, dim)
            state = await vix.inspect(self.conn, table, self.config.vector_index_type)
            prior = (saved.get(table.lower()) or {}).get("strategy")
            strategy = requested or (prior if prior in ("partial", "incremental") else "auto")
            choice = vix.choose(state, self.ws, new_rows, dim, strategy, vix.writers(self.config))
            if strategy != "auto":
                choice.reason += " (--index-strategy)" if requested else " (as the job started)"
            out.append((store, table, choice, state))
        return out

    async def plan_target(self, stores: List[Tuple[StoreInfo, Optional[int]]]) -> List[str]:
        """Plan notes: the index strategy of each vector table and its estimated time."""
        todo = [(s, n or 0) for s, n in stores if s.kind is StoreKind.VECTOR
                and s.namespace in naming.VECTOR_BASE_TABLES and (s.embedding_dim or self.config.embedding_dim)]
        if not todo or not self.config.embedding_model:
            return []
        try:
            return [choice.note() for _, _, choice, _ in await self._choose_indexes(todo, {})]
        except TargetError as exc:
            return [f"vector indexes: {exc}"]

    async def _prepare_vector_indexes(self, stores: List[StoreInfo], job: MigrationJob) -> None:
        """Set each vector table up for its strategy before any row is written. No other workspace
        loses its index at any moment (see vector_index.exclude)."""
        todo = []
        for s in stores:
            if s.kind is StoreKind.VECTOR:
                cp = job.checkpoint(s.name)
                todo.append((s, max(0, cp.total_count - cp.migrated_count) if cp else 0))
        defer = str((self.config.extra_options or {}).get("defer_index", "")).lower() in ("1", "true", "yes")
        for store, table, choice, state in await self._choose_indexes(todo, job.options.get("vector_indexes") or {}):
            cp = job.checkpoint(store.name)
            try:
                if defer and choice.strategy != "none":
                    await self._defer_index(table, state)
                    choice.strategy, choice.reason = "deferred", "defer_index=1: LightRAG builds the index on its next start"
                elif choice.strategy == "partial":
                    state = await vix.exclude(self.config, table, self.ws)
                    if not (cp and cp.done) and self.ws in state.own:
                        await vix.drop_own(self.config, table, self.ws)  # rebuilt once the rows are in
                if choice.strategy != "deferred":
                    await vix.drop_invalid(self.config, state, self.ws)
            except (TargetError, MigrationInterrupted):
                raise
            except RETRYABLE as exc:
                raise MigrationInterrupted(
                    f"lost the connection to {where(self.config)} while preparing the vector indexes of {table}: "
                    f"{type(exc).__name__}: {redact(exc)}; every index other workspaces use is in place; "
                    f"resume with --resume {job.job_id}") from exc
            except asyncpg.PostgresError as exc:
                raise TargetError(
                    f"preparing the vector indexes of {table} on {where(self.config)} failed: {type(exc).__name__}: "
                    f"{redact(exc)}; every index other workspaces use is in place: fix the cause "
                    f"(e.g. maintenance_work_mem) and resume with --resume {job.job_id}") from exc
            self._index_choices[table.lower()] = choice.to_dict()
        job.options["vector_indexes"] = dict(self._index_choices)

    async def _defer_index(self, table: str, state: "vix.TableIndexes") -> None:
        """defer_index=1 (load without any index; LightRAG builds its own on its next start): only where no
        other workspace has rows, since dropping the table's index would take it away from them."""
        others = sorted(w for w, n in state.rows.items() if n and w != self.ws)
        if others:
            raise TargetError(
                f"defer_index=1 would drop the vector index of {state.table}, which {len(others)} other workspace(s) "
                f"use ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); remove defer_index from the URL")
        async with vix.maintenance_connection(self.config, table) as conn:
            for name in [vix.shared_name(table, self.config.vector_index_type), *(i.name for i in state.own.values())]:
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")

    def _start_index_build(self, namespace: str, job: MigrationJob) -> None:
        table = self.vector_tables[namespace]
        if table not in self._builds:
            self._builds[table] = asyncio.create_task(self._build_vector_index(table, job))

    async def _build_vector_index(self, table: str, job: MigrationJob) -> None:
        """The workspace's own index (CREATE INDEX CONCURRENTLY on a connection of its own, ``index_builds``
        at a time) unless its rows went into an index that covers them (incremental), then ANALYZE. A build
        cut short leaves an invalid index no query uses; the next run drops it and builds again."""
        choice = self._index_choices.get(table.lower(), {})
        strategy = choice.get("strategy")
        if strategy == "deferred":
            return
        if strategy == "none":
            job.options.setdefault("notes", []).append(f"{table}: no {self.config.vector_index_type} index ({choice['reason']})")
            return

        async def build() -> None:
            if strategy != "partial":
                async with vix.maintenance_connection(self.config) as conn:
                    state = await vix.inspect(conn, table, self.config.vector_index_type, count_rows=False)
                    if state.covered_by(self.ws):
                        await conn.execute(f"ANALYZE {table}")
                        return
            await vix.build_own(self.config, table, self.ws)

        async with self._build_slots:  # a server restart cancels the build: it starts again
            await self._retrying(build, f"building the vector index of {table}",
                                 f"the rows are in place; resume with --resume {job.job_id} to build it")

    async def _finish_index_builds(self, job: MigrationJob) -> None:
        for ns in self._vector_dims:  # a resumed job: stores finished by the interrupted run too
            self._start_index_build(ns, job)
        results = await asyncio.gather(*self._builds.values(), return_exceptions=True)
        failed = [(t, r) for t, r in zip(self._builds, results) if isinstance(r, BaseException)]
        self._builds = {}
        if failed:
            table, exc = failed[0]
            if isinstance(exc, (TargetError, MigrationInterrupted)):
                raise exc
            raise TargetError(
                f"building the vector index of {table} on {where(self.config)} failed: {type(exc).__name__}: "
                f"{redact(exc)}; the rows are in place: fix the cause (e.g. maintenance_work_mem, disk space) "
                f"and resume the job to build it again") from exc

    def screen(self, store: StoreInfo, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
        """Refuse, by name, what PostgreSQL would refuse for the whole batch: a NUL character in the key or
        in a value a LightRAG column or AGE holds, a key longer than LightRAG's id column, a chunk id
        longer than VDB chunk_ids' elements, a vector that is missing or not finite (pgvector); and lone
        surrogates (UTF-8 text cannot hold them), NaN / Infinity and integers beyond 64 bits (values the
        JSON reader reads as json.load does; see hybridrag_backends.jsonvalues)."""
        if store.kind in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES):
            kind = "graph"
        elif store.kind is StoreKind.VECTOR:
            kind = "vector"
        else:
            kind = "kv" if cols.table_for(store.namespace) else "extra"
        candidates, refused = screen_json_only(store.name, records)
        kept: List[Record] = []
        for r in candidates:
            reason = cols.refusal(store.namespace, kind, r.key, r.payload)
            if reason is None and kind == "vector":
                if r.vector is None:
                    reason = "the record has no vector"
                elif not np.isfinite(np.asarray(r.vector, dtype=np.float32)).all():
                    reason = "the vector holds NaN or infinite values, which pgvector cannot store"
            if reason is None:
                kept.append(r)
            else:
                refused.append(RejectedRecord(store.name, r.key, reason, r.location, cursor=r.position, side="target"))
        return kept, refused

    async def write_batch(self, store: StoreInfo, records: List[Record], job: MigrationJob) -> None:
        # A key twice in one batch (a JSON object with a duplicate key): the last one wins, as in
        # LightRAG's json.load; ON CONFLICT cannot touch a row twice in one statement.
        records = list({r.key: r for r in records}.values())

        async def write() -> None:
            self._new_vertices = {}
            async with self.conn.transaction():
                await self._write(store, records)
                await self._save_job(job)
            self._vertex_ids.add(self._new_vertices)  # known only once committed

        await self._retrying(
            write, f"writing {store.name}",
            f"the checkpoint of the last committed batch is saved; resume with --resume {job.job_id}",
            on_retry=self._reconnect)

    async def _retrying(self, attempt: Callable[[], Awaitable[None]], doing: str, then: str,
                        on_retry: Optional[Callable[[], Awaitable[None]]] = None) -> None:
        """Run ``attempt``; when the connection is lost, wait (``retry_backoff`` doubling up to 8 s),
        call ``on_retry`` and run it again; after ``retry_attempts`` retries raise MigrationInterrupted
        (exit 5) saying what was being done and ``then``, what the user can do."""
        delay = self.retry_backoff
        for n in range(self.retry_attempts + 1):
            try:
                return await attempt()
            except RETRYABLE as exc:
                if n == self.retry_attempts:
                    raise MigrationInterrupted(
                        f"lost the connection to {where(self.config)} while {doing} and could not reconnect "
                        f"after {self.retry_attempts} tries ({type(exc).__name__}: {redact(exc)}); {then}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
                if on_retry is not None:
                    await on_retry()

    async def _reconnect(self) -> None:
        for c in (self.conn, self.lock_conn, *(w for w, _ in self._writers)):
            if c is not None:
                c.terminate()
        self.conn = self.lock_conn = None
        self._writers = []
        try:
            await self.connect()
            await self._lock_workspace()
        except (ConnectionFailure, OSError, asyncpg.PostgresError):
            self.conn = self.conn or _DeadConnection()  # the next attempt fails fast and retries

    async def _write(self, store: StoreInfo, records: List[Record]) -> None:
        if store.kind is StoreKind.GRAPH_NODES:
            if "hrb_stage_nodes" not in self._stages:
                await age.ensure_stages(self.conn)
                self._stages.add("hrb_stage_nodes")
            rows, overlays = age.node_rows(records)
            self._new_vertices = await age.upsert_nodes(self.conn, self.graph, rows)
            await self._replace_overlays(store, [r.key for r in records], overlays)
            return
        if store.kind is StoreKind.GRAPH_EDGES:
            # every edge attribute fits its agtype properties: edges never have an overlay row
            await age.upsert_edges(self.conn, self.graph, age.edge_rows(records), self._vertex_ids)
            return
        table = self._table(store)
        keys = [r.key for r in records]
        if table == naming.EXTRA_KV_TABLE:
            await self.conn.execute(
                f"DELETE FROM {table} WHERE workspace = $1 AND namespace = $2 AND id = ANY($3::text[])",
                self.ws, store.namespace, keys)
            await self.conn.copy_records_to_table(
                table, records=[(self.ws, store.namespace, r.key, orjson.dumps(r.payload).decode()) for r in records],
                columns=["workspace", "namespace", "id", "payload"])
            return
        vector = store.kind is StoreKind.VECTOR
        spec = cols.columns_for(store.namespace, vector)
        chunks = vector and store.namespace == "chunks"
        derived = ("full_doc_id",) if chunks else ()
        names = ["workspace", "id", *[c.column for c in spec]]
        if vector:
            names += ["content_vector", "update_time"]
        from_chunk: Dict[str, Any] = {}
        if chunks:
            # VDB_CHUNKS carries full_doc_id / chunk_order_index / tokens; NanoVectorDB lacks the last
            # two, LightRAG writes them from the chunk (text_chunks is migrated first).
            names += ["chunk_order_index", "tokens"]
            from_chunk = {r["id"]: r for r in await self.conn.fetch(
                f"SELECT id, full_doc_id, chunk_order_index, tokens FROM {naming.KV_TABLES['text_chunks']} "
                f"WHERE workspace = $1 AND id = ANY($2::text[])", self.ws, keys)}
        rows, overlays = [], []
        for r in records:
            payload = r.payload
            if vector and PER_RECORD_VECTOR in payload:  # content_vector is the only vector kept (lossy_fields)
                payload = {k: v for k, v in payload.items() if k != PER_RECORD_VECTOR}
            values, overlay = cols.split(payload, spec, derived)
            row = [self.ws, r.key, *[values[c.column] for c in spec]]
            if vector:
                if r.vector is None:
                    raise TargetError(f"{store.name} record {r.key!r} has no vector")
                vec = np.asarray(r.vector, dtype=np.float32)
                dim = store.embedding_dim or self._vector_dims.get(store.namespace)
                if dim and vec.shape != (dim,):  # named here, not a bare DataError from COPY
                    raise TargetError(f"{store.name} record {r.key!r} has a vector of shape {vec.shape}, the table "
                                      f"{table} holds {dim} dimensions; fix the source record")
                row += [vec, values.get("create_time")]
            if chunks:
                c = from_chunk.get(r.key)
                if c is not None and values.get("full_doc_id") is None:
                    row[names.index("full_doc_id")] = c["full_doc_id"]
                row += [c["chunk_order_index"], c["tokens"]] if c is not None else [None, None]
            rows.append(tuple(row))
            if overlay:
                overlays.append((r.key, overlay))
        await self._copy_rows(table, names, keys, rows)
        await self._replace_overlays(store, keys, overlays)

    async def _copy_rows(self, table: str, names: List[str], keys: List[str], rows: List[tuple],
                         conn: Optional[asyncpg.Connection] = None, stages: Optional[set] = None) -> None:
        """COPY ``rows`` into ``table``: straight in when none of the keys is there yet (a fresh load:
        one write per row), else through a temp table merged with INSERT ... ON CONFLICT DO UPDATE."""
        if conn is None and len(rows) > 1 and self._index_choices.get(table.lower(), {}).get("strategy") == "incremental":
            await self._copy_rows_parallel(table, names, keys, rows)
            return
        conn, stages = conn or self.conn, self._stages if stages is None else stages
        present = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE workspace = $1 AND id = ANY($2::text[])", self.ws, keys)
        if not present:
            await conn.copy_records_to_table(table.lower(), records=rows, columns=names)
            return
        stage = f"hrb_stage_{table.lower()}"
        if stage not in stages:
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            stages.add(stage)
        await conn.copy_records_to_table(stage, records=rows, columns=names)
        cols_sql = ", ".join(names)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in ("workspace", "id"))
        await conn.execute(
            f"INSERT INTO {table} ({cols_sql}) SELECT {cols_sql} FROM {stage} "
            f"ON CONFLICT (workspace, id) DO UPDATE SET {updates}")

    async def _copy_rows_parallel(self, table: str, names: List[str], keys: List[str], rows: List[tuple]) -> None:
        """Incremental strategy: pgvector inserts each row into the index covering the workspace, several
        times slower than the COPY itself, so slices of the batch go over ``index_writers`` connections,
        each committed on its own. Writing rows is idempotent and the job row (the checkpoint) commits after
        them on the main connection, so a crash between the two only makes the resume write them again."""
        n = vix.writers(self.config)
        while len(self._writers) < n:
            self._writers.append((await connect(self.config), set()))
        size = -(-len(rows) // n)

        async def write_slice(i: int) -> None:
            conn, stages = self._writers[i]
            async with conn.transaction():
                await self._copy_rows(table, names, keys[i * size:(i + 1) * size], rows[i * size:(i + 1) * size],
                                      conn, stages)

        await asyncio.gather(*(write_slice(i) for i in range(n) if i * size < len(rows)))

    async def _replace_overlays(self, store: StoreInfo, keys: List[str], overlays: List[tuple]) -> None:
        await self.conn.execute(
            f"DELETE FROM {naming.OVERLAY_TABLE} WHERE workspace = $1 AND store = $2 AND id = ANY($3::text[])",
            self.ws, store.name, keys)
        if overlays:
            await self.conn.copy_records_to_table(
                naming.OVERLAY_TABLE, records=[(self.ws, store.name, k, o) for k, o in overlays],
                columns=["workspace", "store", "id", "overlay"])

    async def finish_store(self, store: StoreInfo, job: MigrationJob) -> None:
        if store.kind is StoreKind.VECTOR:
            # Building HNSW takes longer than loading the rows: it runs while the next stores load.
            self._start_index_build(store.namespace, job)

    async def finish_target(self, job: MigrationJob) -> None:
        # Planner statistics for what this run loaded, gathered while the index builds finish (a
        # database-wide ANALYZE after them sat in the tail of every migration and sampled every other table
        # of the database too). A table with a build of ours is analyzed by that build's task: an ANALYZE
        # would wait for its CREATE INDEX CONCURRENTLY.
        analyzing = asyncio.ensure_future(self._analyze_loaded())
        try:
            await self._finish_index_builds(job)
        except BaseException:
            analyzing.cancel()
            await asyncio.gather(analyzing, return_exceptions=True)  # its connection is closed, not left behind
            raise
        await analyzing

    async def _analyze_loaded(self) -> None:
        """On a connection of its own: verification reads on self.conn meanwhile."""
        tables = {naming.OVERLAY_TABLE}
        for s in self._target_stores:
            if s.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
                tables.add(self._table(s))
            elif s.kind is StoreKind.VECTOR:
                table = self.vector_tables.get(s.namespace)
                if table and self._index_choices.get(table.lower(), {}).get("strategy") in ("deferred", "none"):
                    tables.add(table)
        conn = await connect(self.config, vectors=False)
        try:
            await conn.execute(SEARCH_PATH_SQL)
            if any(s.kind in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES) for s in self._target_stores):
                g = naming.quote_ident(self.graph)
                tables.update(f"{g}.{naming.quote_ident(r['relname'])}" for r in await conn.fetch(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = $1 AND c.relkind = 'r'", self.graph))
            await conn.execute(f"ANALYZE {', '.join(sorted(tables))}")
        finally:
            await conn.close()

    # -- jobs ------------------------------------------------------------------

    async def _save_job(self, job: MigrationJob) -> None:
        d = job.to_dict()
        await self.conn.execute(
            f"""INSERT INTO {naming.JOBS_TABLE} (job_id, database_name, source_backend, target_backend, status,
                    started_at, completed_at, total_records, migrated_records, failed_records, last_error,
                    checkpoints, created_at, workspace, job)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15::jsonb)
                ON CONFLICT (job_id) DO UPDATE SET status = EXCLUDED.status, started_at = EXCLUDED.started_at,
                    completed_at = EXCLUDED.completed_at, total_records = EXCLUDED.total_records,
                    migrated_records = EXCLUDED.migrated_records, failed_records = EXCLUDED.failed_records,
                    last_error = EXCLUDED.last_error, checkpoints = EXCLUDED.checkpoints, job = EXCLUDED.job""",
            job.job_id, d["database_name"][:255], d["source_backend"], d["target_backend"], d["status"],
            _naive(job.started_at), _naive(job.completed_at), job.total_records, job.migrated_records,
            job.failed_records, d["last_error"] or None,
            # to_dict() redacted the messages field by field; the rest (record keys) is data, kept as is
            orjson.dumps(d["checkpoints"]).decode(), _naive(job.created_at), self.ws, orjson.dumps(d).decode(),
        )

    async def save_job(self, job: MigrationJob) -> None:
        await ownschema.ensure(self.conn)
        await self._save_job(job)

    async def load_job(self, job_id: str) -> Optional[MigrationJob]:
        if not await self._table_exists(naming.JOBS_TABLE):
            return None
        raw = await self.conn.fetchval(f"SELECT job::text FROM {naming.JOBS_TABLE} WHERE job_id = $1", job_id)
        return MigrationJob.from_dict(orjson.loads(raw)) if raw else None


def _as_float32(value: Any) -> Optional[np.ndarray]:
    if value is None:
        return None
    if hasattr(value, "to_numpy"):  # pgvector's Vector
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


def _naive(value: Optional[datetime]) -> Optional[datetime]:
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _edge_key(a: str, b: str) -> str:
    from hybridrag_backends.provider import edge_key

    return edge_key(a, b)


class _DeadConnection:
    """Stands in for a connection that could not be re-opened, so the retry loop goes on."""

    def transaction(self):
        raise ConnectionError("not connected")

    def is_closed(self) -> bool:
        return True

    def terminate(self) -> None:
        pass
