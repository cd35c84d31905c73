"""``make demo``'s program: generate, status, verified migrate, status of the copy; exit 0."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np

from hybridrag_backends.devtools.generate import STANDARD_FILES


def _vectors(path: Path) -> dict:
    vdb = json.loads(path.read_text(encoding="utf-8"))
    matrix = np.frombuffer(base64.b64decode(vdb["matrix"]), dtype=np.float32).reshape(-1, vdb["embedding_dim"])
    return {record["__id__"]: matrix[i] for i, record in enumerate(vdb["data"])}


def _section(output: str, start: str, end: str) -> str:
    return output[output.index(start) : output.index(end)]


def test_demo_runs_every_step_and_the_copy_equals_the_source(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hybridrag_backends.demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HYBRIDRAG_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for banner in ("=== 1/4", "=== 2/4", "=== 3/4", "=== 4/4", "=== done ==="):
        assert banner in out
    assert "Traceback" not in proc.stderr
    # status shows the generated counts (160 chunks, 240 relations) for the source and for the copy
    for start, end in (("=== 2/4", "=== 3/4"), ("=== 4/4", "=== done")):
        section = _section(out, start, end)
        assert "160" in section and "240" in section, section

    source, copy = tmp_path / "demo-output" / "source", tmp_path / "demo-output" / "copy"
    assert sorted(p.name for p in copy.iterdir() if p.name in STANDARD_FILES) == sorted(STANDARD_FILES)
    for name in STANDARD_FILES:
        if name.startswith("kv_store_"):
            assert json.loads((copy / name).read_text("utf-8")) == json.loads((source / name).read_text("utf-8")), name
        elif name.startswith("vdb_"):
            want, got = _vectors(source / name), _vectors(copy / name)
            assert want.keys() == got.keys(), name
            assert all(np.array_equal(want[k], got[k]) for k in want), name
    graph_name = "graph_chunk_entity_relation.graphml"
    want, got = nx.read_graphml(source / graph_name), nx.read_graphml(copy / graph_name)
    assert dict(want.nodes(data=True)) == dict(got.nodes(data=True))
    assert {frozenset(e) for e in want.edges} == {frozenset(e) for e in got.edges}
