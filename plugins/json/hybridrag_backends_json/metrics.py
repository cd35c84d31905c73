"""Record counts of LightRAG files without loading them: exact fast paths, streaming fallbacks.

Fast paths (one pass of ``bytes.count`` over 8 MB chunks, constant memory)
rely on invariants of how LightRAG writes its files, and are used only when
the file shows that shape; anything else is counted by streaming with ijson
or iterparse (correct for any valid file, slower). ``FileCount.method`` says
which one counted each file.

* KV files: the structure scan of ``kvscan`` (for a ``json.dump(indent=2)`` file,
  one regex pass over the top-level key lines), which also finds keys written
  twice: the count is LightRAG's (distinct keys). An old LLM cache nested by
  mode is counted after flattening (what the reader yields), by a streaming pass.
* NanoVectorDB files: records = occurrences of the key ``"__id__":`` before
  the ``"matrix"`` key (an unescaped quote cannot occur inside a JSON string;
  escaped ones are not counted), found in the same pass as that key, and
  cross-checked with the matrix row count computed from the base64 length
  alone (a warning when they disagree). The matrix itself is never read (most
  of a vector store's bytes): a matrix that is not whole rows or not closed,
  or any other shape (matrix not last, ...), falls back to streaming, which
  decodes it. ``validate`` decodes every matrix (``VDBFile.check_matrix``).
* GraphML: ``<node `` and ``<edge `` (XML escapes ``<`` in text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

from hybridrag_backends.errors import HybridRAGBackendsError
from hybridrag_backends.jsonvalues import json_only_problem

from . import graphml
from .exact import ExactError, ExactWalker
from .kvread import KVFile
from .kvscan import region_flags
from .layout import parse_file_name
from .nanovdb import VDBFile
from .scan import bom_len, count_patterns, head, tail_bytes


@dataclass
class FileCount:
    records: int  # KV / vector records, or graph nodes
    edges: int = 0  # graph files only
    method: str = ""
    warning: Optional[str] = None
    embedding_dim: Optional[int] = None
    superseded: int = 0  # KV entries hidden by a later entry with the same key


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
    """LightRAG's record count: distinct keys (the last of a duplicated key counts once), an old
    nested LLM cache counted after flattening (what the reader yields)."""
    kv = KVFile(path, namespace)
    scan = kv.scan()
    flat = kv.flattened_count()
    method = "streamed (old nested LLM cache, counted after flattening)" if flat is not None else scan.method
    warning = None
    if scan.superseded:
        warning = (
            f"{path.name}: {scan.duplicate_keys} key(s) written more than once; LightRAG keeps the last value of "
            f"each, so {len(scan.superseded)} earlier entr{'y is not a record' if len(scan.superseded) == 1 else 'ies are not records'} "
            f"(a migration copies the last value too)"
        )
    return FileCount(flat if flat is not None else scan.records, method=method, warning=warning,
                     superseded=len(scan.superseded))


def count_vdb(path: Path, namespace: str) -> FileCount:
    vdb = VDBFile(path, namespace)
    n = vdb.count_records_before_matrix()  # the matrix is never read: its rows come from its length
    dim = vdb.embedding_dim()
    key_offset = vdb.matrix_key_offset()
    rows = vdb.matrix_rows_by_size()
    if key_offset is not None and rows is not None:
        warning = None
        if n != rows:
            warning = (
                f"{path.name}: {n} records but {rows} matrix rows; records without a row use their own "
                f"'vector' field or are rejected when migrated"
            )
        return FileCount(n, method="fast: __id__ keys before the matrix; matrix rows from its length", warning=warning, embedding_dim=dim)
    n = sum(1 for _ in vdb.items())
    return FileCount(n, method="streamed (ijson + matrix decode)", embedding_dim=dim)


def record_problems(path: Path, namespace: Optional[str] = None, *, deep: bool = False) -> List[str]:
    """Records of a readable file that a migration will reject, one line per kind of problem with the
    first record's key and byte offset: values that are not records (KV), and values only JSON files
    can store (NaN / Infinity, lone surrogates; see hybridrag_backends.jsonvalues), which PostgreSQL
    and MongoDB targets reject. Costs a structure scan (cached) and, only where the bytes show
    candidates, one exact parse. Raises like :func:`count_file` for an unreadable file.

    Vector files are looked at only when ``deep`` (``validate``): the part before their matrix is
    mostly the per-record vectors' base64 (700 MB of a 2 GB database), and three more passes over it
    would double ``status``' time. Their texts are the KV stores' texts (chunks, entity and relation
    descriptions), which ``status`` does check, and LightRAG writes their one numeric field
    (``__created_at__``) as an integer."""
    parsed = parse_file_name(path.name)
    if parsed is None or parsed[0] == "graph":
        return []
    kind, ns = parsed
    out: List[str] = []
    if kind == "kv":
        kv = KVFile(path, namespace or ns)
        scan = kv.scan()
        if scan.not_object_count:
            _, (key, offset, typ) = min(scan.not_objects.items())
            out.append(
                f"{path.name}: {scan.not_object_count} record(s) are not JSON objects, which every migration rejects "
                f"(first: key {key!r} at byte {offset}, a {typ}); fix or remove them"
            )
        candidates = scan.candidates
        entries: Any = lambda: _kv_entries(path)  # noqa: E731
    elif deep:
        vdb = VDBFile(path, namespace or ns)
        candidates = region_flags(path, vdb.bom, vdb.matrix_key_offset())[1]
        entries = lambda: _vdb_entries(vdb)  # noqa: E731
    else:
        return out
    if candidates:
        found, first = 0, ""
        try:
            for key, value, offset in entries():
                problem = json_only_problem(key, value)
                if problem:
                    found += 1
                    first = first or f"key {key!r} at byte {offset}: {problem}"
        except ExactError as exc:
            return out + [f"{path.name}: invalid JSON at byte {exc.offset}: {exc}; restore it from a backup"]
        if found:
            out.append(
                f"{path.name}: {found} record(s) hold values only JSON files can store (first: {first}); LightRAG "
                f"reads them and a JSON target keeps them, a migration to PostgreSQL or MongoDB rejects them"
            )
    return out


def _kv_entries(path: Path) -> Iterator[Tuple[str, Any, int]]:
    with ExactWalker(path, bom_len(path)) as walker:
        for key, offset in walker.members():
            yield key, walker.value(), offset


def _vdb_entries(vdb: VDBFile) -> Iterator[Tuple[str, Any, int]]:
    for rec, offset in vdb.exact_records():
        key = rec.get("__id__") if isinstance(rec, dict) else None
        yield (key if isinstance(key, str) else ""), rec, offset


def count_graph(path: Path) -> FileCount:
    if b"<graphml" in head(path, 4096) and tail_bytes(path, 64).rstrip().endswith(b"</graphml>"):
        counts = count_patterns(path, [b"<node ", b"<edge "])
        return FileCount(counts[b"<node "], counts[b"<edge "], method="fast: <node >/<edge > tags")
    nodes, edges = graphml.count_elements(path)
    return FileCount(nodes, edges, method="streamed (expat)")
