"""Our HNSW builds use the server's parallel maintenance workers (real server).

LightRAG's vector rows keep their vectors out of line (TOAST), so the heap PostgreSQL sizes a build's
workers by is tiny and, left alone, every build of a LightRAG vector table ran on one core. The server
says which it did in a DEBUG1 message ("building index ... serially" / "using N parallel workers"); the
test reads that message on the very connection and statement a migration's build uses
(``maintenance_connection`` + ``_build``), and on a plain connection for contrast.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest

from hybridrag_backends_postgres import vector_index as vix

from hybridrag_backends.devtools.generate import GenerateSpec, generate
from hybridrag_backends.migration.engine import migrate
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.postgres
TABLE = "lightrag_vdb_entity_parallel_64d"
ROWS = 3000


async def _server_messages(conn: asyncpg.Connection, sql: str) -> str:
    messages: list = []
    conn.add_log_listener(lambda _c, msg: messages.append(msg.message))
    await conn.execute("SET client_min_messages = debug1")
    await conn.execute(sql)
    await conn.execute("SET client_min_messages = notice")
    return "\n".join(messages)


def test_build_uses_parallel_workers_although_the_vectors_live_in_toast(pg_fresh_db):
    config = resolve_target(f"{pg_fresh_db}?embedding_model=parallel&embedding_dim=64", workspace="w").config

    async def run() -> tuple:
        conn = await asyncpg.connect(pg_fresh_db)
        try:
            await conn.execute(f"CREATE TABLE {TABLE} (id text, workspace text, content_vector vector(64))")
            # 64-d vectors are stored inline; force them out of line the way LightRAG's 1536-d ones are
            await conn.execute(f"ALTER TABLE {TABLE} ALTER COLUMN content_vector SET STORAGE EXTERNAL")
            await conn.execute(
                f"INSERT INTO {TABLE} SELECT i::text, 'w', (SELECT array_agg(random())::vector(64) "
                f"FROM generate_series(1, 64) WHERE i > 0) FROM generate_series(1, {ROWS}) i")
            heap_bytes = await conn.fetchval(f"SELECT pg_relation_size('{TABLE}')")
            plain = await _server_messages(
                conn, f"CREATE INDEX plain_idx ON {TABLE} USING hnsw (content_vector vector_cosine_ops)")
        finally:
            await conn.close()
        async with vix.maintenance_connection(config, TABLE) as mconn:
            messages: list = []
            mconn.add_log_listener(lambda _c, msg: messages.append(msg.message))
            await mconn.execute("SET client_min_messages = debug1")
            await vix._build(mconn, "ours_idx", TABLE, vix.method_sql(config), "workspace = 'w'", {"workspace": "w"})
            valid = await mconn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ours_idx'::regclass")
        return heap_bytes, plain, "\n".join(messages), valid

    heap_bytes, plain, ours, valid = asyncio.run(run())
    assert heap_bytes < 8 * 1024 * 1024  # below min_parallel_table_scan_size: the case that ran serially
    assert "serially" in plain, plain  # what the server does for such a table without our session settings
    workers = [int(n) for n in re.findall(r"using (\d+) parallel workers", ours)]
    assert workers and workers[0] >= 1, ours
    assert valid is True


class _ShmFullOnce:
    """The real connection, except that the first CREATE INDEX fails the way a parallel build fails in a
    Docker container's 64 MB /dev/shm (that mount cannot be shrunk here without breaking every other server)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn, self.failed = conn, False

    async def execute(self, sql: str, *args):  # noqa: ANN201
        if sql.startswith("CREATE INDEX") and not self.failed:
            self.failed = True
            raise asyncpg.DiskFullError('could not resize shared memory segment "/PostgreSQL.1" to 536870912 '
                                        "bytes: No space left on device")
        return await self.conn.execute(sql, *args)

    async def fetchval(self, sql: str, *args):  # noqa: ANN201
        return await self.conn.fetchval(sql, *args)


def test_build_falls_back_to_one_core_when_shared_memory_is_short(pg_fresh_db):
    config = resolve_target(f"{pg_fresh_db}?embedding_model=parallel&embedding_dim=64", workspace="w").config

    async def run() -> tuple:
        async with vix.maintenance_connection(config, TABLE) as conn:
            await conn.execute(f"CREATE TABLE {TABLE} (id text, workspace text, content_vector vector(64))")
            await conn.execute(f"INSERT INTO {TABLE} SELECT i::text, 'w', (SELECT array_agg(random())::vector(64) "
                               f"FROM generate_series(1, 64) WHERE i > 0) FROM generate_series(1, 500) i")
            flaky = _ShmFullOnce(conn)
            await vix._build(flaky, "ours_idx", TABLE, vix.method_sql(config), "workspace = 'w'", {"workspace": "w"})
            valid = await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ours_idx'::regclass")
            return flaky.failed, valid, await conn.fetchval("SHOW max_parallel_maintenance_workers")

    failed, valid, workers = asyncio.run(run())
    assert failed and valid is True and workers == "0"


def test_a_migration_analyzes_the_tables_it_loaded_and_no_other(pg_fresh_db, tmp_path):
    """Planner statistics for every table the run loaded (KV, doc status, overlay, vector tables via their
    builds, the graph's label tables), and none for a table of the same database the run did not touch:
    the database-wide ANALYZE it replaced sampled every table there."""
    source = generate(tmp_path / "src", GenerateSpec(docs=4, chunks_per_doc=2, entities=10, relations=12, dim=16))

    async def run() -> dict:
        conn = await asyncpg.connect(pg_fresh_db)
        try:
            await conn.execute("CREATE TABLE bystander (id int); INSERT INTO bystander SELECT generate_series(1, 10)")
            target = resolve_target(f"{pg_fresh_db}?embedding_model=analyze&embedding_dim=16", workspace="w",
                                    for_write=True)
            await migrate(resolve_target(str(source.directory)), target, batch_size=50)
            rows = await conn.fetch("SELECT schemaname, relname, last_analyze FROM pg_stat_user_tables "
                                    "WHERE (n_live_tup > 0 AND schemaname <> 'ag_catalog') OR relname = 'bystander'")
            return {f"{r['schemaname']}.{r['relname']}": r["last_analyze"] for r in rows}
        finally:
            await conn.close()

    analyzed = asyncio.run(run())
    assert analyzed.pop("public.bystander") is None
    loaded = [t for t in analyzed if not t.startswith("public.hybridrag_migration_jobs")]
    for expected in ("public.lightrag_doc_full", "public.lightrag_doc_status", "public.lightrag_vdb_entity_analyze_16d",
                     "public.lightrag_vdb_relation_analyze_16d", "w_chunk_entity_relation.DIRECTED"):
        assert expected in loaded, sorted(analyzed)
    assert [t for t in loaded if analyzed[t] is None] == []
