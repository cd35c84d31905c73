"""A PostgreSQL source read inside one snapshot, its side of verification summed during the copy (issue 15).

The source session opens one REPEATABLE READ, READ ONLY transaction before the plan (``begin_snapshot``)
and reads everything in it; its ``content_stamp()`` names that snapshot in this session. These tests
(real server, real LightRAG working dir loaded into it) pin that this is as strong as re-reading it:

* PostgreSQL -> JSON verifies without reading the source again (no source read after verification
  starts), and the digests kept equal a full re-read's (``verify``);
* a JSON writer that drops or edits a record is still caught (exit 4), the target read back independently;
* rows written into the source during the copy are not in the copy, which verifies against the snapshot
  (what was copied), while ``verify`` afterwards (a new read) sees they differ;
* a resumed job (a new session, a new snapshot) reads the source again at verification.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import asyncpg
import pytest

from hybridrag_backends.errors import TargetError
from hybridrag_backends.migration.engine import ProgressListener, migrate, verify_copy
from hybridrag_backends.migration.job import MigrationStatus
from hybridrag_backends.targets import resolve_target
from test_verify_command import BREAKAGES, SOURCE, break_writer, invoke

MODEL = "snapshot-embed"


@pytest.fixture(scope="module")
def pg_source(pg_module_db):
    """(url, workspace) of a PostgreSQL workspace holding the real working dir SOURCE, loaded by a migration."""
    url, ws = f"{pg_module_db}?embedding_model={MODEL}", f"snap_{uuid.uuid4().hex[:8]}"
    loaded = invoke("migrate", "--from", str(SOURCE), "--to", url, "--target-workspace", ws, "--json")
    assert loaded.exit_code == 0, loaded.stdout
    return url, ws


def pg(url: str, ws: str):
    return resolve_target(url, workspace=ws)


def json_dir(path):
    return resolve_target(str(path), for_write=True)


class CountsSourceReads:
    """Counts PostgresSession.read calls (the source's: the target is JSON), split at verify_started."""

    def __init__(self, monkeypatch) -> None:
        from hybridrag_backends_postgres.session import PostgresSession

        self.copy = self.verify = 0
        self.verifying = False
        original = PostgresSession.read

        def read(session, store, after=None, batch_size=1000):
            if self.verifying:
                self.verify += 1
            else:
                self.copy += 1
            return original(session, store, after, batch_size)

        monkeypatch.setattr(PostgresSession, "read", read)
        counter = self

        class Listener(ProgressListener):
            def verify_started(self, stores) -> None:
                counter.verifying = True

        self.listener = Listener()


def run_sql(url: str, statements) -> None:
    """Run SQL on its own connection and commit, from inside a progress callback (the engine's event loop
    is busy calling us: a thread with a loop of its own does the work)."""
    failure = []

    async def go() -> None:
        conn = await asyncpg.connect(url.split("?")[0])
        try:
            for sql, *args in statements:
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    def target() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def test_pg_source_digested_during_the_copy_is_not_read_again_and_equals_a_reread(pg_source, tmp_path, monkeypatch):
    url, ws = pg_source
    reads = CountsSourceReads(monkeypatch)
    result = asyncio.run(migrate(pg(url, ws), json_dir(tmp_path / "dst"), progress=reads.listener))
    job = result.job
    assert job.status is MigrationStatus.COMPLETED and job.verification["ok"]
    stamp = job.options["source_stamp"]
    assert stamp and stamp["snapshot"] and stamp["session"]
    stores = job.verification["stores"]
    assert len(stores) == 13 and all(s["source_from_copy"] for s in stores.values())
    assert reads.copy >= 13 and reads.verify == 0  # the source side came from the copy, not a second read
    # the plan's counts come from the same snapshot as the copy
    assert all(cp.migrated_count == cp.total_count for cp in job.checkpoints)
    again = asyncio.run(verify_copy(pg(url, ws), resolve_target(str(tmp_path / "dst"))))
    assert again["ok"]
    for name, store in stores.items():
        other = again["stores"][name]
        assert not other["source_from_copy"]
        assert (store["source_count"], store["source_digest"]) == (other["source_count"], other["source_digest"]), name


@pytest.mark.parametrize("case", ["dropped-record", "edited-in-place", "dropped-edge"])
def test_a_broken_json_writer_is_caught_with_a_pg_source(pg_source, tmp_path, monkeypatch, case):
    from hybridrag_backends_json.session import JsonSession

    url, ws = pg_source
    store, breakage = BREAKAGES[case]
    dst = tmp_path / "dst"
    with pytest.MonkeyPatch.context() as patch:  # only the writer, not the test's isolated home
        break_writer(patch, JsonSession, store, breakage)
        result = invoke("migrate", "--from", url, "--workspace", ws, "--to", str(dst), "--target-workspace", "",
                        "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 4, out["error"]
    assert out["verification"]["failed_stores"] == [store]
    assert all(s["source_from_copy"] for s in out["verification"]["stores"].values())
    assert out["verification"]["stores"][store]["examples"]
    checked = invoke("verify", url, str(dst), "--workspace", ws, "--target-workspace", "", "--json")
    assert checked.exit_code == 4 and json.loads(checked.stdout)["verification"]["failed_stores"] == [store]


def test_rows_written_during_the_copy_are_not_copied_and_the_copy_verifies_against_the_snapshot(pg_module_db, tmp_path):
    url, ws = f"{pg_module_db}?embedding_model={MODEL}", f"snap_{uuid.uuid4().hex[:8]}"
    assert invoke("migrate", "--from", str(SOURCE), "--to", url, "--target-workspace", ws).exit_code == 0
    docs = json.loads((SOURCE / "kv_store_full_docs.json").read_text())
    edited, deleted = sorted(docs)[:2]
    chunks = json.loads((SOURCE / "kv_store_text_chunks.json").read_text())
    gone_chunk = sorted(chunks)[0]

    class WritesIntoTheSource(ProgressListener):
        def plan(self, plan) -> None:  # the snapshot is taken: nothing is copied yet
            run_sql(url, [
                ("UPDATE lightrag_doc_full SET content = 'written during the copy' WHERE workspace = $1 AND id = $2", ws, edited),
                ("DELETE FROM lightrag_doc_full WHERE workspace = $1 AND id = $2", ws, deleted),
                ("DELETE FROM lightrag_doc_chunks WHERE workspace = $1 AND id = $2", ws, gone_chunk),
                ("INSERT INTO lightrag_doc_full SELECT (jsonb_populate_record(NULL::lightrag_doc_full, "
                 "to_jsonb(d) || jsonb_build_object('id', 'doc-written-during-the-copy'))).* "
                 "FROM lightrag_doc_full d WHERE workspace = $1 AND id = $2", ws, edited),
            ])

    dst = tmp_path / "dst"
    result = asyncio.run(migrate(pg(url, ws), json_dir(dst), progress=WritesIntoTheSource()))
    job = result.job
    assert job.status is MigrationStatus.COMPLETED and job.verification["ok"]
    assert all(s["source_from_copy"] for s in job.verification["stores"].values())
    copied = json.loads((dst / "kv_store_full_docs.json").read_text())
    assert set(copied) == set(docs)  # as of the snapshot: the deleted one is there, the inserted one is not
    assert copied[edited]["content"] == docs[edited]["content"]
    assert gone_chunk in json.loads((dst / "kv_store_text_chunks.json").read_text())
    assert job.checkpoint("full_docs").migrated_count == len(docs)
    # read now, outside that snapshot, the source has moved on: a plain verify sees it
    checked = invoke("verify", url, str(dst), "--workspace", ws, "--target-workspace", "", "--json")
    out = json.loads(checked.stdout)
    assert checked.exit_code == 4
    assert sorted(out["verification"]["failed_stores"]) == ["full_docs", "text_chunks"]


def test_a_resumed_pg_source_job_reads_the_source_again_at_verification(pg_source, tmp_path, monkeypatch):
    from hybridrag_backends_json.session import JsonSession

    url, ws = pg_source
    original = JsonSession.write_batch

    async def fails_on_entities(self, store, records, job):
        if store.name == "entities":
            raise OSError("disk went away")
        await original(self, store, records, job)

    dst = tmp_path / "dst"
    with pytest.MonkeyPatch.context() as patch, pytest.raises(TargetError) as info:
        patch.setattr(JsonSession, "write_batch", fails_on_entities)
        asyncio.run(migrate(pg(url, ws), json_dir(dst)))
    first = info.value.job
    assert any(cp.done for cp in first.checkpoints) and not all(cp.done for cp in first.checkpoints)
    reads = CountsSourceReads(monkeypatch)
    done = asyncio.run(migrate(pg(url, ws), json_dir(dst), resume=first.job_id, progress=reads.listener)).job
    assert done.status is MigrationStatus.COMPLETED and done.verification["ok"]
    assert done.options["source_stamp"] is None  # the first run's snapshot is gone
    assert not any(s["source_from_copy"] for s in done.verification["stores"].values())
    assert reads.verify >= len(done.verification["stores"])  # every store read again from the source


def test_pg_to_pg_reads_from_a_snapshot_except_into_the_same_database(pg_source, pg_fresh_db):
    """Another database of the server: the snapshot is taken (the target's concurrent index builds only wait
    for snapshots of their own database). The same database: its CREATE INDEX CONCURRENTLY would wait for
    the snapshot until the migration ends, so the source is read as before and re-read at verification."""
    url, ws = pg_source
    other = asyncio.run(migrate(pg(url, ws), pg(f"{pg_fresh_db}?embedding_model={MODEL}", ws))).job
    assert other.status is MigrationStatus.COMPLETED and other.verification["ok"]
    assert other.options["source_stamp"] and all(s["source_from_copy"] for s in other.verification["stores"].values())
    same_ws = f"same_{uuid.uuid4().hex[:8]}"
    same = asyncio.run(migrate(pg(url, ws), pg(url, same_ws))).job
    assert same.status is MigrationStatus.COMPLETED and same.verification["ok"]
    assert same.options["source_stamp"] is None
    assert not any(s["source_from_copy"] for s in same.verification["stores"].values())


def test_the_snapshot_outlives_a_server_idle_in_transaction_timeout(pg_source, tmp_path):
    """Managed servers often end sessions idle in a transaction; the snapshot's holder is idle for the
    whole copy, so it turns that timeout off for itself (as pg_dump does) and the copy still verifies
    from the snapshot."""
    url, ws = pg_source
    database = url.split("?")[0].rsplit("/", 1)[1]
    admin = url.split("?")[0].rsplit("/", 1)[0] + "/postgres"

    class SlowListener(ProgressListener):
        def store_finished(self, plan, cp) -> None:  # the holder sits idle well past the timeout
            import time
            time.sleep(0.6)

    run_sql(admin, [(f'ALTER DATABASE "{database}" SET idle_in_transaction_session_timeout = \'200ms\'',)])
    try:
        result = asyncio.run(migrate(pg(url, ws), json_dir(tmp_path / "dst"), progress=SlowListener()))
    finally:
        run_sql(admin, [(f'ALTER DATABASE "{database}" RESET idle_in_transaction_session_timeout',)])
    job = result.job
    assert job.status is MigrationStatus.COMPLETED and job.verification["ok"]
    assert all(s["source_from_copy"] for s in job.verification["stores"].values())
