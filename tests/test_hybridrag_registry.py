"""HybridRAG's registry files as they are: every shape HybridRAG's own code and docs write loads, is
shown without a password, and survives registering, replacing and removing other entries byte for byte.

Shapes: files HybridRAG's `db register` / `backend migrate` write (PyYAML `yaml.dump(default_flow_style=False,
sort_keys=False)` of `DatabaseEntry.to_dict()`, generated here exactly that way), its docs' template, its setup
wizard's connection_string-only entry, legacy entries, backends without a plugin, unknown keys at every level
(tests/hybridrag_registries/). Entries are cut out of the files by a plain line scan and parsed with PyYAML,
independently of the package's own YAML code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import realdata_dirs

HERE = Path(__file__).parent / "hybridrag_registries"
MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))

# HybridRAG's DatabaseEntry keys (src/database_registry.py) and its BackendConfig fields (src/config/).
HYBRIDRAG_ENTRY_KEYS = {
    "name", "path", "source_folder", "source_type", "auto_watch", "watch_interval", "model", "recursive",
    "file_extensions", "preprocessing_pipeline", "created_at", "last_sync", "description", "specstory_config",
    "api_config", "schema_config", "backend_type", "backend_config", "model_config", "ingestion_mode",
    "spoonfeed_files_per_day", "max_daily_cost_usd", "max_run_cost_usd", "fallback_llm_model", "fallback_tiers",
    "fallback_llm_api_base", "fallback_llm_num_ctx", "fallback_trigger",
}
HYBRIDRAG_BACKEND_CONFIG_KEYS = {
    "backend_type", "postgres_host", "postgres_port", "postgres_user", "postgres_password", "postgres_database",
    "postgres_workspace", "postgres_ssl_mode", "postgres_max_connections", "connection_string", "vector_index_type",
    "hnsw_m", "hnsw_ef", "extra_options", "file_size_warning_mb", "total_size_warning_mb",
    "performance_degradation_pct",
    "workspace",  # written by HybridRAG's `backend migrate`
}
# this package's documented keys (registry.py docstring, README "The registry and secrets")
OWN_BACKEND_CONFIG_KEYS = {"mongo_uri", "mongo_database"}
OWN_EXTRA_OPTIONS_KEYS = {"password_env"}

SECRETS = ["Zq9", "s3cret-hr", "tok-Zq9"]


def hybridrag_dump(data: dict) -> str:
    """What HybridRAG's DatabaseRegistry._save writes."""
    return yaml.dump(data, default_flow_style=False, sort_keys=False)


def written_by_hybridrag_register() -> str:
    """`hybridrag db register` for a SpecStory database, a PostgreSQL one (password from POSTGRES_PASSWORD, as
    its CLI stores it) and a JSON one; `to_dict()` leaves None values out."""
    return hybridrag_dump({"version": 1, "databases": {
        "specstory": {
            "name": "specstory", "path": "/home/user/databases/specstory_db", "source_folder": "/home/user/jira-issues",
            "source_type": "specstory", "auto_watch": True, "watch_interval": 300, "model": "azure/gpt-4o",
            "recursive": True, "file_extensions": [".specstory", ".json"],
            "preprocessing_pipeline": ["specstory_conversation_extraction"],
            "created_at": "2025-12-19T21:38:14.123456", "last_sync": "2025-12-20T07:00:00.000001",
            "description": "SpecStory AI conversation histories for TIC, a description long enough that PyYAML folds "
                           "it onto several lines when it writes the file",
            "specstory_config": {"jira_project_key": "TIC", "folder_pattern": "^[A-Z]+-\\d+$",
                                 "specstory_file_pattern": ".*\\.specstory$", "extract_conversations": True},
            "backend_type": "json", "backend_config": {"backend_type": "json"},
        },
        "pgdocs": {
            "name": "pgdocs", "path": "/home/user/databases/pgdocs", "source_folder": "/home/user/docs",
            "source_type": "filesystem", "auto_watch": False, "watch_interval": 300, "recursive": True,
            "created_at": "2025-12-21T10:00:00.000001", "backend_type": "postgres",
            "backend_config": {"backend_type": "postgres", "postgres_host": "localhost", "postgres_port": 5433,
                               "postgres_user": "hybridrag", "postgres_password": "s3cret-hr",
                               "postgres_database": "hybridrag",
                               "connection_string": "postgresql://hybridrag:s3cret-hr@localhost:5433/hybridrag"},
        },
        "plain": {
            "name": "plain", "path": "/home/user/databases/plain", "source_type": "filesystem", "auto_watch": False,
            "watch_interval": 300, "recursive": True, "created_at": "2025-12-22T10:00:00.000001",
            "backend_type": "json", "backend_config": {"backend_type": "json"},
        },
    }})


def every_key() -> str:
    """One entry with every DatabaseEntry key HybridRAG knows, one with none but the required ones."""
    full = {
        "name": "everything", "path": "/srv/everything", "source_folder": "/srv/src", "source_type": "api",
        "auto_watch": True, "watch_interval": 120, "model": "azure/gpt-5.1", "recursive": False,
        "file_extensions": [".md"], "preprocessing_pipeline": ["api_response_extraction"],
        "created_at": "2026-01-01T00:00:00.000001", "last_sync": "2026-01-02T00:00:00.000001",
        "description": "all keys", "specstory_config": {"jira_project_key": "X"},
        "api_config": {"api_url": "https://wiki.example/api", "auth_type": "api_key",
                       "auth_config": {"token": "tok-Zq9-abc"}},
        "schema_config": {"db_type": "athena", "table_patterns": ["fact_*"]},
        "backend_type": "postgres",
        "backend_config": {"postgres_host": "pg.example", "postgres_workspace": "everything",
                           "postgres_password": "Zq9-everything"},
        "model_config": {"llm_model": "azure/gpt-5.1", "embedding_model": "azure/text-embedding-3-small",
                         "embedding_dim": 768},
        "ingestion_mode": "spoonfeed", "spoonfeed_files_per_day": 10, "max_daily_cost_usd": 2.5,
        "max_run_cost_usd": 0.5, "fallback_llm_model": "ollama/qwen2.5", "fallback_tiers": ["ollama/qwen2.5"],
        "fallback_llm_api_base": "http://localhost:11434", "fallback_llm_num_ctx": 8192, "fallback_trigger": "budget",
    }
    assert set(full) == HYBRIDRAG_ENTRY_KEYS
    return hybridrag_dump({"version": 1, "databases": {"everything": full, "minimal": {"name": "minimal", "path": "/m"}}})


SHAPES: Dict[str, str] = {
    "hybridrag-db-register": written_by_hybridrag_register(),
    "every-key": every_key(),
    **{p.stem: p.read_text(encoding="utf-8") for p in sorted(HERE.glob("*.yaml"))},
}


def entry_blocks(text: str) -> Dict[str, str]:
    """Each entry's lines (key line through its last content line), by a plain line scan."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(r"^databases:\s*(#.*)?$", line))
    col = None
    blocks: Dict[str, List[str]] = {}
    current = None
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            if current is not None:
                blocks[current].append(line)
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            break  # the next top-level key
        col = indent if col is None else col
        if indent == col:
            current = line.strip().split(":", 1)[0]
            blocks[current] = [line]
        elif current is not None:
            blocks[current].append(line)
    out = {}
    for name, block in blocks.items():
        while block and (not block[-1].strip() or block[-1].lstrip().startswith("#")):
            block.pop()  # trailing blank lines and comments may belong to what follows
        out[name] = "".join(block)
    return out


def run(*args: str, env: Dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as a real process (what a user runs)."""
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def cli(*args: str, env: Dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The same CLI in this process (fast); same exit codes, stdout and stderr."""
    from click.testing import CliRunner

    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), list(args), env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def no_secret(*texts: str) -> None:
    for text in texts:
        for s in SECRETS:
            assert s not in text, (s, text[:2000])


@pytest.fixture
def registry_file() -> Path:
    return Path(os.environ["HYBRIDRAG_CONFIG"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_list_and_show_every_shape_without_a_password(shape, registry_file):
    registry_file.write_text(SHAPES[shape], encoding="utf-8")
    expected = yaml.safe_load(SHAPES[shape])["databases"]
    listed = cli("db", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    out = json.loads(listed.stdout)
    assert out["problems"] == {}
    assert sorted(d["name"] for d in out["databases"]) == sorted(expected)
    human = cli("db", "list", env={"COLUMNS": "300"})
    assert human.returncode == 0 and all(name in human.stdout for name in expected)
    no_secret(listed.stdout, listed.stderr, human.stdout, human.stderr)
    for name, raw in expected.items():
        shown = cli("db", "show", name, "--json")
        assert shown.returncode == 0, shown.stderr
        got = json.loads(shown.stdout)["database"]
        # every key of the file is shown, unknown ones included, at every level (secrets masked)
        assert set(got) == set(raw) | {"name"}
        for key in ("backend_config", "model_config", "specstory_config", "schema_config"):
            if isinstance(raw.get(key), dict):
                assert set(got[key]) == set(raw[key]), key
        text = cli("db", "show", name)
        assert text.returncode == 0, text.stderr
        assert all(f"{key}:" in text.stdout for key in raw)
        no_secret(shown.stdout, shown.stderr, text.stdout, text.stderr)


def _edits(shape: str) -> Dict[str, str]:
    """Which entry to replace and which to remove in each file (two different entries where it has two)."""
    names = list(yaml.safe_load(SHAPES[shape])["databases"])
    usable = [n for n in names if n not in ("graphdb", "vectors")]
    return {"replace": usable[0], "remove": names[-1] if names[-1] != usable[0] else names[0]}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_register_replace_remove_leave_every_other_entry_byte_identical(shape, registry_file, tmp_path):
    original = SHAPES[shape]
    registry_file.write_text(original, encoding="utf-8")
    before = entry_blocks(original)
    edits = _edits(shape)

    def others_unchanged(text: str, *, changed: set) -> None:
        after = entry_blocks(text)
        for name, block in before.items():
            if name not in changed:
                assert after[name] == block, (shape, name)
        data_before, data_after = yaml.safe_load(original), yaml.safe_load(text)
        for key in data_before:  # version and any other top-level key stay
            if key != "databases":
                assert data_after[key] == data_before[key]

    new = run("db", "register", "newdb", "--path", str(tmp_path / "newdb"))
    assert new.returncode == 0, new.stderr
    text = registry_file.read_text()
    others_unchanged(text, changed=set())
    assert yaml.safe_load(text)["databases"]["newdb"]["path"] == str(tmp_path / "newdb")
    for comment in re.findall(r"#.*", original):
        assert comment in text  # comments stay, even those between entries

    target = edits["replace"]
    replaced = run("db", "register", target, "--path", str(tmp_path / "moved"), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    text = registry_file.read_text()
    others_unchanged(text, changed={target})
    entry = yaml.safe_load(text)["databases"][target]
    assert entry["path"] == str(tmp_path / "moved") and entry["backend_type"] == "json"
    raw = yaml.safe_load(original)["databases"][target]
    for key in ("model", "description", "created_at", "recursive", "specstory_config", "colour", "notes"):
        if key in raw:
            assert entry[key] == raw[key], key  # --replace keeps what it has no option for

    gone = edits["remove"]
    removed = run("db", "remove", gone)
    assert removed.returncode == 0, removed.stderr
    text = registry_file.read_text()
    others_unchanged(text, changed={target, gone})
    assert gone not in yaml.safe_load(text)["databases"]
    no_secret(new.stdout + new.stderr, replaced.stdout + replaced.stderr, removed.stdout + removed.stderr)
    # the literal passwords HybridRAG wrote are still where they were (nothing rewrote those entries)
    for name, block in before.items():
        if name not in (target, gone):
            for s in ("s3cret-hr", "Zq9wizard-pw", "Zq9neo-pw"):
                assert (s in block) == (s in entry_blocks(text)[name])


def test_registering_into_an_emptied_hybridrag_registry(registry_file, tmp_path):
    registry_file.write_text("version: 1\ndatabases: {}\n")  # what HybridRAG leaves after unregistering all
    assert run("db", "register", "kb", "--path", str(tmp_path)).returncode == 0
    data = yaml.safe_load(registry_file.read_text())
    assert data["version"] == 1 and list(data["databases"]) == ["kb"]


def test_a_new_registry_file_has_hybridrags_version(registry_file, tmp_path):
    assert not registry_file.exists()
    assert run("db", "register", "kb", "--path", str(tmp_path)).returncode == 0
    assert yaml.safe_load(registry_file.read_text())["version"] == 1


def test_entries_this_package_writes_are_hybridrags(registry_file, tmp_path):
    """Only HybridRAG's keys plus this package's documented ones; no password, no ${...} anywhere."""
    commands = [
        ("pg-url", "--url", "postgresql://kb_user:Zq9-url-pw@db.example:6543/kb?sslmode=require&embedding_model=m1&"
                            "embedding_dim=8&maintenance_work_mem=1GB", "--workspace", "kb1", "--password-env", "KB_PW"),
        ("pg-options", "--backend", "postgres", "--host", "db.example", "--port", "6543", "--user", "u",
         "--database", "kb", "--ssl-mode", "require", "--max-connections", "20", "--vector-index-type", "ivfflat",
         "--hnsw-m", "32", "--hnsw-ef", "128", "--embedding-model", "m2", "--embedding-dim", "16"),
        ("mongo", "--url", "mongodb://root:Zq9-mongo@mongo.example:27017/kbdb", "--workspace", "w1"),
        ("files", "--workspace", "team", "--source-folder", str(tmp_path), "--auto-watch", "--watch-interval", "60"),
    ]
    for name, *args in commands:
        proc = cli("db", "register", name, "--path", str(tmp_path / name), "--no-check", *args)
        assert proc.returncode == 0, proc.stderr
        no_secret(proc.stdout, proc.stderr)
    text = registry_file.read_text()
    assert "${" not in text and "Zq9" not in text and "password:" not in text
    databases = yaml.safe_load(text)["databases"]
    for name, entry in databases.items():
        assert set(entry) <= HYBRIDRAG_ENTRY_KEYS, name
        config = entry.get("backend_config") or {}
        assert set(config) <= HYBRIDRAG_BACKEND_CONFIG_KEYS | OWN_BACKEND_CONFIG_KEYS, (name, config)
        if entry["backend_type"] != "mongodb":
            assert not set(config) & OWN_BACKEND_CONFIG_KEYS
        extra = config.get("extra_options") or {}
        assert set(extra) <= OWN_EXTRA_OPTIONS_KEYS | {"maintenance_work_mem"}, (name, extra)
    pg = databases["pg-url"]
    assert pg["backend_config"]["connection_string"] == "postgresql://kb_user@db.example:6543/kb?sslmode=require"
    assert pg["backend_config"]["extra_options"] == {"password_env": "KB_PW", "maintenance_work_mem": "1GB"}
    assert pg["model_config"] == {"embedding_model": "m1", "embedding_dim": 8}
    assert databases["pg-options"]["model_config"] == {"embedding_model": "m2", "embedding_dim": 16}
    # what the entries say reads back as the settings given
    env = cli("env", "pg-url", "--json", env={"KB_PW": "pw-from-env"})
    assert env.returncode == 0, env.stderr
    exported = json.loads(env.stdout)["env"]
    assert (exported["POSTGRES_HOST"], exported["POSTGRES_PORT"], exported["POSTGRES_DATABASE"], exported["POSTGRES_USER"],
            exported["POSTGRES_WORKSPACE"], exported["POSTGRES_PASSWORD"]) == ("db.example", "6543", "kb", "kb_user", "kb1", "***")
    shown = cli("env", "pg-url", "--show-secrets", "--json", env={"KB_PW": "pw-from-env"})
    assert json.loads(shown.stdout)["env"]["POSTGRES_PASSWORD"] == "pw-from-env"


def test_old_entries_with_env_references_still_work(registry_file):
    """Written by earlier versions of this package: ${VAR} in postgres_password, connection_string, mongo_uri."""
    registry_file.write_text(yaml.safe_dump({"databases": {
        "pg": {"name": "pg", "path": "/pg", "backend_type": "postgres", "backend_config": {
            "postgres_password": "${OLD_PW}", "connection_string": "postgresql://me:${OLD_PW}@h:6000/d"}},
        "mg": {"name": "mg", "path": "/mg", "backend_type": "mongodb",
               "backend_config": {"mongo_uri": "mongodb://root:${OLD_MONGO}@m:27017/", "mongo_database": "kb"}},
    }}))
    env = {"OLD_PW": "pw:1", "OLD_MONGO": "mpw"}
    pg = json.loads(cli("env", "pg", "--json", "--show-secrets", env=env).stdout)["env"]
    assert (pg["POSTGRES_HOST"], pg["POSTGRES_PORT"], pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]) == ("h", "6000", "me", "pw:1")
    mg = json.loads(cli("env", "mg", "--json", "--show-secrets", env=env).stdout)["env"]
    assert mg["MONGO_URI"] == "mongodb://root:mpw@m:27017/" and mg["MONGO_DATABASE"] == "kb"
    missing = cli("env", "pg", env={k: "" for k in ()})
    assert missing.returncode == 2 and "OLD_PW is not set" in missing.stderr


def test_hybridrag_shapes_read_as_hybridrag_means_them(registry_file):
    registry_file.write_text(SHAPES["after_backend_migrate"] + SHAPES["wizard_connection_string"].split("databases:\n", 1)[1])
    notes = json.loads(cli("env", "notes", "--json").stdout)["env"]
    assert (notes["POSTGRES_HOST"], notes["POSTGRES_PORT"], notes["POSTGRES_DATABASE"], notes["POSTGRES_WORKSPACE"]) == (
        "db.internal", "5433", "hybridrag", "notes")
    wiz = json.loads(cli("env", "wizdb", "--json", "--show-secrets").stdout)["env"]
    assert (wiz["POSTGRES_HOST"], wiz["POSTGRES_PORT"], wiz["POSTGRES_USER"], wiz["POSTGRES_DATABASE"]) == (
        "127.0.0.1", "5999", "alice", "wizdb")
    assert wiz["POSTGRES_PASSWORD"] == "Zq9wizard-pw"  # the literal in the file is used ...
    masked = cli("env", "wizdb", "--json")
    assert "Zq9" not in masked.stdout + masked.stderr  # ... and never shown
    plain = json.loads(cli("env", "plain", "--json").stdout)
    assert plain["backend"] == "json"


def test_backends_without_a_plugin_load_and_commands_on_them_exit_1(registry_file):
    registry_file.write_text(SHAPES["neo4j_and_friends"])
    assert cli("db", "list").returncode == 0
    for args in (("status", "graphdb"), ("validate", "vectors"), ("env", "graphdb"),
                 ("migrate", "--from", "graphdb", "--to", "/tmp/never-created-by-this-test")):
        proc = cli(*args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "no installed plugin provides" in proc.stderr and "Traceback" not in proc.stderr
        no_secret(proc.stdout, proc.stderr)
    assert not Path("/tmp/never-created-by-this-test").exists()
    local = cli("env", "local", "--json")  # the registry's other entries still work
    assert local.returncode == 0 and json.loads(local.stdout)["backend"] == "json"


def test_register_warns_about_a_name_hybridrag_would_skip(tmp_path):
    proc = cli("db", "register", "My_KB", "--path", str(tmp_path))
    assert proc.returncode == 0 and "warning:" in proc.stderr and "'my-kb'" in proc.stderr


def test_register_whose_check_cannot_run_saves_nothing(registry_file, tmp_path):
    registry_file.write_text(SHAPES["after_backend_migrate"])
    proc = cli("db", "register", "x", "--path", str(tmp_path), "--backend", "postgres", "--password-env", "UNSET_PW_9",
               env={})
    assert proc.returncode == 2 and "the check cannot run" in proc.stderr and "UNSET_PW_9 is not set" in proc.stderr
    assert registry_file.read_text() == SHAPES["after_backend_migrate"]
