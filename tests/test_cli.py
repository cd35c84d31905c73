"""The CLI as users run it: status / validate / env / db, the --json shapes, exit codes, and bad input
(one line on stderr that says what to do, non-zero exit code, never a traceback)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from conftest import realdata_dirs
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.cli.output import CliGroup

REALDATA = realdata_dirs()
MACKING = next(d for d in REALDATA if d.name.startswith("macking3"))
LJX = next(d for d in REALDATA if d.name.startswith("ljxpython"))


@pytest.fixture(scope="module")
def cli():
    return build_cli()


def invoke(cli, *args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env=full_env, timeout=120, cwd=cwd)


def error_lines(stderr: str) -> list:
    """stderr lines other than plugin load warnings (another backend's plugin may be missing)."""
    return [line for line in stderr.splitlines() if not line.startswith("warning: hybridrag-backends plugin")]


def assert_one_line_error(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- truth computed independently of the provider -----------------------------------


def truth_counts(folder: Path) -> dict:
    counts = {}
    for name in ("full_docs", "text_chunks", "doc_status"):
        path = folder / f"kv_store_{name}.json"
        if path.exists():
            counts[name] = len(json.loads(path.read_text(encoding="utf-8-sig")))
    for name in ("chunks", "entities", "relationships"):
        path = folder / f"vdb_{name}.json"
        if path.exists():
            counts[name] = len(json.loads(path.read_text(encoding="utf-8"))["data"])
    graph = folder / "graph_chunk_entity_relation.graphml"
    if graph.exists():
        root = ET.parse(graph).getroot()
        counts["chunk_entity_relation.nodes"] = sum(1 for e in root.iter() if e.tag.endswith("}node"))
        counts["chunk_entity_relation.edges"] = sum(1 for e in root.iter() if e.tag.endswith("}edge"))
    return counts


@pytest.mark.parametrize("folder", REALDATA, ids=lambda p: p.name)
def test_status_json_on_realdata(cli, folder):
    result = invoke(cli, "status", str(folder), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"target", "name", "backend", "location", "metrics", "notes", "migration", "ingestion"}
    assert (out["target"], out["name"], out["backend"]) == (str(folder), None, "json")
    assert out["migration"] is None and out["ingestion"] is None  # a path is no registered database
    metrics = out["metrics"]
    assert {"file_sizes", "total_size_bytes", "total_size_human", "store_counts", "entity_count", "relation_count",
            "chunk_count", "doc_count", "is_connected", "connection_latency_ms", "health", "warnings",
            "details", "backend_type"} <= set(metrics)
    for store, count in truth_counts(folder).items():
        assert metrics["store_counts"][store] == count, store
    on_disk = {p.name: p.stat().st_size for p in folder.iterdir()
               if p.is_file() and (p.name.startswith(("kv_store_", "vdb_")) and p.suffix == ".json" or p.suffix == ".graphml")}
    assert metrics["file_sizes"] == on_disk
    assert metrics["total_size_bytes"] == sum(on_disk.values())


def test_status_with_workspace_and_human_output(cli):
    result = invoke(cli, "status", str(LJX), "--workspace", "knowledge_base", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["metrics"]["store_counts"]
    for store, count in truth_counts(LJX / "knowledge_base").items():
        assert counts[store] == count
    human = invoke(cli, "status", str(MACKING), "--verbose")
    assert human.exit_code == 0
    m = json.loads(invoke(cli, "status", str(MACKING), "--json").stdout)["metrics"]
    assert "stores" in human.stdout and "files" in human.stdout and "health healthy" in human.stdout
    assert (f"documents {m['doc_count']}  chunks {m['chunk_count']}  entities {m['entity_count']}  "
            f"relations {m['relation_count']}") in human.stdout
    assert m["entity_count"] == truth_counts(MACKING)["entities"]
    assert "kv_store_full_docs.json" in human.stdout and "working_dir" in human.stdout  # --verbose details
    assert "working_dir" not in invoke(cli, "status", str(MACKING)).stdout


def test_status_of_a_registered_name(cli, tmp_path):
    assert invoke(cli, "db", "register", "luca", "--path", str(MACKING)).exit_code == 0
    out = json.loads(invoke(cli, "status", "luca", "--json").stdout)
    assert out["name"] == "luca" and out["metrics"]["store_counts"]["entities"] == truth_counts(MACKING)["entities"]


def test_validate_json_and_failure_exit_code(cli):
    result = invoke(cli, "validate", str(MACKING), "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert set(out) == {"target", "name", "backend", "location", "ok", "checks", "warnings"} and out["ok"] is True
    assert all(set(c) == {"name", "ok", "detail", "fix"} and c["ok"] for c in out["checks"])
    bad = invoke(cli, "validate", str(LJX), "--workspace", "no_such_ws", "--json")
    assert bad.exit_code == 2
    failed = [c for c in json.loads(bad.stdout)["checks"] if not c["ok"]]
    assert failed and all(c["fix"] for c in failed)


def test_env_exports_without_touching_secrets(cli):
    result = invoke(cli, "env", str(MACKING), "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert set(out) == {"target", "name", "backend", "location", "env", "secrets", "secrets_shown"}
    assert out["env"]["LIGHTRAG_KV_STORAGE"] == "JsonKVStorage" and out["secrets_shown"] is False
    shell = invoke(cli, "env", str(MACKING))
    assert "export LIGHTRAG_KV_STORAGE=JsonKVStorage" in shell.stdout.splitlines()


def test_names_and_paths_are_printed_as_they_are(cli, tmp_path):
    """Rich markup or emoji codes in a path are text, not formatting (nor a crash)."""
    folder = tmp_path / "kb[/red]:smile:"
    shutil.copytree(MACKING, folder)
    for args in (("status", str(folder), "--verbose"), ("validate", str(folder))):
        result = invoke(cli, *args)
        assert result.exit_code == 0, result.output
        assert str(folder) in result.stdout
    assert invoke(cli, "db", "register", "kb", "--path", str(folder)).exit_code == 0
    listed = invoke(cli, "db", "list", env={"COLUMNS": "400"})
    assert listed.exit_code == 0 and f"json:{folder}" in listed.stdout  # the entry's own path, not the cwd


# -- db -----------------------------------------------------------------------------


def test_db_register_list_show_remove(cli, _isolated_home):
    url = "postgresql://kb_user:Zq9%40secret%2Fpw@db.example:6543/kb?sslmode=verify-full&embedding_model=m1"
    reg = invoke(cli, "db", "register", "kb", "--path", "/srv/kb", "--url", url, "--workspace", "kb1",
                 "--hnsw-m", "32", "--password-env", "KB_PG_PASSWORD", "--embedding-dim", "8", "--no-check", "--json")
    assert reg.exit_code == 0, reg.output
    out = json.loads(reg.stdout)
    assert out["password_env"] == ["KB_PG_PASSWORD"] and out["checked"] is False
    cfg = out["database"]["backend_config"]
    # the URL as HybridRAG connects with it (no password, libpq's query only), and HybridRAG's separate keys
    assert cfg["connection_string"] == "postgresql://kb_user@db.example:6543/kb?sslmode=verify-full"
    assert (cfg["postgres_host"], cfg["postgres_port"], cfg["postgres_user"], cfg["postgres_database"]) == (
        "db.example", 6543, "kb_user", "kb")
    assert (cfg["postgres_ssl_mode"], cfg["postgres_workspace"], cfg["hnsw_m"]) == ("verify-full", "kb1", 32)
    assert cfg["extra_options"] == {"password_env": "KB_PG_PASSWORD"} and "postgres_password" not in cfg
    assert out["database"]["model_config"] == {"embedding_model": "m1", "embedding_dim": 8}
    registry_text = (Path(_isolated_home) / "registry.yaml").read_text()
    assert "secret" not in registry_text and "Zq9" not in registry_text and "secret" not in reg.output
    assert "${" not in registry_text
    human = invoke(cli, "db", "register", "kb2", "--path", "/srv/kb2", "--url", url, "--no-check")
    assert "export POSTGRES_PASSWORD=" in human.stdout and "Zq9" not in human.output

    invoke(cli, "db", "register", "files", "--path", str(MACKING), "--source-folder", "/src", "--auto-watch")
    listed = json.loads(invoke(cli, "db", "list", "--json").stdout)
    assert [d["name"] for d in listed["databases"]] == ["files", "kb", "kb2"] and listed["problems"] == {}
    files = listed["databases"][0]
    created = files.pop("created_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", created)
    assert files == {"name": "files", "path": str(MACKING), "source_folder": "/src", "source_type": "filesystem",
                     "auto_watch": True, "watch_interval": 300, "backend_type": "json"}
    shown = json.loads(invoke(cli, "db", "show", "kb", "--json").stdout)
    assert shown["database"]["name"] == "kb" and set(shown) == {"registry", "database", "warnings"}
    assert "kb2" in invoke(cli, "db", "list").stdout
    removed = invoke(cli, "db", "remove", "kb2", "--json")
    assert json.loads(removed.stdout)["removed"] == "kb2"
    assert [d["name"] for d in json.loads(invoke(cli, "db", "list", "--json").stdout)["databases"]] == ["files", "kb"]


def test_db_register_mongo_keeps_password_out(cli, _isolated_home):
    result = invoke(cli, "db", "register", "m", "--path", "/srv/m", "--url",
                    "mongodb://root:Zq9topsecret@mongo.example:27017/", "--database", "LightRAG_m", "--no-check", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["database"]["backend_config"] == {"mongo_uri": "mongodb://root@mongo.example:27017/", "mongo_database": "LightRAG_m"}
    assert out["password_env"] == ["MONGO_PASSWORD"]
    text = (Path(_isolated_home) / "registry.yaml").read_text()
    assert "Zq9topsecret" not in text and "${" not in text


def test_db_register_mongo_takes_the_database_from_the_url(cli, _isolated_home):
    result = invoke(cli, "db", "register", "kb", "--path", "/srv/kb", "--url", "mongodb://u:s3cr3tZ@h:27017/kbdb",
                    "--no-check", "--json")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.stdout)["database"]["backend_config"]
    assert cfg["mongo_database"] == "kbdb"  # the registered entry and the raw URI name the same database
    assert "s3cr3tZ" not in (Path(_isolated_home) / "registry.yaml").read_text()


def test_db_register_refuses_connection_options_next_to_a_url(cli, _isolated_home):
    result = invoke(cli, "db", "register", "kb", "--path", "/srv/kb", "--url", "postgresql://u@h/d", "--port", "6000")
    assert result.exit_code == 2 and "cannot be combined with --url" in result.stderr
    assert not (Path(_isolated_home) / "registry.yaml").exists()


def test_broken_registry_does_not_block_a_path(tmp_path):
    Path(os.environ["HYBRIDRAG_CONFIG"]).write_text("databases:\n  kb: {path: /x\n")
    proc = run("status", str(MACKING), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "json"


# -- bad input (real processes) -----------------------------------------------------


def test_nonexistent_path():
    proc = run("status", "/no/such/lightrag_dir")
    assert_one_line_error(proc, 1, "/no/such/lightrag_dir", "db list")


def test_existing_path_that_is_not_a_lightrag_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    proc = run("status", str(tmp_path))
    assert_one_line_error(proc, 1, str(tmp_path), "not a LightRAG working dir")


@pytest.mark.parametrize("content", [b"hello, not json\n", None], ids=["not-json", "truncated"])
def test_corrupt_kv_file(tmp_path, content):
    folder = tmp_path / "db"
    shutil.copytree(MACKING, folder)
    target = folder / "kv_store_full_docs.json"
    data = target.read_bytes()
    target.write_bytes(content if content is not None else data[: len(data) // 2])
    proc = run("status", str(folder))
    line = assert_one_line_error(proc, 2, "kv_store_full_docs.json", "restore")
    assert "byte" in line
    proc = run("validate", str(folder))  # validate runs the same scan: no "valid" for a corrupt dir
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert "FAIL files well-formed" in proc.stdout and "kv_store_full_docs.json" in proc.stdout


def test_invalid_config_value():
    proc = run("db", "register", "x", "--path", "/tmp/x", "--backend", "postgres", "--port", "70000")
    assert_one_line_error(proc, 2, "postgres_port=70000", "1 to 65535", "--port")
    assert not (Path(os.environ["HYBRIDRAG_HOME"]) / "registry.yaml").exists()  # nothing half-written
    proc = run("db", "register", "x", "--path", "/tmp/x", "--backend", "postgres", "--vector-index-type", "flat")
    assert_one_line_error(proc, 2, "vector_index_type", "hnsw", "--vector-index-type")


def test_usage_errors_are_one_line():
    assert_one_line_error(run("db", "register", "x", "--port", "abc", "--path", "/x"), 2, "--port", "--help")
    assert_one_line_error(run("db", "register", "x"), 2, "--path")


def test_bad_registry_yaml():
    path = Path(os.environ["HYBRIDRAG_CONFIG"])
    path.write_text("databases:\n  kb: {path: /x\n")
    for args in (("db", "list"), ("status", "kb")):
        assert_one_line_error(run(*args), 2, str(path), "not valid YAML", "line")


def test_unknown_keys_are_no_error_and_a_bad_value_blocks_only_its_entry():
    path = Path(os.environ["HYBRIDRAG_CONFIG"])
    path.write_text(yaml.safe_dump({"databases": {
        "kb": {"path": str(MACKING), "backend_typ": "json", "backend_config": {"hnsw": 3}},
        "bad": {"path": "/x", "backend_type": "postgres", "backend_config": {"postgres_port": 70000}},
    }}))
    assert run("status", "kb", "--json").returncode == 0
    listed = run("db", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    out = json.loads(listed.stdout)
    assert [d["name"] for d in out["databases"]] == ["kb"] and out["databases"][0]["backend_typ"] == "json"
    assert "postgres_port=70000" in out["problems"]["bad"]
    assert_one_line_error(run("status", "bad"), 2, str(path), "'bad'", "postgres_port=70000", "1 to 65535")
    assert "postgres_port=70000" in run("db", "list").stdout


def test_missing_name_and_missing_password_variable(cli):
    assert_one_line_error(run("db", "show", "ghost"), 1, "'ghost'", "db list")
    assert_one_line_error(run("db", "remove", "ghost"), 1, "'ghost'")
    assert invoke(cli, "db", "register", "pg", "--path", "/srv/pg", "--backend", "postgres",
                  "--password-env", "PG_KB_PW", "--no-check").exit_code == 0
    env = {k: v for k, v in os.environ.items() if k != "PG_KB_PW"}
    proc = subprocess.run([sys.executable, "-m", "hybridrag_backends", "env", "pg"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert_one_line_error(proc, 2, "PG_KB_PW is not set", "export PG_KB_PW")
    # with the default variable the password is optional, as for LightRAG: none set, none exported
    assert invoke(cli, "db", "register", "pg2", "--path", "/srv/pg", "--backend", "postgres", "--no-check").exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "hybridrag_backends", "env", "pg2", "--json"], capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}, timeout=120)
    assert proc.returncode == 0 and "POSTGRES_PASSWORD" not in json.loads(proc.stdout)["env"]


# -- errors, redaction, entry points -------------------------------------------------


def _boom_group() -> click.Group:
    @click.group(cls=CliGroup)
    def root():
        pass

    @root.command()
    def boom():
        raise RuntimeError("lost postgresql://admin:Zq9hunter2@db/x")

    return root


def test_unexpected_errors_are_one_redacted_line_with_a_debug_hint():
    result = CliRunner().invoke(_boom_group(), ["boom"], env={"HYBRIDRAG_BACKENDS_DEBUG": ""})
    assert result.exit_code == 70
    assert result.stderr.strip() == (
        "error: internal error: RuntimeError: lost postgresql://admin:***@db/x "
        "(rerun with HYBRIDRAG_BACKENDS_DEBUG=1 for the traceback, and please report it)"
    )
    debug = CliRunner().invoke(_boom_group(), ["boom"], env={"HYBRIDRAG_BACKENDS_DEBUG": "1"})
    assert debug.exit_code == 70 and "Traceback" in debug.stderr and "Zq9hunter2" not in debug.stderr


def test_console_script_and_module_entry_points():
    script = Path(sys.executable).with_name("hybridrag-backends")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "0.1.0" in proc.stdout
    assert run("--help").stdout.count("status") >= 1
    # the console script runs the same CLI: a --json command gives its documented shape
    plugins = subprocess.run([str(script), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert plugins.returncode == 0, plugins.stderr
    names = {p["name"] for p in json.loads(plugins.stdout)["plugins"]}
    assert {"json", "postgres", "mongodb"} <= names
