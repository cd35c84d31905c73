"""LightRAG 1.5.7's own RedisKVStorage and RedisDocStatusStorage (and NanoVectorDB / NetworkX for the
files) read back every record of every real LightRAG working dir migrated into Redis, and
RedisDocStatusStorage rebuilds its scheduling index from the rows the provider wrote."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from redis_realdata import REALDATA_DIRS

from hybridrag_backends import get_provider
from hybridrag_backends.testing import ConformanceTarget, lightrag_read_back, migrate, read_working_dir

pytest_plugins = ["redis_fixtures"]  # the fixtures (no conftest.py here: see redis_fixtures.py)

IDS = [f"{d.name}:{ws or '-'}" for d, ws in REALDATA_DIRS]


@pytest.fixture
def migrated(request, redis_url, redis_workspace, tmp_path, hybridrag_home):
    """(target, config, the source as the JSON provider normalises it) after JSON -> Redis+files."""
    working_dir, workspace = request.param
    target = ConformanceTarget(get_provider("redis"), f"{redis_url}?working_dir={tmp_path / 'files'}",
                               workspace=redis_workspace)
    direct = tmp_path / "direct"  # old layouts come back normalised: compare with what the reader gives
    for to, ws in ((str(direct), ""), (target.target, redis_workspace)):
        job = migrate(str(working_dir), to, workspace=workspace or None, target_workspace=ws)
        assert job.status.value == "completed" and job.verification["ok"], job.last_error
    return target, target.config(), read_working_dir(direct)


@pytest.mark.parametrize("migrated", REALDATA_DIRS, ids=IDS, indirect=True)
def test_lightrag_reads_every_record_back(migrated, tmp_path):
    target, config, source = migrated
    assert any(s.kind.value == "kv" for s in source)  # not an empty comparison
    problems = lightrag_read_back(target, config, source, tmp_path)
    assert not problems, "\n".join(problems)


WITH_DOC_STATUS = [(d, ws) for d, ws in REALDATA_DIRS if (Path(d) / ws / "kv_store_doc_status.json").exists()]


def lightrag_doc_status(target, config, monkeypatch):
    """LightRAG's RedisDocStatusStorage on the target: status counts from the rows, from its scheduling
    index, and a full sweep of the index."""
    from lightrag.base import CURSOR_END, CURSOR_START, DocStatus
    from lightrag.kg.redis_impl import RedisDocStatusStorage
    from lightrag.kg.shared_storage import initialize_share_data

    for name, value in target.provider.env_vars(config).items():
        monkeypatch.setenv(name, value)
    initialize_share_data()

    async def read():
        storage = RedisDocStatusStorage(namespace="doc_status", workspace=config.workspace, global_config={},
                                        embedding_func=None)
        await storage.initialize()  # rebuilds the scheduling index from the rows when there is none
        try:
            counts = await storage.get_status_counts()
            indexed = {s.value: await storage.count_docs_by_statuses([s]) for s in DocStatus}
            swept, position = {}, CURSOR_START
            while position is not CURSOR_END:
                page = await storage.get_docs_by_statuses_page(list(DocStatus), limit=7, position=position)
                swept.update(page.docs)
                position = page.next_position
            return ({k: v for k, v in counts.items() if v}, {k: v for k, v in indexed.items() if v}, sorted(swept))
        finally:
            await storage.finalize()

    return asyncio.run(read())


def doc_status_rows(source):
    return next(records for info, records in source.items() if info.name == "doc_status")


@pytest.mark.parametrize("migrated", WITH_DOC_STATUS, ids=[f"{d.name}:{ws or '-'}" for d, ws in WITH_DOC_STATUS],
                         indirect=True)
def test_doc_status_scheduling_index_is_rebuilt_by_lightrag(migrated, monkeypatch):
    target, config, source = migrated
    rows = doc_status_rows(source)
    statuses = dict(Counter(payload["status"] for payload, _ in rows.values()))
    assert lightrag_doc_status(target, config, monkeypatch) == (statuses, statuses, sorted(rows))


def test_a_stale_scheduling_index_is_removed_with_force(redis_url, redis_workspace, tmp_path, monkeypatch,
                                                        hybridrag_home):
    """A workspace LightRAG used before holds its own scheduling index; replacing the data with --force
    removes it with the rows, so LightRAG rebuilds it instead of scheduling documents that are gone."""
    import redis

    working_dir, workspace = WITH_DOC_STATUS[0]
    target = ConformanceTarget(get_provider("redis"), f"{redis_url}?working_dir={tmp_path / 'files'}",
                               workspace=redis_workspace)
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_workspace}_doc_status:ghost-doc", b'{"status": "processed"}')
    client.zadd(f"{redis_workspace}_doc_status__sched:status:processed", {"2020-01-01T00:00:00|ghost-doc": 0})
    job = migrate(str(working_dir), target.target, workspace=workspace or None, target_workspace=redis_workspace,
                  force=True)
    assert job.verification["ok"]
    rows = doc_status_rows(read_working_dir(Path(working_dir) / workspace))
    statuses = dict(Counter(payload["status"] for payload, _ in rows.values()))
    assert lightrag_doc_status(target, target.config(), monkeypatch) == (statuses, statuses, sorted(rows))
    client.close()
