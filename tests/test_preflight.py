"""Pre-flight before any job exists, and the exit codes and words around it (issue 10: item 10, defects 5
and 9). Every refusal here exits 2 (or 1 for a source with nothing in it) with the fix, and leaves no
job file and no job row behind. Permission cases run the CLI as the unprivileged user ``nobody`` (root
reads and writes anything); the free-space case copies into a 256 kB tmpfs mounted for the test."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.migration import jobstore
from test_migration_data import write_working_dir

SOURCE = REALDATA / "macking3__lucaOS__rag_storage"
MODEL = "preflight-embed"


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def no_job_left() -> None:
    assert jobstore.list_jobs() == []
    assert not jobstore.jobs_dir().exists() or not any(jobstore.jobs_dir().iterdir())


def refused(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    no_job_left()
    return lines[0]


def _need_root(reason: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"this check needs root in CI: {reason}", pytrace=False)
        pytest.skip(f"needs root: {reason}")


# -- a source with nothing in it (defect 9) ------------------------------------------------


def test_empty_source_is_not_found_unless_allow_empty(tmp_path):
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    line = refused(invoke("migrate", "--from", str(empty), "--to", str(tmp_path / "dst")), code=1)
    assert "holds no LightRAG record" in line and "kv_store_*.json, vdb_*.json and graph_*.graphml" in line
    assert "--allow-empty" in line
    assert not (tmp_path / "dst").exists()
    ok = invoke("migrate", "--from", str(empty), "--to", str(tmp_path / "dst"), "--allow-empty", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["status"] == "completed"


def test_mistyped_workspace_names_the_folder_and_the_workspaces_found(tmp_path):
    src = write_working_dir(tmp_path / "src" / "ws1", docs=2, entities=3, relations=3)
    line = refused(invoke("migrate", "--from", str(src.parent), "--workspace", "wsl", "--to", str(tmp_path / "dst")), code=1)
    assert f"in {src.parent / 'wsl'}" in line and "workspaces with files: --workspace ws1" in line


def test_store_files_that_are_all_empty_count_as_empty(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "kv_store_full_docs.json").write_text("{}")
    line = refused(invoke("migrate", "--from", str(src), "--to", str(tmp_path / "dst")), code=1)
    assert "1 store(s), all empty" in line


# -- JSON target, source and home --------------------------------------------------------


def test_same_place_is_refused_before_a_job(tmp_path):
    src = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    assert "same place" in refused(invoke("migrate", "--from", str(src), "--to", str(src)))


def test_target_folder_that_cannot_be_created_is_refused(tmp_path):
    src = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = refused(invoke("migrate", "--from", str(src), "--to", str(blocker / "dst")))
    assert "target folder writable" in line and "fix:" in line


def test_job_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    src = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(blocker))
    line = refused(invoke("migrate", "--from", str(src), "--to", str(tmp_path / "dst")))
    assert "job folder writable" in line and "HYBRIDRAG_HOME" in line
    assert not (tmp_path / "dst").exists()


def test_not_enough_free_space_on_a_json_target_is_refused(tmp_path):
    _need_root("mounting a 256 kB tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        line = refused(invoke("migrate", "--from", str(SOURCE), "--to", str(mnt / "dst")))
        assert "free space" in line and "needed" in line and "free at least" in line
        assert list(mnt.iterdir()) == []
        # a dry run lists the failed check and exits 2 too
        dry = invoke("migrate", "--from", str(SOURCE), "--to", str(mnt / "dst"), "--dry-run", "--json")
        out = json.loads(dry.stdout)
        assert dry.exit_code == 2 and [c["name"] for c in out["plan"]["checks"] if not c["ok"]] == ["free space"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYBRIDRAG_HOME=str(home), HYBRIDRAG_CONFIG=str(home / "registry.yaml"))
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
           sys.executable, "-m", "hybridrag_backends", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd="/")


@pytest.fixture
def open_tmp():
    """A temp folder the user nobody can enter (pytest's tmp_path sits in a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix="hrb-preflight-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_permissions_are_checked_before_a_job(open_tmp):
    _need_root("running the CLI as the user nobody")
    home = open_tmp / "home"
    home.mkdir()
    home.chmod(0o777)
    src = open_tmp / "src"
    shutil.copytree(SOURCE, src)
    for p in [src, *src.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    writable = open_tmp / "open"
    writable.mkdir()
    writable.chmod(0o777)
    # a target in a folder nobody may write in
    locked = open_tmp / "locked"
    locked.mkdir(mode=0o755)
    result = _as_nobody(home, "migrate", "--from", str(src), "--to", str(locked / "dst"))
    assert result.returncode == 2 and "target folder writable" in result.stderr and "write permission" in result.stderr
    # a source file nobody may read
    (src / "kv_store_text_chunks.json").chmod(0o600)
    result = _as_nobody(home, "migrate", "--from", str(src), "--to", str(writable / "dst"))
    assert result.returncode == 2, result.stderr
    assert "source files readable: kv_store_text_chunks.json" in result.stderr and "chmod u+r" in result.stderr
    # a source folder nobody may enter
    src.chmod(0o700)
    result = _as_nobody(home, "migrate", "--from", str(src), "--to", str(writable / "dst"))
    assert result.returncode == 2 and "permission denied" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())
    assert not (writable / "dst").exists()


# -- PostgreSQL target ---------------------------------------------------------------------


async def _job_rows(url: str, ws: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('public.hybridrag_migration_jobs') IS NOT NULL"):
            return 0
        return int(await conn.fetchval("SELECT count(*) FROM hybridrag_migration_jobs WHERE workspace = $1", ws))
    finally:
        await conn.close()


def test_postgres_target_without_embedding_model_is_refused_before_a_job(pg_module_db):
    ws = f"p_{uuid.uuid4().hex[:8]}"
    line = refused(invoke("migrate", "--from", str(SOURCE), "--to", pg_module_db, "--target-workspace", ws))
    assert "embedding model: not set" in line and "?embedding_model=NAME" in line
    assert asyncio.run(_job_rows(pg_module_db, ws)) == 0


def test_postgres_target_with_another_embedding_dim_is_refused(pg_module_db):
    ws = f"p_{uuid.uuid4().hex[:8]}"
    url = f"{pg_module_db}?embedding_model={MODEL}&embedding_dim=1024"  # the source holds 768-d vectors
    line = refused(invoke("migrate", "--from", str(SOURCE), "--to", url, "--target-workspace", ws))
    assert "embedding dimension" in line and "embedding_dim=1024" in line and "entities: 768" in line
    assert asyncio.run(_job_rows(pg_module_db, ws)) == 0


def test_postgres_target_without_extensions_is_refused_before_a_job(pg_bare_db):
    line = refused(invoke("migrate", "--from", str(SOURCE), "--to", f"{pg_bare_db}?embedding_model={MODEL}"))
    assert re.search(r"CREATE EXTENSION (IF NOT EXISTS )?vector", line) and re.search(r"CREATE EXTENSION (IF NOT EXISTS )?age", line)
    assert asyncio.run(_job_rows(pg_bare_db, "default")) == 0


def test_postgres_user_without_create_privilege_is_refused(pg_fresh_db):
    import asyncpg
    from urllib.parse import urlsplit, urlunsplit

    role, password = f"ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex

    async def make_role() -> None:
        conn = await asyncpg.connect(pg_fresh_db)
        try:
            await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        finally:
            await conn.close()

    asyncio.run(make_role())
    parts = urlsplit(pg_fresh_db)
    url = urlunsplit((parts.scheme, f"{role}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))
    line = refused(invoke("migrate", "--from", str(SOURCE), "--to", f"{url}?embedding_model={MODEL}"))
    assert "privileges" in line and "GRANT CREATE ON DATABASE" in line
    assert password not in line
    assert asyncio.run(_job_rows(pg_fresh_db, "default")) == 0


def test_unreachable_target_exits_2_and_help_says_so(tmp_path):
    line = refused(invoke("migrate", "--from", str(SOURCE), "--to", "postgresql://u:secret@127.0.0.1:1/db?embedding_model=m"))
    assert "cannot connect to PostgreSQL" in line and "secret" not in line
    help_text = invoke("migrate", "--help").output
    assert "2  source error, records rejected, or a pre-flight check failed before any job was created" in help_text
    assert "(unreachable server" in help_text and "3  target error while the job runs" in help_text


# -- words ---------------------------------------------------------------------------------------


def test_summary_says_no_verify_only_when_it_was_given(tmp_path):
    src = write_working_dir(tmp_path / "src", docs=3, entities=4, relations=4)
    (src / "kv_store_text_chunks.json").write_text('{\n  "a": "not an object"\n}')  # a reject: the job fails
    failed = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "d1"))
    assert failed.exit_code == 2
    assert "--no-verify" not in failed.stdout and "verification passed" in failed.stdout
    skipped = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "d2"), "--no-verify", "--allow-rejects")
    assert skipped.exit_code == 0 and "not verified (--no-verify)" in skipped.stdout
    (src / "kv_store_full_docs.json").write_text('{\n  "a": {"x": 1},\n  "b": ')  # stops the copy before verification
    stopped = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "d3"))
    assert stopped.exit_code == 2
    assert "not verified (the job stopped before verification)" in stopped.stdout and "--no-verify" not in stopped.stdout


def test_empty_graphml_says_so_instead_of_byte_minus_one(tmp_path):
    src = write_working_dir(tmp_path / "src", docs=2, entities=3, relations=3)
    (src / "graph_chunk_entity_relation.graphml").write_bytes(b"")
    status = invoke("status", str(src))
    assert status.exit_code == 2
    assert "byte -1" not in status.output and "graph_chunk_entity_relation.graphml: the file is empty (0 bytes)" in status.stderr
    result = invoke("migrate", "--from", str(src), "--to", str(tmp_path / "dst"))
    assert result.exit_code == 2 and "byte -1" not in result.stderr and "the file is empty (0 bytes)" in result.stderr
