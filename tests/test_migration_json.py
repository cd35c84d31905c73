"""JSON -> JSON migrations end to end through the CLI, on every real working dir and on generated data."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from conftest import realdata_workspaces
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.migration import jobstore
from hybridrag_backends.registry import hybridrag_home
from test_migration_data import read_working_dir, write_working_dir


def invoke(*args: str):
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    return result


def migrate_json(*args: str) -> tuple:
    result = invoke("migrate", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(
    "working_dir,workspace", realdata_workspaces(), ids=[f"{d.name}/{w or '-'}" for d, w in realdata_workspaces()]
)
def test_realdata_migrates_and_verifies(tmp_path, working_dir, workspace):
    source = tmp_path / "src"
    shutil.copytree(working_dir, source)
    target = tmp_path / "dst"
    ws = ["--workspace", workspace] if workspace else []
    code, out = migrate_json("--from", str(source), "--to", str(target), *ws, "--batch-size", "97")
    assert code == 0, out["error"]
    assert out["status"] == "completed"
    assert out["verification"]["ok"] is True
    plan_counts = {s["store"]: s["records"] for s in out["plan"]["stores"]}
    assert plan_counts, "every real working dir holds at least one store"
    for store in out["stores"]:
        assert store["done"] and store["migrated"] == plan_counts[store["store"]], store
        v = out["verification"]["stores"][store["store"]]
        assert v["source_count"] == v["target_count"] == store["migrated"]
    assert out["failed_records"] == 0
    # the target is itself a readable source holding the same counts
    code, again = migrate_json("--from", str(target), "--to", str(tmp_path / "dst2"), *ws, "--dry-run")
    assert code == 0, again["error"]
    assert {s["store"]: s["records"] for s in again["plan"]["stores"]} == plan_counts


def test_generated_dir_copies_record_for_record(tmp_path):
    source = write_working_dir(tmp_path / "src")
    target = tmp_path / "dst"
    code, out = migrate_json("--from", str(source), "--to", str(target), "--batch-size", "7")
    assert code == 0, out["error"]
    assert read_working_dir(target) == read_working_dir(source)
    assert jobstore.load(out["job_id"]).status.value == "completed"


def test_copy_into_another_workspace_of_the_same_dir(tmp_path):
    source = write_working_dir(tmp_path / "src", docs=4, entities=6, relations=8)
    code, out = migrate_json("--from", str(source), "--to", str(source), "--target-workspace", "copy")
    assert code == 0, out["error"]
    assert read_working_dir(source / "copy") == read_working_dir(source)


def test_same_place_and_nonempty_target_are_refused(tmp_path):
    source = write_working_dir(tmp_path / "src", docs=4, entities=6, relations=8)
    result = invoke("migrate", "--from", str(source), "--to", str(source))
    assert result.exit_code == 2  # refused before any job exists
    assert "same place" in result.stderr and "Traceback" not in result.output
    other = write_working_dir(tmp_path / "other", docs=2, entities=3, relations=3, seed=1)
    result = invoke("migrate", "--from", str(source), "--to", str(other))
    assert result.exit_code == 3 and "--force" in result.stderr
    code, out = migrate_json("--from", str(source), "--to", str(other), "--force")
    assert code == 0, out["error"]
    assert read_working_dir(other) == read_working_dir(source)


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    source = write_working_dir(tmp_path / "src", docs=4, entities=6, relations=8)
    (source / "kv_store_full_relations.json").unlink()
    target = tmp_path / "dst"
    result = invoke("migrate", "--from", str(source), "--to", str(target), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "full_docs" in result.stdout and "chunk_entity_relation.edges" in result.stdout
    assert "absent standard files" in result.stdout and "kv_store_full_relations.json" in result.stdout
    assert not target.exists() or not any(target.iterdir())
    assert jobstore.list_jobs() == []


def test_jobs_list_and_show(tmp_path):
    source = write_working_dir(tmp_path / "src", docs=4, entities=6, relations=8)
    code, out = migrate_json("--from", str(source), "--to", str(tmp_path / "dst"))
    assert code == 0
    listed = json.loads(invoke("jobs", "--json").stdout)["jobs"]
    assert [j["job_id"] for j in listed] == [out["job_id"]]
    assert listed[0]["status"] == "completed" and listed[0]["migrated_records"] == out["migrated_records"]
    shown = json.loads(invoke("jobs", "show", out["job_id"], "--json").stdout)
    assert shown["job"]["verification"]["ok"] is True
    assert invoke("jobs", "show", out["job_id"]).exit_code == 0
    missing = invoke("jobs", "show", "nope")
    assert missing.exit_code == 1 and "no migration job" in missing.stderr


def test_errors_are_one_line_and_never_show_a_password(tmp_path):
    source = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    result = invoke("migrate", "--from", str(source), "--to", "postgresql://alice:s3cr3t-pw@127.0.0.1:1/db",
                    "--no-verify")
    assert result.exit_code != 0
    assert "s3cr3t-pw" not in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    # an unreachable target fails before a job exists, so no job record can hold the password; and no
    # file this run left under HYBRIDRAG_HOME does (jobs holding a URL password: test_postgres_hardening)
    assert jobstore.list_jobs() == [] and not list(jobstore.jobs_dir().glob("*/job.json"))
    left = [p for p in hybridrag_home().rglob("*") if p.is_file()]
    assert all("s3cr3t-pw" not in p.read_text(errors="replace") for p in left)
    missing = invoke("migrate", "--from", str(tmp_path / "nope"), "--to", str(tmp_path / "dst"))
    assert missing.exit_code == 1 and "nope" in missing.stderr


def test_a_home_that_cannot_hold_jobs_is_a_user_error(tmp_path, monkeypatch):
    source = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    not_a_dir = tmp_path / "home-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(not_a_dir))
    result = invoke("migrate", "--from", str(source), "--to", str(tmp_path / "dst"))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "HYBRIDRAG_HOME" in errors[0] and "internal error" not in errors[0]
    assert not (tmp_path / "dst").exists()  # nothing written before the job could be recorded
