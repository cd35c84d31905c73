"""Where LightRAG's JSON backend keeps each store: file names <-> stores, workspace folders.

LightRAG 1.5.7 puts a workspace's files in ``working_dir`` (empty workspace) or
``working_dir/<workspace>/``; the file name says the store:
``kv_store_<ns>.json`` (KV, ``doc_status`` is the doc status store),
``vdb_<ns>.json`` (NanoVectorDB), ``graph_<ns>.graphml`` (NetworkX, one file
for two stores: nodes and edges).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from hybridrag_backends.provider import (
    GRAPH_NAMESPACE,
    STANDARD_KV_NAMESPACES,
    STANDARD_VECTOR_NAMESPACES,
    StoreInfo,
    StoreKind,
)

_FILE_RE = re.compile(r"^(?:kv_store_(?P<kv>.+)\.json|vdb_(?P<vdb>.+)\.json|graph_(?P<graph>.+)\.graphml)$")
# Our own partial / marker files sit beside the LightRAG files, hidden and never under a LightRAG name.
PARTIAL_SUFFIX = ".hybridrag-partial"


@dataclass(frozen=True)
class StoreFile:
    """One LightRAG file and the store(s) it holds."""

    path: Path
    namespace: str
    kind: str  # "kv" | "vdb" | "graph"

    @property
    def name(self) -> str:
        return self.path.name


def parse_file_name(name: str) -> Optional[tuple]:
    """(kind, namespace) for a LightRAG file name, else None."""
    m = _FILE_RE.match(name)
    if not m:
        return None
    for kind in ("kv", "vdb", "graph"):
        if m.group(kind):
            return kind, m.group(kind)
    return None


def file_name(store: StoreInfo) -> str:
    """The LightRAG file name that holds ``store``."""
    if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
        return f"kv_store_{store.namespace}.json"
    if store.kind is StoreKind.VECTOR:
        return f"vdb_{store.namespace}.json"
    return f"graph_{store.namespace}.graphml"


def workspace_dir(working_dir: str, workspace: str = "") -> Path:
    base = Path(working_dir)
    return base / workspace if workspace else base


def store_files(folder: Path) -> List[StoreFile]:
    """Every LightRAG file directly in ``folder`` (not in subfolders), sorted by name."""
    out: List[StoreFile] = []
    if not folder.is_dir():
        return out
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file():
            continue
        parsed = parse_file_name(entry.name)
        if parsed:
            out.append(StoreFile(Path(entry.path), parsed[1], parsed[0]))
    return out


def other_files(folder: Path) -> List[Path]:
    """Files in ``folder`` that are not LightRAG store files (lightrag.log, our partial files...)."""
    if not folder.is_dir():
        return []
    return sorted(
        Path(e.path) for e in os.scandir(folder) if e.is_file() and parse_file_name(e.name) is None
    )


def has_lightrag_files(folder: Path) -> bool:
    return bool(store_files(folder))


def workspaces_with_files(working_dir: Path) -> List[str]:
    """Workspace names ("" = the root) that hold LightRAG files."""
    found = [""] if has_lightrag_files(working_dir) else []
    if working_dir.is_dir():
        for entry in sorted(os.scandir(working_dir), key=lambda e: e.name):
            if entry.is_dir() and has_lightrag_files(Path(entry.path)):
                found.append(entry.name)
    return found


def standard_file_names() -> List[str]:
    names = [f"kv_store_{ns}.json" for ns in STANDARD_KV_NAMESPACES]
    names.append("kv_store_doc_status.json")
    names += [f"vdb_{ns}.json" for ns in STANDARD_VECTOR_NAMESPACES]
    names.append(f"graph_{GRAPH_NAMESPACE}.graphml")
    return sorted(names)


def kv_kind(namespace: str) -> StoreKind:
    return StoreKind.DOC_STATUS if namespace == "doc_status" else StoreKind.KV


def stores_of(sf: StoreFile, embedding_dim: Optional[int] = None) -> List[StoreInfo]:
    """The stores one file holds."""
    if sf.kind == "kv":
        return [StoreInfo(sf.namespace, kv_kind(sf.namespace))]
    if sf.kind == "vdb":
        return [StoreInfo(sf.namespace, StoreKind.VECTOR, embedding_dim)]
    return [StoreInfo(sf.namespace, StoreKind.GRAPH_NODES), StoreInfo(sf.namespace, StoreKind.GRAPH_EDGES)]


def files_by_name(folder: Path) -> Dict[str, StoreFile]:
    return {sf.name: sf for sf in store_files(folder)}
