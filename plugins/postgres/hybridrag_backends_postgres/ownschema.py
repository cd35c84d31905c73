"""hybridrag's own tables beside LightRAG's: jobs (the spec's), the field overlay, extra KV stores."""

from __future__ import annotations

import asyncpg

from . import naming

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {naming.JOBS_TABLE} (
        job_id VARCHAR(64) PRIMARY KEY,
        database_name VARCHAR(255) NOT NULL,
        source_backend VARCHAR(32) NOT NULL,
        target_backend VARCHAR(32) NOT NULL,
        status VARCHAR(32) NOT NULL DEFAULT 'pending',
        started_at TIMESTAMP,
        completed_at TIMESTAMP,
        total_records INTEGER DEFAULT 0,
        migrated_records INTEGER DEFAULT 0,
        failed_records INTEGER DEFAULT 0,
        last_error TEXT,
        checkpoints JSONB DEFAULT '[]'::jsonb,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        -- added: where it writes, and the whole MigrationJob (options, verification) for load_job
        workspace VARCHAR(255),
        job JSONB
    )""",
    # SPEC FIX: the sketch's "CREATE INDEX idx_migration_status" has no IF NOT EXISTS, so the second
    # migration into a database (every run creates the schema idempotently) would fail on it.
    f"CREATE INDEX IF NOT EXISTS idx_migration_status ON {naming.JOBS_TABLE}(status)",
    f"""CREATE TABLE IF NOT EXISTS {naming.OVERLAY_TABLE} (
        workspace VARCHAR(255) NOT NULL,
        store VARCHAR(255) NOT NULL,
        id TEXT NOT NULL,
        overlay JSON NOT NULL,
        PRIMARY KEY (workspace, store, id)
    )""",
    # JSON (not JSONB) keeps the source text exactly: key order, number spelling.
    f"""CREATE TABLE IF NOT EXISTS {naming.EXTRA_KV_TABLE} (
        workspace VARCHAR(255) NOT NULL,
        namespace VARCHAR(255) NOT NULL,
        id TEXT NOT NULL,
        payload JSON NOT NULL,
        PRIMARY KEY (workspace, namespace, id)
    )""",
]


async def ensure(conn: asyncpg.Connection) -> None:
    # Serialise concurrent creators (two sessions on a new database) on a fixed advisory key.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hybridrag_backends:ownschema'))")
        for ddl in DDL:
            await conn.execute(ddl)
