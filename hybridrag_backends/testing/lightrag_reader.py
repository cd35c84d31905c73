"""An independent reader: LightRAG 1.5.7's own storage classes, as the provider configures them.

The provider says which classes LightRAG uses (``storage_classes()``), with which environment
(``env_vars()``) and arguments (``lightrag_kwargs()``: working dir, workspace). This module opens
exactly those classes, in a subprocess (LightRAG's JSON storages share in-memory state per process
and its server clients are process-wide singletons), asks them for every record of the source by
key, and compares what they return with the source, which is read with a plain JSON / GraphML parse
(:mod:`.independent`). No code of the provider under test reads anything.

What LightRAG returns is compared leniently where LightRAG's own read path reshapes records
(documented per backend in LightRAG): a record must be there; every field it returns that the
source also has must be equal; vectors must be equal as float32. NanoVectorDBStorage serves its
lossy per-record float16 copy through ``get_vectors_by_ids``, so for it the float32 matrix row is
compared as well (nano-vectordb normalises rows on load, so up to float32 rounding). Graph nodes and
edges are counted through ``get_all_labels`` / ``get_all_edges``.

The subprocess runs :mod:`.lightrag_dump` (``python -m hybridrag_backends.testing.lightrag_dump``,
a JSON request on stdin, through ``ConformanceTarget.python``).
"""

from __future__ import annotations

import base64
import zlib
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from ..provider import StoreKind
from .lightrag_dump import CLASS_KEY

if TYPE_CHECKING:
    from ..models import BackendConfig
    from .independent import SourceStores
    from .target import ConformanceTarget

#: LightRAG 1.5.7 read paths that return a record's fields under other names (LightRAG field -> the
#: field of the stream record it holds): PGVectorStorage.get_by_ids() is ``SELECT *`` on
#: LIGHTRAG_VDB_RELATION, whose source_id / target_id columns hold the relation's endpoints.
LIGHTRAG_RENAMES = {("PGVectorStorage", "relationships"): {"source_id": "src_id", "target_id": "tgt_id"}}


def _unb64(text: Optional[str]) -> Optional[np.ndarray]:
    return None if text is None else np.frombuffer(base64.b64decode(text), dtype=np.float32)


# -- the test side ------------------------------------------------------------------------------


def request_for(target: "ConformanceTarget", config: "BackendConfig", source: "SourceStores", scratch: Path) -> Dict[str, Any]:
    provider = target.provider
    kwargs = provider.lightrag_kwargs(config)
    stores = []
    for info, records in source.items():
        entry = {"name": info.name, "namespace": info.namespace, "kind": info.kind.value, "dim": info.embedding_dim,
                 "keys": list(records)}
        if info.kind is StoreKind.GRAPH_EDGES:
            entry["pairs"] = [[p["source"], p["target"]] for p, _ in records.values()]
        stores.append(entry)
    return {
        "classes": provider.storage_classes(config),
        "working_dir": str(kwargs.get("working_dir") or config.working_dir or scratch / "lightrag-working-dir"),
        "workspace": kwargs.get("workspace", config.workspace_value) or "",
        "embedding_model": config.embedding_model,
        "stores": stores,
    }


def read(target: "ConformanceTarget", config: "BackendConfig", source: "SourceStores", scratch: Path) -> Dict[str, Any]:
    """What LightRAG's own storages return for every source key (in a subprocess)."""
    env = target.subprocess_env(scratch / "lightrag-reader-home")
    env.update(target.provider.env_vars(config))
    proc = subprocess.run([*target.python, "-m", "hybridrag_backends.testing.lightrag_dump"],
                          input=json.dumps(request_for(target, config, source, scratch)), capture_output=True,
                          text=True, env=env, timeout=600, cwd=scratch)
    if proc.returncode != 0:
        raise AssertionError(f"LightRAG's storages could not read the target (exit {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.rsplit("\n", 1)[-1])


def _differs(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:100]


def compare(target: "ConformanceTarget", config: "BackendConfig", source: "SourceStores", scratch: Path,
            limit: int = 12) -> List[str]:
    """Problems found when LightRAG's own storages read ``config``'s location back, against ``source``
    (a working dir read by :func:`~.independent.read_working_dir`): one line per store and kind of
    difference, with how many records and the first as the example."""
    dumped = read(target, config, source, scratch)
    classes = target.provider.storage_classes(config)
    problems: List[str] = []
    for info, records in source.items():
        got = dumped.get(info.name, {})
        storage = classes[CLASS_KEY[info.kind.value]]
        renames = LIGHTRAG_RENAMES.get((storage, info.namespace), {})
        compared = 0
        found: Dict[str, List[str]] = {}
        for key, (payload, vector) in records.items():
            record = got.get("records", {}).get(key)
            if not isinstance(record, dict):
                found.setdefault(f"not found by LightRAG's {storage}", []).append(repr(key))
                continue
            record = {renames.get(k, k): v for k, v in record.items() if k not in renames.values()}
            for name, value in payload.items():
                if name in ("source", "target") and info.kind is StoreKind.GRAPH_EDGES:
                    continue  # the endpoints: get_edge(source, target) found it
                if name in record:
                    compared += 1
                    if _differs(record[name], value):
                        found.setdefault(f"field {name!r} differs", []).append(
                            f"{key!r}: {_shown(record[name])} instead of {_shown(value)}")
            if info.kind is StoreKind.VECTOR:
                for what in _vector_problems(got, key, vector, payload.get("vector")):
                    found.setdefault(what, []).append(repr(key))
        problems += [f"store {info.name}: {len(keys)} of {len(records)} records: {what} (e.g. {keys[0]})"
                     for what, keys in found.items()]
        # (records of old files can hold no field but their id: nothing to compare then)
        # (the per-record "vector" is compared through get_vectors_by_ids() above, not as a field)
        if not compared and any(not k.startswith("__") and k != "vector" for payload, _ in records.values() for k in payload):
            problems.append(f"store {info.name}: LightRAG returned none of the source's fields, so nothing could be "
                            f"compared (is storage_classes() right?)")
        problems += _count_problems(info, records, got)
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def _vector_problems(got: Dict[str, Any], key: str, vector: Any, packed: Any = None) -> List[str]:
    """``packed``: the source record's own NanoVectorDB per-record ``vector`` (base64 of zlib of float16),
    which a JSON target keeps as written and LightRAG's get_vectors_by_ids() serves; in real files it is
    not always the float16 of the (normalised) matrix row."""
    served = _unb64(got["vectors"].get(key))
    want = np.asarray(vector, dtype=np.float32)
    if served is None:
        return ["get_vectors_by_ids() does not return the vector"]
    if "matrix" not in got:
        return [] if np.array_equal(served, want) else ["get_vectors_by_ids() differs from the source as float32"]
    # NanoVectorDB serves its float16 per-record copy; its matrix holds the float32 row, which
    # nano-vectordb re-normalises when it loads the file: equal up to float32 rounding
    problems = []
    row = _unb64(got["matrix"].get(key))
    norm = float(np.linalg.norm(want)) or 1.0
    if row is None or not np.allclose(row, want / norm, rtol=0, atol=2e-7):
        problems.append("the float32 matrix row differs from the source vector")
    if isinstance(packed, str):
        expected = np.frombuffer(zlib.decompress(base64.b64decode(packed)), dtype=np.float16).astype(np.float32)
    else:
        expected = want.astype(np.float16).astype(np.float32)
    if not np.array_equal(served, expected):
        problems.append("get_vectors_by_ids() differs from the source vector")
    return problems


def _count_problems(info: Any, records: Dict[str, Any], got: Dict[str, Any]) -> List[str]:
    listed = got.get("labels") if info.kind is StoreKind.GRAPH_NODES else got.get("all")
    if info.kind not in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES) or listed is None:
        return []
    if sorted(set(listed)) == sorted(records):
        return []
    extra = sorted(set(listed) - set(records))[:3]
    what = "nodes" if info.kind is StoreKind.GRAPH_NODES else "edges"
    return [f"store {info.name}: LightRAG lists {len(set(listed))} {what}, the source has {len(records)}"
            + (f" (extra: {extra})" if extra else "")]
