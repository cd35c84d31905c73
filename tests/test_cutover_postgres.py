"""Cutover on the real PostgreSQL server (issue 12, acceptance): a JSON database whose ingestion slowed gets
``status``'s exact command; run as printed, it copies the database into PostgreSQL, verifies it and switches
the registry entry, after which LightRAG 1.5.7 opened through ``lightrag_settings(entry)`` reads the migrated
records; ``db switch --back`` restores the JSON entry byte for byte; a copy back with ``--to json --switch``
takes what PostgreSQL holds to the previous JSON working dir. ``--to postgres`` for an entry without PostgreSQL
settings exits non-zero and creates nothing. The registry stays byte-identical outside the switched keys."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import networkx as nx
import numpy as np
import pytest
import yaml

from conftest import realdata_dirs
from test_cutover import hybridrag_loads
from test_hints import bash, hints_in, placeholders
from test_hybridrag_registry import entry_blocks

from hybridrag_backends.ingestion import BASELINE_RUNS, RECENT_RUNS, record_ingestion

pytestmark = pytest.mark.postgres
MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))  # 768-d vectors
MODEL = "cutover-embed"
# inside a key the switch rewrites: the only bytes of the file a switch and its undo do not give back
INNER_COMMENT = "   # where HybridRAG's own `backend migrate` would move it"

REGISTRY = """\
# HybridRAG's registry
version: 1
databases:
  # moved to PostgreSQL by this test
  kb:
    name: kb
    path: {path}
    source_type: filesystem
    auto_watch: true   # HybridRAG's watcher ingests into it
    watch_interval: 300
    model: azure/gpt-4o
    created_at: '2025-12-19T21:38:14.123456'
    backend_type: json
    backend_config:
      backend_type: json
      connection_string: {url}{inner_comment}
    model_config:
      llm_model: azure/gpt-4o
      embedding_model: {model}
      embedding_dim: 768
  # no PostgreSQL settings of its own
  plain:
    name: plain
    path: {plain}
    backend_type: json
"""

LIGHTRAG_READ = r"""
import asyncio, json, os, sys
import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer
from hybridrag_backends.hybridrag import lightrag_settings
from hybridrag_backends.registry import Registry

class Chars:
    def encode(self, text): return [ord(c) for c in text]
    def decode(self, tokens): return "".join(map(chr, tokens))

async def embed(texts): raise AssertionError("reading must not embed")
async def llm(*args, **kwargs): return ""

async def main(keys):
    entry = Registry.load().get("kb")
    kwargs, env = lightrag_settings(entry)
    os.environ.update(env)  # what HybridRAG does in the process that runs LightRAG
    rag = LightRAG(**kwargs, llm_model_func=llm, tokenizer=Tokenizer("chars", Chars()),
                   embedding_func=EmbeddingFunc(embedding_dim=int(env["EMBEDDING_DIM"]), func=embed,
                                                model_name=env["EMBEDDING_MODEL"]))
    await rag.initialize_storages()
    docs = await rag.full_docs.get_by_ids(keys["docs"])
    chunks = await rag.text_chunks.get_by_ids(keys["chunks"])
    vectors = await rag.chunks_vdb.get_vectors_by_ids(keys["chunks"])
    nodes = await rag.chunk_entity_relation_graph.get_all_labels()
    edges = await rag.chunk_entity_relation_graph.get_all_edges()
    await rag.finalize_storages()
    print(json.dumps({"classes": [kwargs["kv_storage"], kwargs["vector_storage"], kwargs["graph_storage"]],
                      "docs": [d["content"] if d else None for d in docs],
                      "chunks": [c["content"] if c else None for c in chunks],
                      "vectors": {k: list(map(float, v)) for k, v in vectors.items()},
                      "nodes": sorted(nodes), "edges": len(edges)}))

asyncio.run(main(json.loads(sys.stdin.read())))
"""


def without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{parts.username}@{parts.hostname}:{parts.port}", parts.path, "", ""))


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900, cwd=cwd)


def source_truth():
    """MACKING read with a plain JSON / GraphML parse."""
    docs = json.loads((MACKING / "kv_store_full_docs.json").read_text(encoding="utf-8"))
    chunks = json.loads((MACKING / "kv_store_text_chunks.json").read_text(encoding="utf-8"))
    vdb = json.loads((MACKING / "vdb_chunks.json").read_text(encoding="utf-8"))
    matrix = np.frombuffer(base64.b64decode(vdb["matrix"]), dtype=np.float32).reshape(-1, vdb["embedding_dim"])
    vectors = {row["__id__"]: matrix[i] for i, row in enumerate(vdb["data"])}
    graph = nx.read_graphml(MACKING / "graph_chunk_entity_relation.graphml")
    return docs, chunks, vectors, graph


def lightrag_reads(password: str) -> dict:
    docs, chunks, vectors, _ = source_truth()
    keys = {"docs": sorted(docs), "chunks": sorted(set(chunks) & set(vectors))}
    proc = subprocess.run([sys.executable, "-c", LIGHTRAG_READ], input=json.dumps(keys), capture_output=True,
                          text=True, timeout=600, env={**os.environ, "POSTGRES_PASSWORD": password})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"keys": keys, **json.loads(proc.stdout.strip().splitlines()[-1])}


def test_slowdown_command_switches_to_postgres_lightrag_reads_it_and_switch_back_restores(pg_fresh_db, tmp_path):
    registry_file = Path(os.environ["HYBRIDRAG_CONFIG"])
    password = urlsplit(pg_fresh_db).password or ""
    kb = tmp_path / "kb"
    shutil.copytree(MACKING, kb)
    url = without_password(pg_fresh_db)
    original = REGISTRY.format(path=kb, url=url, model=MODEL, plain=tmp_path / "plain", inner_comment=INNER_COMMENT)
    registry_file.write_text(original, encoding="utf-8")

    # the watcher's history: ingestion slowed by more than performance_degradation_pct (50 by default)
    for seconds in [1.0] * BASELINE_RUNS + [3.0] * RECENT_RUNS:
        record_ingestion("kb", 4, seconds)
    status = run("status", "kb", "--json")
    assert status.returncode == 0, status.stderr
    (warning,) = [w for w in json.loads(status.stdout)["metrics"]["warnings"] if "has slowed down" in w]
    ((command, explained),) = hints_in(warning)
    assert command == "hybridrag-backends migrate --from kb --to postgres --switch"
    assert not placeholders(command) and not explained

    switched = bash(command + " --json", POSTGRES_PASSWORD=password)  # run exactly as printed
    assert switched.returncode == 0, switched.stdout[-3000:] + switched.stderr[-3000:]
    out = json.loads(switched.stdout)
    assert out["status"] == "completed" and out["verification"]["ok"] is True
    parts = urlsplit(pg_fresh_db)
    location = f"postgres://{parts.username}@{parts.hostname}:{parts.port}{parts.path}#kb"
    assert out["switch"]["backend"] == "postgres" and out["switch"]["location"] == location
    assert out["switch"]["previous_location"] == f"json:{kb}"

    # the registry: only kb's switched keys changed, no password written, HybridRAG still loads it
    text = registry_file.read_text()
    assert password not in text
    before, after = entry_blocks(original), entry_blocks(text)
    assert after["plain"] == before["plain"]
    for comment in re.findall(r"#.*", original.replace(INNER_COMMENT, "")):
        assert comment in text
    kept = [line for line in before["kb"].splitlines()
            if not re.match(r"\s*(backend_type|backend_config|connection_string):", line)
            and line.startswith("    ") and not line.startswith("      ")]
    assert kept and all(line in after["kb"].splitlines() for line in kept)
    entry = yaml.safe_load(text)["databases"]["kb"]
    assert entry["backend_type"] == "postgres"
    config = entry["backend_config"]
    assert (config["backend_type"], config["connection_string"], config["postgres_workspace"]) == ("postgres", url, "kb")
    parts = urlsplit(pg_fresh_db)  # the separate keys HybridRAG's own BackendConfig.get_env_vars reads (absent:
    hybridrag_defaults = {"postgres_host": "localhost", "postgres_port": 5432, "postgres_user": "hybridrag",
                          "postgres_database": "hybridrag"}  # its defaults, which are then the URL's)
    assert [config.get(k, default) for k, default in hybridrag_defaults.items()] == [
        parts.hostname, parts.port, parts.username, parts.path.lstrip("/")]
    assert config["extra_options"]["switched_from"]["entry"] == {
        "backend_type": "json", "backend_config": {"backend_type": "json", "connection_string": url}}
    assert entry["model_config"] == {"llm_model": "azure/gpt-4o", "embedding_model": MODEL, "embedding_dim": 768}
    hybridrag_loads(entry)

    # LightRAG 1.5.7, opened as HybridRAG opens it, reads the migrated records from PostgreSQL
    got = lightrag_reads(password)
    docs, chunks, vectors, graph = source_truth()
    assert got["classes"] == ["PGKVStorage", "PGVectorStorage", "PGGraphStorage"]
    assert got["docs"] == [docs[k]["content"] for k in got["keys"]["docs"]] and len(got["docs"]) > 0
    assert got["chunks"] == [chunks[k]["content"] for k in got["keys"]["chunks"]] and len(got["chunks"]) > 0
    assert set(got["vectors"]) == set(got["keys"]["chunks"])
    for key, vector in got["vectors"].items():
        assert np.array_equal(np.asarray(vector, dtype=np.float32), vectors[key]), key
    assert got["nodes"] == sorted(graph.nodes) and got["edges"] == graph.number_of_edges() > 0

    # back to the JSON files: the file is again what it was, byte for byte but for the comment inside the
    # key the switch rewrote
    back = run("db", "switch", "kb", "--back")
    assert back.returncode == 0, back.stderr
    assert f"kb points at json again: json:{kb}" in back.stdout and f"left {location} as it is" in back.stdout
    assert registry_file.read_text() == original.replace(INNER_COMMENT, "")
    from hybridrag_backends.hybridrag import lightrag_settings
    from hybridrag_backends.registry import Registry

    kwargs, _ = lightrag_settings(Registry.load().get("kb"))
    assert kwargs["kv_storage"] == "JsonKVStorage" and kwargs["working_dir"] == str(kb)

    # forward again (the workspace holds the first copy: --force), then a verified copy back into the
    # previous JSON working dir (--to json: the backend the entry was switched from) with a switch
    again = run("migrate", "--from", "kb", "--to", "postgres", "--switch", "--force", POSTGRES_PASSWORD=password)
    assert again.returncode == 0, again.stderr[-2000:]
    home_copy = run("migrate", "--from", "kb", "--to", "json", "--switch", "--force", "--json", POSTGRES_PASSWORD=password)
    assert home_copy.returncode == 0, home_copy.stdout[-2000:] + home_copy.stderr[-2000:]
    result = json.loads(home_copy.stdout)
    assert result["verification"]["ok"] and result["switch"]["location"] == f"json:{kb}"
    entry = yaml.safe_load(registry_file.read_text())["databases"]["kb"]
    assert entry["backend_type"] == "json" and entry["backend_config"]["connection_string"] == url
    assert entry["backend_config"]["extra_options"]["switched_from"]["entry"]["backend_type"] == "postgres"
    assert json.loads((kb / "kv_store_full_docs.json").read_text(encoding="utf-8")).keys() == docs.keys()
    assert run("db", "switch", "kb", "--back").returncode == 0  # and back to PostgreSQL, which it left as it was
    assert yaml.safe_load(registry_file.read_text())["databases"]["kb"]["backend_type"] == "postgres"


def test_to_postgres_without_a_configuration_creates_nothing(pg_fresh_db, tmp_path):
    registry_file = Path(os.environ["HYBRIDRAG_CONFIG"])
    plain = tmp_path / "plain"
    shutil.copytree(MACKING, plain)
    original = REGISTRY.format(path=tmp_path / "kb", url=without_password(pg_fresh_db), model=MODEL, plain=plain,
                               inner_comment=INNER_COMMENT)
    registry_file.write_text(original, encoding="utf-8")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    for args in (["--from", "plain", "--to", "postgres", "--switch"], ["--from", str(plain), "--to", "postgres"]):
        proc = run("migrate", *args, cwd=workdir, POSTGRES_PASSWORD=urlsplit(pg_fresh_db).password or "")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "names a backend, not a database" in proc.stderr and "give a URL" in proc.stderr
        assert list(workdir.iterdir()) == []  # no folder named postgres
    assert registry_file.read_text() == original
    jobs = Path(os.environ["HYBRIDRAG_HOME"]) / "jobs"
    assert not jobs.exists() or not list(jobs.iterdir())


def test_switch_to_a_url_stores_no_password_and_keeps_the_entrys_model(pg_fresh_db, tmp_path):
    """--to URL --switch: the entry's embedding model names the tables (the URL has none), the workspace is
    the entry's name, the URL's password is used for the copy and never written."""
    registry_file = Path(os.environ["HYBRIDRAG_CONFIG"])
    password = urlsplit(pg_fresh_db).password or ""
    assert password
    kb = tmp_path / "kb"
    shutil.copytree(MACKING, kb)
    registry_file.write_text(REGISTRY.format(path=kb, url=without_password(pg_fresh_db), model=MODEL,
                                             plain=tmp_path / "plain", inner_comment=""), encoding="utf-8")
    switched = run("migrate", "--from", "kb", "--to", pg_fresh_db, "--switch", "--json")
    assert switched.returncode == 0, switched.stdout[-2000:] + switched.stderr[-2000:]
    out = json.loads(switched.stdout)
    assert out["switch"]["location"].endswith("#kb")
    assert out["switch"]["notes"] == ["the password given in --to is not stored: after the switch 'kb' reads it from "
                                      "$POSTGRES_PASSWORD"]
    text = registry_file.read_text()
    assert password not in text and password not in switched.stdout + switched.stderr
    config = yaml.safe_load(text)["databases"]["kb"]["backend_config"]
    assert config["connection_string"] == without_password(pg_fresh_db) and config["postgres_workspace"] == "kb"
    env = run("env", "kb", "--json", "--show-secrets", POSTGRES_PASSWORD=password)
    assert env.returncode == 0, env.stderr
    variables = json.loads(env.stdout)["env"]
    assert (variables["POSTGRES_WORKSPACE"], variables["EMBEDDING_MODEL"], variables["POSTGRES_PASSWORD"]) == (
        "kb", MODEL, password)
    got = lightrag_reads(password)
    docs, _, _, _ = source_truth()
    assert got["docs"] == [docs[k]["content"] for k in got["keys"]["docs"]]
