"""Driving a session the way the migration engine does, so the checks exercise the real protocol.

The engine's order for every batch: let the target screen out what it cannot hold (``screen``, where
the session has one: those become named rejects), advance the store's checkpoint (``last_key``,
counts), let the target write the batch and commit the job with it (``write_batch``), then save the
job file. A crash may land anywhere in that, so a resumed run calls ``prepare_target`` with the job
as it was last saved (or as the target committed it: ``load_job``) and writes from that checkpoint on.
Sessions that claim their target (``lock_target``) are asked to before ``prepare_target``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..migration.job import MigrationCheckpoint, MigrationJob
from ..provider import BackendSession, ReadBatch, Record, RejectedRecord, StoreInfo


def new_job(stores: Iterable[StoreInfo], job_id: str, target_backend: str) -> MigrationJob:
    job = MigrationJob(job_id, "conformance", "json", target_backend, source="conformance-source", target="conformance-target")
    job.checkpoints = [MigrationCheckpoint(s.name, None, 0, 0) for s in stores]
    return job


def batches(records: Sequence[Record], size: int) -> List[List[Record]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


@dataclass
class Writer:
    """Writes stores through a session batch by batch, keeping the job as the engine's job file would
    have it after each batch (``saved``)."""

    session: BackendSession
    job: MigrationJob
    saved: MigrationJob = field(init=False)
    refused: List[RejectedRecord] = field(default_factory=list)  # what screen() kept out

    def __post_init__(self) -> None:
        self.saved = copy.deepcopy(self.job)

    async def prepare(self, stores: List[StoreInfo], *, force: bool = False) -> None:
        lock = getattr(self.session, "lock_target", None)
        if lock is not None:
            await lock(self.job.job_id)
        await self.session.prepare_target(stores, self.job, force=force)
        await self.session.save_job(self.job)
        self.saved = copy.deepcopy(self.job)

    async def write(self, store: StoreInfo, batch: List[Record], *, save: bool = True) -> None:
        cp = self.job.checkpoint(store.name)
        assert cp is not None, store.name
        screen = getattr(self.session, "screen", None)
        kept, refused = screen(store, batch) if screen is not None else (batch, [])
        self.refused.extend(refused)
        cp.last_key = batch[-1].position
        cp.migrated_count += len(kept)
        cp.rejected_count += len(refused)
        self.job.migrated_records += len(kept)
        if kept:
            await self.session.write_batch(store, kept, self.job)
        if save:
            self.saved = copy.deepcopy(self.job)

    async def finish(self, store: StoreInfo) -> None:
        cp = self.job.checkpoint(store.name)
        assert cp is not None
        cp.done = True
        await self.session.finish_store(store, self.job)
        self.saved = copy.deepcopy(self.job)

    async def write_store(self, store: StoreInfo, records: Sequence[Record], batch_size: int) -> None:
        for batch in batches(records, batch_size):
            await self.write(store, batch)
        await self.finish(store)

    async def write_all(self, data: Dict[StoreInfo, List[Record]], batch_size: int) -> None:
        """Write every store; records the target screens out fail the check (they are LightRAG data)."""
        stores = list(data)
        await self.prepare(stores)
        for store in self.session.copy_order(stores):
            await self.write_store(store, data[store], batch_size)
        await self.session.finish_target(self.job)
        if self.refused:
            r = self.refused[0]
            raise AssertionError(f"screen() refused {len(self.refused)} record(s) of LightRAG data, e.g. store {r.store} "
                                 f"record {r.key!r}: {r.reason}")


async def read_all(session: BackendSession, store: StoreInfo, after: Optional[str] = None,
                   batch_size: int = 1000) -> Tuple[List[Record], List[RejectedRecord], List[ReadBatch]]:
    records: List[Record] = []
    rejected: List[RejectedRecord] = []
    seen: List[ReadBatch] = []
    async for batch in session.read(store, after, batch_size):
        records.extend(batch.records)
        rejected.extend(batch.rejected)
        seen.append(batch)
    return records, rejected, seen


def resume_position(batch: ReadBatch) -> Optional[str]:
    """Where the engine resumes after ``batch`` (its cursor, else its last item's)."""
    if batch.cursor is not None:
        return batch.cursor
    if batch.records:
        return batch.records[-1].position
    if batch.rejected:
        return batch.rejected[-1].cursor
    return None
