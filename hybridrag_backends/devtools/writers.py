"""Streaming writers for LightRAG's three JSON-backend file formats, byte-compatible with lightrag-hku 1.5.7.

* KV / doc status: ``json.dump(obj, indent=2, ensure_ascii=False)`` (``lightrag.utils.write_json``);
  orjson's 2-space indent gives the same bytes for the strings, ints, lists and nulls written here.
* NanoVectorDB: ``json.dump(storage, ensure_ascii=False)`` with ``matrix`` the base64 of the
  float32 rows; base64 is streamed in blocks whose byte length is a multiple of 3, so the
  concatenated pieces equal one encoding of the whole matrix.
* GraphML: what ``networkx.write_graphml`` (xml.etree writer) produces for LightRAG's attributes.

Each file is written under a temporary name and renamed into place, so a LightRAG file
name never holds a half-written file.
"""

from __future__ import annotations

import base64
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterable, Iterator, Tuple

import numpy as np
import orjson

_FLUSH_BYTES = 1 << 20


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    tmp = path.with_name(path.name + ".generating")
    try:
        with open(tmp, "wb", buffering=_FLUSH_BYTES) as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_kv(path: Path, records: Iterable[Tuple[str, Dict[str, Any]]]) -> int:
    """Write ``{key: record, ...}`` as LightRAG's JsonKVStorage does; returns the record count."""
    count = 0
    with atomic_file(path) as out:
        for key, record in records:
            # {key: record} indented, minus its outer braces, is the entry at depth 1.
            entry = orjson.dumps({key: record}, option=orjson.OPT_INDENT_2)[2:-2]
            out.write(b"{\n" if count == 0 else b",\n")
            out.write(entry)
            count += 1
        out.write(b"\n}" if count else b"{}")
    return count


def write_nano_vdb(
    path: Path,
    embedding_dim: int,
    records: Iterable[Dict[str, Any]],
    matrix_blocks: Iterable[np.ndarray],
) -> int:
    """Write a NanoVectorDB file: ``records`` (one per row, in row order) then the float32 rows."""
    count = 0
    with atomic_file(path) as out:
        out.write(b'{"embedding_dim": %d, "data": [' % embedding_dim)
        for record in records:
            if count:
                out.write(b", ")
            out.write(json.dumps(record, ensure_ascii=False).encode("utf-8"))
            count += 1
        out.write(b'], "matrix": "')
        rows = 0
        pending = b""
        for block in matrix_blocks:
            rows += len(block)
            data = pending + np.ascontiguousarray(block, dtype="<f4").tobytes()
            cut = len(data) - len(data) % 3
            out.write(base64.b64encode(data[:cut]))
            pending = data[cut:]
        out.write(base64.b64encode(pending))
        out.write(b'"}')
    if rows != count:
        raise AssertionError(f"{path.name}: {count} records but {rows} matrix rows")
    return count


# -- GraphML --------------------------------------------------------------

NODE_ATTRS = (("entity_id", "string"), ("entity_type", "string"), ("description", "string"),
              ("source_id", "string"), ("file_path", "string"), ("created_at", "long"), ("truncate", "string"))
EDGE_ATTRS = (("weight", "double"), ("description", "string"), ("keywords", "string"), ("source_id", "string"),
              ("file_path", "string"), ("created_at", "long"), ("truncate", "string"))

_HEADER = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
    'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return (_text(value).replace('"', "&quot;").replace("\r", "&#13;")
            .replace("\n", "&#10;").replace("\t", "&#09;"))


def _data_lines(attrs: Dict[str, Any], key_ids: Dict[str, str]) -> str:
    lines = []
    for name, key_id in key_ids.items():
        value = attrs[name]
        text = repr(float(value)) if isinstance(value, float) else str(value)
        lines.append(f'      <data key="{key_id}">{_text(text)}</data>\n' if text else f'      <data key="{key_id}" />\n')
    return "".join(lines)


def write_graphml(
    path: Path,
    nodes: Iterable[Tuple[str, Dict[str, Any]]],
    edges: Iterable[Tuple[str, str, Dict[str, Any]]],
) -> Tuple[int, int]:
    """Write an undirected graph with LightRAG's node and edge attributes; returns (nodes, edges)."""
    node_keys = {name: f"d{i}" for i, (name, _) in enumerate(NODE_ATTRS)}
    edge_keys = {name: f"d{i + len(NODE_ATTRS)}" for i, (name, _) in enumerate(EDGE_ATTRS)}
    declared = [(node_keys[n], "node", n, t) for n, t in NODE_ATTRS] + [(edge_keys[n], "edge", n, t) for n, t in EDGE_ATTRS]
    n_nodes = n_edges = 0
    with atomic_file(path) as out:

        def write(text: str) -> None:
            out.write(text.encode("utf-8"))

        write(_HEADER)
        for key_id, kind, name, type_ in reversed(declared):  # networkx declares keys last-first
            write(f'  <key id="{key_id}" for="{kind}" attr.name="{name}" attr.type="{type_}" />\n')
        write('  <graph edgedefault="undirected">\n')
        for node_id, attrs in nodes:
            write(f'    <node id="{_attr(node_id)}">\n{_data_lines(attrs, node_keys)}    </node>\n')
            n_nodes += 1
        for source, target, attrs in edges:
            write(f'    <edge source="{_attr(source)}" target="{_attr(target)}">\n'
                  f"{_data_lines(attrs, edge_keys)}    </edge>\n")
            n_edges += 1
        write("  </graph>\n</graphml>\n")
    return n_nodes, n_edges
