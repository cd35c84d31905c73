"""HybridRAG registry entries against the real PostgreSQL sandbox: a connection_string-only entry (what
HybridRAG's setup wizard writes) is the connection for env / validate / status / migrate; `status` of every
database; `db register` checks the connection before saving; a password in the file is warned about."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from conftest import realdata_dirs

pytestmark = pytest.mark.postgres
MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))  # 768-d vectors
MODEL = "hybridrag-embed"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def without_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def fetch(url: str, sql: str, *args):
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
def registry_file() -> Path:
    return Path(os.environ["HYBRIDRAG_CONFIG"])


def test_connection_string_only_entry_is_the_connection(pg_fresh_db, pg_url, registry_file, tmp_path):
    """env, validate, status and migrate use the host, port, database and user of an entry whose
    backend_config is only a connection_string (HybridRAG's setup wizard), on a database whose name is not
    the default's; model_config's embedding model names the vector tables; a second entry with
    backend_config.workspace (HybridRAG's backend migrate) lands in that workspace."""
    parts = urlsplit(pg_fresh_db)
    database = parts.path.lstrip("/")
    assert database != "hybridrag" and urlsplit(pg_url).path.lstrip("/") != database
    entry = {"source_type": "filesystem", "auto_watch": False, "watch_interval": 300, "recursive": True,
             "backend_type": "postgres",
             "model_config": {"llm_model": "azure/gpt-4o", "embedding_model": MODEL, "embedding_dim": 768}}
    registry_file.write_text(yaml.safe_dump({"version": 1, "databases": {
        "wizdb": {"name": "wizdb", "path": str(tmp_path / "wizdb"), **entry,
                  "backend_config": {"connection_string": without_password(pg_fresh_db)}},
        "notes": {"name": "notes", "path": str(tmp_path / "notes"), **entry,
                  "backend_config": {"connection_string": without_password(pg_fresh_db), "workspace": "notes"}},
    }}, sort_keys=False))
    env = {"POSTGRES_PASSWORD": parts.password or ""}  # as LightRAG and HybridRAG read it

    exported = cli("env", "wizdb", "--json", env=env)
    assert exported.returncode == 0, exported.stderr
    e = json.loads(exported.stdout)["env"]
    assert (e["POSTGRES_HOST"], e["POSTGRES_PORT"], e["POSTGRES_DATABASE"], e["POSTGRES_USER"], e["POSTGRES_WORKSPACE"]) == (
        parts.hostname, str(parts.port), database, parts.username, "default")
    assert e["EMBEDDING_MODEL"] == MODEL and e["EMBEDDING_DIM"] == "768"
    assert json.loads(cli("env", "notes", "--json", env=env).stdout)["env"]["POSTGRES_WORKSPACE"] == "notes"

    validated = cli("validate", "wizdb", "--json", env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    v = json.loads(validated.stdout)
    assert v["ok"] and f"{parts.hostname}:{parts.port}/{database}#default" in v["location"] and v["warnings"] == []

    copy = tmp_path / "source"
    copy.mkdir()
    for f in MACKING.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    for name in ("wizdb", "notes"):
        migrated = cli("migrate", "--from", str(copy), "--to", name, "--json", env=env)
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr

    status = cli("status", "wizdb", "--json", env=env)
    assert status.returncode == 0, status.stderr
    s = json.loads(status.stdout)
    assert s["metrics"]["is_connected"] and s["metrics"]["details"]["database"] == database
    assert s["metrics"]["details"]["workspace"] == "default"

    # independently of the package: the rows are in that database, under each entry's workspace, in tables
    # named after model_config's embedding model, and the default database got none of them
    docs = json.loads((MACKING / "kv_store_full_docs.json").read_text(encoding="utf-8"))
    entities = json.loads((MACKING / "vdb_entities.json").read_text(encoding="utf-8"))["data"]
    table = f"lightrag_vdb_entity_{MODEL.replace('-', '_')}_768d"
    for workspace in ("default", "notes"):
        rows = asyncio.run(fetch(pg_fresh_db, "SELECT count(*) AS n FROM lightrag_doc_full WHERE workspace = $1", workspace))
        assert rows[0]["n"] == len(docs) > 0, workspace
        rows = asyncio.run(fetch(pg_fresh_db, f"SELECT count(*) AS n FROM {table} WHERE workspace = $1", workspace))
        assert rows[0]["n"] == len(entities) > 0, workspace
    assert s["metrics"]["store_counts"]["full_docs"] == len(docs)
    default_db = asyncio.run(fetch(pg_url, "SELECT count(*) AS n FROM pg_tables WHERE tablename = $1", table))
    assert default_db[0]["n"] == 0  # the model's tables exist only in the entry's database


def test_a_password_in_the_file_is_used_masked_and_warned_about(pg_fresh_db, registry_file, tmp_path):
    password = urlsplit(pg_fresh_db).password
    assert password
    text = (f"version: 1\ndatabases:\n  wizdb:\n    name: wizdb\n    path: {tmp_path}\n    backend_type: postgres\n"
            f"    backend_config:\n      connection_string: {pg_fresh_db}\n")
    registry_file.write_text(text)
    env = {"POSTGRES_PASSWORD": "not-the-password"}  # the literal in the file wins, as in HybridRAG
    status = cli("status", "wizdb", "--json", env=env)
    assert status.returncode == 0, status.stderr
    warnings = json.loads(status.stdout)["metrics"]["warnings"]
    assert any("'wizdb'" in w and "backend_config.connection_string" in w and "remove the password" in w
               and str(registry_file) in w for w in warnings), warnings
    validated = cli("validate", "wizdb", env=env)
    assert validated.returncode == 0 and "warning:" in validated.stdout and "'wizdb'" in validated.stdout
    human = cli("status", "wizdb", env={**env, "COLUMNS": "400"})
    everything = status.stdout + status.stderr + validated.stdout + validated.stderr + human.stdout + human.stderr
    shown = cli("db", "show", "wizdb")
    assert "warning:" in shown.stderr and "***" in shown.stdout
    for out in (everything, shown.stdout + shown.stderr, cli("db", "list", "--json").stdout):
        assert password not in out
    assert registry_file.read_text() == text  # nothing rewrote the entry


def test_status_of_every_registered_database(pg_fresh_db, registry_file, tmp_path):
    parts = urlsplit(pg_fresh_db)
    env = {"POSTGRES_PASSWORD": parts.password or ""}
    entries = {
        "files": {"name": "files", "path": str(MACKING)},
        "pg": {"name": "pg", "path": str(tmp_path), "backend_type": "postgres",
               "backend_config": {"connection_string": without_password(pg_fresh_db)}},
    }
    registry_file.write_text(yaml.safe_dump({"version": 1, "databases": entries}))
    healthy = cli("status", "--json", env=env)
    assert healthy.returncode == 0, healthy.stderr
    out = json.loads(healthy.stdout)
    assert out["ok"] and [r["name"] for r in out["databases"]] == ["files", "pg"]
    entities = len(json.loads((MACKING / "vdb_entities.json").read_text(encoding="utf-8"))["data"])
    files = out["databases"][0]
    assert files["metrics"]["store_counts"]["entities"] == entities and files["records"] >= entities
    assert files["total_size_bytes"] > 0 and files["health"] == "healthy" and files["error"] is None

    entries["down"] = {"name": "down", "path": str(tmp_path), "backend_type": "postgres",
                       "backend_config": {"connection_string": "postgresql://nobody@127.0.0.1:1/nothing"}}
    registry_file.write_text(yaml.safe_dump({"version": 1, "databases": entries}))
    proc = cli("status", "--json", env=env)
    assert proc.returncode == 2  # documented: 2 when any database is not healthy
    rows = {r["name"]: r for r in json.loads(proc.stdout)["databases"]}
    assert set(rows) == {"files", "pg", "down"}
    assert rows["files"]["ok"] and rows["pg"]["ok"] and rows["pg"]["is_connected"]
    assert not rows["down"]["ok"] and rows["down"]["is_connected"] is False
    assert "127.0.0.1:1" in rows["down"]["error"] and rows["down"]["health"] == "error"
    assert rows["down"]["records"] is None and rows["down"]["total_size_bytes"] is None
    assert rows["pg"]["records"] == 0 and rows["pg"]["total_size_bytes"] > 0  # an empty, reachable database
    assert proc.stderr.startswith("error: 1 of 3 registered databases are not healthy (down: ")
    table = cli("status", env={**env, "COLUMNS": "250"})
    assert table.returncode == 2
    for name in ("files", "pg", "down"):
        assert name in table.stdout
    assert "healthy" in table.stdout and "error" in table.stdout


def test_db_register_checks_the_connection_first(pg_fresh_db, registry_file, tmp_path):
    registry_file.write_text("version: 1\ndatabases:\n  kept:\n    name: kept\n    path: /kept  # a comment\n")
    before = registry_file.read_bytes()
    down = cli("db", "register", "down", "--path", str(tmp_path), "--url", "postgresql://nobody:Zq9pw@127.0.0.1:1/kb")
    assert down.returncode == 2
    assert down.stderr.startswith("error: cannot register 'down', the check failed: connect:")
    assert "--no-check" in down.stderr and "nothing was saved" in down.stderr and "Zq9pw" not in down.stderr
    assert registry_file.read_bytes() == before
    missing = tmp_path / "new.yaml"
    assert cli("db", "register", "down", "--path", str(tmp_path), "--backend", "postgres", "--port", "1",
               env={"HYBRIDRAG_CONFIG": str(missing)}).returncode == 2
    assert not missing.exists()
    # reachable: checked with the URL's password, saved without it
    password = urlsplit(pg_fresh_db).password
    up = cli("db", "register", "up", "--path", str(tmp_path), "--url", pg_fresh_db, "--json",
             env={"POSTGRES_PASSWORD": ""})
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["checked"] is True
    text = registry_file.read_text()
    assert password not in text and "${" not in text and text.startswith(before.decode())
    skipped = cli("db", "register", "later", "--path", str(tmp_path), "--url", "postgresql://u@127.0.0.1:1/kb", "--no-check")
    assert skipped.returncode == 0 and "later:" in registry_file.read_text()
