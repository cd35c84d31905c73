"""Record counts of LightRAG files without loading them: exact fast paths, streaming fallbacks.

Fast paths (one pass of ``bytes.count`` over 8 MB chunks, constant memory)
rely on invariants of how LightRAG writes its files, and are used only when
the file shows that shape; anything else is counted by streaming with ijson
or iterparse (correct for any valid file, slower). ``FileCount.method`` says
which one counted each file.

* KV files are ``json.dump(indent=2)``: a raw newline can only be JSON
  whitespace, and only top-level keys sit after a newline plus exactly two
  spaces, so a file starting with ``{\\n  "`` and ending with ``}`` has as many
  records as ``\\n  "`` occurrences. An old LLM cache nested by mode is
  counted after flattening (what the reader yields), by a streaming pass.
* NanoVectorDB files: records = occurrences of the key ``"__id__":`` before
  the ``"matrix"`` key (an unescaped quote cannot occur inside a JSON string;
  escaped ones are subtracted), cross-checked with the matrix row count
  computed from the base64 length alone (a warning when they disagree).
* GraphML: ``<node `` and ``<edge `` (XML escapes ``<`` in text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import ijson

from hybridrag_backends.errors import HybridRAGBackendsError

from . import graphml
from .kvread import READ_SIZE, KVFile, _ijson, _is_flat_cache_key, is_cache_namespace
from .layout import parse_file_name
from .nanovdb import VDBFile
from .scan import RegionReader, bom_len, count_patterns, head, tail_bytes

KV_HEAD = b'{\n  "'


@dataclass
class FileCount:
    records: int  # KV / vector records, or graph nodes
    edges: int = 0  # graph files only
    method: str = ""
    warning: Optional[str] = None
    embedding_dim: Optional[int] = None


def try_count(path: Path, namespace: str) -> Tuple[Optional[FileCount], Optional[str]]:
    """(counts, None), or (None, the one-line problem) for a corrupt or unreadable file."""
    try:
        return count_file(path, namespace), None
    except HybridRAGBackendsError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{path}: cannot be read ({exc.strerror or exc}); check its permissions (chmod u+r) and retry"


def count_file(path: Path, namespace: Optional[str] = None) -> FileCount:
    parsed = parse_file_name(path.name)
    if parsed is None:
        raise ValueError(f"{path.name} is not a LightRAG store file")
    kind, ns = parsed
    namespace = namespace or ns
    if kind == "kv":
        return count_kv(path, namespace)
    if kind == "vdb":
        return count_vdb(path, namespace)
    return count_graph(path)


def count_kv(path: Path, namespace: str) -> FileCount:
    start = bom_len(path)
    first = head(path, 64 * 1024)[start:]
    fast = first.startswith(KV_HEAD) and tail_bytes(path, 16).rstrip().endswith(b"}")
    if fast and is_cache_namespace(namespace):
        first_key = _first_key(first)
        if first_key is None or not _is_flat_cache_key(first_key):
            kv = KVFile(path, namespace)  # old cache layout: count what the reader yields
            flat = kv.flattened_count()
            if flat is not None:
                return FileCount(flat, method="streamed (old nested LLM cache, counted after flattening)")
    if fast:
        n = count_patterns(path, [b'\n  "'], start)[b'\n  "']
        return FileCount(n, method="fast: top-level keys of an indent=2 file")
    kv = KVFile(path, namespace)
    if kv.shape() == "empty":
        return FileCount(0, method="empty file (LightRAG reads it as no records)")
    flat = kv.flattened_count()
    if flat is not None:
        return FileCount(flat, method="streamed (old nested LLM cache, counted after flattening)")
    with open(path, "rb") as f:
        reader = RegionReader(f, start, None)
        n = 0
        depth = 0
        try:
            for event, _ in _ijson.basic_parse(reader, buf_size=READ_SIZE):
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                elif event == "map_key" and depth == 1:
                    n += 1
        except ijson.JSONError as exc:
            raise kv._error(exc, reader, f"after {n} records") from None
    return FileCount(n, method="streamed (ijson)")


def _first_key(text: bytes) -> Optional[str]:
    """The first top-level key of an indent=2 KV file, from its first bytes."""
    import json

    end = text.find(b'": ', len(KV_HEAD) - 1)
    if end < 0:
        return None
    try:
        return json.loads(text[len(KV_HEAD) - 1 : end + 1].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def count_vdb(path: Path, namespace: str) -> FileCount:
    vdb = VDBFile(path, namespace)
    dim = vdb.embedding_dim()
    key_offset = vdb.matrix_key_offset()
    rows = vdb.matrix_rows_by_size()
    if key_offset is not None and rows is not None:
        counts = count_patterns(path, [b'"__id__":', b'\\"__id__":'], vdb.bom, key_offset)
        n = counts[b'"__id__":'] - counts[b'\\"__id__":']
        warning = None
        if n != rows:
            warning = (
                f"{path.name}: {n} records but {rows} matrix rows; records without a row use their own "
                f"'vector' field or are rejected when migrated"
            )
        return FileCount(n, method="fast: __id__ keys before the matrix; matrix rows from its length", warning=warning, embedding_dim=dim)
    n = sum(1 for _ in vdb.items())
    return FileCount(n, method="streamed (ijson + matrix decode)", embedding_dim=dim)


def count_graph(path: Path) -> FileCount:
    if b"<graphml" in head(path, 4096) and tail_bytes(path, 64).rstrip().endswith(b"</graphml>"):
        counts = count_patterns(path, [b"<node ", b"<edge "])
        return FileCount(counts[b"<node "], counts[b"<edge "], method="fast: <node >/<edge > tags")
    nodes, edges = graphml.count_elements(path)
    return FileCount(nodes, edges, method="streamed (expat)")
