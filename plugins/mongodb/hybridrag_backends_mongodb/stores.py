"""Which collections of a database belong to a workspace, and what kind of store each is."""

from __future__ import annotations

from typing import Iterable, List, Set, Tuple

from hybridrag_backends.provider import (
    GRAPH_NAMESPACE,
    STANDARD_KV_NAMESPACES,
    STANDARD_VECTOR_NAMESPACES,
    StoreKind,
)

from .layout import JOBS_COLLECTION, collection_name

_STANDARD = set(STANDARD_KV_NAMESPACES) | set(STANDARD_VECTOR_NAMESPACES) | {"doc_status", GRAPH_NAMESPACE}


def _namespaces(names: Set[str], workspace: str) -> Set[str]:
    """Collection names of ``workspace`` with the workspace prefix removed."""
    if workspace:
        prefix = f"{workspace}_"
        return {n[len(prefix):] for n in names if n.startswith(prefix) and len(n) > len(prefix)}
    # No workspace: un-prefixed names, minus those that are another workspace's
    # ("<ws>_<standard namespace>", or "<ws>_<x>" where <ws> has standard collections).
    own = _STANDARD | {f"{GRAPH_NAMESPACE}_edges"}
    prefixes = {n[: -len(ns) - 1] for n in names - own for ns in _STANDARD if n.endswith(f"_{ns}")}
    prefixes.discard("")
    return {n for n in names if n in own or not any(n.startswith(f"{p}_") for p in prefixes)}


def find_stores(names: Iterable[str], workspace: str) -> List[Tuple[str, StoreKind]]:
    """(namespace, kind) for every LightRAG store present, standard or extra (extras are KV)."""
    names = set(names)
    namespaces = _namespaces(names, workspace)
    found: List[Tuple[str, StoreKind]] = []
    for ns in sorted(namespaces):
        if ns.startswith("system.") or collection_name(workspace, ns) == JOBS_COLLECTION:
            continue
        if ns in STANDARD_KV_NAMESPACES:
            found.append((ns, StoreKind.KV))
        elif ns == "doc_status":
            found.append((ns, StoreKind.DOC_STATUS))
        elif ns in STANDARD_VECTOR_NAMESPACES:
            found.append((ns, StoreKind.VECTOR))
        elif ns == GRAPH_NAMESPACE:
            found.append((ns, StoreKind.GRAPH_NODES))
        elif ns == f"{GRAPH_NAMESPACE}_edges":
            found.append((GRAPH_NAMESPACE, StoreKind.GRAPH_EDGES))
        elif ns.endswith("_edges") and ns[: -len("_edges")] in namespaces:
            continue  # another graph's edges: not a KV store
        else:
            found.append((ns, StoreKind.KV))
    return found
