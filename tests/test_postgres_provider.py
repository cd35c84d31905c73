"""PostgreSQL provider: config, env, validate, metrics, isolation, injection, locking, secrets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from conftest import REALDATA

from hybridrag_backends.errors import ConfigError, TargetBusy, TargetError, ValidationFailure
from hybridrag_backends.migration import jobstore
from hybridrag_backends.migration.engine import migrate
from hybridrag_backends.migration.job import MigrationJob, MigrationStatus
from hybridrag_backends.plugins import get_provider
from hybridrag_backends.provider import StoreKind
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.postgres
MODEL = "test-embed"
REPO = Path(__file__).resolve().parents[1]


def test_config_env_and_describe_hold_no_password():
    p = get_provider("postgres")
    cfg = p.config_from_target(
        "postgresql://al%40ice:p%40ss%3Aw0rd@db.example:6543/kb?sslmode=require&embedding_model=text-embedding-3-small"
        "&embedding_dim=1536&vector_index_type=ivfflat&maintenance_work_mem=1GB", workspace="proj")
    assert (cfg.postgres_user, cfg.postgres_password, cfg.postgres_port) == ("al@ice", "p@ss:w0rd", 6543)
    assert cfg.embedding_model == "text-embedding-3-small" and cfg.embedding_dim == 1536
    assert cfg.extra_options == {"maintenance_work_mem": "1GB"}
    assert "w0rd" not in p.describe(cfg) and "w0rd" not in cfg.connection_string
    assert p.describe(cfg) == "postgres://al@ice@db.example:6543/kb#proj"
    env = p.env_vars(cfg)
    assert env["POSTGRES_PASSWORD"] == "p@ss:w0rd" and env["POSTGRES_WORKSPACE"] == "proj"
    assert env["POSTGRES_SSL_MODE"] == "require" and env["POSTGRES_VECTOR_INDEX_TYPE"] == "IVFFLAT"
    assert env["POSTGRES_HNSW_M"] == "16" and env["POSTGRES_MAX_CONNECTIONS"] == "10"
    assert p.secret_env_vars() == ("POSTGRES_PASSWORD",)
    assert p.storage_classes(cfg)["graph_storage"] == "PGGraphStorage"
    assert p.config_from_target("postgres://u@h/db").postgres_workspace == "default"


def test_workspace_injection_is_rejected():
    with pytest.raises(ConfigError, match="postgres_workspace"):
        resolve_target("postgresql://u:p@127.0.0.1/db", workspace="a'; DROP TABLE x; --")


def test_validate_and_metrics_on_live_server(pg_url):
    p = get_provider("postgres")
    cfg = p.config_from_target(pg_url)
    checks = asyncio.run(p.validate(cfg))
    assert all(c.ok for c in checks), checks
    assert {c.name for c in checks} >= {"connect", "extension vector", "extension age", "privileges"}
    m = asyncio.run(p.metrics(cfg))
    assert m.is_connected and m.health == "healthy" and m.details["extensions"]["age"]


def test_unreachable_server_gives_fix_and_no_password():
    p = get_provider("postgres")
    cfg = p.config_from_target("postgresql://u:s3cretpw@127.0.0.1:1/db")
    checks = asyncio.run(p.validate(cfg))
    assert not checks[0].ok and "run: hybridrag-backends postgres up" in checks[0].detail and "s3cretpw" not in checks[0].detail
    m = asyncio.run(p.metrics(cfg))
    assert not m.is_connected and m.health == "error" and "s3cretpw" not in str(m.warnings)


def test_missing_extension_reported_with_fix(pg_bare_db):
    provider = get_provider("postgres")
    checks = {c.name: c for c in asyncio.run(provider.validate(provider.config_from_target(pg_bare_db)))}
    assert not checks["extension vector"].ok and "CREATE EXTENSION IF NOT EXISTS vector" in checks["extension vector"].fix
    assert not checks["extension age"].ok


def _migrate(src_dir: Path, url: str, ws: str, **kw):
    src = resolve_target(str(src_dir))
    dst = resolve_target(f"{url}?embedding_model={MODEL}", workspace=ws)
    return asyncio.run(migrate(src, dst, batch_size=200, **kw)), src, dst


def test_two_workspaces_stay_isolated_and_metrics_count_them(pg_module_db):
    a, b = f"a_{uuid.uuid4().hex[:8]}", f"b_{uuid.uuid4().hex[:8]}"
    ra, src_a, dst_a = _migrate(REALDATA / "macking3__lucaOS__rag_storage", pg_module_db, a)
    rb, src_b, dst_b = _migrate(REALDATA / "ryvin__MultiFileRAG__rag_storage", pg_module_db, b)
    assert ra.job.verification["ok"] and rb.job.verification["ok"]

    async def counts(t):
        async with t.provider.open(t.config) as s:
            return {st.name: await s.count(st) for st in await s.list_stores()}

    ca, cb = asyncio.run(counts(dst_a)), asyncio.run(counts(dst_b))
    sa, sb = asyncio.run(counts(src_a)), asyncio.run(counts(src_b))
    assert ca == sa and cb == sb and ca != cb
    m = asyncio.run(dst_a.provider.metrics(dst_a.config))
    assert m.store_counts["chunk_entity_relation.nodes"] == sa["chunk_entity_relation.nodes"]
    assert m.store_counts["text_chunks"] == sa["text_chunks"] and m.health == "healthy"
    assert m.details["vector_tables"] and m.connection_latency_ms is not None
    # a second migration into a non-empty workspace is refused without --force, allowed with it
    with pytest.raises(TargetError, match="already holds data"):
        _migrate(REALDATA / "macking3__lucaOS__rag_storage", pg_module_db, a)
    again, _, _ = _migrate(REALDATA / "ryvin__MultiFileRAG__rag_storage", pg_module_db, a, force=True)
    assert again.job.verification["ok"] and asyncio.run(counts(dst_a)) == sb


def test_concurrent_migration_into_same_workspace_is_refused(pg_module_db):
    ws = f"lock_{uuid.uuid4().hex[:8]}"
    t = resolve_target(f"{pg_module_db}?embedding_model={MODEL}", workspace=ws)
    job = MigrationJob(job_id="j1", database_name="x", source_backend="json", target_backend="postgres")

    async def run():
        async with t.provider.open(t.config) as first, t.provider.open(t.config) as second:
            await first.prepare_target([], job, force=False)
            with pytest.raises(TargetError, match="another migration is writing into workspace"):
                await second.prepare_target([], job, force=False)
            job.transition(MigrationStatus.IN_PROGRESS)
            await first.save_job(job)
            # the engine claims the target before a job exists: exit 2, naming the job that holds it
            with pytest.raises(TargetBusy, match=r"another migration \(job j1\) is writing into workspace") as busy:
                await second.lock_target("j2")
            assert busy.value.exit_code == 2
        async with t.provider.open(t.config) as third:  # released when the first session closed
            await third.prepare_target([], job, force=False)

    asyncio.run(run())


def test_cli_migration_shows_no_password_anywhere(pg_module_db, tmp_path, _isolated_home):
    password = urlsplit(pg_module_db).password
    ws = f"cli_{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "hybridrag_backends", "migrate", "--from",
           str(REALDATA / "macking3__lucaOS__rag_storage"), "--to", f"{pg_module_db}?embedding_model={MODEL}",
           "--target-workspace", ws, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert password not in out.stdout and password not in out.stderr
    for f in Path(_isolated_home).rglob("*"):
        if f.is_file():
            assert password not in f.read_text(errors="replace"), f

    async def job_rows():
        c = await asyncpg.connect(pg_module_db)
        try:
            return [str(dict(r)) for r in await c.fetch("SELECT * FROM hybridrag_migration_jobs")]
        finally:
            await c.close()

    rows = asyncio.run(job_rows())
    assert rows and all(password not in r for r in rows)
    assert any('"status": "completed"' in r or "'completed'" in r for r in rows)


def test_target_without_extensions_is_refused_with_fix(pg_bare_db):
    # refused by the pre-flight, before any job exists: exit 2, no job file, nothing created in the database
    with pytest.raises(ValidationFailure, match="CREATE EXTENSION (IF NOT EXISTS )?vector") as err:
        _migrate(REALDATA / "macking3__lucaOS__rag_storage", pg_bare_db, "noext")
    assert err.value.exit_code == 2 and getattr(err.value, "job", None) is None
    assert jobstore.list_jobs() == [] and not jobstore.jobs_dir().exists()

    async def our_tables():
        conn = await asyncpg.connect(pg_bare_db)
        try:
            return [r["relname"] for r in await conn.fetch(
                "SELECT relname FROM pg_class WHERE relname LIKE 'hybridrag%' OR relname LIKE 'lightrag%'")]
        finally:
            await conn.close()

    assert asyncio.run(our_tables()) == []


@pytest.mark.parametrize("batches,expected", [
    # a key twice in one batch: the last one wins
    ([[("k", "a"), ("k", "b")]], [("k", "b")]),
    # a key again in a later batch: that batch is merged (ON CONFLICT DO UPDATE), not COPYed straight in
    ([[("a", "a1"), ("k", "k1")], [("k", "k2"), ("z", "z1")]], [("a", "a1"), ("k", "k2"), ("z", "z1")]),
], ids=["same-batch", "later-batch"])
def test_repeated_key_ends_once_with_its_last_value(pg_module_db, batches, expected):
    from hybridrag_backends.migration.job import MigrationCheckpoint
    from hybridrag_backends.provider import Record, StoreInfo

    ws = f"dup_{uuid.uuid4().hex[:8]}"
    t = resolve_target(f"{pg_module_db}?embedding_model={MODEL}", workspace=ws)
    store = StoreInfo("full_entities", StoreKind.KV)
    job = MigrationJob(job_id=f"job-{ws}", database_name="x", source_backend="json", target_backend="postgres")
    job.checkpoints = [MigrationCheckpoint(store.name, None, 0, sum(map(len, batches)))]

    async def run():
        async with t.provider.open(t.config) as s:
            await s.prepare_target([store], job, force=False)
            for batch in batches:
                await s.write_batch(store, [Record(store.name, k, {"entity_names": [v], "count": 1}) for k, v in batch], job)
            got = [r async for b in s.read(store) for r in b.records]
            assert [(r.key, r.payload["entity_names"][0]) for r in got] == expected

    asyncio.run(run())


def _vector_indexes(url: str) -> dict:
    """{index name: (table, valid, predicate)} of the HNSW indexes of LightRAG's vector tables."""
    async def go():
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT i.relname AS name, c.relname AS tab, x.indisvalid AS valid, pg_get_indexdef(x.indexrelid) AS def "
                "FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE c.relname LIKE 'lightrag_vdb_%' AND pg_get_indexdef(x.indexrelid) LIKE '%USING hnsw%'")
            return {r["name"]: (r["tab"], r["valid"], r["def"]) for r in rows}
        finally:
            await conn.close()

    return asyncio.run(go())


def _assert_own_and_shared(indexes: dict, ws: str, tables: int = 3) -> None:
    """Each vector table: the workspace's own index and LightRAG's (named as LightRAG names it) excluding it."""
    own = [d for _, v, d in indexes.values() if v and f"WHERE ((workspace)::text = '{ws}'::text)" in d]
    shared = [n for n, (_, v, d) in indexes.items() if v and n.endswith("_hnsw_cosine") and f"'{ws}'::text" in d
              and "<> ALL" in d]
    assert len(own) == len(shared) == tables, indexes
    assert all(v for _, v, _ in indexes.values()), indexes  # nothing half-built is left


def test_vector_stores_load_first_and_their_indexes_are_built(pg_fresh_db):
    """The PostgreSQL target loads text_chunks and the vector stores first (copy_order) and builds
    each HNSW index in the background; when migrate returns, every index exists and is valid: the
    workspace's own one, with LightRAG's parameters, and LightRAG's (for other workspaces) excluding it."""
    url = pg_fresh_db
    result, _, _ = _migrate(REALDATA / "ryvin__MultiFileRAG__rag_storage", url, "idx")
    assert result.job.verification["ok"]
    order = [s.store.name for s in result.plan.stores]
    vectors = [s.store.name for s in result.plan.stores if s.store.kind is StoreKind.VECTOR]
    assert order[0] == "text_chunks" and order[1:1 + len(vectors)] == vectors
    assert order.index("chunk_entity_relation.nodes") < order.index("chunk_entity_relation.edges")
    indexes = _vector_indexes(url)
    _assert_own_and_shared(indexes, "idx", len(vectors))
    assert all("m='16', ef_construction='64'" in d for _, _, d in indexes.values()), indexes
    assert [n.split(": ")[1].split(",")[0] for n in result.plan.target_notes] == ["partial"] * 3


def test_failed_index_preparation_fails_the_job_and_resume_builds_them(pg_fresh_db):
    url = pg_fresh_db
    src = resolve_target(str(REALDATA / "macking3__lucaOS__rag_storage"))
    bad = resolve_target(f"{url}?embedding_model={MODEL}&maintenance_work_mem=1kB", workspace="w")
    with pytest.raises(TargetError, match="preparing the vector indexes of .*maintenance_work_mem.*resume") as err:
        asyncio.run(migrate(src, bad, batch_size=200))
    assert err.value.job.status.value != "completed"
    assert all(v for _, v, _ in _vector_indexes(url).values())  # nothing half-built is left
    good = resolve_target(f"{url}?embedding_model={MODEL}", workspace="w")
    result = asyncio.run(migrate(src, good, batch_size=200, resume=err.value.job.job_id))
    assert result.job.status.value == "completed" and result.job.verification["ok"]
    _assert_own_and_shared(_vector_indexes(url), "w")
