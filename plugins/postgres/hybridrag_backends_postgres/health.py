"""validate() and metrics() against a live server. Every failure carries its fix; no password is shown."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List, Optional, Tuple

import asyncpg

from hybridrag_backends.errors import ConfigError, ConnectionFailure, TargetError
from hybridrag_backends.models import BackendConfig, BackendType, StorageMetrics
from hybridrag_backends.provider import Check

from . import naming
from .connect import LOCAL_SERVER_HINT, connect, psql_hint
from .vector_index import PGVECTOR_INDEX_MAX_DIM, inspect

MIN_VECTOR = (0, 5)
MAX_AGE_EXCLUSIVE = (1, 8)
METRICS_STATEMENT_TIMEOUT_MS = 1500


def _version(text: Optional[str]) -> Tuple[int, ...]:
    parts = []
    for piece in (text or "").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


async def _extensions(conn: asyncpg.Connection) -> Dict[str, Dict[str, Optional[str]]]:
    rows = await conn.fetch(
        "SELECT a.name, a.default_version, e.extversion FROM pg_available_extensions a "
        "LEFT JOIN pg_extension e ON e.extname = a.name WHERE a.name IN ('vector', 'age')"
    )
    return {r["name"]: {"available": r["default_version"], "installed": r["extversion"]} for r in rows}


async def validate(config: BackendConfig) -> List[Check]:
    checks: List[Check] = []
    try:
        conn = await connect(config, vectors=False)
    except (ConnectionFailure, ConfigError) as exc:
        return [Check("connect", False, str(exc), f"start the server or fix host, port or credentials; for a local server with both extensions, {LOCAL_SERVER_HINT}")]
    try:
        version = await conn.fetchval("SHOW server_version_num")
        checks.append(Check("connect", True, f"PostgreSQL {int(version) // 10000} at {config.postgres_host}:{config.postgres_port}"))
        if int(version) < 140000:
            checks.append(Check("server version", False, f"server is {version}", "use PostgreSQL 14 or newer"))
        exts = await _extensions(conn)
        checks.append(_extension_check("vector", exts, lambda v: v >= MIN_VECTOR, "pgvector >= 0.5", config))
        checks.append(_extension_check("age", exts, lambda v: v < MAX_AGE_EXCLUSIVE, "Apache AGE < 1.8", config))
        try:
            preload = await conn.fetchval("SHOW shared_preload_libraries")
        except asyncpg.InsufficientPrivilegeError:  # only pg_read_all_settings may read it: not an error
            checks.append(Check("age preloaded", True, "shared_preload_libraries is not visible to this user; "
                                "not checked (age must be in it: LightRAG never runs LOAD 'age')"))
        else:
            libraries = [p.strip() for p in (preload or "").split(",") if p.strip()]
            ok = "age" in libraries
            checks.append(Check(
                "age preloaded", ok, f"shared_preload_libraries = {preload!r}",
                "" if ok else "LightRAG never runs LOAD 'age': preload it, then restart the server; as a superuser "
                + psql_hint(config, f"ALTER SYSTEM SET shared_preload_libraries = '{','.join(libraries + ['age'])}'"),
            ))
        can_db, can_schema = await conn.fetchrow(
            "SELECT has_database_privilege(current_user, current_database(), 'CREATE'), "
            "has_schema_privilege(current_user, 'public', 'CREATE')"
        )
        checks.append(Check(
            "privileges", bool(can_db and can_schema),
            f"CREATE on database: {can_db}, CREATE on schema public: {can_schema}",
            "" if can_db and can_schema else "as a superuser " + psql_hint(
                config, f"GRANT CREATE ON DATABASE {naming.quote_ident(config.postgres_database)} TO "
                f"{naming.quote_ident(config.postgres_user)}; GRANT CREATE ON SCHEMA public TO "
                f"{naming.quote_ident(config.postgres_user)}"),
        ))
    finally:
        await conn.close()
    return checks


def _extension_check(name: str, exts: Dict[str, Dict[str, Optional[str]]], supported, wanted: str,
                     config: BackendConfig) -> Check:
    info = exts.get(name)
    if info is None:
        return Check(f"extension {name}", False, f"{name} is not available on the server",
                     f"install {wanted} on the server (e.g. the postgresql-NN-{'pgvector' if name == 'vector' else 'age'} package)")
    version = info["installed"] or info["available"]
    if not supported(_version(version)):
        return Check(f"extension {name}", False, f"{name} {version} is not supported", f"install {wanted}")
    if info["installed"] is None:
        return Check(f"extension {name}", False, f"{name} {version} is available but not created in this database",
                     "as a superuser " + psql_hint(config, f"CREATE EXTENSION IF NOT EXISTS {name}"))
    return Check(f"extension {name}", True, f"{name} {version}")


async def metrics(config: BackendConfig) -> StorageMetrics:
    """Sizes, counts and health. A server that cannot be reached gives is_connected=False and
    health 'error' (not an exception), so ``status`` can show it next to other databases."""
    started = time.perf_counter()
    try:
        conn = await connect(config, vectors=False)
    except (ConnectionFailure, ConfigError) as exc:
        return StorageMetrics(backend_type=BackendType.POSTGRESQL, is_connected=False, health="error", warnings=[str(exc)])
    try:
        await conn.fetchval("SELECT 1")
        latency = (time.perf_counter() - started) * 1000
        await conn.execute(f"SET statement_timeout = {METRICS_STATEMENT_TIMEOUT_MS}")
        return await asyncio.wait_for(_collect(conn, config, latency), timeout=2.0)
    except (asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return StorageMetrics(backend_type=BackendType.POSTGRESQL, is_connected=True, health="degraded",
                              warnings=[f"metrics incomplete: {type(exc).__name__}: {exc}"])
    finally:
        await conn.close()


async def _collect(conn: asyncpg.Connection, config: BackendConfig, latency: float) -> StorageMetrics:
    ws = config.postgres_workspace
    m = StorageMetrics(backend_type=BackendType.POSTGRESQL, connection_latency_ms=round(latency, 2))
    m.total_size_bytes = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    exts = await _extensions(conn)
    details: Dict[str, Any] = {
        "database": config.postgres_database,
        "workspace": ws,
        "extensions": {k: v["installed"] for k, v in exts.items()},
        "tables": {},
        "vector_tables": {},
    }
    tables = await conn.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS size FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
        "AND (c.relname LIKE 'lightrag\\_%' OR c.relname LIKE 'hybridrag\\_%')"
    )
    for row in tables:
        table = row["relname"]
        if table == naming.JOBS_TABLE:
            continue
        has_ws = await conn.fetchval(
            "SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = 'workspace'", table)
        if not has_ws:
            continue
        rows = int(await conn.fetchval(f"SELECT count(*) FROM {naming.quote_ident(table)} WHERE workspace = $1", ws))
        details["tables"][table] = {"rows": rows, "size_bytes": int(row["size"])}
        m.file_sizes[table] = int(row["size"])
        if table.startswith("lightrag_vdb_"):
            dim = await conn.fetchval(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'content_vector'", table)
            details["vector_tables"][table] = {"dimension": dim, "rows": rows,
                                               "index": await _covering_index(conn, config, table, rows)}
    counts = {t: d["rows"] for t, d in details["tables"].items()}
    for ns, table in naming.KV_TABLES.items():
        if table.lower() in counts:
            m.store_counts[ns] = counts[table.lower()]
    if naming.DOC_STATUS_TABLE.lower() in counts:
        m.store_counts["doc_status"] = counts[naming.DOC_STATUS_TABLE.lower()]
    for ns, base in naming.VECTOR_BASE_TABLES.items():
        n = sum(v["rows"] for t, v in details["vector_tables"].items() if t.startswith(base.lower()))
        if any(t.startswith(base.lower()) for t in details["vector_tables"]):
            m.store_counts[ns] = n
    graph = naming.graph_name(ws)
    details["graph"] = {"name": graph}
    if await conn.fetchval("SELECT 1 FROM ag_catalog.ag_graph WHERE name = $1", graph) if "age" in exts and exts["age"]["installed"] else None:
        nodes = await conn.fetchval(f"SELECT count(*) FROM {naming.quote_ident(graph)}.base") if await _has_label(conn, graph, "base") else 0
        edges = await conn.fetchval(f'SELECT count(*) FROM {naming.quote_ident(graph)}."DIRECTED"') if await _has_label(conn, graph, "DIRECTED") else 0
        details["graph"].update(nodes=int(nodes), edges=int(edges))
        m.store_counts["chunk_entity_relation.nodes"] = int(nodes)
        m.store_counts["chunk_entity_relation.edges"] = int(edges)
        m.entity_count, m.relation_count = int(nodes), int(edges)
    else:
        m.entity_count = m.store_counts.get("entities", 0)
        m.relation_count = m.store_counts.get("relationships", 0)
    m.chunk_count = m.store_counts.get("text_chunks", m.store_counts.get("chunks", 0))
    m.doc_count = m.store_counts.get("full_docs", m.store_counts.get("doc_status", 0))
    m.details = details
    for table, info in details["vector_tables"].items():
        if info["rows"] and info["index"] is None and info["dimension"] <= PGVECTOR_INDEX_MAX_DIM:
            m.warnings.append(
                f"{table}: no valid vector index holds workspace {ws!r}'s rows (a migration left unfinished?); "
                f"LightRAG searches them by scanning the table: resume or rerun the migration")
    problems = [name for name, v in details["extensions"].items() if v is None]
    if problems:
        m.health = "degraded"
        m.warnings.append(f"extension(s) not created in this database: {', '.join(problems)}; "
                          f"'hybridrag-backends validate' on the same target prints the command that creates them")
    return m


async def _covering_index(conn: asyncpg.Connection, config: BackendConfig, table: str, rows: int) -> Optional[str]:
    """The valid vector index holding the workspace's rows (its own, or LightRAG's shared one), if any."""
    if not rows:
        return None
    try:
        state = await inspect(conn, table, config.vector_index_type, count_rows=False)
    except TargetError:  # an index of unknown coverage: say so rather than guess
        return "unknown"
    return state.covered_by(config.postgres_workspace)


async def _has_label(conn: asyncpg.Connection, graph: str, label: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM ag_catalog.ag_label l JOIN ag_catalog.ag_graph g ON g.graphid = l.graph "
        "WHERE g.name = $1 AND l.name = $2", graph, label))
