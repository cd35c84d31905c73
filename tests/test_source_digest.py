"""The source side of verification summed while copying (issue 15, item 3).

Where the source is an immutable file set (its session has ``content_stamp()``), the engine hashes each
batch before the target's writer sees it, keeps the sum with the store's checkpoint, and verification
re-reads only the target. These tests pin that this is as strong as re-reading the source:

* the digests summed during the copy equal the ones a full re-read computes (``verify``), with records
  the source rejects and records the target refuses left out the same way, and across a resume;
* a writer that breaks a record is caught, including one that edits the records it is given in place
  (hashing after the write would miss it);
* a source written to during the copy or between a stop and its resume (even with its size and mtime
  put back) is read again at verification, and the difference is reported.

The memory backend of test_migration_engine stands in for the engine's rules; the JSON and PostgreSQL
end-to-end cases (real working dirs, real server) are in test_verify_command.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Dict, List

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.errors import TargetError, VerificationFailed
from hybridrag_backends.migration import jobstore
from hybridrag_backends.migration.engine import ProgressListener, migrate, verify_copy
from hybridrag_backends.migration.job import MigrationStatus
from hybridrag_backends.provider import Record, RejectedRecord, StoreInfo
from hybridrag_backends.targets import ResolvedTarget
from test_migration_engine import DATABASES, FAIL_WRITES_AFTER, MemoryProvider, MemorySession, fill, run, same_content

VERSIONS: Dict[str, int] = {}  # location -> how many times the test wrote to it (the stamp)


class StampedSession(MemorySession):
    """A memory database that says when it was written: an immutable source while its stamp holds."""

    def content_stamp(self) -> int:
        return VERSIONS.get(self.location, 0)

    def screen(self, store: StoreInfo, records: List[Record]):
        """As a target: refuses documents whose content says so (a value its storage cannot hold)."""
        kept = [r for r in records if r.payload.get("content") != "refuse me"]
        refused = [RejectedRecord(store.name, r.key, "content refused", None, r.position, side="target")
                   for r in records if r.payload.get("content") == "refuse me"]
        return kept, refused


class StampedProvider(MemoryProvider):
    session = StampedSession

    def open(self, config):
        return self.session(self.describe(config))


def stamped(name: str, session=StampedSession) -> ResolvedTarget:
    provider = StampedProvider()
    provider.session = session
    return ResolvedTarget(provider, provider.config_from_target(name))


@pytest.fixture(autouse=True)
def _clean():
    DATABASES.clear()
    FAIL_WRITES_AFTER.clear()
    VERSIONS.clear()
    yield


def edit_source(name: str, store: str, key: str, payload: dict) -> None:
    """Change a record's content, same record count (so the job's fingerprint, counts, still holds)."""
    db = DATABASES[f"memory:{name}"]
    db[store][key] = (payload, db[store][key][1])
    VERSIONS[f"memory:{name}"] = VERSIONS.get(f"memory:{name}", 0) + 1


def reread(source: ResolvedTarget, dst: ResolvedTarget) -> Dict[str, dict]:
    return run(verify_copy(source, dst))["stores"]


def assert_digests_equal_a_reread(verification: dict, source: ResolvedTarget, dst: ResolvedTarget) -> None:
    again = reread(source, dst)
    for name, store in verification["stores"].items():
        assert store["source_from_copy"], name
        assert not again[name]["source_from_copy"]
        assert (store["source_count"], store["source_digest"], store["rejected"]) == (
            again[name]["source_count"], again[name]["source_digest"], again[name]["rejected"]), name


def test_digests_summed_while_copying_equal_a_full_reread():
    fill("a", 60)
    docs = DATABASES["memory:a"]["full_docs"]
    docs["doc-0007"] = (["not an object"], None)  # rejected by the source reader
    docs["doc-0011"] = ({"content": "refuse me"}, None)  # refused by the target's screen
    result = run(migrate(stamped("a"), stamped("b"), batch_size=7, allow_rejects=True))
    job = result.job
    assert job.status is MigrationStatus.COMPLETED and job.verification["ok"]
    assert job.verification["stores"]["full_docs"]["rejected"] == 2
    assert all(cp.source_digest and cp.source_digest["count"] == cp.migrated_count for cp in job.checkpoints)
    assert_digests_equal_a_reread(job.verification, stamped("a"), stamped("b"))


def test_a_source_without_a_stamp_is_read_again():
    fill("a", 20)
    result = run(migrate(ResolvedTarget(MemoryProvider(), MemoryProvider().config_from_target("a")), stamped("b")))
    assert result.job.verification["ok"]
    assert not any(s["source_from_copy"] for s in result.job.verification["stores"].values())
    assert all(cp.source_digest is None for cp in result.job.checkpoints)


def test_a_writer_editing_the_records_it_is_given_is_caught():
    """The batch is hashed before the writer sees it: a writer that edits a record in place (and writes the
    edited one) leaves the target different from the source digest."""
    fill("a", 30)

    class EditsInPlace(StampedSession):
        async def write_batch(self, store, records, job):
            if store.name == "full_docs" and records[0].key == "doc-0000":
                records[0].payload["content"] = "edited in place"
            await super().write_batch(store, records, job)

    with pytest.raises(VerificationFailed, match=r"full_docs .*doc-0000 \(content differs\)") as info:
        run(migrate(stamped("a"), stamped("b", EditsInPlace), batch_size=8))
    store = info.value.job.verification["stores"]["full_docs"]
    assert store["source_from_copy"] and store["source_count"] == store["target_count"] == 30


def test_resumed_job_continues_the_digest_exactly():
    fill("a", 100)
    FAIL_WRITES_AFTER["memory:b"] = 3  # the 4th batch fails half-written: not counted, not digested
    with pytest.raises(TargetError):
        run(migrate(stamped("a"), stamped("b"), batch_size=10))
    FAIL_WRITES_AFTER.clear()
    saved = jobstore.list_jobs()[-1]
    assert saved.checkpoint("full_docs").source_digest["count"] == 30
    done = run(migrate(stamped("a"), stamped("b"), batch_size=10, resume=""))
    assert done.job.status is MigrationStatus.COMPLETED and same_content("a", "b")
    assert_digests_equal_a_reread(done.job.verification, stamped("a"), stamped("b"))


def test_a_source_written_during_the_copy_is_read_again_and_the_difference_reported():
    fill("a", 30)

    class Edits(ProgressListener):
        def store_finished(self, store, cp):
            if store.store.name == "full_docs":  # copied already: the target keeps the old content
                edit_source("a", "full_docs", "doc-0003", {"content": "written meanwhile"})

    with pytest.raises(VerificationFailed, match=r"full_docs .*doc-0003 \(content differs\)") as info:
        run(migrate(stamped("a"), stamped("b"), batch_size=8, progress=Edits()))
    stores = info.value.job.verification["stores"]
    assert not any(s["source_from_copy"] for s in stores.values())  # the stamp changed: every store re-read
    assert [n for n, s in stores.items() if not s["ok"]] == ["full_docs"]


def test_a_source_written_between_stop_and_resume_is_read_again():
    """Same record counts (the resume is allowed), yet written since: the digests kept so far are dropped."""
    fill("a", 40)
    FAIL_WRITES_AFTER["memory:b"] = 5  # full_docs (5 batches) is done, entities fails
    with pytest.raises(TargetError):
        run(migrate(stamped("a"), stamped("b"), batch_size=8))
    FAIL_WRITES_AFTER.clear()
    edit_source("a", "full_docs", "doc-0001", {"content": "written after the stop"})
    with pytest.raises(VerificationFailed, match=r"full_docs .*doc-0001") as info:
        run(migrate(stamped("a"), stamped("b"), batch_size=8, resume=""))
    assert not any(s["source_from_copy"] for s in info.value.job.verification["stores"].values())


def test_no_verify_leaves_no_partial_digest_for_a_later_resume():
    """A store copied partly without digesting cannot be continued with a digest: it is re-read."""
    fill("a", 40)
    FAIL_WRITES_AFTER["memory:b"] = 2
    with pytest.raises(TargetError):
        run(migrate(stamped("a"), stamped("b"), batch_size=8, verify=False))
    FAIL_WRITES_AFTER.clear()
    done = run(migrate(stamped("a"), stamped("b"), batch_size=8, resume=""))
    stores = done.job.verification["stores"]
    assert done.job.verification["ok"]
    assert not stores["full_docs"]["source_from_copy"]  # begun without a digest
    assert stores["entities"]["source_from_copy"]  # begun in the resumed run
    assert_digests_equal_a_reread({"stores": {"entities": stores["entities"]}}, stamped("a"), stamped("b"))


# -- a real JSON working dir ----------------------------------------------------------------


SOURCE = REALDATA / "macking3__lucaOS__rag_storage"


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def test_json_source_digests_equal_the_verify_command(tmp_path):
    dst = tmp_path / "dst"
    out = json.loads(invoke("migrate", "--from", str(SOURCE), "--to", str(dst), "--json").stdout)
    assert out["exit_code"] == 0, out["error"]
    checked = json.loads(invoke("verify", str(SOURCE), str(dst), "--json").stdout)
    assert checked["ok"] and len(out["verification"]["stores"]) == 13
    for name, store in out["verification"]["stores"].items():
        again = checked["verification"]["stores"][name]
        assert store["source_from_copy"] and not again["source_from_copy"], name
        assert (store["source_count"], store["source_digest"]) == (again["source_count"], again["source_digest"]), name


def test_json_source_edited_with_size_and_mtime_put_back_is_caught(tmp_path):
    """ctime is in the stamp: an edit that keeps a file's size and mtime (which the resume fingerprint
    would not see) still makes verification read the source again, and the copy is reported different."""
    src = tmp_path / "src"
    shutil.copytree(SOURCE, src)
    dst = tmp_path / "dst"
    path = src / "kv_store_full_docs.json"
    original = path.read_bytes()
    docs = json.loads(original)
    key = next(iter(docs))
    text = docs[key]["content"]
    edited = original.replace(json.dumps(text, ensure_ascii=False)[1:9].encode(), b"X" * 8, 1)
    assert len(edited) == len(original) and edited != original

    from hybridrag_backends.migration import engine

    class EditAfterCopy(ProgressListener):
        def store_finished(self, store, cp):
            if store.store.name == "full_docs":
                st = path.stat()
                path.write_bytes(edited)
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    from hybridrag_backends.targets import resolve_target

    with pytest.raises(VerificationFailed, match=r"full_docs") as info:
        asyncio.run(engine.migrate(resolve_target(str(src)), resolve_target(str(dst), for_write=True),
                                   progress=EditAfterCopy()))
    stores = info.value.job.verification["stores"]
    assert info.value.job.verification["failed_stores"] == ["full_docs"]
    assert not any(s["source_from_copy"] for s in stores.values())
    assert np.all([s["ok"] for n, s in stores.items() if n != "full_docs"])
