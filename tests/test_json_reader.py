"""JSON reader: every documented normalisation of old layouts, resume positions, and bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import zlib
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from conftest import REALDATA

from hybridrag_backends.errors import SourceError
from hybridrag_backends.provider import StoreInfo, StoreKind
from hybridrag_backends_json.session import JsonSession


def read(folder: Path, store: StoreInfo, after=None, batch_size=2):
    async def go():
        records, rejected = [], []
        async for b in JsonSession(str(folder)).read(store, after, batch_size):
            records.extend(b.records)
            rejected.extend(b.rejected)
        return records, rejected

    return asyncio.run(go())


def kv(namespace: str) -> StoreInfo:
    return StoreInfo(namespace, StoreKind.DOC_STATUS if namespace == "doc_status" else StoreKind.KV)


def write_vdb(path: Path, dim: int, rows: np.ndarray, data: list, matrix: bool = True) -> None:
    path.write_text(json.dumps({
        "embedding_dim": dim, "data": data,
        "matrix": base64.b64encode(rows.astype(np.float32).tobytes()).decode() if matrix else "",
    }))


def packed(v: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(v.astype(np.float16).tobytes())).decode()


# -- normalisations ------------------------------------------------------------


def test_cache_nested_by_mode_is_flattened_like_lightrag(tmp_path):
    (tmp_path / "kv_store_llm_response_cache.json").write_text(json.dumps({
        "default": {"h1": {"return": "r1", "cache_type": "extract"}, "h2": {"return": "r2"}},
        "hybrid": {"h3": {"return": "r3", "cache_type": "query", "embedding": None}},
        "empty": {},
    }, indent=2))
    records, rejected = read(tmp_path, kv("llm_response_cache"))
    assert not rejected
    assert [(r.key, r.payload) for r in records] == [
        ("default:extract:h1", {"return": "r1", "cache_type": "extract"}),
        ("default:extract:h2", {"return": "r2"}),  # no cache_type: LightRAG's default "extract"
        ("hybrid:query:h3", {"return": "r3", "cache_type": "query", "embedding": None}),
        ("empty", {}),  # LightRAG would drop an empty mode silently; kept
    ]
    assert [r.cursor for r in records] == ["0", "1", "2", "3"]
    # resume after the 2nd flattened record
    assert [r.key for r in read(tmp_path, kv("llm_response_cache"), after="1")[0]] == ["hybrid:query:h3", "empty"]


def test_oldest_cache_is_kept_as_lightrag_keeps_it(tmp_path):
    (tmp_path / "kv_store_llm_response_cache.json").write_text(json.dumps({
        "5c75": {"return": "x", "model": "gpt-4o-mini"}, "9a01": {"return": "y", "model": "gpt-4o-mini"},
    }, indent=2))
    session = JsonSession(str(tmp_path))
    records, _ = read(tmp_path, kv("llm_response_cache"))
    assert [(r.key, r.payload) for r in records] == [
        ("5c75", {"return": "x", "model": "gpt-4o-mini"}), ("9a01", {"return": "y", "model": "gpt-4o-mini"})]

    async def notes():
        async for _ in session.read(kv("llm_response_cache")):
            pass
        return session.notes["llm_response_cache"]

    assert asyncio.run(notes())["legacy_unkeyed_cache"] == 2


def test_flat_cache_with_embedding_fields_and_id_is_kept_without_id(tmp_path):
    (tmp_path / "kv_store_llm_response_cache.json").write_text(json.dumps({
        "default:extract:ab": {"return": "r", "embedding": None, "embedding_shape": None, "_id": "default:extract"},
    }, indent=2))
    records, _ = read(tmp_path, kv("llm_response_cache"))
    assert records[0].payload == {"return": "r", "embedding": None, "embedding_shape": None}


def test_bom_at_file_start_and_inside_text(tmp_path):
    (tmp_path / "kv_store_full_docs.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"d1": {"content": "\ufeffText"}}, indent=2, ensure_ascii=False).encode())
    records, _ = read(tmp_path, kv("full_docs"))
    assert records[0].key == "d1" and records[0].payload == {"content": "\ufeffText"}  # document text untouched


def test_doc_status_with_embedded_content_keeps_it(tmp_path):
    row = {"status": "processed", "content": "full text", "content_summary": "full", "content_length": 9}
    (tmp_path / "kv_store_doc_status.json").write_text(json.dumps({"doc-1": row}, indent=2))
    assert read(tmp_path, kv("doc_status"))[0][0].payload == row


def test_vectors_come_from_the_matrix_and_the_vector_field_is_kept_as_written(tmp_path):
    # the per-record field is what get_vectors_by_ids returns, and it is not a copy of the (normalised)
    # matrix row: it is kept exactly, the matrix row is the Record's vector
    rows = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    data = [{"__id__": f"ent-{i}", "__created_at__": 1, "entity_name": f"E{i}", "vector": packed(rows[i] * 2)} for i in range(3)]
    write_vdb(tmp_path / "vdb_entities.json", 4, rows, data)
    store = StoreInfo("entities", StoreKind.VECTOR, 4)
    records, rejected = read(tmp_path, store)
    assert not rejected and [r.key for r in records] == ["ent-0", "ent-1", "ent-2"]
    assert records[1].payload == {"__created_at__": 1, "entity_name": "E1", "vector": data[1]["vector"]}
    for r, row in zip(records, rows):
        assert r.vector.dtype == np.float32 and np.array_equal(r.vector, row)
    resumed, _ = read(tmp_path, store, after="1")
    assert [r.key for r in resumed] == ["ent-2"] and np.array_equal(resumed[0].vector, rows[2])


def test_2024_vdb_records_with_only_id_and_name(tmp_path):
    rows = np.ones((2, 3), dtype=np.float32)
    write_vdb(tmp_path / "vdb_relationships.json", 3, rows, [{"__id__": "rel-a", "src_id": "A", "tgt_id": "B"}, {"__id__": "rel-b", "src_id": "B", "tgt_id": "C"}])
    records, _ = read(tmp_path, StoreInfo("relationships", StoreKind.VECTOR, 3))
    assert [r.payload for r in records] == [{"src_id": "A", "tgt_id": "B"}, {"src_id": "B", "tgt_id": "C"}]


def test_empty_matrix_uses_the_record_vector_else_rejects(tmp_path):
    v = np.array([0.5, -0.25, 1.0], dtype=np.float32)  # exact in float16
    write_vdb(tmp_path / "vdb_chunks.json", 3, np.zeros((0, 3)), [{"__id__": "c1", "vector": packed(v)}, {"__id__": "c2"}], matrix=False)
    records, rejected = read(tmp_path, StoreInfo("chunks", StoreKind.VECTOR, 3))
    assert [r.key for r in records] == ["c1"] and np.array_equal(records[0].vector, v)
    assert [r.key for r in rejected] == ["c2"] and "no matrix row" in rejected[0].reason
    assert "vdb_chunks.json" in rejected[0].location


def test_absent_standard_files_and_extra_stores_are_listed(tmp_path):
    (tmp_path / "kv_store_parse_cache.json").write_text("{}")
    (tmp_path / "kv_store_doc_status.json").write_text("{}")
    write_vdb(tmp_path / "vdb_entities.json", 5, np.zeros((0, 5)), [], matrix=False)
    (tmp_path / "graph_chunk_entity_relation.graphml").write_text(
        '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="undirected"/></graphml>')
    (tmp_path / "lightrag.log").write_text("x")
    s = JsonSession(str(tmp_path))
    stores = asyncio.run(s.list_stores())
    assert [(x.name, x.kind) for x in stores] == [
        ("parse_cache", StoreKind.KV), ("doc_status", StoreKind.DOC_STATUS), ("entities", StoreKind.VECTOR),
        ("chunk_entity_relation.nodes", StoreKind.GRAPH_NODES), ("chunk_entity_relation.edges", StoreKind.GRAPH_EDGES)]
    assert stores[2].embedding_dim == 5
    assert "kv_store_full_docs.json" in s.absent_standard_files() and "vdb_entities.json" not in s.absent_standard_files()


def test_graphml_typed_attributes_nodes_then_edges(tmp_path):
    import networkx as nx

    g = nx.Graph()
    g.add_node("A", entity_type="person", created_at=17)
    g.add_node("B<&>", description='say "hi"\nthere')
    g.add_edge("B<&>", "A", weight=2.5, keywords="k")
    nx.write_graphml(g, tmp_path / "graph_chunk_entity_relation.graphml")
    nodes, _ = read(tmp_path, StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES))
    edges, _ = read(tmp_path, StoreInfo("chunk_entity_relation", StoreKind.GRAPH_EDGES))
    assert [(n.key, n.payload) for n in nodes] == [("A", {"entity_type": "person", "created_at": 17}),
                                                   ("B<&>", {"description": 'say "hi"\nthere'})]
    assert edges[0].key == "A<SEP>B<&>" and edges[0].payload["weight"] == 2.5
    assert {edges[0].payload["source"], edges[0].payload["target"]} == {"A", "B<&>"}


# -- bad input -------------------------------------------------------------------


def test_truncated_kv_file_raises_after_the_good_records(tmp_path):
    text = json.dumps({f"k{i}": {"v": i} for i in range(5)}, indent=2)
    path = tmp_path / "kv_store_full_docs.json"
    path.write_text(text[: text.index('"k3"') + 10])
    got = []

    async def go():
        async for b in JsonSession(str(tmp_path)).read(kv("full_docs"), None, 1):
            got.extend(r.key for r in b.records)

    with pytest.raises(SourceError) as err:
        asyncio.run(go())
    assert got == ["k0", "k1", "k2"]
    msg = str(err.value)
    assert str(path) in msg and f"at byte {path.stat().st_size}" in msg and "'k2'" in msg


def test_kv_record_that_is_not_an_object_is_rejected(tmp_path):
    (tmp_path / "kv_store_text_chunks.json").write_text(json.dumps({"a": {"x": 1}, "b": [1, 2], "c": {"y": 2}}, indent=2))
    records, rejected = read(tmp_path, kv("text_chunks"))
    assert [r.key for r in records] == ["a", "c"]
    assert rejected[0].key == "b" and "not a JSON object" in rejected[0].reason and rejected[0].cursor == "1"
    text = (tmp_path / "kv_store_text_chunks.json").read_text()
    at = text.index('"b"')  # the key's own offset, not how far parsing had got
    assert rejected[0].location.endswith(f"kv_store_text_chunks.json at byte {at}")


def test_truncated_vdb_in_data_and_in_matrix(tmp_path):
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = [{"__id__": f"e{i}"} for i in range(3)]
    path = tmp_path / "vdb_entities.json"
    write_vdb(path, 4, rows, data)
    full = path.read_bytes()
    store = StoreInfo("entities", StoreKind.VECTOR, 4)
    path.write_bytes(full[: full.index(b'"e2"')])
    with pytest.raises(SourceError, match=r"vdb_entities.json: invalid JSON at byte \d+ \(end of file\).*'e1'"):
        read(tmp_path, store)
    path.write_bytes(full[:-10])  # cut inside the matrix text
    with pytest.raises(SourceError, match="vdb_entities.json: the matrix text is cut off at byte"):
        read(tmp_path, store)
    path.write_bytes(full[:-1])  # only the final brace is missing
    with pytest.raises(SourceError, match="vdb_entities.json: the file ends without closing its JSON object"):
        read(tmp_path, store)


def test_wrong_dimension_and_non_object_vector_records_are_rejected(tmp_path):
    data = [{"__id__": "ok", "vector": packed(np.ones(3))}, {"__id__": "short", "vector": packed(np.ones(2))}, 7]
    write_vdb(tmp_path / "vdb_entities.json", 3, np.zeros((0, 3)), data, matrix=False)
    records, rejected = read(tmp_path, StoreInfo("entities", StoreKind.VECTOR, 3))
    assert [r.key for r in records] == ["ok"]
    assert rejected[0].key == "short" and "dimension 2, expected embedding_dim 3" in rejected[0].reason
    assert "not a JSON object" in rejected[1].reason and rejected[1].cursor == "2"


def test_matrix_of_the_wrong_dimension_is_a_source_error(tmp_path):
    write_vdb(tmp_path / "vdb_entities.json", 4, np.zeros((1, 3)), [{"__id__": "a"}])
    with pytest.raises(SourceError, match="not a whole row of 4 float32 values"):
        read(tmp_path, StoreInfo("entities", StoreKind.VECTOR, 4))


def test_corrupt_graphml_names_file_and_position(tmp_path):
    path = tmp_path / "graph_chunk_entity_relation.graphml"
    path.write_text('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph><node id="a"/><node id="b"')
    with pytest.raises(SourceError, match=r"graph_chunk_entity_relation.graphml: invalid GraphML near byte \d+ \(line 1"):
        read(tmp_path, StoreInfo("chunk_entity_relation", StoreKind.GRAPH_NODES))


def test_resume_cursor_from_another_backend_is_refused(tmp_path):
    (tmp_path / "kv_store_full_docs.json").write_text("{}")
    with pytest.raises(SourceError, match="not a JSON reader position"):
        read(tmp_path, kv("full_docs"), after="doc-1")


def test_empty_kv_file_is_no_records_and_a_non_object_is_an_error(tmp_path):
    from hybridrag_backends_json.metrics import count_file

    path = tmp_path / "kv_store_full_docs.json"
    path.write_text("  \n")  # LightRAG's load_json reads a blank file as missing
    assert read(tmp_path, kv("full_docs")) == ([], []) and count_file(path).records == 0
    path.write_text('[{"a": 1}]')
    with pytest.raises(SourceError, match="not a LightRAG KV file .*JSON array"):
        read(tmp_path, kv("full_docs"))
    with pytest.raises(SourceError, match="not a LightRAG KV file"):
        count_file(path)


def test_corrupt_byte_in_a_big_kv_file_is_located_exactly(tmp_path):
    text = json.dumps({f"k{i}": {"v": "x" * 1000} for i in range(1500)}, indent=2)
    bad = text.index('"k1200"') + 20  # far beyond ijson's first read buffer
    path = tmp_path / "kv_store_full_docs.json"
    path.write_text(text[:bad] + "@" + text[bad + 1 :])
    with pytest.raises(SourceError) as err:
        read(tmp_path, kv("full_docs"), batch_size=500)
    assert f"{path}: invalid JSON at byte {bad}, after key 'k1199' (record #1199): Expecting value" in str(err.value)


def _edges_fresh(path):
    from hybridrag_backends_json import graphml

    graphml._EDGES_AT.clear()
    return list(graphml.iter_elements(path, "edge"))


@pytest.mark.parametrize("gml", sorted(REALDATA.rglob("*.graphml")), ids=lambda p: p.parent.name)
def test_edges_read_after_nodes_skip_the_node_section_and_match(gml):
    """Reading the nodes learns where the edges start; the edges read next skip the node section and
    are the same as a full parse (and as networkx reads them)."""
    from hybridrag_backends_json import graphml

    full = _edges_fresh(gml)
    list(graphml.iter_elements(gml, "node"))
    assert graphml._EDGES_AT, "nodes-then-edges layout not learnt"
    assert list(graphml.iter_elements(gml, "edge")) == full
    g = nx.read_graphml(gml)
    assert sorted(tuple(sorted((p["source"], p["target"]))) for _, p, _ in full) == sorted(
        tuple(sorted(e)) for e in g.edges())


def test_graphml_with_a_node_after_an_edge_is_read_whole(tmp_path):
    from hybridrag_backends_json import graphml

    path = tmp_path / "g.graphml"
    path.write_text(
        '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>'
        '<node id="a"/><edge source="a" target="b"/><node id="b"/><edge source="b" target="c"/><node id="c"/>'
        '</graph></graphml>')
    assert [n for _, _, n in graphml.iter_elements(path, "node")] == ["a", "b", "c"]
    assert not graphml._EDGES_AT.get(graphml._identity(path))  # interleaved: nothing to skip
    assert [(p["source"], p["target"]) for _, p, _ in graphml.iter_elements(path, "edge")] == [("a", "b"), ("b", "c")]


@pytest.mark.parametrize("after_edges", ["", "<!-- a comment may hide a node -->", '<g:node xmlns:g="x" id="z"/>'])
def test_a_node_pass_stops_at_the_first_edge_only_when_no_node_can_follow(tmp_path, after_edges):
    """Nodes all before the edges (networkx's layout): the node pass reads no further than the first edge,
    so damage in the edge section is the edge pass's to report. A comment, a DTD or a (prefixed) node after
    the first edge makes it parse the whole file, as before."""
    from hybridrag_backends_json import graphml

    path = tmp_path / "graph_chunk_entity_relation.graphml"
    path.write_text('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>'
                    + "".join(f'<node id="n{i}"/>' for i in range(5)) + '<edge source="n1" target="n2"/>'
                    + after_edges + '<edge source="n2" target="n3"><data key="d0">1</data @@@ broken')
    if after_edges:
        with pytest.raises(SourceError, match="invalid GraphML"):
            list(graphml.iter_elements(path, "node"))
        return
    assert [n for _, _, n in graphml.iter_elements(path, "node")] == [f"n{i}" for i in range(5)]
    with pytest.raises(SourceError, match="invalid GraphML"):
        list(graphml.iter_elements(path, "edge"))


def test_corrupt_edge_section_after_a_skip_names_the_true_byte_offset(tmp_path):
    """The skip is keyed by size and mtime; should the edges be damaged without either changing, the
    error still names the byte offset in the file, not in the shortened stream."""
    import os

    from hybridrag_backends_json import graphml

    path = tmp_path / "graph_chunk_entity_relation.graphml"
    good = ('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>'
            + "".join(f'<node id="n{i}"/>' for i in range(50)) + '<edge source="n1" target="n2"/>'
            + '<edge source="n2" target="n3"/></graph></graphml>')
    path.write_text(good)
    list(graphml.iter_elements(path, "node"))
    assert graphml._EDGES_AT
    st = path.stat()
    bad_at = good.index('<edge source="n2"') + 1
    path.write_text(good[:bad_at] + "!" + good[bad_at + 1:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(SourceError, match=r"invalid GraphML near byte (\d+)") as err:
        list(graphml.iter_elements(path, "edge"))
    at = int(re.search(r"near byte (\d+)", str(err.value)).group(1))
    assert abs(at - bad_at) <= 2, (at, bad_at)
