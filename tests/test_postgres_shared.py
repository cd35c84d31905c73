"""A shared PostgreSQL (issue 13): migrating one workspace into vector tables other workspaces use never
leaves them without a vector index, and LightRAG 1.5.7 keeps working on every workspace afterwards.

Neighbours in one database: ``nb_ours`` migrated by us (its own partial index) and ``nb_lr`` kept the way
LightRAG keeps a workspace (its rows in LightRAG's index ``idx_<table>_hnsw_cosine``). While another
workspace is migrated in a subprocess (also SIGKILLed and resumed, and re-migrated with --force), the plan
of each neighbour's vector query is sampled every 0.5 s: the query LightRAG 1.5.7 sends, prepared by
asyncpg on LightRAG's own pool and run before each sample, explained with ``EXPLAIN EXECUTE`` of that very
prepared statement (so past its fifth execution, where PostgreSQL may switch to a generic plan). Every
sample must be an index scan ordered by the cosine distance.

Data: the project's generator with low-rank vectors (256-d rows spanned by 12 directions shared by all
workspaces, so the workspaces' vectors interleave): HNSW finds the exact top-10 of such data, so LightRAG's
results can be compared with brute-force cosine; the generator's random vectors have no exact top-10 that
an approximate index would find.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from unittest import mock

import asyncpg
import numpy as np
import orjson
import pytest

from pg_lightrag import check_top10, close_storages, lightrag_env, lookup_embedding, open_storages

from hybridrag_backends_postgres.lightrag_schema import environ_override
from hybridrag_backends_postgres.lightrag_schema import lightrag_env as lightrag_schema_env
from hybridrag_backends_postgres.vector_index import plan_vector_index

from hybridrag_backends.devtools import generate as gen
from hybridrag_backends.devtools.knowledge_base import VECTOR_BLOCK_ROWS, VECTOR_STORES, KnowledgeBase
from hybridrag_backends.migration.engine import migrate
from hybridrag_backends.migration.verify import verify_store
from hybridrag_backends.provider import StoreKind
from hybridrag_backends.targets import resolve_target

pytestmark = pytest.mark.postgres
MODEL = "shared-embed"
DIM = 256
RANK = 12
NEIGHBOURS = ("nb_ours", "nb_lr")


class _LowRank(KnowledgeBase):
    def matrix_blocks(self, store):
        basis = np.random.default_rng(4242).standard_normal((RANK, self.dim)).astype(np.float32)
        n = self.vector_count(store)
        for b, start in enumerate(range(0, n, VECTOR_BLOCK_ROWS)):
            rng = np.random.default_rng([self.seed, VECTOR_STORES.index(store), b])
            rows = rng.standard_normal((min(VECTOR_BLOCK_ROWS, n - start), RANK)).astype(np.float32) @ basis
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            yield rows


def _generate(path: Path, docs: int, seed: int) -> Path:
    with mock.patch.object(gen, "KnowledgeBase", _LowRank):
        gen.generate(path, gen.GenerateSpec(docs=docs, chunks_per_doc=4, dim=DIM, seed=seed))
    return path


def _cli(*args: str) -> list:
    return [sys.executable, "-m", "hybridrag_backends", "migrate", *args]


# -- sampling LightRAG's query plans -----------------------------------------------------------------


class PlanProbe:
    """LightRAG 1.5.7's PGVectorStorage of one workspace (entities), on LightRAG's own pool; ``sample()``
    runs its vector query, then explains the prepared statement asyncpg made for it on that pool."""

    def __init__(self, storage, workspace: str, query: np.ndarray) -> None:
        from lightrag.kg.postgres_impl import SQL_TEMPLATES

        self.s, self.ws, self.q = storage, workspace, query
        self.sql = SQL_TEMPLATES["entities"].format(table_name=storage.table_name, vector_cast="vector")

    async def sample(self) -> dict:
        results = await self.s.query("probe", top_k=10, query_embedding=self.q.tolist())
        async with self.s.db.pool.acquire() as conn:  # a pool of one: the connection the query ran on
            stmt = await conn.fetchrow(
                "SELECT name, custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = $1", self.sql)
            assert stmt is not None, "LightRAG's query was not a prepared statement"
            vec = "'[" + ",".join(f"{x:.7g}" for x in self.q) + "]'"
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE {stmt['name']}({_lit(self.ws)}, 0.8, 10, {vec})")
        return {"ws": self.ws, "index": plan_vector_index(orjson.loads(plan)[0]["Plan"]), "results": len(results),
                "custom": stmt["custom_plans"], "generic": stmt["generic_plans"], "t": time.monotonic()}


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextlib.asynccontextmanager
async def probes(url: str, workspaces, query: np.ndarray):
    """One PlanProbe per workspace; LightRAG's pool (a process-wide singleton) gets one connection."""
    from lightrag.kg import postgres_impl as pg
    from lightrag.kg.shared_storage import initialize_share_data

    with contextlib.suppress(Exception):
        initialize_share_data()
    config = resolve_target(url).config
    gc = {"embedding_batch_num": 32, "vector_db_storage_cls_kwargs": {"cosine_better_than_threshold": 0.2},
          "vector_storage": "PGVectorStorage", "working_dir": os.getcwd()}
    storages = []
    # the workspace goes to the constructors (POSTGRES_WORKSPACE would override it), one pooled connection
    with environ_override({**lightrag_schema_env(config), "POSTGRES_MAX_CONNECTIONS": "1"}):
        try:
            for ws in workspaces:
                ef, _ = lookup_embedding(DIM, MODEL)
                s = pg.PGVectorStorage(namespace="entities", workspace=ws, global_config=gc, embedding_func=ef,
                                       meta_fields=set())
                await s.initialize()
                storages.append(s)
            yield [PlanProbe(s, ws, query) for s, ws in zip(storages, workspaces)]
        finally:
            for s in storages:
                with contextlib.suppress(Exception):
                    await s.finalize()


async def _migrate_polled(args: list, plan_probes, *, kill_after: float | None = None):
    """Run ``migrate`` in a subprocess, sampling every probe every 0.5 s until it ends (or SIGKILL it
    after ``kill_after`` seconds); returns (exit status, output, samples)."""
    proc = await asyncio.create_subprocess_exec(*_cli(*args), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=dict(os.environ))
    output = asyncio.create_task(proc.stdout.read())
    started, samples = time.monotonic(), []
    while proc.returncode is None:
        for p in plan_probes:
            samples.append(await p.sample())
        if kill_after is not None and time.monotonic() - started >= kill_after:
            proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.5)
    for p in plan_probes:  # and once after the end
        samples.append(await p.sample())
    return proc.returncode, (await output).decode(errors="replace"), samples


def _job_started() -> bool:
    return any(Path(os.environ["HYBRIDRAG_HOME"]).rglob("*.json"))


def _assert_indexed(samples: list, at_least: int) -> None:
    bare = [s for s in samples if not s["index"]]
    assert not bare, f"{len(bare)} of {len(samples)} samples had no vector index, first: {bare[0]}"
    assert len(samples) >= at_least, f"only {len(samples)} samples"
    assert all(s["results"] for s in samples), "a neighbour's query returned nothing"


# -- the shared database ------------------------------------------------------------------------------


async def _indexes(url: str) -> dict:
    """{index name: (table, valid, predicate, oid)} of the HNSW indexes of the vector tables."""
    conn = await asyncpg.connect(url.split("?")[0])
    try:
        rows = await conn.fetch(
            "SELECT i.relname AS name, t.relname AS tab, x.indisvalid AS valid, i.oid, "
            "pg_get_expr(x.indpred, x.indrelid) AS pred FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_am a ON a.oid = i.relam "
            "WHERE a.amname = 'hnsw' AND t.relname LIKE 'lightrag_vdb_%'")
        return {r["name"]: (r["tab"], r["valid"], r["pred"], r["oid"]) for r in rows}
    finally:
        await conn.close()


def _covering(indexes: dict, table_prefix: str, ws: str) -> list:
    """Valid indexes of the table whose predicate takes ``ws``'s rows (a plain reading of the predicate)."""
    out = []
    for name, (tab, valid, pred, _) in indexes.items():
        if not tab.startswith(table_prefix) or not valid:
            continue
        if pred is None or (f"= '{ws}'" in pred) or ("<> ALL" in pred and f"'{ws}'" not in pred):
            out.append(name)
    return out


@pytest.fixture(scope="module")
def shared(pg_module_db, tmp_path_factory):
    """The database with both neighbours, and the query vector the probes use."""
    data = tmp_path_factory.mktemp("shared-data")
    url = f"{pg_module_db}?embedding_model={MODEL}"
    with pytest.MonkeyPatch.context() as mp:  # jobs of the set-up go to a temp home
        mp.setenv("HYBRIDRAG_HOME", str(tmp_path_factory.mktemp("shared-home")))
        for ws, docs, seed, extra in (("nb_ours", 500, 11, ""), ("nb_lr", 500, 12, "&index_strategy=incremental")):
            src = resolve_target(str(_generate(data / ws, docs, seed)))
            result = asyncio.run(migrate(src, resolve_target(url + extra, workspace=ws)))
            assert result.job.verification["ok"]
    indexes = asyncio.run(_indexes(url))
    # nb_lr's rows are where LightRAG keeps a workspace's rows: in its own index idx_<table>_hnsw_cosine
    assert all(not name.endswith("_cosine") or "nb_lr" not in (pred or "") for name, (_, _, pred, _) in indexes.items())
    query = np.random.default_rng(4242).standard_normal((RANK, DIM)).astype(np.float32).T @ np.ones(RANK, np.float32)
    return {"url": url, "data": data, "query": (query / np.linalg.norm(query)).astype(np.float32)}


def test_neighbour_queries_use_an_index_past_the_fifth_execution(shared):
    """LightRAG's own prepared statement, executed 12 times per workspace on one connection, keeps
    custom plans (PostgreSQL's generic plan could not use a partial index) and an index scan."""

    async def run():
        async with probes(shared["url"], NEIGHBOURS, shared["query"]) as ps:
            samples = [await p.sample() for _ in range(6) for p in ps]
        _assert_indexed(samples, 12)
        last = {s["ws"]: s for s in samples}
        for ws in NEIGHBOURS:
            assert last[ws]["custom"] + last[ws]["generic"] >= 6 and last[ws]["generic"] == 0, last[ws]
        # the statement is shared by both workspaces (same SQL text), as in a HybridRAG process
        assert {s["index"] for s in samples if s["ws"] == "nb_ours"} != {s["index"] for s in samples if s["ws"] == "nb_lr"}

    asyncio.run(run())


def test_sigkill_then_resume_keeps_every_neighbour_indexed(shared, tmp_path):
    """Partial strategy into the shared tables, killed at random points (while the shared index is
    replaced, rows load, own indexes build) and resumed: every sample of both neighbours is index-backed,
    and the copy ends equal to the source with no invalid index left."""
    src = _generate(tmp_path / "w_kill", 300, 21)
    ws = f"kill_{uuid.uuid4().hex[:6]}"
    base = ["--from", str(src), "--to", shared["url"], "--target-workspace", ws, "--index-strategy", "partial",
            "--batch-size", "5"]  # many commits: a copy long enough for the kills to land
    rng = random.Random(int(os.environ.get("HYBRIDRAG_CRASH_SEED", "1313")))

    async def run():
        samples, kills, rc, out = [], 0, None, ""
        async with probes(shared["url"], NEIGHBOURS, shared["query"]) as ps:
            for _ in range(12):
                args = [*base, "--resume"] if _job_started() else base  # a kill may land before the job exists
                # early kills land while LightRAG's index is replaced and rows load, the last one later (builds)
                kill = rng.uniform(1.5, 5.0) if kills < 3 else rng.uniform(5.0, 9.0) if kills == 3 else None
                rc, out, got = await _migrate_polled(args, ps, kill_after=kill)
                samples += got
                if rc == -signal.SIGKILL:
                    kills += 1
                    continue
                break
        return samples, kills, rc, out

    samples, kills, rc, out = asyncio.run(run())
    assert rc == 0, out[-3000:]
    assert kills >= 3, f"only {kills} kills landed"
    _assert_indexed(samples, 20)
    indexes = asyncio.run(_indexes(shared["url"]))
    assert all(valid for _, valid, _, _ in indexes.values()), indexes
    for prefix in ("lightrag_vdb_chunks", "lightrag_vdb_entity", "lightrag_vdb_relation"):
        for w in (ws, *NEIGHBOURS):
            assert _covering(indexes, prefix, w), (prefix, w, indexes)

    async def compare():
        s, d = resolve_target(str(src)), resolve_target(shared["url"], workspace=ws)
        async with s.provider.open(s.config) as a, d.provider.open(d.config) as b:
            for store in await a.list_stores():
                v = await verify_store(a, b, store)
                assert v.ok, (store.name, v.source_count, v.target_count, v.examples)

    asyncio.run(compare())


async def _source_records(src_dir: Path) -> dict:
    """{vector namespace: {key: Record}} of a JSON working dir, through the project's JSON reader."""
    src = resolve_target(str(src_dir))
    out: dict = {}
    async with src.provider.open(src.config) as s:
        for store in await s.list_stores():
            if store.kind is StoreKind.VECTOR:
                out[store.namespace] = {r.key: r async for b in s.read(store, None, 1000) for r in b.records}
    return out


def test_shared_migration_then_lightrag_works_on_every_workspace(shared, tmp_path):
    """auto strategy, polled; then through LightRAG 1.5.7: initialize() of every workspace changes no
    index, top-10 equals brute-force cosine for every workspace and vector store, and a later LightRAG
    insert into the migrated workspace is found, through an index."""
    src = _generate(tmp_path / "w_auto", 300, 31)
    ws = f"auto_{uuid.uuid4().hex[:6]}"

    async def run():
        async with probes(shared["url"], NEIGHBOURS, shared["query"]) as ps:
            rc, out, samples = await _migrate_polled(
                ["--from", str(src), "--to", shared["url"], "--target-workspace", ws], ps)
        assert rc == 0, out[-3000:]
        assert "vector index of lightrag_vdb_entity_shared_embed_256d: " in out  # the plan names the strategy
        _assert_indexed(samples, 6)

        before = await _indexes(shared["url"])
        assert all(v for _, v, _, _ in before.values())
        dirs = {"nb_ours": shared["data"] / "nb_ours", "nb_lr": shared["data"] / "nb_lr", ws: src}
        for name, wd in dirs.items():
            config = resolve_target(shared["url"], workspace=name).config
            sources = await _source_records(wd)
            with lightrag_env(config):
                lr = await open_storages(config, MODEL, {ns: DIM for ns in sources})  # initialize() of each
                try:
                    for ns, records in sources.items():
                        await check_top10(lr[ns], ns, records)
                    if name == ws:
                        s = lr["entities"]
                        vec = np.asarray(shared["query"], dtype=np.float32)
                        s.lookup["a brand new entity"] = s.lookup["q-new"] = vec
                        await s.upsert({"ent-brand-new": {"entity_name": "Brand New", "content": "a brand new entity",
                                                          "source_id": "chunk-x", "file_path": "new.txt"}})
                        await s.index_done_callback()
                        hits = await s.query("q-new", top_k=3)
                        assert hits and hits[0]["entity_name"] == "Brand New", hits
                finally:
                    await close_storages(lr)
        # a workspace LightRAG creates later, in the same tables: its rows go where LightRAG's index serves
        config = resolve_target(shared["url"], workspace=f"new_{uuid.uuid4().hex[:6]}").config
        with lightrag_env(config):
            lr = await open_storages(config, MODEL, {"entities": DIM})
            try:
                s = lr["entities"]
                s.lookup["written by LightRAG"] = s.lookup["q-lr"] = np.asarray(shared["query"], dtype=np.float32)
                await s.upsert({"ent-by-lr": {"entity_name": "By LightRAG", "content": "written by LightRAG",
                                              "source_id": "chunk-y", "file_path": "lr.txt"}})
                await s.index_done_callback()
                assert [h["entity_name"] for h in await s.query("q-lr", top_k=3)] == ["By LightRAG"]
            finally:
                await close_storages(lr)
        after = await _indexes(shared["url"])
        assert after == before  # same indexes, same oids: initialize() dropped and rebuilt nothing
        async with probes(shared["url"], [ws], shared["query"]) as ps:
            found = [await ps[0].sample() for _ in range(7)]
        _assert_indexed(found, 7)  # the new row is in the migrated workspace's own index: top-1 above

    asyncio.run(run())


def test_force_remigration_keeps_every_neighbour_indexed(shared, tmp_path):
    """--force re-migration of a workspace, once incremental (rows into its indexed table over two
    connections) and once partial, polled: both neighbours stay index-backed and the data is exact."""
    src = _generate(tmp_path / "w_force", 200, 41)
    ws = f"force_{uuid.uuid4().hex[:6]}"
    base = ["--from", str(src), "--to", shared["url"], "--target-workspace", ws]

    async def run():
        async with probes(shared["url"], NEIGHBOURS, shared["query"]) as ps:
            rc, out, first = await _migrate_polled(base, ps)
            assert rc == 0, out[-3000:]
            samples = first
            for strategy in ("incremental", "partial"):
                rc, out, got = await _migrate_polled([*base, "--force", "--index-strategy", strategy], ps)
                assert rc == 0, out[-3000:]
                assert f": {strategy}, about" in out and "(--index-strategy)" in out, out[:2000]
                samples += got
        _assert_indexed(samples, 12)

    asyncio.run(run())
    indexes = asyncio.run(_indexes(shared["url"]))
    for prefix in ("lightrag_vdb_chunks", "lightrag_vdb_entity", "lightrag_vdb_relation"):
        assert _covering(indexes, prefix, ws), (prefix, indexes)

    async def compare():
        s, d = resolve_target(str(src)), resolve_target(shared["url"], workspace=ws)
        async with s.provider.open(s.config) as a, d.provider.open(d.config) as b:
            for store in await a.list_stores():
                assert (await verify_store(a, b, store)).ok, store.name

    asyncio.run(compare())


def test_two_workspaces_migrated_at_once_into_the_shared_tables(shared, tmp_path):
    """Two partial migrations at the same time (index changes of a table serialised, concurrent builds
    never deadlocked): both complete, each workspace has its own index, neighbours stay index-backed."""
    dirs = [_generate(tmp_path / f"w_par{i}", 150, 71 + i) for i in range(2)]
    names = [f"par{i}_{uuid.uuid4().hex[:6]}" for i in range(2)]

    async def run():
        async with probes(shared["url"], NEIGHBOURS, shared["query"]) as ps:
            second = asyncio.create_subprocess_exec(
                *_cli("--from", str(dirs[1]), "--to", shared["url"], "--target-workspace", names[1],
                      "--index-strategy", "partial"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ))
            proc = await second
            rc, out, samples = await _migrate_polled(
                ["--from", str(dirs[0]), "--to", shared["url"], "--target-workspace", names[0],
                 "--index-strategy", "partial"], ps)
            out2 = (await proc.stdout.read()).decode(errors="replace")
            rc2 = await proc.wait()
        assert rc == 0, out[-3000:]
        assert rc2 == 0, out2[-3000:]
        _assert_indexed(samples, 6)

    asyncio.run(run())
    indexes = asyncio.run(_indexes(shared["url"]))
    assert all(valid for _, valid, _, _ in indexes.values()), indexes
    for prefix in ("lightrag_vdb_chunks", "lightrag_vdb_entity", "lightrag_vdb_relation"):
        for ws in names:
            own = [n for n, (tab, v, pred, _) in indexes.items() if tab.startswith(prefix) and pred == f"((workspace)::text = '{ws}'::text)"]
            assert len(own) == 1, (prefix, ws, indexes)


def test_defer_index_and_index_type_change_are_refused_in_shared_tables(shared, tmp_path):
    """Both would take the shared tables' index away from the neighbours: refused with the fix, and
    every index is still there afterwards."""
    from hybridrag_backends.errors import TargetError

    src = resolve_target(str(_generate(tmp_path / "w_refused", 20, 51)))
    before = asyncio.run(_indexes(shared["url"]))
    for extra, message in (("&defer_index=1", "defer_index=1 would drop the vector index"),
                           ("&vector_index_type=ivfflat", "has a hnsw vector index that other workspaces use")):
        with pytest.raises(TargetError, match=message):
            asyncio.run(migrate(src, resolve_target(shared["url"] + extra, workspace=f"r_{uuid.uuid4().hex[:6]}")))
    after = asyncio.run(_indexes(shared["url"]))
    assert after == before


def test_metrics_name_the_index_of_each_vector_table_and_warn_when_none(shared, tmp_path):
    """status/metrics: the index holding the workspace's rows per vector table; a workspace whose own
    index is missing (a migration left unfinished) gets a warning naming the table."""
    ws = f"met_{uuid.uuid4().hex[:6]}"
    dst = resolve_target(shared["url"] + "&index_strategy=partial", workspace=ws)
    result = asyncio.run(migrate(resolve_target(str(_generate(tmp_path / "w_met", 20, 61))), dst))
    assert result.job.verification["ok"]
    m = asyncio.run(dst.provider.metrics(dst.config))
    tables = m.details["vector_tables"]
    assert len(tables) == 3 and all(t["index"] and "_ws_" in t["index"] for t in tables.values()), tables
    assert not m.warnings
    entity = next(t for t in tables if t.startswith("lightrag_vdb_entity"))

    async def drop():
        conn = await asyncpg.connect(shared["url"].split("?")[0])
        await conn.execute(f"DROP INDEX {tables[entity]['index']}")
        await conn.close()

    asyncio.run(drop())
    m = asyncio.run(dst.provider.metrics(dst.config))
    assert m.details["vector_tables"][entity]["index"] is None
    assert [w for w in m.warnings if entity in w and "no valid vector index" in w], m.warnings
