"""Bad source data: each case gives a one-line message naming the file (and key or byte offset), the
right exit code, a job that is not COMPLETED, and the good records still accounted for."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.migration import jobstore
from test_migration_data import write_working_dir

KV_ORDER = ("entity_chunks", "full_docs", "full_entities", "full_relations", "llm_response_cache",
            "relation_chunks", "text_chunks")


def migrate(source: Path, target: Path, *extra: str):
    result = CliRunner().invoke(build_cli(), ["migrate", "--from", str(source), "--to", str(target),
                                              "--batch-size", "8", *extra], catch_exceptions=False)
    jobs = jobstore.list_jobs()
    return result, jobs[-1] if jobs else None


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def cut_inside_record(path: Path, record_index: int) -> int:
    """Truncate a ``{key: record}`` file in the middle of its ``record_index``-th record."""
    data = path.read_bytes()
    starts = [m.start() for m in re.finditer(rb'\n  "[^"\n]+": ', data)]
    cut = (starts[record_index] + starts[record_index + 1]) // 2
    path.write_bytes(data[:cut])
    return cut


def truncated_kv_run(tmp_path):
    source = write_working_dir(tmp_path / "src")
    path = source / "kv_store_text_chunks.json"
    cut_inside_record(path, 25)  # records 0..24 are complete
    return migrate(source, tmp_path / "dst")


def test_truncated_kv_file(tmp_path):
    result, job = truncated_kv_run(tmp_path)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "kv_store_text_chunks.json" in line and "byte" in line
    assert job.status.value == "failed"
    assert "kv_store_text_chunks.json" in job.last_error
    cp = job.checkpoint("text_chunks")
    assert not cp.done
    assert 25 - 8 < cp.migrated_count + cp.rejected_count <= 25  # every committed batch before the cut
    for name in KV_ORDER[:-1]:  # the stores before it were copied in full
        done = job.checkpoint(name)
        assert done.done and done.migrated_count == done.total_count
    assert job.migrated_records == sum(c.migrated_count for c in job.checkpoints)


def test_truncated_kv_file_accounts_for_every_complete_record(tmp_path):
    result, job = truncated_kv_run(tmp_path)
    cp = job.checkpoint("text_chunks")
    assert cp.migrated_count + cp.rejected_count == 25


def test_truncated_vdb_file(tmp_path):
    source = write_working_dir(tmp_path / "src")
    path = source / "vdb_entities.json"
    data = path.read_bytes()
    records = len(json.loads(data)["data"])
    path.write_bytes(data[: len(data) * 2 // 3])
    result, job = migrate(source, tmp_path / "dst")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "vdb_entities.json" in line and "byte" in line
    assert job.status.value == "failed"
    cp = job.checkpoint("entities")
    assert not cp.done and cp.migrated_count + cp.rejected_count <= records
    assert job.checkpoint("chunks").done and job.checkpoint("doc_status").done
    assert job.migrated_records == sum(c.migrated_count for c in job.checkpoints)


def test_record_that_is_not_an_object(tmp_path):
    source = write_working_dir(tmp_path / "src")
    path = source / "kv_store_full_docs.json"
    docs = json.loads(path.read_text(encoding="utf-8"))
    docs["doc-00003"] = "just a string"
    path.write_text(json.dumps(docs, indent=2, ensure_ascii=False), encoding="utf-8")
    result, job = migrate(source, tmp_path / "dst")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "rejected" in line and "doc-00003" in line and "kv_store_full_docs.json" in line
    assert job.status.value == "failed"
    cp = job.checkpoint("full_docs")
    assert cp.done and cp.migrated_count == len(docs) - 1 and cp.rejected_count == 1
    assert job.failed_records == 1
    assert job.verification["ok"] is True  # every other record arrived intact
    (reject,) = jobstore.read_rejects(job.job_id)
    assert reject["store"] == "full_docs" and reject["key"] == "doc-00003"
    assert "kv_store_full_docs.json" in reject["location"]
    # --allow-rejects accepts the loss and completes
    result, job = migrate(source, tmp_path / "dst2", "--allow-rejects")
    assert result.exit_code == 0, result.stderr
    assert job.status.value == "completed" and job.failed_records == 1


def test_vdb_entry_that_is_not_an_object(tmp_path):
    source = write_working_dir(tmp_path / "src")
    path = source / "vdb_relationships.json"
    vdb = json.loads(path.read_text(encoding="utf-8"))
    bad_index = 4
    vdb["data"][bad_index] = ["not", "an", "object"]
    path.write_text(json.dumps(vdb), encoding="utf-8")
    result, job = migrate(source, tmp_path / "dst")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "vdb_relationships.json" in line
    cp = job.checkpoint("relationships")
    assert cp.done and cp.rejected_count == 1 and cp.migrated_count == len(vdb["data"]) - 1
    assert job.status.value == "failed"


def test_vector_of_the_wrong_dimension(tmp_path):
    """A vdb file whose matrix is empty, vectors only in the records' own ``vector`` field
    (base64 of zlib of float16, as LightRAG writes it), one of them 16-d in a 32-d store."""
    source = write_working_dir(tmp_path / "src")
    path = source / "vdb_entities.json"
    vdb = json.loads(path.read_text(encoding="utf-8"))
    dim = vdb["embedding_dim"]
    rng = np.random.default_rng(3)
    for i, row in enumerate(vdb["data"]):
        vec = rng.standard_normal(dim // 2 if i == 7 else dim).astype(np.float16)
        row["vector"] = base64.b64encode(zlib.compress(vec.tobytes())).decode()
    bad_key = vdb["data"][7]["__id__"]
    vdb["matrix"] = ""
    path.write_text(json.dumps(vdb), encoding="utf-8")
    result, job = migrate(source, tmp_path / "dst")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "vdb_entities.json" in line and bad_key in line and "dimension" in line
    assert job.status.value == "failed"
    cp = job.checkpoint("entities")
    assert cp.done and cp.rejected_count == 1 and cp.migrated_count == len(vdb["data"]) - 1
    (reject,) = jobstore.read_rejects(job.job_id)
    assert reject["key"] == bad_key and "vdb_entities.json" in reject["location"]


def test_dry_run_shows_the_unreadable_store_and_exits_2(tmp_path):
    source = write_working_dir(tmp_path / "src")
    cut_inside_record(source / "kv_store_text_chunks.json", 5)
    result = CliRunner().invoke(build_cli(), ["migrate", "--from", str(source), "--to", str(tmp_path / "dst"),
                                              "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "problem:" in result.stdout and "kv_store_text_chunks.json" in result.stdout
    assert "kv_store_text_chunks.json" in one_line_error(result)
    assert jobstore.list_jobs() == []
