"""The JSON backend's stream interface: read and write one working dir + workspace.

Reading (any LightRAG JSON layout from 2024 to 2026, normalised: see kvread / nanovdb / graphml):
``list_stores`` (every file found, sorted nodes before edges), ``count``, ``read`` (cursor = the record's
index in file order, as a string), plus ``absent_standard_files()``, ``store_bytes(store)``,
``fingerprint()`` (sizes and mtimes, to detect a changed source on resume), ``content_stamp()`` (the
files are an immutable set while it holds: the source side of verification is digested during the copy) and ``notes``
(store name -> counts of what normalisation did during the last read of that store).

Writing (see writer): ``is_empty``, ``prepare_target``, ``write_batch`` (sets the checkpoint's
``target_position``), ``finish_store``, ``finish_target``.

Optional contract parts: ``duplicate_count`` (keys written twice in a KV file: LightRAG keeps the last),
``holds_record_vectors`` (vector stores keep NanoVectorDB's per-record ``vector`` field as written),
``screen`` (GraphML cannot hold control characters or lone surrogates; KV and vector files hold anything
json.load reads), ``store_location``, ``check_source`` (store files readable), ``check_target`` (folder writable or creatable;
free space for about the source's size plus the largest vector store's raw matrix, which a vector store
keeps beside its file until it finishes), ``looked_for``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple

from hybridrag_backends.errors import SourceError, TargetError
from hybridrag_backends.models import human_size
from hybridrag_backends.provider import (
    NULL_VALUED_FIELDS,
    BackendSession,
    Check,
    ReadBatch,
    Record,
    RejectedRecord,
    StoreInfo,
    StoreKind,
    edge_key,
)

from . import graphml, layout
from .kvread import KVFile, Rejected
from .metrics import FileCount, count_file
from .nanovdb import VDBFile
from .writer import DONE_SUFFIX, GraphWriter, StoreWriter, TargetLock, lightrag_files, our_files, writer_for


# Modification times are stamped from a clock of limited resolution: the kernel's coarse clock (one tick,
# at most 10 ms) on ext4, xfs, btrfs or tmpfs; whole seconds on some file systems (2 s on FAT). A stamp
# that is a whole second is taken to come from such a file system.
MTIME_GRANULARITY_FINE_S = 0.05
MTIME_GRANULARITY_COARSE_S = 2.0
SETTLE_ROUNDS = 3  # a source written without pause is still fingerprinted (and its changes caught at the end)


def settle_seconds(mtime_ns: int, now_ns: int) -> float:
    """How long to wait until a write after now cannot get the same timestamp as ``mtime_ns``."""
    granularity = MTIME_GRANULARITY_COARSE_S if mtime_ns % 1_000_000_000 == 0 else MTIME_GRANULARITY_FINE_S
    return min(granularity, granularity - (now_ns - mtime_ns) / 1e9)  # a stamp in the future: one wait, no more


class JsonSession(BackendSession):
    def __init__(self, working_dir: str, workspace: str = "") -> None:
        self.working_dir = Path(working_dir)
        self.workspace = workspace or ""
        self.folder = layout.workspace_dir(working_dir, self.workspace)
        self._writers: Dict[str, StoreWriter] = {}
        self._stores: List[StoreInfo] = []
        self._force = False
        self.notes: Dict[str, Dict[str, Any]] = {}  # store name -> what normalisation did (last read)
        self._counts: Dict[Tuple[Path, int, int], FileCount] = {}
        self._lock = TargetLock(self.folder)

    async def close(self) -> None:
        self._lock.release()

    # -- reading -----------------------------------------------------------------

    def _files(self) -> Dict[str, layout.StoreFile]:
        return layout.files_by_name(self.folder)

    async def list_stores(self) -> List[StoreInfo]:
        stores: List[StoreInfo] = []
        for sf in layout.store_files(self.folder):
            dim = VDBFile(sf.path, sf.namespace).embedding_dim() if sf.kind == "vdb" else None
            stores.extend(layout.stores_of(sf, dim))
        return sorted(stores, key=StoreInfo.sort_key)

    def absent_standard_files(self) -> List[str]:
        present = set(self._files())
        return [n for n in layout.standard_file_names() if n not in present]

    def _path(self, store: StoreInfo) -> Path:
        path = self.folder / layout.file_name(store)
        if not path.is_file():
            raise SourceError(f"{path} does not exist; the store {store.name} is not in this working dir")
        return path

    def store_location(self, store: StoreInfo) -> Path:
        """The file a store is read from (where a record the target refused must be fixed)."""
        return self._path(store)

    def store_bytes(self, store: StoreInfo) -> Optional[int]:
        if store.kind is StoreKind.GRAPH_EDGES:
            return None  # one file holds both graph stores: its size is given with the nodes
        return self._path(store).stat().st_size

    def fingerprint(self) -> Dict[str, Any]:
        """Each file's ``[size, mtime_ns]``, taken once the newest modification is older than the file
        system's timestamp granularity (see :func:`settle_seconds`): a write after this moment gets a later
        timestamp, so comparing fingerprints sees it even when the size stays the same."""
        for _ in range(SETTLE_ROUNDS):
            stats = {sf.name: sf.path.stat() for sf in layout.store_files(self.folder)}
            now = time.time_ns()
            wait = max((settle_seconds(st.st_mtime_ns, now) for st in stats.values()), default=0.0)
            if wait <= 0:
                break
            time.sleep(wait)  # a file was written a moment ago: a second write could share its timestamp
        return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}

    def content_stamp(self) -> Dict[str, Any]:
        """Changes whenever a store file is written or replaced: the fingerprint plus ctime (which a
        writer cannot set back, unlike mtime) and device and inode (a file replaced by a rename). The
        engine then sums the source side of the verification digest while copying (migration.verify)."""
        stats = {sf.name: sf.path.stat() for sf in layout.store_files(self.folder)}
        return {name: [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino] for name, st in stats.items()}

    async def count(self, store: StoreInfo) -> int:
        path = self._path(store)
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)  # one scan serves both graph stores of a file
        if key not in self._counts:
            try:
                self._counts[key] = await asyncio.to_thread(count_file, path, store.namespace)
            except OSError as exc:  # named, with the fix (the pre-flight check says it again)
                raise SourceError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions "
                                  f"(chmod u+r) and retry") from None
        counted = self._counts[key]
        if store.kind is StoreKind.GRAPH_EDGES:
            return counted.edges
        return counted.records

    async def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000) -> AsyncIterator[ReadBatch]:
        items = self._items(store, _parse_cursor(after, store))
        while True:
            # parse in a worker thread: the event loop stays free and the target's writes overlap
            batch, error = await asyncio.to_thread(_next_batch, items, batch_size)
            if batch is not None:
                yield batch  # the good records read before a corrupt spot are still accounted for
            if error is not None:
                raise error
            if batch is None:
                return

    def _items(self, store: StoreInfo, start: Optional[int]) -> Iterator[Any]:
        path = self._path(store)
        name = store.name
        if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
            kv = KVFile(path, store.namespace)
            for index, key, value, offset in kv.items(start):
                yield _record_or_reject(name, key, value, index, path, offset)
            self.notes[name] = kv.notes.to_dict()
        elif store.kind is StoreKind.VECTOR:
            vdb = VDBFile(path, store.namespace)
            for index, key, value, offset in vdb.items(start):
                if isinstance(value, Rejected):
                    yield _record_or_reject(name, key, value, index, path, offset)
                else:
                    payload, vector = value
                    where = None if offset is None else f"{path} at byte {offset}"
                    yield Record(name, key, payload, vector=vector, cursor=str(index), location=where)
            self.notes[name] = vdb.notes.to_dict()
        else:
            kind = "node" if store.kind is StoreKind.GRAPH_NODES else "edge"
            for index, (_, payload, node_id) in enumerate(graphml.iter_elements(path, kind)):
                if start is not None and index <= start:
                    continue
                key = node_id if kind == "node" else edge_key(str(payload["source"]), str(payload["target"]))
                if key is None:
                    yield RejectedRecord(name, None, "graph node without an id", f"{path}", str(index))
                    continue
                yield Record(name, key, payload, cursor=str(index))

    def lossy_fields(self, store: StoreInfo) -> Dict[str, str]:
        if store.kind in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES):
            return {NULL_VALUED_FIELDS: "GraphML has no null; attributes set to null are left out"}
        return {}

    def holds_record_vectors(self, store: StoreInfo) -> bool:
        return store.kind is StoreKind.VECTOR  # NanoVectorDB's per-record "vector" field, kept as written

    async def duplicate_count(self, store: StoreInfo) -> int:
        if store.kind not in (StoreKind.KV, StoreKind.DOC_STATUS):
            return 0
        scan = await asyncio.to_thread(KVFile(self._path(store), store.namespace).scan)
        return len(scan.superseded)

    def screen(self, store: StoreInfo, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
        """KV and vector files hold anything Python's json reads; GraphML (XML 1.0) cannot hold control
        characters or lone surrogates in a node id or an attribute."""
        if store.kind not in (StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES):
            return records, []
        kept: List[Record] = []
        refused: List[RejectedRecord] = []
        for r in records:
            problem = graphml.unwritable(r.key if store.kind is StoreKind.GRAPH_NODES else None, r.payload)
            if problem is None:
                kept.append(r)
            else:
                refused.append(RejectedRecord(store.name, r.key, problem, r.location, r.position, side="target"))
        return kept, refused

    # -- pre-flight ----------------------------------------------------------------

    def looked_for(self) -> str:
        found = layout.workspaces_with_files(self.working_dir) if self.working_dir.is_dir() else []
        where = ", ".join(f"--workspace {w}" if w else "no --workspace" for w in found) or "none"
        return f"kv_store_*.json, vdb_*.json and graph_*.graphml in {self.folder}; workspaces with files: {where}"

    async def check_source(self, stores: List[StoreInfo]) -> List[Check]:
        unreadable = sorted({p.name for p in (self._path(s) for s in stores) if not os.access(p, os.R_OK)})
        return [Check(
            "source files readable", not unreadable, ", ".join(unreadable) or f"{len(stores)} stores in {self.folder}",
            f"give the current user read permission (chmod u+r) on: {', '.join(unreadable)}" if unreadable else "",
        )]

    async def check_target(self, stores: List[StoreInfo], *, sizes: Dict[str, Optional[int]]) -> List[Check]:
        existing = self.folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        writable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
        checks = [Check(
            "target folder writable", writable,
            str(self.folder) if existing == self.folder else f"{self.folder} (to be created in {existing})",
            "" if writable else f"give the current user write permission on {existing}, or choose another target",
        )]
        if not writable:
            return checks
        need = _space_needed(stores, sizes)
        if need is None:
            checks.append(Check("free space", True, "not checked: the source does not say its size"))
            return checks
        free = shutil.disk_usage(existing).free
        checks.append(Check(
            "free space", free >= need, f"{human_size(free)} free in {existing}, about {human_size(need)} needed",
            "" if free >= need else f"free at least {human_size(need - free)} on that disk, or migrate to another disk",
        ))
        return checks

    # -- writing -----------------------------------------------------------------

    async def is_empty(self) -> bool:
        return not lightrag_files(self.folder)

    async def lock_target(self, job_id: str) -> None:
        self._lock.acquire(job_id)

    async def prepare_target(self, stores: List[StoreInfo], job, *, force: bool) -> None:  # noqa: ANN001
        self._lock.acquire(job.job_id)  # a no-op when lock_target took it
        self._stores = sorted(stores, key=StoreInfo.sort_key)
        self._force = force
        fresh = not any(cp.done or cp.target_position for cp in job.checkpoints) and not any(
            p.name.endswith(DONE_SUFFIX) and p.read_text().strip() == job.job_id for p in our_files(self.folder)
        )  # a done marker of this job: an empty store finished just before a crash
        if fresh:
            if lightrag_files(self.folder) and not force:
                raise TargetError(f"target {self.describe()} is not empty; use --force to replace it")
            for stale in our_files(self.folder):  # left by an abandoned earlier job
                stale.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writers = {}
        for store in self._stores:
            cp = job.checkpoint(store.name)
            writer = self._new_writer(store, job, cp.target_position if cp else None)
            self._writers[store.name] = writer
            if cp is not None and cp.done:
                continue
            if writer.replaced():
                continue  # moved into place just before a crash; finish_store will be a no-op
            writer.restore()

    def _new_writer(self, store: StoreInfo, job, position) -> StoreWriter:  # noqa: ANN001
        key_start = 0
        if store.kind is StoreKind.GRAPH_EDGES:
            cp = job.checkpoint(f"{store.namespace}.nodes")
            key_start = len(((cp.target_position if cp else None) or {}).get("keys", []))
        return writer_for(self.folder, store, job.job_id, position, key_start)

    def _writer(self, store: StoreInfo, job) -> StoreWriter:  # noqa: ANN001
        writer = self._writers.get(store.name)
        if writer is None:
            raise TargetError(f"store {store.name} was not announced to prepare_target; this is a bug in the caller")
        if store.kind is StoreKind.GRAPH_EDGES and isinstance(writer, GraphWriter):
            nodes = self._writers.get(f"{store.namespace}.nodes")
            if nodes is not None and isinstance(nodes, GraphWriter):
                writer.keys.reserve(len(nodes.keys.rows))
        return writer

    async def write_batch(self, store: StoreInfo, records: List[Record], job) -> None:  # noqa: ANN001
        writer = self._writer(store, job)
        await asyncio.to_thread(writer.write, records)
        cp = job.checkpoint(store.name)
        if cp is not None:
            cp.target_position = writer.position()

    async def finish_store(self, store: StoreInfo, job) -> None:  # noqa: ANN001
        writer = self._writer(store, job)
        if store.kind is StoreKind.GRAPH_NODES:
            if not any(s.kind is StoreKind.GRAPH_EDGES and s.namespace == store.namespace for s in self._stores):
                await asyncio.to_thread(self._assemble_graph, store.namespace)
            return
        if store.kind is StoreKind.GRAPH_EDGES:
            await asyncio.to_thread(self._assemble_graph, store.namespace)
            return
        await asyncio.to_thread(writer.finish)

    def _assemble_graph(self, namespace: str) -> None:
        nodes = self._writers.get(f"{namespace}.nodes")
        edges = self._writers.get(f"{namespace}.edges")
        owner = edges or nodes
        assert isinstance(owner, GraphWriter)
        owner.assemble(nodes if isinstance(nodes, GraphWriter) else None, edges if isinstance(edges, GraphWriter) else None)

    async def finish_target(self, job) -> None:  # noqa: ANN001
        produced = {self.folder / layout.file_name(s) for s in self._stores}
        if self._force:  # replace = the target ends up holding exactly the source's stores
            for path in lightrag_files(self.folder):
                if path not in produced:
                    path.unlink()
        for leftover in our_files(self.folder):
            leftover.unlink()

    def describe(self) -> str:
        return f"json:{self.folder.resolve()}"


def _space_needed(stores: List[StoreInfo], sizes: Dict[str, Optional[int]]) -> Optional[int]:
    """Bytes a JSON copy needs: about the source's size (the same files), plus the raw float32 matrix
    (3/4 of its base64 text) that the largest vector store keeps beside its file until it finishes.
    None when the source cannot say the size of a store that holds data."""
    known = [sizes.get(s.name) for s in stores if s.kind is not StoreKind.GRAPH_EDGES]
    if any(size is None for size in known):
        return None
    vectors = [sizes.get(s.name) or 0 for s in stores if s.kind is StoreKind.VECTOR]
    return sum(known) + 3 * max(vectors, default=0) // 4


def _next_batch(items: Iterator[Any], size: int) -> Tuple[Optional[ReadBatch], Optional[SourceError]]:
    """The next batch, and the SourceError that ended the file early (after the batch's records)."""
    batch = ReadBatch()
    error: Optional[SourceError] = None
    try:
        for item in items:
            (batch.records if isinstance(item, Record) else batch.rejected).append(item)
            batch.cursor = item.cursor
            if len(batch.records) + len(batch.rejected) >= size:
                break
    except SourceError as exc:
        error = exc
    return (batch if batch.records or batch.rejected else None), error


def _parse_cursor(after: Optional[str], store: StoreInfo) -> Optional[int]:
    if after is None:
        return None
    try:
        return int(after)
    except ValueError:
        raise SourceError(
            f"resume position {after!r} for store {store.name} is not a JSON reader position; "
            f"the job was started by another backend's reader - restart without --resume"
        ) from None


def _record_or_reject(store: str, key: str, value: Any, index: int, path: Path, offset: Optional[int]):
    """A record (with its exact location when the exact path read it), or the reader's reject."""
    if isinstance(value, Rejected):
        where = f"{path} {'at' if value.exact else 'near'} byte {value.offset}"
        return RejectedRecord(store, key, value.reason, where, str(index))
    return Record(store, key, value, cursor=str(index), location=None if offset is None else f"{path} at byte {offset}")



