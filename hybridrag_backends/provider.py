"""The provider contract: what a backend plugin implements.

A plugin registers one :class:`BackendProvider` subclass per backend through the
``register_backends`` hook. Everything that does I/O is ``async`` on the
provider or on the :class:`BackendSession` it opens (pluggy hooks stay sync).

The stream interface (used by the migration engine) works on one record model
for every backend:

* a backend holds *stores* (:class:`StoreInfo`): KV namespaces, doc status,
  the vector stores, graph nodes and graph edges, plus any extra store found;
* :meth:`BackendSession.read` yields a store's records in batches, in a
  deterministic order, from a resume position (``after``: the ``cursor`` of the
  last record already copied);
* :meth:`BackendSession.write_batch` upserts a batch by key (idempotent) and
  commits the job's checkpoint with it when the backend can (same transaction);
* ``prepare_target`` / ``finish_store`` / ``finish_target`` bracket a copy so a
  backend can defer index builds or rename files into place atomically.

Optional parts, each with a safe default (a backend that does not override them works as before):

* ``check_source`` / ``check_target``: pre-flight checks run after the plan is made and before a
  job exists (extensions, embedding model and dimension, permissions, free space...); a failed
  check stops the migration with exit 2 and its fix, and nothing is created; ``looked_for`` says
  what was searched when a source has no store (exit 1);
* ``screen``: splits a batch into the records the target can hold and named rejects for the others (a
  lone surrogate in a key for PostgreSQL...); verification leaves the rejected ones out of the source side;
* ``duplicate_count``: entries a reader leaves out because a later one has the same key;
* ``records_final_before_finish`` (class attribute, default False): True when ``finish_target`` changes
  no record (it only builds or waits for derived structures such as indexes) and the session serves reads
  while it runs; the engine then verifies during ``finish_target`` instead of after it;
* ``begin_snapshot`` / ``content_stamp`` (as a migration source): ``begin_snapshot()`` is called once,
  before the plan, so a source that can read from one point in time (PostgreSQL: a REPEATABLE READ
  snapshot held until the session closes) plans, counts and copies the same records; ``content_stamp()``
  says what the records read are while it stays equal (JSON: the files' stats; PostgreSQL: that
  snapshot, in this session), so the engine sums the source side of verification while copying
  (``migration.verify``); None, or no such method: the source is read again at verification.

Payloads are in LightRAG's *current* layout (the reader normalises old
layouts), so any reader can feed any writer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, ClassVar, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # numpy is only needed by vector stores at run time
    import numpy as np

    from .migration.job import MigrationJob
    from .models import BackendConfig, StorageMetrics


class StoreKind(str, Enum):
    KV = "kv"
    DOC_STATUS = "doc_status"
    VECTOR = "vector"
    GRAPH_NODES = "graph_nodes"
    GRAPH_EDGES = "graph_edges"


# Migration order: every KV store, doc status, vectors, then nodes before edges.
KIND_ORDER = {
    StoreKind.KV: 0,
    StoreKind.DOC_STATUS: 1,
    StoreKind.VECTOR: 2,
    StoreKind.GRAPH_NODES: 3,
    StoreKind.GRAPH_EDGES: 4,
}

# LightRAG's standard namespaces (lightrag-hku 1.5.7), by kind.
STANDARD_KV_NAMESPACES = (
    "full_docs",
    "text_chunks",
    "llm_response_cache",
    "full_entities",
    "full_relations",
    "entity_chunks",
    "relation_chunks",
)
STANDARD_VECTOR_NAMESPACES = ("chunks", "entities", "relationships")
GRAPH_NAMESPACE = "chunk_entity_relation"

#: A :meth:`BackendSession.lossy_fields` key standing for every payload field whose value is null
#: (GraphML, for one, cannot say null: such attributes are left out of the file).
NULL_VALUED_FIELDS = "(null values)"


@dataclass(frozen=True)
class StoreInfo:
    """One store of a backend. ``name`` is unique within a backend and stable across backends."""

    namespace: str  # LightRAG namespace: "full_docs", "doc_status", "entities", "chunk_entity_relation", "parse_cache"
    kind: StoreKind
    embedding_dim: Optional[int] = None  # vector stores only

    @property
    def name(self) -> str:
        if self.kind is StoreKind.GRAPH_NODES:
            return f"{self.namespace}.nodes"
        if self.kind is StoreKind.GRAPH_EDGES:
            return f"{self.namespace}.edges"
        return self.namespace

    @property
    def standard(self) -> bool:
        return (
            self.namespace in STANDARD_KV_NAMESPACES
            or self.namespace in STANDARD_VECTOR_NAMESPACES
            or self.namespace in ("doc_status", GRAPH_NAMESPACE)
        )

    def sort_key(self) -> tuple:
        return (KIND_ORDER[self.kind], self.namespace)


def edge_key(source: str, target: str) -> str:
    """Canonical key of an undirected edge: the sorted pair joined like LightRAG's relation keys."""
    lo, hi = sorted((source, target))
    return f"{lo}<SEP>{hi}"


@dataclass
class Record:
    """One record of one store.

    * KV / doc status: ``payload`` is the stored object (``_id`` not included).
    * vector: ``payload`` holds the meta fields (``__id__`` excluded, it is the
      key; ``__created_at__`` kept), ``vector`` the float32 row.
    * graph nodes: key = node id (entity name), payload = node attributes.
    * graph edges: key = :func:`edge_key`, payload = edge attributes plus
      ``"source"`` and ``"target"`` (the endpoints as written).
    """

    store: str
    key: str
    payload: Dict[str, Any]
    vector: Optional["np.ndarray"] = None  # 1-D float32
    cursor: Optional[str] = None  # resume position in the reading backend's order (defaults to key)
    # where the reader found it (file and byte offset, table...), when it knows; named in a reject
    location: Optional[str] = None

    @property
    def position(self) -> str:
        return self.cursor if self.cursor is not None else self.key


@dataclass
class RejectedRecord:
    """A record a reader or writer could not take; written to the job's rejects file, never dropped."""

    store: str
    key: Optional[str]
    reason: str
    location: Optional[str] = None  # file and byte offset, table, ...
    cursor: Optional[str] = None
    side: str = "source"  # "target": a good source record the target cannot hold (see BackendSession.screen)


@dataclass
class ReadBatch:
    """What :meth:`BackendSession.read` yields: good records and the rejected ones, in order."""

    records: List[Record] = field(default_factory=list)
    rejected: List[RejectedRecord] = field(default_factory=list)
    cursor: Optional[str] = None  # position after this batch (last record or rejected item)


@dataclass
class Check:
    """One validation check: what was checked, whether it passed, and the fix when it did not."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


class BackendSession(abc.ABC):
    """An open connection to one backend location (a working dir + workspace, a database + workspace).

    Use as ``async with provider.open(config) as session:``.
    """

    # finish_target changes no record and reads may run during it (see the module docstring)
    records_final_before_finish: ClassVar[bool] = False

    async def __aenter__(self) -> "BackendSession":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:  # noqa: B027 - optional
        """Open connections. Raise ConnectionFailure with the fix when unreachable."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections. Must be safe to call twice."""

    async def begin_snapshot(self, *, target: Optional["BackendSession"] = None) -> None:  # noqa: B027 - optional
        """As a migration source, before the plan: make every later read of this session see one
        consistent point in time, where the backend can (see ``content_stamp``). ``target``: the
        migration's target session (connected), for a backend whose snapshot would hold up that target's
        work (PostgreSQL: an index built concurrently in the same database). Default: nothing."""

    # -- reading -------------------------------------------------------------

    @abc.abstractmethod
    async def list_stores(self) -> List[StoreInfo]:
        """Every store present, standard or extra, sorted by :meth:`StoreInfo.sort_key`."""

    @abc.abstractmethod
    async def count(self, store: StoreInfo) -> int:
        """Number of records in a store (cheap where the backend allows)."""

    @abc.abstractmethod
    def read(self, store: StoreInfo, after: Optional[str] = None, batch_size: int = 1000) -> AsyncIterator[ReadBatch]:
        """Yield the store's records in deterministic order, starting after cursor ``after``.

        Bad records are yielded as :class:`RejectedRecord` in the batch, not
        raised, so the good ones are still accounted for. An unreadable store
        (truncated file, lost connection) raises SourceError naming the file or
        table and the byte offset or key.
        """

    def lossy_fields(self, store: StoreInfo) -> Dict[str, str]:
        """Payload fields this backend cannot hold for ``store`` (field -> reason).

        The engine reports them before copying and leaves them out of the
        verification digest on both sides. The key :data:`NULL_VALUED_FIELDS`
        stands for every field whose value is null. For a vector store, the field
        ``vector`` is NanoVectorDB's per-record vector (see :mod:`.migration.verify`):
        a backend that keeps only ``Record.vector`` (and returns it from
        ``get_vectors_by_ids``) lists it here.
        """
        return {}

    def holds_record_vectors(self, store: StoreInfo) -> bool:
        """True when this backend keeps, for vector store ``store``, NanoVectorDB's per-record vector
        (the payload field ``vector``: base64 of zlib of float16, what LightRAG 1.5.7's
        ``get_vectors_by_ids`` decodes) apart from ``Record.vector``, and its reader yields it in the
        payload. Verification then compares it as LightRAG decodes it (a record without one on the
        target side is a difference). Default False: the field is not compared (``Record.vector`` is)."""
        return False

    async def duplicate_count(self, store: StoreInfo) -> int:
        """Entries of ``store`` that are not records because a later entry has the same key (a JSON
        object with a key written twice: LightRAG's ``json.load`` keeps the last value). ``count`` and
        ``read`` already leave them out; the migration plan reports how many there were. Default: 0."""
        return 0

    # -- pre-flight (optional) -------------------------------------------------

    def looked_for(self) -> str:
        """Where and what this session looked for when it found no store, for the error about an
        empty or mistyped source (e.g. "kv_store_*.json, vdb_*.json, graph_*.graphml in /data/rag;
        workspaces with files: a, b"). Default: "" (the engine names the location only)."""
        return ""

    async def check_source(self, stores: List[StoreInfo]) -> List[Check]:
        """Pre-flight checks as a migration source, after the plan is made and before a job exists:
        what would surely make the copy fail (files that cannot be read...). Must change nothing.
        A failed :class:`Check` stops the migration with exit 2, printing its detail and fix.
        Default: no check."""
        return []

    async def check_target(self, stores: List[StoreInfo], *, sizes: Dict[str, Optional[int]]) -> List[Check]:
        """Pre-flight checks as a migration target for ``stores`` (the plan's stores, in copy order),
        after the plan is made and before a job exists: server version and extensions, the embedding
        model and dimension the vector stores need, privileges or a writable folder, free space
        (``sizes``: store name -> the source's bytes for it, None where the source cannot say). Must
        create and change nothing. A failed :class:`Check` stops the migration with exit 2, printing its
        detail and fix; no job record or file is left behind. Default: no check."""
        return []

    def screen(self, store: StoreInfo, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
        """Split a batch into the records this target can hold and those it cannot (a value or key its
        storage refuses, e.g. a NUL character or a lone surrogate in PostgreSQL text, see
        :mod:`hybridrag_backends.jsonvalues`), each rejected one with its reason naming the field,
        ``cursor`` = the record's position, ``location`` = the record's where the reader knows it, and
        ``side="target"``. Called before the batch's checkpoint is advanced; the rejected records go to
        the job's rejects file. Verification (after a migration and ``verify SOURCE TARGET``) calls it
        on the source's records too and does not expect the rejected ones in the target: it must be
        cheap, deterministic and do no I/O. Default: every record is accepted."""
        return records, []

    # -- writing -------------------------------------------------------------

    async def is_empty(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} cannot be a migration target")

    async def lock_target(self, job_id: str) -> None:  # noqa: B027 - optional
        """Claim the target for the migration ``job_id`` until the session closes, so that two migrations
        never write into one target at once; raise TargetBusy (naming the job holding it) when another
        migration has it. The engine calls it before the job exists (a refused run leaves no job); a
        lock must die with its process (OS file lock, server session lock) so a killed run blocks
        nothing and ``--resume`` works."""

    async def prepare_target(self, stores: List[StoreInfo], job: "MigrationJob", *, force: bool) -> None:
        """Get ready to receive ``stores`` (create schema, defer indexes, clean a resumed partial write).

        Called on a fresh job and on every resume; ``job.checkpoints`` says what is committed.
        With ``force`` an existing target's stores are replaced.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be a migration target")

    def copy_order(self, stores: List[StoreInfo]) -> List[StoreInfo]:
        """The order in which this target wants ``stores`` (sorted by :meth:`StoreInfo.sort_key`)
        written: the same stores, graph nodes still before edges. PostgreSQL loads the vector stores
        early so their index builds run while the other stores load."""
        return stores

    async def write_batch(self, store: StoreInfo, records: List[Record], job: "MigrationJob") -> None:
        """Upsert ``records`` by key, then commit ``job`` (whose checkpoint for ``store`` already
        counts this batch) atomically with them where the backend can. A backend that needs a
        position to resume exactly sets ``job.checkpoint(store.name).target_position``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be a migration target")

    async def finish_store(self, store: StoreInfo, job: "MigrationJob") -> None:  # noqa: B027
        """The store is complete: build deferred indexes, move files into place."""

    async def finish_target(self, job: "MigrationJob") -> None:  # noqa: B027
        """Every store is complete."""

    # -- jobs kept in the target (optional) ---------------------------------

    async def load_job(self, job_id: str) -> Optional["MigrationJob"]:
        """The job as committed with the data, for backends that store it (PostgreSQL, MongoDB)."""
        return None

    async def save_job(self, job: "MigrationJob") -> None:  # noqa: B027
        """Persist job state outside a batch (status changes)."""


class BackendProvider(abc.ABC):
    """A storage backend. Subclass it and register the class from ``register_backends``."""

    #: backend name, e.g. "json", "postgres"; the registry's ``backend_type``
    name: ClassVar[str]
    #: one line for ``hybridrag-backends plugins``
    description: ClassVar[str] = ""
    #: URL schemes this backend claims as TARGETs, e.g. ("postgresql", "postgres")
    url_schemes: ClassVar[tuple] = ()

    def claims_path(self, path: Path) -> bool:
        """True when a filesystem path is this backend's (the JSON provider claims LightRAG dirs)."""
        return False

    @abc.abstractmethod
    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> "BackendConfig":
        """Build a BackendConfig from a URL or path this provider claims."""

    @abc.abstractmethod
    def describe(self, config: "BackendConfig") -> str:
        """A credential-free location string; equal strings mean the same place (used to refuse
        migrating a database onto itself)."""

    @abc.abstractmethod
    def storage_classes(self, config: "BackendConfig") -> Dict[str, str]:
        """LightRAG storage class names: kv_storage, vector_storage, graph_storage, doc_status_storage."""

    @abc.abstractmethod
    def env_vars(self, config: "BackendConfig") -> Dict[str, str]:
        """The backend's own environment variables LightRAG reads (connection, database, the
        backend's workspace variable; secrets included, resolved).

        The variables every backend shares (``LIGHTRAG_*_STORAGE`` from :meth:`storage_classes`,
        ``WORKSPACE``, ``WORKING_DIR``, ``EMBEDDING_MODEL`` / ``EMBEDDING_DIM`` from the config)
        are added by :func:`hybridrag_backends.hybridrag.lightrag_env`; return one here only to
        override it (the JSON provider gives the embedding dimension its files hold)."""

    def secret_env_vars(self) -> tuple:
        """Names in :meth:`env_vars` whose values are secret (masked unless --show-secrets)."""
        return ()

    def lightrag_kwargs(self, config: "BackendConfig") -> Dict[str, Any]:
        """Keyword arguments for ``LightRAG(...)``: storage class names, plus working_dir /
        workspace where the backend uses them."""
        kwargs: Dict[str, Any] = dict(self.storage_classes(config))
        if config.working_dir:
            kwargs["working_dir"] = config.working_dir
        return kwargs

    @abc.abstractmethod
    async def validate(self, config: "BackendConfig") -> List[Check]:
        """Check the config against reality (path exists, server reachable, extensions...)."""

    @abc.abstractmethod
    async def metrics(self, config: "BackendConfig") -> "StorageMetrics":
        """Sizes, counts and health. Must stay fast and memory-bounded on large data."""

    def open(self, config: "BackendConfig") -> BackendSession:
        """A session for the stream interface (reading, and writing where supported)."""
        raise NotImplementedError(f"backend {self.name!r} has no stream interface")

    def status_notes(self, config: "BackendConfig") -> List[str]:
        """Extra lines for ``status --verbose`` (e.g. what was verified against a real server)."""
        return []
