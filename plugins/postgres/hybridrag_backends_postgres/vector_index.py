"""Vector indexes of LightRAG's vector tables, which every workspace of one embedding model shares.

LightRAG 1.5.7 makes one index per vector table, ``idx_<table>_<type>_cosine`` (the *shared* index),
and searches with ``WHERE workspace = $1 ... ORDER BY content_vector <=> $4 LIMIT $3``. Dropping it to
load a workspace fast takes it away from every other workspace; rebuilding it costs the whole table.

The layout a migration leaves instead:

* each migrated workspace gets an *own* partial index, ``... WHERE workspace = '<ws>'``, built once after
  its rows are in (build speed, not insert speed: 3-5x faster per row), with ``CREATE INDEX CONCURRENTLY``,
  so nobody's reads or writes wait for it;
* the shared index keeps LightRAG's name (so ``initialize()`` finds it and builds nothing) and becomes
  partial too: ``WHERE workspace <> ALL(ARRAY[<workspaces with an own index>])``. It serves every other
  workspace, including those LightRAG creates later, and receives none of a migrated workspace's rows.

LightRAG's query binds the workspace as ``$1``; PostgreSQL plans each execution with the value
(a *custom* plan) and proves ``workspace = 'x'`` implies an index's predicate, so the own index (or the
shared one) is used. After five executions of a prepared statement it may switch to one *generic* plan,
which cannot use a partial index; it does so only when the generic plan is estimated cheaper than the
custom ones, and without an index the generic plan is a scan of the whole table, so it is not chosen
(``tests/test_postgres_shared.py`` checks it with LightRAG's own prepared statements).

Strategies for one table of one run (``--index-strategy``, URL option ``index_strategy``):

``partial``
    the workspace gets its own index. If the shared index still covers it, it is replaced first: every
    other workspace it covers gets an own index (built concurrently), then a new shared index excluding
    them is built concurrently and swapped in under LightRAG's name; the old one is dropped concurrently.
    Costs the workspace's rows plus, once, the rows of workspaces the shared index still covers.
``incremental``
    the indexes stay as they are; rows are written into the indexed table (pgvector inserts each into the
    index that covers the workspace) over ``index_writers`` connections. Costs the workspace's rows at
    insert speed.
``auto`` (default)
    the cheaper of the two by :func:`choose`'s estimate: partial unless the shared index covers many rows of
    other workspaces (a table LightRAG indexed itself) next to few new rows.

At every moment every other workspace has a valid index: new indexes become valid before an old one is
renamed or dropped, and a build cut short (SIGKILL, lost server) leaves an invalid index that is never
used and is dropped on the next run. Index DDL on one table is serialised across runs with an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional

import asyncpg
import orjson

from hybridrag_backends.errors import TargetError
from hybridrag_backends.models import BackendConfig

from .connect import connect

STRATEGIES = ("auto", "partial", "incremental")
PGVECTOR_INDEX_MAX_DIM = 2000
# PostgreSQL proves "x = 'a'" implies "x <> ALL(ARRAY[...])" only for arrays of at most 100 elements
# (predtest.c MAX_SAOP_ARRAY_SIZE); beyond that the shared index would serve nobody.
MAX_EXCLUDED = 100
COMMENT_TAG = "hybridrag_backends "
MEM_RE = re.compile(r"^\d+\s*(kB|MB|GB)$")

# Measured on the project's 2-core machine (PostgreSQL 17, pgvector 0.8, m=16, ef_construction=64,
# maintenance_work_mem 512MB, benchmarks/bench_postgres_shared.py --strategies): vector dimensions
# handled per second. A build indexes ~1,000 1536-d rows/s (measured when builds still ran serially, see
# PARALLEL_BUILD_SQL: with workers they are faster, so the estimate errs towards ``incremental``);
# inserting into an HNSW index ~230 rows/s per connection, a second connection adding ~60%.
BUILD_DIMS_PER_S = 1.5e6
INSERT_DIMS_PER_S = 0.35e6
EXTRA_WRITER_GAIN = 0.6

# LightRAG's vector rows keep their vectors out of line (TOAST), so the heap PostgreSQL sizes a build's
# parallel workers by is ~60 bytes a row: below min_parallel_table_scan_size (8MB) up to ~130,000 rows,
# and every HNSW build ran serially, on one core. For our own builds the heap size says nothing about the
# work, so the session lifts that threshold and the build gets the server's max_parallel_maintenance_workers
# (7,000 1536-d rows on 2 cores: 14.4 s serial, 8.7 s with 2 workers). Session-only: nobody's table changes.
PARALLEL_BUILD_SQL = "SET min_parallel_table_scan_size = 0"


def _index_name(table: str, suffix: str) -> str:
    from lightrag.kg.postgres_impl import _safe_index_name  # LightRAG's own rule (63-byte names)

    return _safe_index_name(table, suffix)


def shared_name(table: str, kind: str) -> str:
    """LightRAG's name for the table's index (what its initialize() looks for)."""
    return _index_name(table, f"{kind}_cosine")


def own_name(table: str, kind: str, workspace: str) -> str:
    return _index_name(table, f"{kind}_cosine_ws_{hashlib.md5(workspace.encode()).hexdigest()[:10]}")


def _side_name(table: str, kind: str, role: str) -> str:
    return _index_name(table, f"{kind}_cosine_{role}")


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def method_sql(config: BackendConfig) -> str:
    """``USING ...`` clause: the same access method and parameters LightRAG uses."""
    extra = config.extra_options or {}
    if config.vector_index_type == "ivfflat":
        return f"USING ivfflat (content_vector vector_cosine_ops) WITH (lists = {int(extra.get('ivfflat_lists', 100))})"
    return (f"USING hnsw (content_vector vector_cosine_ops) "
            f"WITH (m = {int(config.hnsw_m)}, ef_construction = {int(config.hnsw_ef)})")


def maintenance_mem(config: BackendConfig) -> str:
    mem = str((config.extra_options or {}).get("maintenance_work_mem", "512MB"))
    if not MEM_RE.match(mem):
        raise TargetError(f"maintenance_work_mem={mem!r} is not a size like 512MB or 1GB")
    return mem


# -- what is there --------------------------------------------------------------------------------


@dataclass
class Index:
    name: str
    valid: bool
    excludes: Optional[FrozenSet[str]] = None  # shared index: None = every workspace (LightRAG's own form)


@dataclass
class TableIndexes:
    """The vector indexes of one table and its rows per workspace."""

    table: str
    kind: str
    shared: Optional[Index] = None
    own: Dict[str, Index] = field(default_factory=dict)  # workspace -> its own index
    leftovers: List[str] = field(default_factory=list)  # side indexes of a swap cut short
    rows: Dict[str, int] = field(default_factory=dict)
    other_kind: Optional[str] = None  # LightRAG's index of another type (initialize() would drop it)

    def covered_by(self, workspace: str) -> Optional[str]:
        """Name of a valid index that holds ``workspace``'s rows, if any."""
        own = self.own.get(workspace)
        if own is not None and own.valid:
            return own.name
        if self.shared is not None and self.shared.valid and self._shared_covers(workspace):
            return self.shared.name
        return None

    def _shared_covers(self, workspace: str) -> bool:
        # no shared index at all: the one made next covers every workspace without an own index
        return self.shared is None or self.shared.excludes is None or workspace not in self.shared.excludes

    def to_convert(self, workspace: str) -> Dict[str, int]:
        """Other workspaces the shared index covers (they get an own index before it stops covering them)."""
        if not self._shared_covers(workspace):
            return {}
        return {ws: n for ws, n in self.rows.items()
                if ws != workspace and n and self._shared_covers(ws)
                and not (ws in self.own and self.own[ws].valid)}


async def inspect(conn: asyncpg.Connection, table: str, kind: str, *, count_rows: bool = True) -> TableIndexes:
    state = TableIndexes(table.lower(), kind)
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{state.table}"):
        return state
    shared = shared_name(table, kind)
    sides = {_side_name(table, kind, "next"), _side_name(table, kind, "old")}
    other_kinds = {shared_name(table, k): k for k in ("hnsw", "ivfflat") if k != kind}
    rows = await conn.fetch(
        "SELECT c.relname AS name, i.indisvalid AS valid, i.indpred IS NOT NULL AS partial, "
        "obj_description(c.oid, 'pg_class') AS comment FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = $1::regclass", f"public.{state.table}")
    for r in rows:
        name, note = r["name"], _comment(r["comment"])
        if name == shared:
            excludes = None
            if r["partial"]:
                if "excludes" not in note:
                    raise TargetError(
                        f"the vector index {name} of {state.table} is partial but was not made by hybridrag-backends, "
                        f"so which workspaces it serves is unknown; drop it (DROP INDEX CONCURRENTLY {name}) and "
                        f"LightRAG recreates it on its next start, or migrate again")
                excludes = frozenset(note["excludes"])
            state.shared = Index(name, r["valid"], excludes)
        elif name in sides:
            state.leftovers.append(name)
        elif "workspace" in note:
            state.own[note["workspace"]] = Index(name, r["valid"])
        elif name in other_kinds:
            state.other_kind = other_kinds[name]
    if count_rows:
        state.rows = {r["workspace"]: int(r["n"]) for r in await conn.fetch(
            f"SELECT workspace, count(*) AS n FROM {state.table} GROUP BY workspace")}
    return state


def _comment(text: Optional[str]) -> Dict[str, Any]:
    if not text or not text.startswith(COMMENT_TAG):
        return {}
    try:
        value = orjson.loads(text[len(COMMENT_TAG):])
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def plan_vector_index(node: Dict[str, Any]) -> Optional[str]:
    """The index an ``EXPLAIN (FORMAT JSON)`` plan node (or a node below it) scans in cosine-distance
    order (``Order By: content_vector <=> ...``): a vector index serving the query; None when none does."""
    if "Index Name" in node and "<=>" in str(node.get("Order By", "")):
        return node["Index Name"]
    for child in node.get("Plans", []):
        found = plan_vector_index(child)
        if found:
            return found
    return None


# -- which strategy -------------------------------------------------------------------------------


@dataclass
class Choice:
    table: str
    strategy: str  # partial | incremental | none
    new_rows: int
    reindex_rows: int = 0  # rows of other workspaces that get an own index first (partial)
    reindex_workspaces: int = 0
    seconds: float = 0.0
    alternative_seconds: Optional[float] = None  # the other strategy's estimate
    reason: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def note(self) -> str:
        return f"vector index of {self.table}: {self.strategy}, about {_seconds(self.seconds)}: {self.reason}"


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def writers(config: BackendConfig) -> int:
    return max(1, int((config.extra_options or {}).get("index_writers", 2)))


def estimate_build(rows: int, dim: int) -> float:
    return rows * dim / BUILD_DIMS_PER_S


def estimate_insert(rows: int, dim: int, n_writers: int) -> float:
    return rows * dim / (INSERT_DIMS_PER_S * (1 + EXTRA_WRITER_GAIN * (n_writers - 1)))


def choose(state: TableIndexes, workspace: str, new_rows: int, dim: int, requested: str, n_writers: int) -> Choice:
    """The strategy for loading ``new_rows`` of ``workspace`` into ``state.table``: ``requested`` unless
    ``auto``, else the cheaper estimate."""
    if requested not in STRATEGIES:
        raise TargetError(f"index_strategy={requested!r} is not one of {', '.join(STRATEGIES)}")
    if dim > PGVECTOR_INDEX_MAX_DIM:
        return Choice(state.table, "none", new_rows,
                      reason=f"pgvector indexes at most {PGVECTOR_INDEX_MAX_DIM} dimensions ({dim}); LightRAG searches it exactly")
    convert = state.to_convert(workspace)
    reindex = sum(convert.values())
    partial = estimate_build(new_rows + reindex, dim)
    incremental = estimate_insert(new_rows, dim, n_writers)
    excluded = set(state.shared.excludes or ()) if state.shared else set()
    room = len(excluded | set(convert) | {workspace}) <= MAX_EXCLUDED
    if requested == "partial" and not room:
        raise TargetError(
            f"{state.table} already has {len(excluded)} workspaces with their own vector index; PostgreSQL cannot "
            f"use a shared index excluding more than {MAX_EXCLUDED}: use --index-strategy incremental")
    strategy = requested if requested != "auto" else ("partial" if partial <= incremental and room else "incremental")
    others = f"{reindex:,} rows of {len(convert)} other workspace(s)"
    if strategy == "partial":
        why = f"an own index for this workspace, built after its {new_rows:,} rows are in"
        why += f", after {others} get theirs (LightRAG's index still covers them)" if convert else ""
        seconds, alt = partial, incremental
    else:
        target = state.covered_by(workspace) or "an own index built at the end"
        why = f"{new_rows:,} rows inserted into {target} over {n_writers} connection(s)"
        if convert and requested == "auto":
            why += f"; cheaper than first giving an own index to {others}"
        seconds, alt = incremental, partial
    return Choice(state.table, strategy, new_rows, reindex if strategy == "partial" else 0,
                  len(convert) if strategy == "partial" else 0, seconds, alt, why)


# -- building -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def maintenance_connection(config: BackendConfig, table: Optional[str] = None):
    """A connection for index DDL: its memory, a quick end when its client dies, and (with ``table``)
    the table's index lock, so two runs never change one table's indexes at once."""
    conn = await connect(config, vectors=False)
    try:
        # a build whose client died (SIGKILL) stops within seconds instead of running on (PostgreSQL 14+)
        await conn.execute(f"SET maintenance_work_mem = '{maintenance_mem(config)}'; "
                           f"SET client_connection_check_interval = '2s'; {PARALLEL_BUILD_SQL}")
        if table is not None:
            # polled, not waited for inside a statement: a waiting statement holds a snapshot, which a
            # CREATE INDEX CONCURRENTLY of the lock's holder would wait for in turn (a deadlock)
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext('hybridrag_backends:vector_index:' "
                                          "|| current_database() || ':' || $1))", table.lower()):
                await asyncio.sleep(0.5)
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


async def _build(conn: asyncpg.Connection, name: str, table: str, method: str, where: str, comment: Dict[str, Any]) -> None:
    """CREATE INDEX CONCURRENTLY (no lock on anybody's reads or writes). An invalid index of that name
    (a build cut short) is dropped first: it is never used for reads but still slows every insert."""
    valid = await conn.fetchval(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace", name)
    if valid:
        return
    if valid is not None:
        await _drop(conn, name)
    for attempt in range(3):
        try:
            await conn.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} {method} WHERE {where}")
            break
        except (asyncpg.DiskFullError, asyncpg.OutOfMemoryError) as exc:
            if "shared memory" not in str(exc) or attempt == 2:
                raise
            # a parallel build keeps its graph in dynamic shared memory (/dev/shm, 64 MB in a default Docker
            # container): build on one core instead of failing
            await _drop(conn, name)
            await conn.execute("SET max_parallel_maintenance_workers = 0")
        except asyncpg.DeadlockDetectedError:
            # two concurrent builds (other runs) waited for each other; the server cancelled this one
            await _drop(conn, name)
            if attempt == 2:
                raise
            await asyncio.sleep(1.0 + attempt)
    await conn.execute(f"COMMENT ON INDEX {name} IS {literal(COMMENT_TAG + orjson.dumps(comment).decode())}")


async def build_own(config: BackendConfig, table: str, workspace: str) -> None:
    """The workspace's own index (no-op when a valid one exists), then ANALYZE."""
    kind = config.vector_index_type
    async with maintenance_connection(config, table) as conn:
        await _build(conn, own_name(table, kind, workspace), table, method_sql(config),
                     f"workspace = {literal(workspace)}", {"workspace": workspace})
        await conn.execute(f"ANALYZE {table}")


async def drop_own(config: BackendConfig, table: str, workspace: str) -> None:
    async with maintenance_connection(config, table) as conn:
        await _drop(conn, own_name(table, config.vector_index_type, workspace))


async def drop_invalid(config: BackendConfig, state: TableIndexes, workspace: str) -> None:
    """Remove what a run cut short left: swap side indexes and an invalid own index of ``workspace``
    (both would be maintained on every insert although no query can use them)."""
    own = state.own.get(workspace)
    names = list(state.leftovers) + ([own.name] if own is not None and not own.valid else [])
    if not names:
        return
    async with maintenance_connection(config, state.table) as conn:
        for name in names:
            await _drop(conn, name)


async def exclude(config: BackendConfig, table: str, workspace: str) -> TableIndexes:
    """Make the shared index stop covering ``workspace`` without any other workspace losing its index:
    own indexes for the other workspaces it covers, a new shared index beside the old, a rename swap
    in one short transaction, then the old one dropped. Idempotent; returns the state after."""
    kind = config.vector_index_type
    method = method_sql(config)
    async with maintenance_connection(config, table) as conn:
        state = await inspect(conn, table, kind)  # again, under the table's lock
        for name in state.leftovers:  # a swap cut short: the shared index of that name is still in place
            await _drop(conn, name)
        if state.shared is not None and state.shared.excludes is not None and workspace in state.shared.excludes:
            return state
        convert = state.to_convert(workspace)
        for ws in sorted(convert):
            await _build(conn, own_name(table, kind, ws), table, method, f"workspace = {literal(ws)}", {"workspace": ws})
        # workspaces with neither rows nor an own index here leave the list, so it stays short
        keep = {ws for ws in (state.shared.excludes or ()) if state.rows.get(ws) or ws in state.own} if state.shared else set()
        excludes = sorted(keep | set(convert) | {workspace})
        if len(excludes) > MAX_EXCLUDED:
            raise TargetError(f"{state.table}: more than {MAX_EXCLUDED} workspaces with their own vector index; "
                              f"use --index-strategy incremental")
        shared, nxt, old = shared_name(table, kind), _side_name(table, kind, "next"), _side_name(table, kind, "old")
        await _build(conn, nxt, table, method,
                     f"workspace <> ALL (ARRAY[{', '.join(literal(w) for w in excludes)}]::text[])",
                     {"excludes": excludes})
        async with conn.transaction():
            if state.shared is not None:
                await conn.execute(f"ALTER INDEX {shared} RENAME TO {old}")
            await conn.execute(f"ALTER INDEX {nxt} RENAME TO {shared}")
        await _drop(conn, old)
        await conn.execute(f"ANALYZE {table}")
        return await inspect(conn, table, kind)
