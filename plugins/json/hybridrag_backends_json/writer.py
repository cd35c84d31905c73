"""Writing a LightRAG 1.5.7 working dir store by store: bounded memory, exact resume, atomic files.

Every store streams into hidden partial files beside its LightRAG file
(``.<file>.hybridrag-partial``, plus ``.hybridrag-matrix`` for float32 rows and
``.hybridrag-nodes`` / ``.hybridrag-edges`` for GraphML bodies). After each
batch the partial files are flushed and fsynced and their byte offsets are put
in the store's checkpoint (``target_position``), which the engine then saves;
on resume, partial files are cut back to those offsets, so bytes written after
the last saved checkpoint vanish. ``finish_store`` completes the file, writes a
``.<file>.hybridrag-done`` marker naming the job, and ``os.replace``-s it onto
the LightRAG name: no half-written file ever carries a LightRAG name. The
marker tells a resumed job that the replace already happened (a crash between
the replace and the saved checkpoint); ``finish_target`` removes the markers.

One migration at a time per folder (:class:`TargetLock`): two runs writing the same
partial files would tear them, and with them the promise above.

File formats follow LightRAG: KV files as ``json.dump(indent=2,
ensure_ascii=False)`` would write them (KV records get ``_id`` = key, as
``JsonKVStorage.upsert`` stamps it; doc status records do not), NanoVectorDB
files as ``{"embedding_dim", "data", "matrix"}`` with LightRAG's per-record
``vector`` (base64 of zlib of float16) copied from the record's payload as it
is, or regenerated from the float32 row for a record that has none, and
GraphML as ``networkx.write_graphml`` writes it.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import orjson
import pybase64
from filelock import FileLock, Timeout

from hybridrag_backends.durable import fsync_dir, write_atomic
from hybridrag_backends.errors import TargetBusy, TargetError
from hybridrag_backends.provider import Record, StoreInfo, StoreKind

from . import graphml
from .layout import PARTIAL_SUFFIX, file_name, store_files

MATRIX_SUFFIX = ".hybridrag-matrix"
NODES_SUFFIX = ".hybridrag-nodes"
EDGES_SUFFIX = ".hybridrag-edges"
DONE_SUFFIX = ".hybridrag-done"
OUR_SUFFIXES = (PARTIAL_SUFFIX, MATRIX_SUFFIX, NODES_SUFFIX, EDGES_SUFFIX, DONE_SUFFIX)
B64_BLOCK = 3 * 1024 * 1024  # a multiple of 3: base64 of each block concatenates cleanly


def kv_value_json(value: Any) -> bytes:
    """A value as ``json.dumps(indent=2, ensure_ascii=False)`` would write it, nested one level."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):
        # big ints, lone surrogates...: the stdlib can say them (surrogates as \\u escapes)
        text = json.dumps(value, indent=2, ensure_ascii=True).encode("ascii")
    return text.replace(b"\n", b"\n  ")  # raw newlines only ever occur as JSON whitespace


def compact_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=True).encode("ascii")


def packed_vector(row: np.ndarray) -> str:
    """LightRAG 1.5.7's per-record ``vector``: base64(zlib(float16)), at zlib level 0 (stored blocks).

    LightRAG decodes it with ``zlib.decompress``, which reads any level. Float16 embeddings hardly
    compress (level 6, LightRAG's default: 2,896 bytes for 1536 dimensions, level 0: 3,083), and level 6
    costs ~15x more to write and ~10x more to decode, which a copy from a server (every record's field
    regenerated here) and its verification pay on every record."""
    return pybase64.b64encode(zlib.compress(row.astype(np.float16).tobytes(), 0)).decode("ascii")


class StoreWriter:
    """Streams one store into its partial files. ``position()`` is what the checkpoint keeps."""

    def __init__(self, folder: Path, store: StoreInfo, job_id: str, position: Optional[Dict[str, Any]]) -> None:
        self.folder = folder
        self.store = store
        self.job_id = job_id
        self.final = folder / file_name(store)
        self.count = int((position or {}).get("count", 0))
        self.offsets: Dict[str, int] = dict((position or {}).get("files", {}))

    def hidden(self, suffix: str) -> Path:
        return self.folder / f".{self.final.name}{suffix}"

    def files(self) -> Dict[str, Path]:
        return {"data": self.hidden(PARTIAL_SUFFIX)}

    def position(self) -> Dict[str, Any]:
        return {"count": self.count, "files": dict(self.offsets)}

    def restore(self) -> None:
        """Cut partial files back to the checkpointed offsets (or remove them when none)."""
        for name, path in self.files().items():
            offset = self.offsets.get(name)
            if not offset:
                path.unlink(missing_ok=True)
                self.offsets.pop(name, None)
                continue
            if not path.exists() or path.stat().st_size < offset:
                raise TargetError(
                    f"{path} is shorter than its checkpoint ({offset} bytes): the partial write was removed or "
                    f"damaged; restart the migration without --resume (use --force)"
                )
            with open(path, "r+b") as f:
                f.truncate(offset)
                f.flush()
                os.fsync(f.fileno())

    def _append(self, name: str, data: bytes) -> None:
        path = self.files()[name]
        created = not path.exists()
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            self.offsets[name] = f.tell()
        if created:  # the new name must survive a power cut too, not just the bytes
            fsync_dir(self.folder)

    def write(self, records: List[Record]) -> None:
        raise NotImplementedError

    # -- finishing -------------------------------------------------------------

    @property
    def marker(self) -> Path:
        return self.hidden(DONE_SUFFIX)

    def replaced(self) -> bool:
        """True when this job already moved the finished file into place."""
        return self.marker.exists() and self.marker.read_text().strip() == self.job_id and not self.hidden(PARTIAL_SUFFIX).exists()

    def complete(self, out) -> None:  # noqa: ANN001 - a binary file
        raise NotImplementedError

    def finish(self) -> None:
        if self.replaced():
            return
        partial = self.hidden(PARTIAL_SUFFIX)
        with open(partial, "r+b" if partial.exists() else "wb") as out:
            out.seek(0, 2)
            self.complete(out)
            self._move_into_place(out)
        for name, path in self.files().items():
            if name != "data":
                path.unlink(missing_ok=True)

    def _move_into_place(self, out) -> None:  # noqa: ANN001 - the finished partial file, still open
        """fsync the finished file, mark this job as having replaced it, and give it its LightRAG name."""
        out.flush()
        os.fsync(out.fileno())
        self.marker.write_text(self.job_id)
        os.replace(out.name, self.final)
        fsync_dir(self.folder)


class KVWriter(StoreWriter):
    def write(self, records: List[Record]) -> None:
        parts = [] if self.count else [b"{\n"]
        stamp_id = self.store.kind is StoreKind.KV
        for i, rec in enumerate(records):
            value = {**rec.payload, "_id": rec.key} if stamp_id else rec.payload
            sep = b",\n  " if (self.count or i) else b"  "
            parts.append(sep + compact_json(rec.key) + b": " + kv_value_json(value))
        self._append("data", b"".join(parts))
        self.count += len(records)

    def complete(self, out) -> None:  # noqa: ANN001
        out.write(b"\n}" if self.count else b"{}")


class VectorWriter(StoreWriter):
    def __init__(self, folder: Path, store: StoreInfo, job_id: str, position: Optional[Dict[str, Any]]) -> None:
        super().__init__(folder, store, job_id, position)
        self._dim: Optional[int] = store.embedding_dim or (position or {}).get("dim")

    def files(self) -> Dict[str, Path]:
        return {"data": self.hidden(PARTIAL_SUFFIX), "matrix": self.hidden(MATRIX_SUFFIX)}

    def position(self) -> Dict[str, Any]:
        return {**super().position(), "dim": self._dim}

    @property
    def dim(self) -> int:
        if not self._dim:
            raise TargetError(f"vector store {self.store.name} has no embedding_dim and no records to take it from")
        return self._dim

    def write(self, records: List[Record]) -> None:
        if not self._dim and records and records[0].vector is not None:
            self._dim = int(np.asarray(records[0].vector).shape[-1])  # a source that did not say it
        dim = self.dim
        parts = [] if self.count else [b'{"embedding_dim": %d, "data": [' % dim]
        rows = np.empty((len(records), dim), dtype="<f4")
        for i, rec in enumerate(records):
            vec = rec.vector
            if vec is None or np.asarray(vec).shape != (dim,):
                got = "no vector" if vec is None else f"dimension {np.asarray(vec).shape}"
                raise TargetError(
                    f"{self.final.name}: record {rec.key!r} has {got}, expected embedding_dim {dim}; "
                    f"fix the source record or migrate into a target configured for its dimension"
                )
            rows[i] = vec
            meta = {k: v for k, v in rec.payload.items() if k not in ("__id__", "vector", "__vector__")}
            packed = rec.payload.get("vector")  # what get_vectors_by_ids decodes: kept exactly when present
            entry = {"__id__": rec.key, **meta, "vector": packed if packed is not None else packed_vector(rows[i])}
            parts.append((b", " if (self.count or i) else b"") + compact_json(entry))
        # rows first: a crash between the two appends leaves offsets the checkpoint never saw
        self._append("matrix", rows.tobytes())
        self._append("data", b"".join(parts))
        self.count += len(records)

    def complete(self, out) -> None:  # noqa: ANN001
        if not self.count:
            out.write(b'{"embedding_dim": %d, "data": [' % self.dim)
        out.write(b'], "matrix": "')
        matrix = self.hidden(MATRIX_SUFFIX)
        if matrix.exists():
            with open(matrix, "rb") as f:
                left = self.offsets.get("matrix", 0)
                while left > 0:
                    block = f.read(min(B64_BLOCK, left))
                    if not block:
                        break
                    out.write(pybase64.b64encode(block))
                    left -= len(block)
        out.write(b'"}')


class GraphWriter(StoreWriter):
    """Nodes and edges are two stores of one file: each streams its body; the file is assembled
    by whichever finishes last (edges, as nodes come first)."""

    def __init__(self, folder: Path, store: StoreInfo, job_id: str, position: Optional[Dict[str, Any]], key_start: int = 0) -> None:
        super().__init__(folder, store, job_id, position)
        self.keys = graphml.KeyTable((position or {}).get("keys"))
        self.keys.reserve(key_start)
        self.scope = "node" if store.kind is StoreKind.GRAPH_NODES else "edge"

    def files(self) -> Dict[str, Path]:
        return {"body": self.hidden(NODES_SUFFIX if self.scope == "node" else EDGES_SUFFIX)}

    def position(self) -> Dict[str, Any]:
        return {**super().position(), "keys": self.keys.rows}

    def write(self, records: List[Record]) -> None:
        parts = []
        for rec in records:
            try:
                parts.append(graphml.element_xml(self.scope, rec.payload, self.keys, rec.key if self.scope == "node" else None))
            except ValueError as exc:
                raise TargetError(f"{self.final.name}: {self.scope} {rec.key!r}: {exc}; fix the source record") from None
        self._append("body", "".join(parts).encode("utf-8"))
        self.count += len(records)

    def assemble(self, nodes: Optional["GraphWriter"], edges: Optional["GraphWriter"]) -> None:
        """Write the GraphML file from both bodies and move it into place."""
        if self.replaced():
            return
        keys = graphml.KeyTable((nodes.keys.rows if nodes else []) + (edges.keys.rows if edges else []))
        bodies = [(w.files()["body"], w.offsets.get("body", 0)) for w in (nodes, edges) if w is not None]
        partial = self.hidden(PARTIAL_SUFFIX)
        with open(partial, "wb") as out:
            graphml.assemble(out, keys, bodies)
            self._move_into_place(out)
        for w in (nodes, edges):
            if w is not None:
                w.files()["body"].unlink(missing_ok=True)


LOCK_FILE = ".hybridrag-migration.lock"
OWNER_FILE = ".hybridrag-migration.owner"


class TargetLock:
    """The claim of one migration on a target folder: an OS file lock (flock, through filelock) on
    ``.hybridrag-migration.lock``, held until :meth:`release` or the end of the process, however it ends,
    so a killed run leaves nothing that blocks the next one or its ``--resume``. ``.hybridrag-migration.owner``
    names the job holding it, for the message of a run that finds it taken; it is removed on release.

    The (empty) lock file stays in the folder, as filelock leaves it on purpose: removing a lock file that
    another process may have just opened would let two runs hold the lock. LightRAG ignores it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = FileLock(str(folder / LOCK_FILE), thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self, job_id: str) -> None:
        if self.held:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
        except Timeout:
            raise TargetBusy(
                f"another migration{self._owner()} is writing into {self.folder}; wait for it to finish "
                f"(see 'hybridrag-backends jobs') or migrate into another folder or --target-workspace"
            ) from None
        except OSError as exc:
            raise TargetError(f"cannot lock the target folder {self.folder} ({exc.strerror or exc}); "
                              f"check that it is a writable directory") from None
        write_atomic(self.folder / OWNER_FILE, orjson.dumps({"job_id": job_id, "pid": os.getpid()}))

    def _owner(self) -> str:
        try:
            owner = orjson.loads((self.folder / OWNER_FILE).read_bytes())
            return f" (job {owner['job_id']}, process {owner['pid']})"
        except (OSError, ValueError, KeyError, TypeError):
            return ""  # not written yet, or unreadable: the message goes without the name

    def release(self) -> None:
        if self.held:
            (self.folder / OWNER_FILE).unlink(missing_ok=True)  # still holding the lock: nobody else wrote it
            self._lock.release()


def writer_for(folder: Path, store: StoreInfo, job_id: str, position: Optional[Dict[str, Any]], key_start: int = 0) -> StoreWriter:
    if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
        return KVWriter(folder, store, job_id, position)
    if store.kind is StoreKind.VECTOR:
        return VectorWriter(folder, store, job_id, position)
    return GraphWriter(folder, store, job_id, position, key_start)


def is_our_file(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(OUR_SUFFIXES) and path.is_file()


def is_ours(path: Path) -> bool:
    """A file this package puts in a target folder: partial files and markers, or the lock files."""
    return is_our_file(path) or (path.name in (LOCK_FILE, OWNER_FILE) and path.is_file())


def our_files(folder: Path) -> List[Path]:
    """Partial files and markers this package left in ``folder``."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if is_our_file(p)]


def lightrag_files(folder: Path) -> List[Path]:
    return [sf.path for sf in store_files(folder)]
