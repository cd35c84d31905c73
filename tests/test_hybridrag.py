"""HybridRAG integration: LightRAG(...) settings without touching os.environ, and the mountable CLI group."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import click
import lightrag.kg
from click.testing import CliRunner

from conftest import realdata_dirs
from hybridrag_backends.hybridrag import backend_group, lightrag_settings
from hybridrag_backends.models import BackendConfig, DatabaseEntry

MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))
STORAGE_KEYS = ("kv_storage", "vector_storage", "graph_storage", "doc_status_storage")


def assert_known_lightrag_classes(kwargs: dict) -> None:
    for key in STORAGE_KEYS:
        assert kwargs[key] in lightrag.kg.STORAGES, (key, kwargs[key])


def test_json_entry_settings_leave_os_environ_alone():
    before = dict(os.environ)
    kwargs, env = lightrag_settings(DatabaseEntry(name="kb", path=str(MACKING)))
    assert dict(os.environ) == before
    assert kwargs["working_dir"] == str(MACKING) and kwargs.get("workspace", "") == ""
    assert {kwargs[k] for k in STORAGE_KEYS} == {"JsonKVStorage", "NanoVectorDBStorage", "NetworkXStorage",
                                                 "JsonDocStatusStorage"}
    assert_known_lightrag_classes(kwargs)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


def test_config_with_workspace():
    kwargs, _ = lightrag_settings(BackendConfig(working_dir="/data/kb", workspace="team_a"))
    assert kwargs["working_dir"] == "/data/kb" and kwargs["workspace"] == "team_a"


def test_postgres_entry_resolves_password_from_the_given_env_only():
    before = dict(os.environ)
    entry = DatabaseEntry(
        name="pg", path="/srv/pg", backend_type="postgres",
        backend_config={"postgres_host": "db.example", "postgres_password": "${KB_PW}", "postgres_workspace": "kb1",
                        "hnsw_m": 32},
    )
    kwargs, env = lightrag_settings(entry, env={"KB_PW": "s3cret"})
    assert dict(os.environ) == before and "KB_PW" not in os.environ
    assert_known_lightrag_classes(kwargs)
    assert kwargs["kv_storage"] == "PGKVStorage" and kwargs["working_dir"] == "/srv/pg"
    assert kwargs.get("workspace", "kb1") == "kb1"
    assert env["POSTGRES_PASSWORD"] == "s3cret" and env["POSTGRES_HOST"] == "db.example"
    assert env["POSTGRES_WORKSPACE"] == "kb1" and env["POSTGRES_HNSW_M"] == "32"


LIGHTRAG_OPEN = r"""
import asyncio, json, os, sys
import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer

class Chars:
    def encode(self, text): return [ord(c) for c in text]
    def decode(self, tokens): return "".join(map(chr, tokens))

async def embed(texts): return np.zeros((len(texts), 768), dtype=np.float32)
async def llm(*args, **kwargs): return ""

async def main(kwargs, key):
    rag = LightRAG(**kwargs, llm_model_func=llm, embedding_func=EmbeddingFunc(embedding_dim=768, func=embed),
                   tokenizer=Tokenizer("chars", Chars()))
    await rag.initialize_storages()
    doc = await rag.full_docs.get_by_id(key)
    await rag.finalize_storages()
    print(json.dumps(doc["content"]))

settings = json.loads(sys.stdin.read())
os.environ.update(settings["env"])  # what HybridRAG does in the process that runs LightRAG
asyncio.run(main(settings["kwargs"], settings["key"]))
"""


def test_lightrag_opens_the_database_with_these_settings(tmp_path):
    working_dir = tmp_path / "kb"
    shutil.copytree(MACKING, working_dir)
    docs = json.loads((working_dir / "kv_store_full_docs.json").read_text(encoding="utf-8"))
    key, record = next(iter(docs.items()))
    kwargs, env = lightrag_settings(DatabaseEntry(name="kb", path=str(working_dir)))
    proc = subprocess.run([sys.executable, "-c", LIGHTRAG_OPEN], input=json.dumps({"kwargs": kwargs, "env": env, "key": key}),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == record["content"]


def test_backend_group_mounts_in_a_parent_cli():
    @click.group()
    def hybridrag():
        """HybridRAG's own CLI."""

    hybridrag.add_command(backend_group())
    runner = CliRunner()
    help_text = runner.invoke(hybridrag, ["backend", "--help"]).output
    for command in ("status", "validate", "env", "plugins", "db", "migrate"):
        assert command in help_text
    result = runner.invoke(hybridrag, ["backend", "status", str(MACKING), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backend"] == "json"
    missing = runner.invoke(hybridrag, ["backend", "status", "/no/such/dir"])
    assert missing.exit_code == 1  # not found
    assert missing.exception is None or isinstance(missing.exception, SystemExit)  # an exit, not a crash
    assert missing.stderr.startswith("error: /no/such/dir is not a registered database")
    assert "Traceback" not in missing.output
    registered = runner.invoke(hybridrag, ["backend", "db", "register", "kb", "--path", str(MACKING), "--json"])
    assert registered.exit_code == 0 and json.loads(registered.stdout)["database"]["name"] == "kb"


def test_settings_for_an_entry_hybridrag_wrote():
    """HybridRAG's wizard / backend migrate shape: the connection string is the connection, workspace and
    model_config apply, the password comes from POSTGRES_PASSWORD in the given env."""
    entry = DatabaseEntry(
        name="notes", path="/srv/notes", backend_type="postgres",
        backend_config={"connection_string": "postgresql://alice@127.0.0.1:5999/wizdb", "workspace": "notes"},
        model_config={"embedding_model": "text-embedding-3-small", "embedding_dim": 1536},
    )
    kwargs, env = lightrag_settings(entry, env={"POSTGRES_PASSWORD": "pw"})
    assert kwargs["workspace"] == "notes" and kwargs["vector_storage"] == "PGVectorStorage"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_USER"], env["POSTGRES_DATABASE"]) == (
        "127.0.0.1", "5999", "alice", "wizdb")
    assert env["POSTGRES_PASSWORD"] == "pw" and env["POSTGRES_WORKSPACE"] == "notes"
