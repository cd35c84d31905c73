"""Verification after a copy: per-store counts and an order-independent content digest.

Both sides are re-read through ``read()`` (so the check covers what a reader of
the target really gets). Each record's canonical form is

    key + NUL + orjson(payload minus the target's lossy fields, sorted keys) + NUL + float32 vector bytes

(for a target that cannot hold null, see ``NULL_VALUED_FIELDS``, minus the null-valued fields too),
and a store's digest is the sum of ``int(sha256(canonical))`` modulo 2**256,
which does not depend on record order. Vectors take part as float32 bytes, so
equal digests mean vectors equal as float32. Records the source rejected are not
in either side (they were never written) and are reported beside the counts; records
the target refused (``refused``: their keys, per store) are left out of the source side.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Dict, List, Optional

import numpy as np
import orjson

from ..provider import NULL_VALUED_FIELDS, BackendSession, Record, StoreInfo

MOD = 2**256
EXAMPLE_LIMIT = 5
# Finding example keys keeps one hash per source key in memory; beyond this, only counts are reported.
EXAMPLE_SCAN_MAX = 500_000


def canonical(record: Record, lossy: Dict[str, str]) -> bytes:
    payload = record.payload
    if lossy:
        drop_nulls = NULL_VALUED_FIELDS in lossy
        payload = {k: v for k, v in payload.items() if k not in lossy and not (drop_nulls and v is None)}
    parts = [record.key.encode("utf-8"), b"\0", orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), b"\0"]
    if record.vector is not None:
        parts.append(np.asarray(record.vector, dtype=np.float32).tobytes())
    return b"".join(parts)


def record_hash(record: Record, lossy: Dict[str, str]) -> int:
    return int.from_bytes(hashlib.sha256(canonical(record, lossy)).digest(), "big")


@dataclass
class StoreVerification:
    store: str
    source_count: int = 0  # good records read from the source
    target_count: int = 0
    rejected: int = 0  # rejected while copying (not expected in the target)
    source_digest: str = ""
    target_digest: str = ""
    lossy_fields: List[str] = field(default_factory=list)
    examples: List[str] = field(default_factory=list)  # keys that differ (a few)

    @property
    def ok(self) -> bool:
        return self.source_count == self.target_count and self.source_digest == self.target_digest

    def to_dict(self) -> dict:
        return {
            "store": self.store,
            "ok": self.ok,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "rejected": self.rejected,
            "source_digest": self.source_digest,
            "target_digest": self.target_digest,
            "lossy_fields": self.lossy_fields,
            "examples": self.examples,
        }


async def _digest(session: BackendSession, store: StoreInfo, lossy: Dict[str, str], batch_size: int,
                  skip: AbstractSet[str] = frozenset()) -> tuple:
    total = 0
    count = 0
    async for batch in session.read(store, None, batch_size):
        for record in batch.records:
            if record.key in skip:
                continue
            total = (total + record_hash(record, lossy)) % MOD
            count += 1
    return count, f"{total:064x}"


async def _examples(
    source: BackendSession, target: BackendSession, store: StoreInfo, lossy: Dict[str, str], batch_size: int,
    skip: AbstractSet[str] = frozenset(),
) -> List[str]:
    """A few keys missing, extra or different; costs one more pass over each side."""
    expected: Dict[str, int] = {}
    async for batch in source.read(store, None, batch_size):
        for record in batch.records:
            if record.key in skip:
                continue
            expected[record.key] = record_hash(record, lossy)
            if len(expected) > EXAMPLE_SCAN_MAX:
                return []
    examples: List[str] = []
    async for batch in target.read(store, None, batch_size):
        for record in batch.records:
            want = expected.pop(record.key, None)
            if want is None:
                examples.append(f"{record.key} (extra in target)")
            elif want != record_hash(record, lossy):
                examples.append(f"{record.key} (content differs)")
            if len(examples) >= EXAMPLE_LIMIT:
                return examples
    for key in expected:
        examples.append(f"{key} (missing in target)")
        if len(examples) >= EXAMPLE_LIMIT:
            break
    return examples


async def verify_store(
    source: BackendSession,
    target: BackendSession,
    store: StoreInfo,
    *,
    rejected: int = 0,
    batch_size: int = 1000,
    refused: AbstractSet[str] = frozenset(),
) -> StoreVerification:
    """``refused``: keys of this store the target refused (not expected there)."""
    lossy = target.lossy_fields(store)
    result = StoreVerification(store=store.name, rejected=rejected, lossy_fields=sorted(lossy))
    result.source_count, result.source_digest = await _digest(source, store, lossy, batch_size, refused)
    result.target_count, result.target_digest = await _digest(target, store, lossy, batch_size)
    if not result.ok:
        result.examples = await _examples(source, target, store, lossy, batch_size, refused)
    return result


async def verify(
    source: BackendSession,
    target: BackendSession,
    stores: List[StoreInfo],
    *,
    rejected: Optional[Dict[str, int]] = None,
    batch_size: int = 1000,
    on_store: Optional[Callable[[StoreVerification], None]] = None,
    refused: Optional[Dict[str, AbstractSet[str]]] = None,
) -> Dict[str, object]:
    """Verify every store; returns the ``job.verification`` mapping. ``refused``: store -> keys the
    target refused while copying."""
    rejected = rejected or {}
    refused = refused or {}
    results = []
    for store in stores:
        result = await verify_store(source, target, store, rejected=rejected.get(store.name, 0), batch_size=batch_size,
                                    refused=refused.get(store.name, frozenset()))
        results.append(result)
        if on_store is not None:
            on_store(result)
    return {
        "ok": all(r.ok for r in results),
        "stores": {r.store: r.to_dict() for r in results},
        "failed_stores": [r.store for r in results if not r.ok],
    }
