"""The migration engine: copy every store of a source backend into a target as a stream of batches.

One run (``migrate``):

1. plan: open both sessions, list and count the source's stores (bytes when the
   session can say, keys written twice), note absent standard files and the fields
   the target cannot hold; refuse the same location, and a non-empty target unless
   ``force``;
2. pre-flight, before any job exists (:func:`preflight`): the source has a store
   with records (else NotFoundError, exit 1, naming what was looked for, unless
   ``allow_empty``), the job folder is writable, and the sessions' own checks
   (``check_source`` / ``check_target``: readable files, extensions and versions,
   embedding model and dimension, privileges, free space) pass; a failure is
   ValidationFailure (exit 2) with the fix, and no job file or job row is created;
3. copy store by store (nodes before edges, by :meth:`StoreInfo.sort_key`): a
   producer task reads the next batch while the current one is written; after
   each batch the store's checkpoint is advanced, the records the target cannot
   hold (``screen``) go to the rejects file with their key and location, the target
   commits the rest (with the job where it can) and the job file is replaced
   atomically;
4. finish the target (``finish_target``: PostgreSQL waits for its index builds there), verify
   (:mod:`.verify`; during ``finish_target`` when the target's records are final before it, see
   :meth:`Migration.finish_and_verify`) and mark the job COMPLETED. Where the source's records cannot change
   under the copy (its session has a ``content_stamp()``: a JSON file set, or a PostgreSQL snapshot,
   see below), the source side of the digest is summed while copying: each batch is hashed in a
   worker thread before the target's writer sees it, the sum is kept with the store's checkpoint, and
   verification then re-reads only the target, unless the stamp changed since the job started (the
   source is then read again, as for every other source).

A PostgreSQL source is read as pg_dump reads it: ``begin_snapshot()``, called before the plan, exports
one REPEATABLE READ snapshot that every read of the session (plan counts, copy, and any re-read at
verification) sees until the session closes. The copy is the database as of that moment:
rows written to the source during the copy are not in it, and verification compares the target with
that same snapshot, so it passes (HybridRAG's watcher still waits while a migration runs). The stamp
names the snapshot and this session, so a resumed job (a new process, a new snapshot) reads the source
again at verification, and a server that cannot give a snapshot (no stamp), or a target in the same
PostgreSQL database (its CREATE INDEX CONCURRENTLY would wait for the snapshot), is read again as before.

Resume loads the job (the target's committed copy wins when it has one), checks
that the source did not change (fingerprint), lets the target drop uncommitted
partial data (``prepare_target``) and reads each unfinished store from after its
checkpoint, so no record is duplicated or lost.

Stopping: set ``stop`` (the CLI does on Ctrl-C) and the run ends after the batch
in flight is committed, with the job PAUSED (MigrationInterrupted, exit 5).
Every error leaves the job FAILED or PAUSED with ``last_error`` and is raised
with the job attached as ``exc.job``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import orjson

from ..errors import (
    HybridRAGBackendsError,
    MigrationError,
    MigrationInterrupted,
    NotFoundError,
    SourceError,
    TargetError,
    ValidationFailure,
    VerificationFailed,
)
from ..provider import BackendSession, Check, ReadBatch, Record, StoreInfo
from ..secrets import redact
from ..targets import ResolvedTarget
from . import jobstore
from .heap import bound_heap, release_free_pages
from .job import MigrationCheckpoint, MigrationJob, MigrationStatus
from .source_check import check_source_unchanged
from .verify import SourceDigest, StoreVerification, source_hasher, stores_of_both, verify as verify_stores

READ_AHEAD = 2  # batches read ahead of the writer: bounded memory, reading overlaps writing


class ProgressListener:
    """Receives progress events; the CLI subclasses it (rich bars or plain lines). All no-ops here."""

    def plan(self, plan: "MigrationPlan") -> None: ...

    def job_started(self, job: MigrationJob, resumed: bool) -> None: ...

    def store_started(self, store: "StorePlan", checkpoint: MigrationCheckpoint) -> None: ...

    def batch(self, store: "StorePlan", checkpoint: MigrationCheckpoint) -> None: ...

    def store_finished(self, store: "StorePlan", checkpoint: MigrationCheckpoint) -> None: ...

    def verify_started(self, stores: List[StoreInfo]) -> None: ...

    def store_verified(self, result: StoreVerification) -> None: ...


@dataclass
class StorePlan:
    store: StoreInfo
    count: Optional[int]  # None: the store could not be counted (see ``problem``)
    bytes: Optional[int] = None
    lossy_fields: Dict[str, str] = field(default_factory=dict)  # what the target cannot hold
    problem: Optional[str] = None  # why counting failed; the copy stops at the same place
    duplicates: int = 0  # entries hidden by a later one with the same key (not records; LightRAG keeps the last)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "store": self.store.name,
            "kind": self.store.kind.value,
            "records": self.count,
            "bytes": self.bytes,
            "embedding_dim": self.store.embedding_dim,
            "lossy_fields": dict(self.lossy_fields),
            "problem": self.problem,
            "duplicates": self.duplicates,
        }


@dataclass
class MigrationPlan:
    source: str
    target: str
    stores: List[StorePlan]
    absent_standard_files: List[str]
    target_empty: bool
    checks: List[Check] = field(default_factory=list)  # pre-flight (see preflight())
    target_problem: Optional[str] = None  # why the target could not be inspected (a pre-flight failure)
    # what the target will do beyond copying (e.g. PostgreSQL: each vector index strategy, its estimated time)
    target_notes: List[str] = field(default_factory=list)

    @property
    def total_records(self) -> int:
        return sum(s.count or 0 for s in self.stores)

    @property
    def total_duplicates(self) -> int:
        return sum(s.duplicates for s in self.stores)

    @property
    def total_bytes(self) -> Optional[int]:
        # a store without a size shares its storage with another one (graph edges) or cannot say
        sizes = [s.bytes for s in self.stores if s.bytes is not None]
        return sum(sizes) if sizes else None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "stores": [s.to_dict() for s in self.stores],
            "total_records": self.total_records,
            "total_bytes": self.total_bytes,
            "absent_standard_files": list(self.absent_standard_files),
            "target_empty": self.target_empty,
            "total_duplicates": self.total_duplicates,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in self.checks],
            "target_notes": list(self.target_notes),
        }


@dataclass
class MigrationResult:
    plan: MigrationPlan
    job: Optional[MigrationJob] = None  # None for a dry run


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def make_plan(src: BackendSession, dst: BackendSession, source: ResolvedTarget, target: ResolvedTarget) -> MigrationPlan:
    try:
        stores = sorted(await src.list_stores(), key=StoreInfo.sort_key)
        ordered = dst.copy_order(list(stores))
        if sorted(ordered, key=StoreInfo.sort_key) != stores:
            raise TargetError(f"{type(dst).__name__}.copy_order must return the same stores, reordered")
        stores = ordered
        plans = []
        for store in stores:
            size = None
            if hasattr(src, "store_bytes"):
                size = await _maybe_await(src.store_bytes(store))
            # A store that cannot be counted (truncated file) is still copied up to the damage, so the
            # job accounts for its good records and fails naming the place; the plan shows the problem.
            count: Optional[int] = None
            problem = None
            duplicates = 0
            try:
                count = await src.count(store)
                duplicates = await src.duplicate_count(store)
            except SourceError as exc:
                problem = str(exc)
            plans.append(StorePlan(store, count, size, dict(dst.lossy_fields(store)), problem, duplicates))
        absent: List[str] = []
        if hasattr(src, "absent_standard_files"):
            absent = list(await _maybe_await(src.absent_standard_files()))
    except HybridRAGBackendsError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot read the source {source.location}: {type(exc).__name__}: {redact(exc)}") from exc
    # A target that cannot even be inspected (no privilege on a schema...) is reported by the pre-flight,
    # next to the check that says why, before any job exists.
    problem = None
    try:
        empty = await dst.is_empty()
    except HybridRAGBackendsError as exc:
        empty, problem = False, str(exc)
    except Exception as exc:
        empty, problem = False, f"cannot inspect the target {target.location}: {type(exc).__name__}: {redact(exc)}"
    notes: List[str] = []
    if problem is None and hasattr(dst, "plan_target"):  # optional: what the target will do, given the counts
        try:
            notes = list(await _maybe_await(dst.plan_target([(p.store, p.count) for p in plans])))
        except HybridRAGBackendsError:
            raise
        except Exception as exc:
            problem = f"cannot plan the target {target.location}: {type(exc).__name__}: {redact(exc)}"
    return MigrationPlan(source.location, target.location, plans, absent, empty, target_problem=problem,
                         target_notes=notes)


def _jobs_folder_check() -> Check:
    folder = jobstore.jobs_dir()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    ok = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    return Check("job folder writable", ok, str(folder),
                 "" if ok else f"set HYBRIDRAG_HOME to a writable folder (cannot write in {existing})")


async def preflight(src: BackendSession, dst: BackendSession, source: ResolvedTarget, plan: MigrationPlan, *,
                    allow_empty: bool) -> None:
    """What can be known before a job exists: a source with records, a writable job folder, and the
    sessions' own checks (``check_source`` / ``check_target``), put in ``plan.checks``. A source with
    no record is NotFoundError (exit 1) naming what was looked for, unless ``allow_empty``."""
    if not allow_empty and plan.total_records == 0 and not any(s.problem for s in plan.stores):
        stores = f"{len(plan.stores)} store(s), all empty" if plan.stores else "no LightRAG store"
        looked = src.looked_for()
        raise NotFoundError(
            f"the source {source.location} holds no LightRAG record ({stores}{'; looked for ' + looked if looked else ''}); "
            f"check --from and --workspace, or pass --allow-empty to copy an empty database"
        )
    stores = [s.store for s in plan.stores]
    checks = [_jobs_folder_check()]
    if plan.target_problem:
        checks.append(Check("target can be inspected", False, plan.target_problem,
                            "see the other failed checks, or the message, for what to change on the target"))
    for session, run, side in ((src, lambda: src.check_source(stores), "source"),
                               (dst, lambda: dst.check_target(stores, sizes={s.store.name: s.bytes for s in plan.stores}), "target")):
        try:
            checks.extend(await run())
        except HybridRAGBackendsError as exc:
            checks.append(Check(f"{side} pre-flight", False, str(exc)))
        except Exception as exc:  # a provider bug must not pass as a failed check silently
            checks.append(Check(f"{side} pre-flight", False, f"{type(session).__name__} failed: {type(exc).__name__}: {redact(exc)}"))
    plan.checks = checks


def preflight_failure(plan: MigrationPlan) -> Optional[ValidationFailure]:
    failed = [c for c in plan.checks if not c.ok]
    if not failed:
        return None
    what = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed)
    return ValidationFailure(f"pre-flight check failed before any job was created: {what}")


async def source_fingerprint(src: BackendSession, plan: MigrationPlan) -> Dict[str, Any]:
    """What must not change between a job's start and its resume: the session's own fingerprint
    (the JSON session gives file sizes and mtimes) plus every store's count."""
    fp: Dict[str, Any] = {"counts": {s.store.name: s.count for s in plan.stores}}
    if hasattr(src, "fingerprint"):
        fp["session"] = await _maybe_await(src.fingerprint())
    return orjson.loads(orjson.dumps(fp))  # JSON round trip, so a saved copy compares equal


async def begin_snapshot(src: BackendSession, source: ResolvedTarget, dst: BackendSession) -> None:
    """Before the plan: the source's reads from here on see one point in time, where it can (PostgreSQL),
    so the plan's counts, the copy and its stamp agree."""
    begin = getattr(src, "begin_snapshot", None)
    if begin is None:
        return
    try:
        await _maybe_await(begin(target=dst))
    except HybridRAGBackendsError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot read the source {source.location}: {type(exc).__name__}: {redact(exc)}") from exc


async def source_stamp(src: BackendSession) -> Any:
    """The source's ``content_stamp()`` after a JSON round trip (so a saved copy compares equal), or None
    when the source cannot promise one (a server read outside a snapshot, which others may write to)."""
    if not hasattr(src, "content_stamp"):
        return None
    return orjson.loads(orjson.dumps(await _maybe_await(src.content_stamp())))


def find_resumable(source: ResolvedTarget, target: ResolvedTarget, job_id: Optional[str]) -> MigrationJob:
    """The job to resume: ``job_id``, or the newest resumable job from source to target."""
    if job_id:
        job = jobstore.load(job_id)
        if (job.source, job.target) != (source.location, target.location):
            raise MigrationError(
                f"job {job_id} migrates {job.source} -> {job.target}, not {source.location} -> {target.location}; "
                f"give the same --from/--to (see 'hybridrag-backends jobs show {job_id}')"
            )
        if job.status is MigrationStatus.COMPLETED:
            raise MigrationError(f"job {job_id} is already completed; nothing to resume")
        return job
    for job in reversed(jobstore.list_jobs()):
        if (job.source, job.target) == (source.location, target.location) and job.status is not MigrationStatus.COMPLETED:
            if job.status is MigrationStatus.PENDING:
                continue
            return job
    raise NotFoundError(
        f"no resumable migration job from {source.location} to {target.location}; "
        f"see 'hybridrag-backends jobs', or start a new migration without --resume"
    )


def _fail(job: MigrationJob, exc: BaseException, status: MigrationStatus = MigrationStatus.FAILED) -> None:
    message = redact(str(exc))
    if job.status is MigrationStatus.IN_PROGRESS:
        job.transition(status, error=message)
    else:
        job.last_error = message
    jobstore.save(job)


class _Stopped(Exception):
    """Internal: the stop flag was seen between batches."""


_END = object()


def _hash_batch(hasher: Callable[[Record], int], records: List[Record]) -> Dict[int, int]:
    """id(record) -> its verification hash (run in a worker thread: sha256 and zlib release the GIL)."""
    return {id(r): hasher(r) for r in records}


class _ReadFailure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Migration:
    """One run of one job (fresh or resumed). Use :func:`migrate`."""

    def __init__(
        self,
        src: BackendSession,
        dst: BackendSession,
        job: MigrationJob,
        plan: MigrationPlan,
        *,
        progress: ProgressListener,
        stop: Optional[asyncio.Event],
    ) -> None:
        self.src, self.dst, self.job, self.plan = src, dst, job, plan
        self.progress = progress
        self.stop = stop

    def _stop_requested(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def copy(self) -> None:
        for store_plan in self.plan.stores:
            cp = self.job.checkpoint(store_plan.store.name)
            assert cp is not None  # every store got one when the job was created
            if cp.done:
                continue
            if self._stop_requested():
                raise _Stopped()
            self.job.current_store = cp.store_name
            self.progress.store_started(store_plan, cp)
            await self._copy_store(store_plan, cp)
            cp.done = True
            try:
                await self.dst.finish_store(store_plan.store, self.job)
            except BaseException as exc:
                cp.done = False
                raise _as_target_error(exc, f"finishing store {cp.store_name}") from exc
            jobstore.save(self.job)
            await asyncio.to_thread(release_free_pages)  # this store's freed buffers, before the next one's
            self.progress.store_finished(store_plan, cp)
        self.job.current_store = None

    async def finish(self) -> None:
        try:
            await self.dst.finish_target(self.job)
        except BaseException as exc:
            raise _as_target_error(exc, "finishing the target") from exc
        jobstore.save(self.job)

    async def finish_and_verify(self) -> None:
        """``finish()`` then ``verify()``; both at once when the target says ``finish_target`` changes no
        record (``records_final_before_finish``: PostgreSQL only waits for its index builds there), so the
        read-back runs while the server builds. The job completes only once both have; the first error in
        the sequential order (finishing, then verifying) is the one raised, and the other is stopped."""
        verify = self.job.options.get("verify", True)
        if not (verify and getattr(self.dst, "records_final_before_finish", False)):
            await self.finish()
            if verify:
                await self.verify()
            return
        finishing, verifying = asyncio.ensure_future(self.finish()), asyncio.ensure_future(self.verify())
        try:
            await asyncio.wait({finishing, verifying}, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # an error in one, or this task cancelled: nothing is left running on the sessions
            for task in (finishing, verifying):
                if not task.done():
                    task.cancel()
            await asyncio.gather(finishing, verifying, return_exceptions=True)
        for task in (finishing, verifying):
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def _source_hasher(self, store: StoreInfo, cp: MigrationCheckpoint) -> Optional[Callable[[Record], int]]:
        """The hasher that sums the store's source digest while copying, or None (the source is read
        again at verification): not verifying, no stamp (not an immutable file set, or it changed since
        the job started), or part of the store was copied earlier without a usable digest."""
        if not self.job.options.get("verify", True) or self.job.options.get("source_stamp") is None:
            return None
        fresh = cp.last_key is None and not cp.migrated_count and not cp.rejected_count
        if not fresh and SourceDigest.from_dict(cp.source_digest) is None:
            return None
        if fresh:
            cp.source_digest = SourceDigest().to_dict()
        return source_hasher(self.dst, store)

    async def _copy_store(self, store_plan: StorePlan, cp: MigrationCheckpoint) -> None:
        queue: asyncio.Queue = asyncio.Queue(maxsize=READ_AHEAD)
        store = store_plan.store
        batch_size = self.job.batch_size
        hasher = self._source_hasher(store, cp)
        if hasher is None:
            cp.source_digest = None  # saved with the first batch: a partial digest must not be continued later

        async def produce() -> None:
            try:
                async for batch in self.src.read(store, cp.last_key, batch_size):
                    # hashed before the writer sees the records (a writer that edits them in place is caught)
                    hashes = await asyncio.to_thread(_hash_batch, hasher, batch.records) if hasher and batch.records else None
                    await queue.put((batch, hashes))
                await queue.put(_END)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the writer, which fails the job in order
                await queue.put(_ReadFailure(exc))

        reader = asyncio.create_task(produce())
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, _ReadFailure):
                    raise _as_source_error(item.exc, store.name) from item.exc
                await self._commit(store_plan, cp, *item)
                if self._stop_requested():
                    raise _Stopped()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _commit(self, store_plan: StorePlan, cp: MigrationCheckpoint, batch: ReadBatch,
                      hashes: Optional[Dict[int, int]] = None) -> None:
        """Advance the checkpoint (and the source digest, from ``hashes``: id(record) -> hash), let the
        target commit the batch (with the job), save the job. If anything fails before the job file is
        saved, the in-memory checkpoint is rolled back so a half-written batch is never reported as done."""
        job = self.job
        before = (copy.deepcopy(cp), job.migrated_records, job.failed_records, dict(job.options))
        try:
            records, refused = self.dst.screen(store_plan.store, batch.records) if batch.records else ([], [])
            for r in refused:  # where to fix it: the record's place in the source
                r.location = r.location or self._source_location(store_plan.store)
            rejected = [*batch.rejected, *refused]
            if rejected:
                job.options["rejects_bytes"] = jobstore.append_rejects(job.job_id, rejected)
            position = batch.cursor
            if position is None and batch.records:
                position = batch.records[-1].position
            if position is None and batch.rejected:
                position = batch.rejected[-1].cursor
            if position is not None:
                cp.last_key = position
            cp.migrated_count += len(records)
            cp.rejected_count += len(rejected)
            job.migrated_records += len(records)
            job.failed_records += len(rejected)
            digest = SourceDigest.from_dict(cp.source_digest)
            if digest is not None:  # the records the target keeps, as verification would read them
                digest.add([hashes[id(r)] for r in records] if hashes else [], len(rejected))
                cp.source_digest = digest.to_dict()
            if records:
                try:
                    await self.dst.write_batch(store_plan.store, records, job)
                except BaseException as exc:
                    raise _as_target_error(exc, f"writing a batch of {cp.store_name}") from exc
            jobstore.save(job)
        except BaseException:
            saved_cp, job.migrated_records, job.failed_records, job.options = before
            cp.__dict__.update(saved_cp.__dict__)
            raise
        self.progress.batch(store_plan, cp)

    def _source_location(self, store: StoreInfo) -> str:
        if hasattr(self.src, "store_location"):
            return str(self.src.store_location(store))
        return f"{self.plan.source} store {store.name}"

    async def verify(self) -> None:
        stores = [s.store for s in self.plan.stores]
        self.progress.verify_started(stores)

        def on_store(result: StoreVerification) -> None:
            self.progress.store_verified(result)
            if self._stop_requested():
                raise _Stopped()

        digests: Dict[str, SourceDigest] = {}
        stamp = self.job.options.get("source_stamp")
        if stamp is not None and stamp == await source_stamp(self.src):  # unchanged since the job started
            for cp in self.job.checkpoints:
                digest = SourceDigest.from_dict(cp.source_digest)
                if digest is not None and cp.done:
                    digests[cp.store_name] = digest
        try:
            self.job.verification = await verify_stores(
                self.src, self.dst, stores, batch_size=self.job.batch_size, on_store=on_store,
                refused=jobstore.target_refused_keys(self.job.job_id), source_digests=digests,
            )
        except (_Stopped, asyncio.CancelledError, KeyboardInterrupt):
            raise
        except HybridRAGBackendsError:
            raise
        except Exception as exc:
            raise MigrationError(f"verification failed unexpectedly: {type(exc).__name__}: {redact(exc)}") from exc
        jobstore.save(self.job)


def _as_source_error(exc: BaseException, store: str) -> BaseException:
    if isinstance(exc, HybridRAGBackendsError) or not isinstance(exc, Exception):
        return exc
    return SourceError(f"reading store {store}: {type(exc).__name__}: {redact(exc)}")


def _as_target_error(exc: BaseException, doing: str) -> BaseException:
    if isinstance(exc, HybridRAGBackendsError) or not isinstance(exc, Exception):
        return exc
    return TargetError(f"{doing}: {type(exc).__name__}: {redact(exc)}")


def _new_job(source: ResolvedTarget, target: ResolvedTarget, plan: MigrationPlan, batch_size: int, job_id: str) -> MigrationJob:
    job = MigrationJob(
        job_id=job_id,
        database_name=source.name or source.location,
        source_backend=source.provider.name,
        target_backend=target.provider.name,
        source=source.location,
        target=target.location,
        workspace=source.config.workspace or None,
        batch_size=batch_size,
        total_records=plan.total_records,
    )
    job.checkpoints = [MigrationCheckpoint(s.store.name, None, 0, s.count or 0) for s in plan.stores]
    return job


def _rejects_summary(job: MigrationJob) -> str:
    first = jobstore.read_rejects(job.job_id, limit=1)
    example = ""
    if first:
        r = first[0]
        where = f" at {r['location']}" if r.get("location") else ""
        example = f" (first: store {r['store']}, key '{r['key']}'{where}: {r['reason']})"
    return (
        f"{job.failed_records} record(s) were rejected{example}; every other record was copied"
        f"{' and verified' if job.verification and job.verification.get('ok') else ''}. "
        f"See {jobstore.rejects_path(job.job_id)}; fix the source and rerun with --force, "
        f"or pass --allow-rejects to accept the loss"
    )


def _sessions(source: ResolvedTarget, target: ResolvedTarget, as_source: str, as_target: str) -> tuple:
    """Both providers' sessions (not yet connected); a backend without a stream interface is a source
    or target error saying it cannot ``as_source`` / ``as_target``."""
    try:
        src = source.provider.open(source.config)
    except NotImplementedError as exc:
        raise SourceError(f"backend {source.provider.name!r} cannot {as_source}: {exc}") from None
    try:
        dst = target.provider.open(target.config)
    except NotImplementedError as exc:
        raise TargetError(f"backend {target.provider.name!r} cannot {as_target}: {exc}") from None
    return src, dst


async def migrate(
    source: ResolvedTarget,
    target: ResolvedTarget,
    *,
    batch_size: int = 1000,
    resume: Optional[str] = None,
    dry_run: bool = False,
    force: bool = False,
    verify: bool = True,
    allow_rejects: bool = False,
    allow_empty: bool = False,
    progress: Optional[ProgressListener] = None,
    stop: Optional[asyncio.Event] = None,
    before_job: Optional[Callable[[str], Any]] = None,
) -> MigrationResult:
    """Migrate ``source`` into ``target``. ``resume``: a job id, or ``""`` for the newest resumable
    job of this source/target pair. Raises HybridRAGBackendsError subclasses (exit codes) with the
    job attached as ``exc.job`` once one exists. A dry run returns the plan with its pre-flight
    ``checks`` (failed ones included) instead of raising for them.
    ``before_job(job_id)`` is called once the run will go
    ahead (not for a dry run), before the target is locked and before any job exists; it may raise to
    refuse the run (the CLI takes the per-database migration locks there, see :mod:`..watcher`)."""
    progress = progress or ProgressListener()
    bound_heap()  # freed copy buffers go back to the system, so memory does not grow with size (heap.py)
    if batch_size < 1:
        raise MigrationError(f"--batch-size must be at least 1 (got {batch_size})")
    if source.location == target.location:
        raise ValidationFailure(
            f"source and target are the same place ({source.location}); "
            f"migrate to another working dir, workspace (--target-workspace) or server"
        )
    job: Optional[MigrationJob] = None
    if resume is not None:
        job = find_resumable(source, target, resume or None)
    src_cm, dst_cm = _sessions(source, target, "be a migration source", "be a migration target")
    async with src_cm as src, dst_cm as dst:
        await begin_snapshot(src, source, dst)
        plan = await make_plan(src, dst, source, target)
        progress.plan(plan)
        if job is None:  # a resumed job exists already: its target was checked when it started
            await preflight(src, dst, source, plan, allow_empty=allow_empty)
        elif plan.target_problem:
            raise TargetError(plan.target_problem)
        if dry_run:
            return MigrationResult(plan)
        failure = preflight_failure(plan)
        if failure is not None:
            raise failure
        if stop is not None and stop.is_set():
            raise MigrationInterrupted("interrupted while planning, before anything was copied; nothing to resume")
        new_id = jobstore.new_job_id()
        # One migration per target at a time, claimed before a job exists: a second run stops here (exit 2,
        # naming the job that holds the target) and leaves no job behind.
        jobstore.ensure_jobs_dir()  # a home that cannot hold the job fails before the target is touched
        if before_job is not None:
            before_job(job.job_id if job is not None else new_id)
        await dst.lock_target(job.job_id if job is not None else new_id)
        if job is None:
            plan.target_empty = await dst.is_empty()  # again, under the lock: a run that just ended may have filled it
            if not plan.target_empty and not force:
                raise TargetError(
                    f"the target {target.location} already holds data; pass --force to replace its stores, "
                    f"or --resume to continue an interrupted migration"
                )
            job = _new_job(source, target, plan, batch_size, new_id)
            job.options.update(
                force=force,
                allow_rejects=allow_rejects,
                verify=verify,
                rejects_bytes=0,
                source_fingerprint=await source_fingerprint(src, plan),
                source_stamp=await source_stamp(src),
            )
            resumed = False
        else:
            resumed = True
        with jobstore.JobLock(job.job_id):
            if resumed:
                job = await _reload_for_resume(job.job_id, src, dst, plan)
                # flags given now win over the saved ones (verify / allow_rejects), batch size stays
                job.options.update(verify=verify, allow_rejects=allow_rejects or job.options.get("allow_rejects", False))
            job.transition(MigrationStatus.IN_PROGRESS)
            jobstore.save(job)
            try:
                return await _run(src, dst, job, plan, progress, stop, resumed)
            except HybridRAGBackendsError as exc:
                exc.job = job  # type: ignore[attr-defined]
                raise


async def verify_copy(
    source: ResolvedTarget,
    target: ResolvedTarget,
    *,
    batch_size: int = 1000,
    on_store: Optional[Callable[[StoreVerification], None]] = None,
) -> Dict[str, Any]:
    """``hybridrag-backends verify``: compare every store of either side as a migration's verification
    does (a store on one side only is compared with an empty one). Changes nothing; no job is involved.
    Returns the verification mapping plus ``missing_in_source`` / ``missing_in_target``."""
    bound_heap()
    if batch_size < 1:
        raise MigrationError(f"--batch-size must be at least 1 (got {batch_size})")
    if source.location == target.location:
        raise ValidationFailure(f"source and target are the same place ({source.location}); give the copy as TARGET")
    src_cm, dst_cm = _sessions(source, target, "be read as a stream", "be read as a stream")
    async with src_cm as src, dst_cm as dst:
        stores, missing_in_source, missing_in_target = await stores_of_both(src, dst)
        result = await verify_stores(src, dst, stores, batch_size=batch_size, on_store=on_store,
                                     missing_in_source=missing_in_source, missing_in_target=missing_in_target)
    return {**result, "missing_in_source": sorted(missing_in_source), "missing_in_target": sorted(missing_in_target)}


async def _reload_for_resume(job_id: str, src: BackendSession, dst: BackendSession, plan: MigrationPlan) -> MigrationJob:
    job = jobstore.load(job_id)  # re-read under the lock
    committed = await dst.load_job(job_id)
    if committed is not None:
        job = committed  # committed with the data: authoritative
    if job.status is MigrationStatus.IN_PROGRESS:
        # nobody holds the lock, so the process that ran it died (kill, crash, power loss)
        job.transition(MigrationStatus.FAILED, error="the process running this job ended without saving its state")
        jobstore.save(job)
    fingerprint = await source_fingerprint(src, plan)
    if fingerprint != job.options.get("source_fingerprint"):
        err = SourceError(
            f"the source {job.source} changed since job {job_id} started, so it cannot be resumed exactly; "
            f"start a new migration with --force"
        )
        err.job = job  # type: ignore[attr-defined]
        raise err
    if job.options.get("source_stamp") != await source_stamp(src):
        # same sizes and mtimes, yet written since (ctime, inode): the digests summed so far cannot be used
        # (verification compares the stamp again), so the rest of the copy does not sum any either
        job.options["source_stamp"] = None
    jobstore.truncate_rejects(job_id, int(job.options.get("rejects_bytes", 0)))
    return job


async def _run(
    src: BackendSession,
    dst: BackendSession,
    job: MigrationJob,
    plan: MigrationPlan,
    progress: ProgressListener,
    stop: Optional[asyncio.Event],
    resumed: bool,
) -> MigrationResult:
    run = Migration(src, dst, job, plan, progress=progress, stop=stop)
    progress.job_started(job, resumed)
    try:
        try:
            await dst.prepare_target([s.store for s in plan.stores], job, force=bool(job.options.get("force")))
        except BaseException as exc:
            raise _as_target_error(exc, "preparing the target") from exc
        try:
            await dst.save_job(job)
        except BaseException as exc:
            raise _as_target_error(exc, "saving the job in the target") from exc
        await run.copy()
        await run.finish_and_verify()
        await check_source_unchanged(src, job)  # HybridRAG may have ingested into the source meanwhile
    except (_Stopped, asyncio.CancelledError, KeyboardInterrupt) as exc:
        stopped = MigrationInterrupted(
            f"interrupted; checkpoint saved ({job.migrated_records}/{job.total_records} records). "
            f"resume it with the same --from/--to plus --resume {job.job_id}"
        )
        _fail(job, stopped, MigrationStatus.PAUSED)
        await _save_quietly(dst, job)
        raise stopped from exc
    except HybridRAGBackendsError as exc:
        _fail(job, exc)
        await _save_quietly(dst, job)
        raise
    except Exception as exc:  # a bug in a provider: still leave the job FAILED, not IN_PROGRESS
        _fail(job, exc)
        await _save_quietly(dst, job)
        raise
    if job.verification is not None and not job.verification.get("ok"):
        err = VerificationFailed(
            f"{verification_summary(job.verification)}. See 'hybridrag-backends jobs show {job.job_id}'"
        )
        _fail(job, err)
        await _save_quietly(dst, job)
        raise err
    if job.failed_records and not job.options.get("allow_rejects"):
        err = SourceError(_rejects_summary(job))
        _fail(job, err)
        await _save_quietly(dst, job)
        raise err
    job.transition(MigrationStatus.COMPLETED)
    job.last_error = None
    jobstore.save(job)
    await _save_quietly(dst, job)
    return MigrationResult(plan, job)


def verification_summary(verification: Dict[str, Any]) -> str:
    """One line: which stores differ, with example keys (or why the target could not be read)."""
    failed = verification.get("failed_stores", [])
    details = []
    for name in failed:
        store = verification["stores"][name]
        if store.get("error"):
            details.append(f"{name} ({store['error']})")
            continue
        counts = f"source {store['source_count']}, target {store['target_count']} records"
        ex = store.get("examples") or []
        details.append(f"{name} ({counts}" + (f"; e.g. {', '.join(ex[:3])}" if ex else "") + ")")
    return f"verification failed: {len(failed)} store(s) differ between source and target: {'; '.join(details)}"


async def _save_quietly(dst: BackendSession, job: MigrationJob) -> None:
    with contextlib.suppress(Exception):
        await dst.save_job(job)
