"""The PostgreSQL side of the harness: the server, scratch databases, and the physical floor.

The floor is what the server itself needs for the same rows, measured on the tables our migration
filled: ``COPY ... TO`` every table into client-side files in PostgreSQL's binary format (the
"COPY out" floor of reading), ``COPY ... FROM`` those files into tables of the same columns with no
index, key or constraint (the "COPY in" floor of loading), then the bare HNSW builds on the loaded
vector tables with the settings the migration uses (m, ef_construction, maintenance_work_mem, the
server's parallel maintenance workers with the same session settings, one build at a time).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlencode, urlsplit, urlunsplit

from hybridrag_backends_postgres.vector_index import PARALLEL_BUILD_SQL

from . import REPO

FLOOR_SCHEMA = "hrb_floor"


def server_url(explicit: Optional[str] = None) -> str:
    """``explicit``, else HYBRIDRAG_TEST_POSTGRES_URL, else the sandbox (``scripts/pg-sandbox start``,
    which reads HYBRIDRAG_PG_ROOT)."""
    url = explicit or os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL")
    if url:
        return url
    out = subprocess.run([str(REPO / "scripts" / "pg-sandbox"), "start"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: scripts/pg-sandbox start failed: {out.stderr.strip()[-500:]}; "
                         f"pass --url or set HYBRIDRAG_TEST_POSTGRES_URL")
    return out.stdout.strip().splitlines()[-1]


def with_database(url: str, database: str, **query: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, urlencode(query), ""))


async def _connect(url: str):
    import asyncpg

    return await asyncpg.connect(url.split("?", 1)[0])


async def server_info(url: str) -> Dict[str, object]:
    """Version, extension versions, the settings an index build uses, and the postmaster's pid
    (the parent of our backend; None when the server is not on this machine)."""
    import psutil

    conn = await _connect(url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        info: Dict[str, object] = {
            "version": await conn.fetchval("SHOW server_version"),
            "extensions": {r["extname"]: r["extversion"] for r in await conn.fetch(
                "SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'age')")},
            **{name: await conn.fetchval(f"SHOW {name}") for name in (
                "shared_buffers", "max_parallel_maintenance_workers", "max_wal_size", "synchronous_commit")},
        }
    finally:
        await conn.close()
    try:
        info["postmaster_pid"] = psutil.Process(backend).ppid()
    except psutil.Error:
        info["postmaster_pid"] = None
    return info


async def create_database(url: str, prefix: str) -> str:
    """A fresh database with pgvector and AGE; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await _connect(url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    conn = await _connect(with_database(url, name))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS age")
    finally:
        await conn.close()
    return name


async def drop_database(url: str, name: str) -> None:
    conn = await _connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def _tables(conn) -> List[tuple]:  # noqa: ANN001
    """(schema, table) of every table holding rows: LightRAG's and the AGE graph's label tables."""
    rows = await conn.fetch(
        "SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ag_catalog', $1) "
        "AND c.relname NOT LIKE 'hybridrag_jobs%' ORDER BY 1, 2", FLOOR_SCHEMA)
    found = []
    for r in rows:
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{r["s"]}"."{r["t"]}")'):
            found.append((r["s"], r["t"]))
    return found


async def floor(url: str, scratch: Path, *, hnsw_m: int, hnsw_ef: int, maintenance_work_mem: str) -> Dict[str, object]:
    """COPY out (to files under ``scratch``), COPY in (unindexed) and the bare HNSW builds of the rows in
    database ``url``."""
    conn = await _connect(url)
    result: Dict[str, object] = {}
    try:
        tables = await _tables(conn)
        await conn.execute(f"DROP SCHEMA IF EXISTS {FLOOR_SCHEMA} CASCADE; CREATE SCHEMA {FLOOR_SCHEMA}")
        with tempfile.TemporaryDirectory(prefix="floor-", dir=scratch) as tmp:
            files, formats = {}, {}
            started = time.perf_counter()
            for schema, table in tables:
                path = Path(tmp) / f"{schema}.{table}"
                try:
                    await conn.copy_from_table(table, schema_name=schema, output=str(path), format="binary")
                    formats[(schema, table)] = "binary"
                except Exception:  # a type without binary output: text, as pg_dump would
                    await conn.copy_from_table(table, schema_name=schema, output=str(path), format="text")
                    formats[(schema, table)] = "text"
                files[(schema, table)] = path
            result["copy_out_seconds"] = round(time.perf_counter() - started, 3)
            result["copy_bytes"] = sum(p.stat().st_size for p in files.values())
            result["tables"] = len(tables)
            result["text_format_tables"] = [f"{s}.{t}" for (s, t), f in formats.items() if f == "text"]
            for schema, table in tables:
                await conn.execute(f'CREATE TABLE {FLOOR_SCHEMA}."{schema}__{table}" (LIKE "{schema}"."{table}")')
            started = time.perf_counter()
            for (schema, table), path in files.items():
                await conn.copy_to_table(f"{schema}__{table}", schema_name=FLOOR_SCHEMA, source=str(path),
                                         format=formats[(schema, table)])
            result["copy_in_seconds"] = round(time.perf_counter() - started, 3)
        vector_tables = [f"{s}__{t}" for s, t in tables if t.startswith("lightrag_vdb_")]
        started = time.perf_counter()
        # the same session settings as the migration's builds (parallel workers despite the small heap)
        await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'; {PARALLEL_BUILD_SQL}")
        for table in vector_tables:
            await conn.execute(f'CREATE INDEX ON {FLOOR_SCHEMA}."{table}" USING hnsw (content_vector vector_cosine_ops) '
                               f"WITH (m = {int(hnsw_m)}, ef_construction = {int(hnsw_ef)})")
        result["hnsw_seconds"] = round(time.perf_counter() - started, 3)
        result["hnsw_indexes"] = len(vector_tables)
        result["hnsw_settings"] = {"m": hnsw_m, "ef_construction": hnsw_ef, "maintenance_work_mem": maintenance_work_mem,
                                   "session": PARALLEL_BUILD_SQL,
                                   "max_parallel_maintenance_workers": await conn.fetchval(
                                       "SHOW max_parallel_maintenance_workers")}
    finally:
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {FLOOR_SCHEMA} CASCADE")
        finally:
            await conn.close()
    return result


def run(coro):  # noqa: ANN001
    return asyncio.run(coro)
