"""``hybridrag-backends env``: every variable LightRAG and LightRAG Server read to use a backend, in the
three formats, and the same set from ``lightrag_settings()``.

The variable lists are LightRAG's, not ours: ``lightrag.kg.STORAGES`` for the storage class names,
``lightrag.kg.STORAGE_ENV_REQUIREMENTS`` for the required variables, and, for PostgreSQL and MongoDB,
the variables LightRAG's own storage classes actually read (recorded from ``os.environ`` while
``__init__`` / ``initialize`` run on exactly what ``env`` printed), which must then find the migrated data.
MongoDB runs on the in-process fake (HYBRIDRAG_TEST_MONGO_URI for a real server).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Dict, Iterator, Set

import lightrag.kg
import pytest
from click.testing import CliRunner
from conftest import REALDATA
from dotenv import dotenv_values

from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.hybridrag import STORAGE_ENV_VARS, lightrag_settings
from hybridrag_backends.models import DatabaseEntry

MACKING = REALDATA / "macking3__lucaOS__rag_storage"
MODEL = "env-test-model"


def run_env(*args: str, env: Dict[str, str] | None = None):
    return CliRunner().invoke(build_cli(), ["env", *args], env=env)


def env_json(*args: str) -> dict:
    result = run_env(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_lightrag_storages(env: Dict[str, str], backend_prefix: str) -> None:
    """The four names LightRAG Server chooses storages by, known to LightRAG, and every variable
    LightRAG lists as required for those classes."""
    for var in STORAGE_ENV_VARS.values():
        assert env[var] in lightrag.kg.STORAGES and env[var].startswith(backend_prefix), (var, env[var])
        for required in lightrag.kg.STORAGE_ENV_REQUIREMENTS.get(env[var], []):
            assert env.get(required), (env[var], required)


# -- formats ---------------------------------------------------------------------------------

HOSTILE = "p w\"d#'x\\y$z é\t!"  # quotes, #, backslash, $, a space, a tab, non-ASCII


def hostile_url() -> str:
    from urllib.parse import quote

    return f"postgresql://u:{quote(HOSTILE, safe='')}@db.example:6543/kb?embedding_model={MODEL}&embedding_dim=8"


def test_dotenv_and_shell_read_back_as_the_json_values():
    """python-dotenv (LightRAG Server's .env reader) and bash read every value back unchanged."""
    expected = env_json(hostile_url(), "--show-secrets")["env"]
    assert expected["POSTGRES_PASSWORD"] == HOSTILE
    dotenv = run_env(hostile_url(), "--format", "dotenv", "--show-secrets")
    assert dotenv.exit_code == 0, dotenv.output
    assert dict(dotenv_values(stream=io.StringIO(dotenv.stdout))) == expected
    shell = run_env(hostile_url(), "--show-secrets")
    script = shell.stdout + '\npython3 -c "import json, os, sys; print(json.dumps({k: os.environ[k] for k in sys.argv[1:]}))" ' + " ".join(expected)
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected


def test_json_flag_is_the_json_format_and_contradictions_are_refused():
    assert run_env(str(MACKING), "--json").stdout == run_env(str(MACKING), "--format", "json").stdout
    bad = run_env(str(MACKING), "--json", "--format", "dotenv")
    assert bad.exit_code == 2 and "--json and --format dotenv" in bad.stderr


def test_masked_secret_is_a_comment_that_overwrites_nothing():
    for fmt in ("dotenv", "shell"):
        out = run_env(hostile_url(), "--format", fmt).stdout
        assert HOSTILE not in out and "p%20w" not in out
        assert "# POSTGRES_PASSWORD is secret and masked" in out
        assert not any(line.split("=", 1)[0].split()[-1] == "POSTGRES_PASSWORD"
                       for line in out.splitlines() if not line.startswith("#") and "=" in line)
    # pasted into a shell that exported the real password, it stays
    proc = subprocess.run(["bash", "-c", run_env(hostile_url()).stdout + '\nprintf %s "$POSTGRES_PASSWORD"'],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "real"})
    assert proc.stdout == "real"


def test_a_value_dotenv_would_expand_is_an_error_not_a_wrong_file():
    from urllib.parse import quote

    url = f"postgresql://u:{quote('a${HOME}b', safe='')}@h/db"
    result = run_env(url, "--format", "dotenv", "--show-secrets")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "POSTGRES_PASSWORD" in result.stderr and "a${HOME}b" not in result.stderr


# -- the same set as lightrag_settings() ------------------------------------------------------


@pytest.mark.parametrize("backend_config,backend", [
    (None, "json"),
    ({"postgres_host": "db.example", "postgres_password": "${ENV_TEST_PW}", "postgres_workspace": "kb1",
      "embedding_model": MODEL, "embedding_dim": 768}, "postgres"),
    ({"mongo_uri": "mongodb://u:${ENV_TEST_PW}@mongo.example/LightRAG", "workspace": "kb2"}, "mongodb"),
])
def test_env_of_a_registered_database_is_lightrag_settings_env(backend_config, backend, tmp_path):
    from hybridrag_backends.registry import Registry

    path = MACKING if backend == "json" else tmp_path / "kb"
    registry = Registry.load()
    registry.add(DatabaseEntry(name="kb", path=str(path), backend_type=backend, backend_config=backend_config))
    registry.save()
    secrets = {"ENV_TEST_PW": "pw-for-env-test"}
    kwargs, expected = lightrag_settings(Registry.load().get("kb"), env=secrets)
    result = run_env("kb", "--format", "json", "--show-secrets", env=secrets)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"] == expected
    # and what LightRAG(**kwargs) is told agrees with what LightRAG Server is told
    assert expected["WORKING_DIR"] == kwargs["working_dir"] == str(path)
    assert expected["WORKSPACE"] == kwargs.get("workspace", "")
    assert {expected[var] for var in STORAGE_ENV_VARS.values()} == {kwargs[k] for k in STORAGE_ENV_VARS}


# -- every variable LightRAG reads, per backend ------------------------------------------------


def test_json_target_env():
    out = env_json(str(MACKING))
    env = out["env"]
    assert_lightrag_storages(env, "")
    assert {env[v] for v in STORAGE_ENV_VARS.values()} == {"JsonKVStorage", "NanoVectorDBStorage", "NetworkXStorage",
                                                            "JsonDocStatusStorage"}
    assert env["WORKING_DIR"] == str(MACKING) and env["WORKSPACE"] == "" and out["secrets"] == []
    # NanoVectorDB refuses a server whose dimension differs from the file's
    assert env["EMBEDDING_DIM"] == str(json.loads((MACKING / "vdb_chunks.json").read_text())["embedding_dim"])


class RecordingEnviron(MutableMapping):
    """os.environ that remembers which names were read."""

    def __init__(self, values: Dict[str, str]) -> None:
        self.values = dict(values)
        self.read: Set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.values[key] = value

    def __delitem__(self, key: str) -> None:
        del self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def copy(self) -> Dict[str, str]:
        return dict(self.values)


# Variables LightRAG's PG storages read that carry no setting of the database itself: LightRAG's
# defaults apply (connection retries, batch sizes, pool tuning, index options of other index types).
PG_TUNING_DEFAULTS = {
    "POSTGRES_CONNECTION_RETRIES", "POSTGRES_CONNECTION_RETRY_BACKOFF", "POSTGRES_CONNECTION_RETRY_BACKOFF_MAX",
    "POSTGRES_POOL_CLOSE_TIMEOUT", "POSTGRES_STATEMENT_CACHE_SIZE", "POSTGRES_SERVER_SETTINGS",
    "POSTGRES_UPSERT_MAX_PAYLOAD_BYTES", "POSTGRES_UPSERT_MAX_RECORDS_PER_BATCH", "POSTGRES_DELETE_MAX_RECORDS_PER_BATCH",
    "POSTGRES_AGE_ALLOW_UNSUPPORTED_VERSION", "POSTGRES_IVFFLAT_LISTS", "POSTGRES_VCHORDRQ_BUILD_OPTIONS",
    "POSTGRES_VCHORDRQ_PROBES", "POSTGRES_VCHORDRQ_EPSILON", "POSTGRES_SSL_MODE", "POSTGRES_SSL_CERT",
    "POSTGRES_SSL_KEY", "POSTGRES_SSL_ROOT_CERT", "POSTGRES_SSL_CRL",
}

PG_OPEN = r"""
import asyncio, json, os, sys
sys.path.insert(0, sys.argv[1])
from test_env import RecordingEnviron
settings = json.loads(sys.stdin.read())
recorder = RecordingEnviron({**settings["env"], "PATH": os.environ["PATH"]})
os.environ = recorder  # LightRAG sees exactly what env printed, and we see what it reads

import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer

class Chars:
    def encode(self, text): return [ord(c) for c in text]
    def decode(self, tokens): return "".join(map(chr, tokens))

async def main():
    env = settings["env"]
    dim = int(env["EMBEDDING_DIM"])
    async def embed(texts, **_): return np.zeros((len(texts), dim), dtype=np.float32)
    async def llm(*a, **k): return ""
    recorder.read.clear()
    # what LightRAG Server does with these variables (lightrag/api: config.py, lightrag_server.py)
    rag = LightRAG(working_dir=settings["working_dir"], workspace=env["WORKSPACE"],
                   kv_storage=env["LIGHTRAG_KV_STORAGE"], vector_storage=env["LIGHTRAG_VECTOR_STORAGE"],
                   graph_storage=env["LIGHTRAG_GRAPH_STORAGE"], doc_status_storage=env["LIGHTRAG_DOC_STATUS_STORAGE"],
                   llm_model_func=llm, tokenizer=Tokenizer("chars", Chars()),
                   embedding_func=EmbeddingFunc(embedding_dim=dim, func=embed, model_name=env["EMBEDDING_MODEL"]))
    await rag.initialize_storages()
    counts = await rag.doc_status.get_status_counts()
    labels = await rag.chunk_entity_relation_graph.get_all_labels()
    chunks = await rag.chunks_vdb.get_by_ids(settings["chunk_ids"])
    await rag.finalize_storages()
    print(json.dumps({"read": sorted(recorder.read), "counts": counts, "labels": labels,
                      "chunks": [c["id"] if c else None for c in chunks]}))

asyncio.run(main())
"""


def _source_facts(working_dir: Path) -> dict:
    import networkx as nx

    statuses = json.loads((working_dir / "kv_store_doc_status.json").read_text())
    counts: Dict[str, int] = {}
    for record in statuses.values():
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    chunk_ids = [r["__id__"] for r in json.loads((working_dir / "vdb_chunks.json").read_text())["data"]]
    return {"counts": counts, "labels": sorted(nx.read_graphml(working_dir / "graph_chunk_entity_relation.graphml").nodes),
            "chunk_ids": chunk_ids}


@pytest.mark.postgres
def test_postgres_target_env_is_what_lightrags_storages_read(pg_module_db, tmp_path):
    dim = json.loads((MACKING / "vdb_chunks.json").read_text())["embedding_dim"]
    url = f"{pg_module_db}?embedding_model={MODEL}&embedding_dim={dim}"
    migrated = CliRunner().invoke(build_cli(), ["migrate", "--from", str(MACKING), "--to", url,
                                                "--target-workspace", "env_test"])
    assert migrated.exit_code == 0, migrated.output
    out = env_json(url, "--workspace", "env_test", "--show-secrets")
    env = out["env"]
    assert_lightrag_storages(env, "PG")
    assert out["secrets"] == ["POSTGRES_PASSWORD"]
    assert env["POSTGRES_WORKSPACE"] == env["WORKSPACE"] == "env_test" and env["EMBEDDING_MODEL"] == MODEL
    source = _source_facts(MACKING)
    proc = subprocess.run([sys.executable, "-c", PG_OPEN, str(Path(__file__).parent)], cwd=tmp_path,
                          input=json.dumps({"env": env, "working_dir": str(tmp_path), "chunk_ids": source["chunk_ids"]}),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # LightRAG's own classes, configured only by these variables, land on the migrated data
    assert seen["counts"] == source["counts"] and seen["labels"] == source["labels"]
    assert seen["chunks"] == source["chunk_ids"]
    read = {name for name in seen["read"] if name.startswith("POSTGRES_")}
    assert {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DATABASE",
            "POSTGRES_WORKSPACE"} <= read  # the recorder works
    assert read - set(env) <= PG_TUNING_DEFAULTS, read - set(env) - PG_TUNING_DEFAULTS


@pytest.mark.mongodb
def test_mongodb_target_env_is_what_lightrags_storages_read(mongo_target, monkeypatch):
    """Fake-backed: LightRAG's ClientManager gets the fake's client for the URI env printed."""
    from lightrag.kg import mongo_impl

    migrated = CliRunner().invoke(build_cli(), ["migrate", "--from", str(MACKING), "--to", mongo_target.uri,
                                                "--target-workspace", "env_test", "--no-verify"])
    assert migrated.exit_code == 0, migrated.output
    out = env_json(mongo_target.uri, "--workspace", "env_test", "--show-secrets")
    env = out["env"]
    assert_lightrag_storages(env, "Mongo")
    assert out["secrets"] == ["MONGO_URI"] and env["MONGODB_WORKSPACE"] == env["WORKSPACE"] == "env_test"
    uris = []

    def client(uri, **options):
        uris.append(uri)
        return mongo_target.factory(uri, **options)

    monkeypatch.setattr(mongo_impl, "AsyncMongoClient", client)
    monkeypatch.setattr(mongo_impl.ClientManager, "_instances", {"db": None, "ref_count": 0})
    recorder = RecordingEnviron({**env, "PATH": os.environ["PATH"]})
    monkeypatch.setattr(os, "environ", recorder)
    source = _source_facts(MACKING)

    async def run():
        from lightrag.kg.shared_storage import initialize_share_data

        initialize_share_data()
        kw = dict(global_config={}, embedding_func=None, workspace="")  # MONGODB_WORKSPACE must choose the workspace
        doc_status = getattr(mongo_impl, env["LIGHTRAG_DOC_STATUS_STORAGE"])(namespace="doc_status", **kw)
        graph = getattr(mongo_impl, env["LIGHTRAG_GRAPH_STORAGE"])(namespace="chunk_entity_relation", **kw)
        kv = getattr(mongo_impl, env["LIGHTRAG_KV_STORAGE"])(namespace="full_docs", **kw)
        for storage in (doc_status, graph, kv):
            await storage.initialize()
        result = (await doc_status.get_status_counts(), await graph.get_all_labels(),
                  await kv.get_by_ids(list(json.loads((MACKING / "kv_store_full_docs.json").read_text()))))
        for storage in (doc_status, graph, kv):
            await storage.finalize()
        return result

    counts, labels, docs = asyncio.run(run())
    monkeypatch.setattr(os, "environ", recorder.values)
    assert counts == source["counts"] and labels == source["labels"] and all(docs)
    assert uris and set(uris) == {env["MONGO_URI"]}
    read = {name for name in recorder.read if name.startswith("MONGO")}
    assert {"MONGO_URI", "MONGO_DATABASE", "MONGODB_WORKSPACE"} <= read
    assert read - set(env) <= {"MONGO_GRAPH_BFS_MODE", "MONGO_UPSERT_MAX_PAYLOAD_BYTES",
                               "MONGO_UPSERT_MAX_RECORDS_PER_BATCH", "MONGO_DELETE_MAX_RECORDS_PER_BATCH"}, read
