"""JSON provider: status counts against an independent truth (json.load / networkx), validation, config."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from conftest import REALDATA, realdata_workspaces

from hybridrag_backends.hybridrag import lightrag_env
from hybridrag_backends.models import BackendConfig
from hybridrag_backends_json import layout
from hybridrag_backends_json.metrics import count_file
from hybridrag_backends_json.provider import JsonProvider

WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{w or '-'}" for d, w in WORKSPACES]


def truth(folder: Path) -> dict:
    """Record counts computed the obvious way, loading each file whole (fine for the small realdata)."""
    counts = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith("kv_store_") and name.endswith(".json"):
            ns = name[len("kv_store_") : -len(".json")]
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            first = next(iter(data), "")
            if ns.endswith("_cache") and len(first.split(":")) != 3:
                # old layout: what LightRAG 1.5.7's migration flattens is counted flattened
                n = 0
                for v in data.values():
                    nested = isinstance(v, dict) and v and all(isinstance(e, dict) and "return" in e for e in v.values())
                    n += len(v) if nested else 1
                counts[ns] = n
            else:
                counts[ns] = len(data)
        elif name.startswith("vdb_") and name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            counts[name[4:-5]] = len(data["data"])
            rows = len(base64.b64decode(data["matrix"])) // 4 // data["embedding_dim"]
            assert rows == len(data["data"])  # realdata matrices are complete
        elif name.startswith("graph_") and name.endswith(".graphml"):
            g = nx.read_graphml(path)
            ns = name[6:-8]
            counts[f"{ns}.nodes"] = g.number_of_nodes()
            counts[f"{ns}.edges"] = g.number_of_edges()
    return counts


@pytest.mark.parametrize("wd,ws", WORKSPACES, ids=IDS)
def test_status_counts_every_store_like_the_truth(wd, ws):
    provider = JsonProvider()
    m = asyncio.run(provider.metrics(provider.config_from_target(str(wd), workspace=ws)))
    folder = wd / ws if ws else wd
    assert m.store_counts == truth(folder)
    assert set(m.file_sizes) == {p.name for p in layout.store_files(folder)}
    assert m.total_size_bytes == sum(p.stat().st_size for p in layout.store_files(folder) for p in [p.path])
    assert m.health == "healthy" and m.warnings == []
    assert set(m.details["count_methods"]) == set(m.file_sizes)


@pytest.mark.parametrize("wd,ws", WORKSPACES, ids=IDS)
def test_session_count_matches_status(wd, ws):
    provider = JsonProvider()
    cfg = provider.config_from_target(str(wd), workspace=ws)
    session = provider.open(cfg)
    m = asyncio.run(provider.metrics(cfg))

    async def counts():
        return {s.name: await session.count(s) for s in await session.list_stores()}

    assert asyncio.run(counts()) == m.store_counts


def test_counting_methods_are_reported_and_fall_back_for_other_shapes(tmp_path):
    indented = tmp_path / "kv_store_full_docs.json"
    indented.write_text(json.dumps({"a": {"content": "x\ny"}, "b": {"content": "z"}}, indent=2))
    compact = tmp_path / "kv_store_text_chunks.json"
    compact.write_text(json.dumps({"a": {"content": "x"}, "b": {}, "c": {}}))
    assert count_file(indented).records == 2 and count_file(indented).method.startswith("fast")
    assert count_file(compact).records == 3 and count_file(compact).method.startswith("streamed")
    empty = tmp_path / "kv_store_x.json"
    empty.write_text("{}")
    assert count_file(empty).records == 0


def test_vdb_with_fewer_matrix_rows_than_records_warns(tmp_path):
    f = tmp_path / "vdb_entities.json"
    f.write_text(json.dumps({"embedding_dim": 2, "data": [{"__id__": "a"}, {"__id__": "b"}],
                             "matrix": base64.b64encode(b"\0" * 8).decode()}))
    counted = count_file(f)
    assert counted.records == 2 and "1 matrix rows" in counted.warning


def test_size_warnings_name_the_exact_migrate_command():
    wd = REALDATA / "pararthdave__LightRAG__working_dir"
    provider = JsonProvider()
    cfg = BackendConfig(working_dir=str(wd), file_size_warning_mb=1, total_size_warning_mb=2)
    m = asyncio.run(provider.metrics(cfg))
    # no PostgreSQL database registered: the target is a placeholder, explained on the next line
    command = f"run: hybridrag-backends migrate --from {wd.resolve()} --to PG_TARGET\n  PG_TARGET: "
    assert any(w.startswith("vdb_entities.json") and command in w for w in m.warnings)
    assert any(w.startswith("total") and command in w for w in m.warnings)
    assert all("embedding_dim=1536" in w for w in m.warnings)  # the dimension the vdb files hold
    assert m.details["other_files"] == ["lightrag.log"]
    assert "kv_store_doc_status.json" in m.details["absent_standard_files"]
    ws_cmd = provider.migrate_command(BackendConfig(working_dir="/x y", workspace="kb"))
    assert ws_cmd.startswith("hybridrag-backends migrate --from '/x y' --workspace kb --to PG_TARGET\n  PG_TARGET: ")
    assert "embedding_dim=DIM" in ws_cmd and "DIM: the dimension of your embedding model" in ws_cmd


def test_claims_describe_env_and_kwargs(tmp_path):
    p = JsonProvider()
    lj = REALDATA / "ljxpython__langgraph_teach__rag_storage"
    assert p.claims_path(lj) and p.claims_path(tmp_path / "new") and p.claims_path(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    assert not p.claims_path(tmp_path) and not p.claims_path(tmp_path / "notes.txt")
    only_ws = tmp_path / "wd"
    (only_ws / "kb").mkdir(parents=True)
    (only_ws / "kb" / "kv_store_full_docs.json").write_text("{}")
    assert p.claims_path(only_ws)
    cfg = p.config_from_target(str(lj), workspace="knowledge_base")
    assert cfg.backend_type == "json" and cfg.working_dir == str(lj) and cfg.workspace == "knowledge_base"
    assert p.describe(cfg) == f"json:{lj.resolve()}#knowledge_base"
    assert p.describe(p.config_from_target(str(lj) + "/")) == f"json:{lj.resolve()}"
    env = lightrag_env(p, cfg)
    assert env["WORKSPACE"] == "knowledge_base" and env["WORKING_DIR"] == str(lj.resolve())
    assert env["LIGHTRAG_KV_STORAGE"] == "JsonKVStorage" and env["LIGHTRAG_GRAPH_STORAGE"] == "NetworkXStorage"
    kwargs = p.lightrag_kwargs(cfg)
    assert kwargs["vector_storage"] == "NanoVectorDBStorage" and kwargs["workspace"] == "knowledge_base"


def test_validate_reports_each_problem_with_a_fix(tmp_path):
    p = JsonProvider()

    def failing(cfg):
        return {c.name: c for c in asyncio.run(p.validate(cfg)) if not c.ok}

    assert failing(p.config_from_target(str(REALDATA / "macking3__lucaOS__rag_storage"))) == {}
    missing = failing(p.config_from_target(str(tmp_path / "nope")))
    assert "working dir exists" in missing and missing["working dir exists"].fix
    lj = REALDATA / "ljxpython__langgraph_teach__rag_storage"
    wrong_ws = failing(p.config_from_target(str(lj), workspace="nosuch"))
    assert "--workspace knowledge_base" in wrong_ws["LightRAG files"].fix
    bad = BackendConfig(working_dir=str(lj))
    bad.workspace = ".."  # bypasses BackendConfig's own check: LightRAG's rule still catches it
    assert "workspace name" in failing(bad)


@pytest.mark.parametrize(
    "name, damage",
    [
        ("kv_store_full_docs.json", lambda data: data[: len(data) // 2]),
        ("vdb_entities.json", lambda data: b"hello"),
        ("graph_chunk_entity_relation.graphml", lambda data: data[: len(data) // 2]),
    ],
    ids=["kv-truncated", "vdb-not-json", "graph-truncated"],
)
def test_validate_fails_on_a_corrupt_file_as_status_does(tmp_path, name, damage):
    folder = tmp_path / "db"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", folder)
    path = folder / name
    path.write_bytes(damage(path.read_bytes()))
    p = JsonProvider()
    cfg = p.config_from_target(str(folder))
    metrics = asyncio.run(p.metrics(cfg))
    assert metrics.health == "degraded" and any(name in w for w in metrics.warnings)
    checks = {c.name: c for c in asyncio.run(p.validate(cfg))}
    corrupt = checks.pop("files well-formed")
    assert not corrupt.ok and name in corrupt.detail and "byte" in corrupt.detail and corrupt.fix
    assert all(c.ok for c in checks.values())  # only the file's content is wrong


def test_chunked_scans_match_a_whole_file_search_at_every_boundary(tmp_path, monkeypatch):
    import random
    import re

    from hybridrag_backends_json import scan
    from hybridrag_backends_json.nanovdb import _is_matrix_key

    monkeypatch.setattr(scan, "CHUNK", 7)  # every pattern straddles chunk boundaries somewhere
    rng = random.Random(3)
    path = tmp_path / "f.bin"
    for _ in range(1500):
        data = bytes(rng.choice(b'ab"mxr\\: ') for _ in range(rng.randint(0, 120)))
        if rng.random() < 0.5:
            k = rng.randint(0, len(data))
            data = data[:k] + b'"matrix": "QQ' + data[k:]
        for token in (b'"a"m', b'"xr\\:a', b'"a"m'):  # regex_matches' tokens below, at random boundaries
            k = rng.randint(0, len(data))
            data = data[:k] + token + data[k:]
        path.write_bytes(data)
        want = next((m.start() for m in re.finditer(rb'(?<!\\)"matrix"\s*:\s*"', data)), None)
        assert scan.find_first(path, b'"matrix"', 0, _is_matrix_key) == want, data
        regex = re.compile(rb'"(?:(a"m)|(xr\\:a))')  # like nanovdb's ID_OR_MATRIX_RE: a literal first byte
        whole = [(m.start(), m.lastindex, data[m.start() - 1] if m.start() else -1) for m in regex.finditer(data)]
        assert list(scan.regex_matches(path, regex, 6)) == whole, data
        assert [h[0] for h in scan.regex_matches(path, regex, 6, 5)] == [m.start() for m in regex.finditer(data, 5)]
        for pat in (b"ab", b'"a', b'\\"m'):
            assert scan.count_patterns(path, [pat])[pat] == data.count(pat), (data, pat)
            assert scan.count_patterns(path, [pat], 3, 50)[pat] == data[3:50].count(pat), (data, pat)


# -- status reads the part before the matrix once and never the matrix (issue 15) ------------------------

def _nano_vdb(path: Path, n: int, dim: int, content: str = "x" * 2000) -> bytes:
    """A vector store written by nano-vectordb's own save(): data first, then the matrix."""
    from nano_vectordb import NanoVectorDB

    rng = np.random.default_rng(7)
    db = NanoVectorDB(dim, storage_file=str(path))
    db.upsert([{"__id__": f"ent-{i}", "content": content, "__vector__": rng.random(dim, dtype=np.float32)}
               for i in range(n)])
    db.save()
    return path.read_bytes()


def _rchar() -> int:
    """Bytes this process has asked read() for, cached or not (Linux: /proc/self/io)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io to count bytes read")
def test_status_reads_the_records_once_and_never_the_matrix(tmp_path, monkeypatch):
    from hybridrag_backends_json import scan

    monkeypatch.setattr(scan, "CHUNK", 32 * 1024)  # reads overshoot the matrix key by at most one chunk
    path = tmp_path / "vdb_entities.json"
    raw = _nano_vdb(path, 300, 1536)
    key = raw.index(b'"matrix"')
    assert len(raw) - key > 1_500_000 and key > 600_000  # both parts are big enough to tell reads apart
    before = _rchar()
    counted = count_file(path)
    read = _rchar() - before
    assert counted.records == len(json.loads(raw)["data"]) == 300 and counted.warning is None
    assert counted.method.startswith("fast")
    # the part before the matrix once (plus one chunk and a few small head / tail reads), not the matrix
    assert key <= read < key + 2 * scan.CHUNK, (read, key, len(raw))


def test_vdb_fast_count_and_matrix_offset_equal_a_full_parse():
    from hybridrag_backends_json.nanovdb import VDBFile

    vdbs = [sf for wd, ws in WORKSPACES for sf in layout.store_files(wd / ws if ws else wd) if sf.kind == "vdb"]
    assert len(vdbs) >= 6  # every realdata dir's vector stores, 2024-2026 formats
    for sf in vdbs:
        raw = sf.path.read_bytes()
        parsed = json.loads(raw.decode("utf-8-sig"))
        vdb = VDBFile(sf.path, sf.namespace)
        assert vdb.count_records_before_matrix() == len(parsed["data"]), sf.path
        # the key found is where the top-level matrix starts: from it on, the rest of the object
        assert json.loads(b"{" + raw[vdb.matrix_key_offset():])["matrix"] == parsed["matrix"], sf.path


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda raw: raw[:-3], "truncated"),  # the file cut off inside the matrix
        (lambda raw: raw[:-6] + raw[-2:], "not a whole row"),  # the matrix 4 base64 chars short
        (lambda raw: raw[:-2] + b"AAAA" + raw[-2:], "not a whole row"),  # too long by 4 chars
        (lambda raw: raw[:-2] + base64.b64encode(b"\0" * 4 * 8).rstrip(b"=") + raw[-2:], "not valid base64"),
    ],
    ids=["cut-off", "short", "too-long", "too-long-unaligned"],
)
def test_status_reports_a_matrix_of_the_wrong_length(tmp_path, damage, says):
    folder = tmp_path / "db"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", folder)
    path = folder / "vdb_entities.json"
    path.write_bytes(damage(path.read_bytes()))
    p = JsonProvider()
    m = asyncio.run(p.metrics(p.config_from_target(str(folder))))
    assert m.health == "degraded" and m.details["count_methods"][path.name] == "unreadable"
    assert any(path.name in w and says in w for w in m.warnings), m.warnings


def test_a_matrix_one_row_too_long_is_a_status_warning(tmp_path):
    path = tmp_path / "vdb_entities.json"
    raw = _nano_vdb(path, 3, 8, content="c")
    parsed = json.loads(raw)
    matrix = base64.b64decode(parsed["matrix"]) + b"\0" * 4 * 8
    parsed["matrix"] = base64.b64encode(matrix).decode()
    path.write_text(json.dumps(parsed))
    counted = count_file(path)
    assert counted.method.startswith("fast") and counted.records == 3 and "4 matrix rows" in counted.warning


def test_validate_decodes_the_matrix_that_status_only_measures(tmp_path):
    """A same-length corruption inside the matrix: status (length arithmetic) does not see it, validate
    (the full read) names the file and the bytes."""
    folder = tmp_path / "db"
    shutil.copytree(REALDATA / "macking3__lucaOS__rag_storage", folder)
    path = folder / "vdb_entities.json"
    raw = bytearray(path.read_bytes())
    middle = (raw.index(b'"matrix"') + len(raw)) // 2
    raw[middle : middle + 1] = b"!"
    path.write_bytes(bytes(raw))
    p = JsonProvider()
    cfg = p.config_from_target(str(folder))
    m = asyncio.run(p.metrics(cfg))
    assert m.health == "healthy" and m.store_counts["entities"] == len(json.loads(raw)["data"])
    checks = {c.name: c for c in asyncio.run(p.validate(cfg))}
    bad = checks["files well-formed"]
    assert not bad.ok and path.name in bad.detail and "not valid base64" in bad.detail and "between bytes" in bad.detail


def test_kv_key_regex_matches_what_the_plain_json_string_regex_matches():
    """kvscan's key regex is written unrolled for speed; it must find exactly the key lines (and texts)
    the plain definition of a JSON string without raw newlines finds."""
    import random
    import re

    from hybridrag_backends_json.kvscan import _TOP_KEY

    plain = re.compile(rb'\n  "((?:[^"\\\n]|\\.)*)": (.)')
    rng = random.Random(5)
    found = 0
    for _ in range(20000):
        text = b"".join(rng.choice([b"a", b'"', b"\\", b"\n", b": ", b'\n  "', b'\\"', b"{"]) for _ in range(rng.randint(0, 16)))
        want = [(m.span(), m.groups()) for m in plain.finditer(text)]
        assert [(m.span(), m.groups()) for m in _TOP_KEY.finditer(text)] == want, text
        found += len(want)
    assert found > 100  # key lines were there to find
