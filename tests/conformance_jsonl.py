"""A small, complete provider for the conformance kit's own tests, with switchable bugs.

``jsonl://[host]/path`` holds one JSON-lines log per store under ``path/<workspace>/``: writes append
``{"k": key, "p": payload, "v": base64 float32}`` lines, reads fold the log by key (the last line
wins) and give records sorted by key, the key being the cursor. It passes the suite's stream and
config checks; each name in BUGS breaks one behaviour the way real providers get it wrong, and the
suite must then fail naming that behaviour (tests/test_conformance_kit.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import numpy as np

from hybridrag_backends import BackendConfig, BackendProvider, Check, StorageMetrics
from hybridrag_backends.errors import ConfigError
from hybridrag_backends.provider import BackendSession, ReadBatch, Record, RejectedRecord, StoreInfo, StoreKind

BUGS = {
    "order": "read() gives records in hash order, salted per call (like a SCAN), not a stable order",
    "dropped-field": "read() loses the payload field 'file_path'",
    "float16": "write_batch() stores vectors as float16",
    "non-idempotent": "read() does not fold the log: a batch written twice is read twice",
    "password-in-describe": "describe() returns the URL with its password",
}
KIND_FILE = {StoreKind.KV: "kv", StoreKind.DOC_STATUS: "docstatus", StoreKind.VECTOR: "vector",
             StoreKind.GRAPH_NODES: "nodes", StoreKind.GRAPH_EDGES: "edges"}


class JsonlSession(BackendSession):
    def __init__(self, folder: Path, bug: Optional[str]) -> None:
        self.folder, self.bug = folder, bug

    def _path(self, store: StoreInfo) -> Path:
        return self.folder / f"{KIND_FILE[store.kind]}.{store.namespace}.jsonl"

    def _lines(self, store: StoreInfo) -> List[dict]:
        path = self._path(store)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def _folded(self, store: StoreInfo) -> List[dict]:
        lines = self._lines(store)
        if self.bug == "non-idempotent":
            return sorted(lines, key=lambda d: d["k"])
        by_key = {d["k"]: d for d in lines}
        if self.bug == "order":
            salt = str(random.random())
            return sorted(by_key.values(), key=lambda d: hashlib.md5((salt + d["k"]).encode()).hexdigest())
        return [by_key[k] for k in sorted(by_key)]

    async def list_stores(self) -> List[StoreInfo]:
        kinds = {v: k for k, v in KIND_FILE.items()}
        stores = []
        for path in sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []:
            kind_name, namespace = path.name[: -len(".jsonl")].split(".", 1)
            store = StoreInfo(namespace, kinds[kind_name])
            if store.kind is StoreKind.VECTOR:
                first = next((d for d in self._lines(store) if d.get("v")), None)
                dim = len(base64.b64decode(first["v"])) // 4 if first else None
                store = StoreInfo(namespace, StoreKind.VECTOR, dim)
            stores.append(store)
        return sorted(stores, key=StoreInfo.sort_key)

    async def count(self, store: StoreInfo) -> int:
        return len(self._folded(store))

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000):
        lines = [d for d in self._folded(store) if after is None or d["k"] > after or self.bug == "order"]
        for start in range(0, len(lines), batch_size):
            chunk = lines[start : start + batch_size]
            items = [self._item(store, d) for d in chunk]
            yield ReadBatch([i for i in items if isinstance(i, Record)],
                            [i for i in items if isinstance(i, RejectedRecord)], chunk[-1]["k"])

    def _item(self, store: StoreInfo, d: dict) -> "Record | RejectedRecord":
        vector = np.frombuffer(base64.b64decode(d["v"]), dtype=np.float32).copy() if d.get("v") else None
        payload = dict(d["p"])
        if self.bug == "dropped-field":
            payload.pop("file_path", None)
        if vector is not None and store.embedding_dim and vector.shape[0] != store.embedding_dim:
            return RejectedRecord(store.name, d["k"], f"vector dimension {vector.shape[0]}", str(self._path(store)), d["k"])
        return Record(store.name, d["k"], payload, vector)

    async def is_empty(self) -> bool:
        return not any(self.folder.glob("*.jsonl")) if self.folder.is_dir() else True

    async def prepare_target(self, stores, job, *, force: bool) -> None:  # noqa: ANN001
        self.folder.mkdir(parents=True, exist_ok=True)
        for store in stores:
            self._path(store).touch()

    async def write_batch(self, store: StoreInfo, records: List[Record], job) -> None:  # noqa: ANN001
        lines = []
        for r in records:
            vector = None
            if r.vector is not None:
                dtype = np.float16 if self.bug == "float16" else np.float32
                vector = base64.b64encode(np.asarray(r.vector, dtype=dtype).astype(np.float32).tobytes()).decode()
            lines.append(json.dumps({"k": r.key, "p": r.payload, "v": vector}, ensure_ascii=False) + "\n")
        with open(self._path(store), "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())


class JsonlProvider(BackendProvider):
    name = "jsonl"
    description = "JSON-lines logs (a test double for the conformance kit)"
    url_schemes = ("jsonl",)
    bug: Optional[str] = None

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        parts = urlsplit(target)
        try:
            parts.port
        except ValueError as exc:
            raise ConfigError("port", parts.netloc.rsplit("@", 1)[-1], f"is not a port ({exc})") from None
        return BackendConfig(backend_type=self.name, working_dir=parts.path, workspace=workspace or "",
                             extra_options={"uri": target})

    def _folder(self, config: BackendConfig) -> Path:
        return Path(config.working_dir) / (config.workspace or "_default")

    def describe(self, config: BackendConfig) -> str:
        if self.bug == "password-in-describe":
            return f"{config.extra_options['uri']}#{config.workspace}"
        return f"jsonl://{urlsplit(config.extra_options['uri']).hostname or ''}{config.working_dir}#{config.workspace}"

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        return {"kv_storage": "JsonKVStorage", "vector_storage": "NanoVectorDBStorage",
                "graph_storage": "NetworkXStorage", "doc_status_storage": "JsonDocStatusStorage"}

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        return {"WORKING_DIR": str(config.working_dir), "WORKSPACE": config.workspace}

    async def validate(self, config: BackendConfig) -> List[Check]:
        parent = Path(config.working_dir).parent
        return [Check("folder", parent.is_dir(), str(parent), "" if parent.is_dir() else f"create {parent}")]

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        if not Path(config.working_dir).parent.is_dir():
            return StorageMetrics(backend_type=self.name, is_connected=False, health="error")
        session = self.open(config)
        counts = {s.name: await session.count(s) for s in await session.list_stores()}
        return StorageMetrics(backend_type=self.name, store_counts=counts, health="healthy")

    def open(self, config: BackendConfig) -> JsonlSession:
        return JsonlSession(self._folder(config), self.bug)


def broken(bug: Optional[str]) -> type:
    """A JsonlProvider class with ``bug`` switched on (None: the correct one)."""
    assert bug is None or bug in BUGS, bug
    return type(f"Jsonl_{bug or 'ok'}".replace("-", "_"), (JsonlProvider,), {"bug": bug})
