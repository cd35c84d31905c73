"""Verification: per-store counts and an order-independent content digest of what LightRAG reads.

Used after every migration and by ``hybridrag-backends verify SOURCE TARGET`` at any time. Both sides
are re-read through ``read()`` (so the check covers what a reader of the target really gets), at the same
time (one store after another; within a store the two reads overlap). Each
record's canonical form is

    key + NUL + JSON(payload minus the target's lossy fields, sorted keys) + NUL + float32 vector bytes
        [+ NUL + per-record vector, for a vector store whose target keeps it]

(for a target that cannot hold null, see ``NULL_VALUED_FIELDS``, minus the null-valued fields too),
and a store's digest is the sum of ``int(sha256(canonical))`` modulo 2**256, which does not depend
on record order.

* Vectors take part as float32 bytes, so equal digests mean vectors equal as float32.
* The per-record vector (NanoVectorDB's ``vector`` field, base64 of zlib of float16, which LightRAG
  1.5.7's ``get_vectors_by_ids`` decodes; not a copy of the matrix row, which nano-vectordb
  normalises) takes part as the float16 bytes LightRAG decodes from it, where the target keeps it
  apart (``holds_record_vectors``: JSON). A source record without the field (an older file, or a
  source that keeps one vector) is expected in the target with the field a JSON writer regenerates
  from its float32 vector; a target record without it is a difference. Other targets (PostgreSQL,
  MongoDB) keep one float32 vector per record, return it from ``get_vectors_by_ids`` and list
  ``vector`` in their lossy fields: there ``Record.vector`` is what is checked.
* JSON is orjson's, or for a payload orjson refuses (values only Python's json reads: NaN /
  Infinity, integers beyond 64 bits, lone surrogates, see :mod:`hybridrag_backends.jsonvalues`) the
  stdlib's, so such a value is never confused with another.
* Records the target cannot hold (its :meth:`BackendSession.screen` rejects them, asked on the
  source's records, so this needs no job) and records the source reader rejects are not expected in
  the target; they are counted as ``rejected`` beside the counts. ``refused`` (store -> keys a job's
  target refused) leaves more keys out.
* A store present on one side only is compared with an empty store. A target store that cannot be
  read back is a failed store (``error`` says why), not a source error.

**The source side during the copy** (:class:`SourceDigest`): where the source's records cannot change
under the copy (its session has ``content_stamp()``: for JSON files it changes whenever a file is
written: size, mtime, ctime and inode of each file; for PostgreSQL it names the REPEATABLE READ
snapshot every read of that session sees, in which a re-read returns exactly what was read), the
migration engine hashes each record exactly as above while it copies it, before the target's writer
sees it, and keeps the running sum with the store's checkpoint (so a resumed job
continues it). Verification then reads only the target back, independently, and compares it with that
digest, unless the source's stamp changed since the job started (then, or for a store without a digest,
the source is read again as usual). ``source_from_copy`` in each store's result says which.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import orjson
import pybase64

from ..errors import ConnectionFailure, HybridRAGBackendsError, MigrationInterrupted, SourceError, TargetError
from ..jsonvalues import escape_key
from ..provider import NULL_VALUED_FIELDS, BackendSession, Record, StoreInfo, StoreKind
from ..secrets import redact

MOD = 2**256
DIGEST_SCHEME = 1  # the canonical form above; a digest kept with another scheme is not used
EXAMPLE_LIMIT = 5
# Finding example keys keeps one hash per source key in memory; beyond this, only counts are reported.
EXAMPLE_SCAN_MAX = 500_000
PER_RECORD_VECTOR = "vector"  # NanoVectorDB's per-record field (see the module docstring)
_MISSING = object()


def _dumps(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # values only Python's json holds (NaN, 2**70, "\ud800")
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
        return b"json:" + text.encode("utf-8", "surrogatepass")


def _record_vector(packed: Any, vector: Optional[np.ndarray], expected: bool) -> bytes:
    """The per-record vector as LightRAG decodes it; ``expected`` (source side): a record without
    one is compared as the field a JSON writer regenerates from its float32 vector."""
    if packed is _MISSING or packed is None:
        if expected and vector is not None:
            return b"f16:" + np.asarray(vector, dtype=np.float32).astype(np.float16).tobytes()
        return b"absent"
    if isinstance(packed, str):
        try:
            return b"f16:" + zlib.decompress(pybase64.b64decode(packed, validate=True))
        except (ValueError, binascii.Error, zlib.error):
            return b"undecodable:" + packed.encode("utf-8", "surrogatepass")
    return b"other:" + _dumps(packed)


def canonical(record: Record, lossy: Dict[str, str], *, record_vector: Optional[str] = None) -> bytes:
    """``record_vector``: None (not compared), "source" or "target" (see the module docstring)."""
    payload = record.payload
    packed: Any = _MISSING
    if record_vector is not None:
        packed = payload.get(PER_RECORD_VECTOR, _MISSING)
        payload = {k: v for k, v in payload.items() if k != PER_RECORD_VECTOR}
    if lossy:
        drop_nulls = NULL_VALUED_FIELDS in lossy
        payload = {k: v for k, v in payload.items() if k not in lossy and not (drop_nulls and v is None)}
    parts = [record.key.encode("utf-8", "surrogatepass"), b"\0", _dumps(payload), b"\0"]
    if record.vector is not None:
        parts.append(np.asarray(record.vector, dtype=np.float32).tobytes())
    if record_vector is not None:
        parts += [b"\0", _record_vector(packed, record.vector, record_vector == "source")]
    return b"".join(parts)


def record_hash(record: Record, lossy: Dict[str, str], *, record_vector: Optional[str] = None) -> int:
    return int.from_bytes(hashlib.sha256(canonical(record, lossy, record_vector=record_vector)).digest(), "big")


def comparison(target: BackendSession, store: StoreInfo) -> Tuple[Dict[str, str], bool]:
    """How ``store`` is compared when copied into ``target``: the payload fields left out of both sides,
    and whether NanoVectorDB's per-record vector is compared (see the module docstring)."""
    lossy = dict(target.lossy_fields(store))
    keeps_record_vector = store.kind is StoreKind.VECTOR and target.holds_record_vectors(store) and PER_RECORD_VECTOR not in lossy
    if store.kind is StoreKind.VECTOR and not keeps_record_vector:
        lossy.setdefault(PER_RECORD_VECTOR, "the target does not keep NanoVectorDB's per-record vector apart")
    return lossy, keeps_record_vector


def source_hasher(target: BackendSession, store: StoreInfo) -> Callable[[Record], int]:
    """The hash of one source record of ``store`` as verification computes it for ``target``."""
    lossy, keeps_record_vector = comparison(target, store)
    mode = "source" if keeps_record_vector else None
    return lambda record: record_hash(record, lossy, record_vector=mode)


@dataclass
class SourceDigest:
    """The source side of one store's digest, summed while the records are copied (the module docstring):
    ``count`` records hashed, their ``total`` (mod 2**256), ``rejected`` records not expected in the target.
    Kept with the store's checkpoint as :meth:`to_dict`; verification's read of either side gives one too."""

    count: int = 0
    total: int = 0
    rejected: int = 0

    def add(self, hashes: List[int], rejected: int) -> None:
        self.total = (self.total + sum(hashes)) % MOD
        self.count += len(hashes)
        self.rejected += rejected

    @property
    def digest(self) -> str:
        return f"{self.total:064x}"

    def to_dict(self) -> Dict[str, Any]:
        return {"scheme": DIGEST_SCHEME, "count": self.count, "digest": self.digest, "rejected": self.rejected}

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> Optional["SourceDigest"]:
        """None for a missing digest or one kept with another scheme."""
        if not isinstance(data, dict) or data.get("scheme") != DIGEST_SCHEME:
            return None
        try:
            return cls(int(data["count"]), int(data["digest"], 16), int(data["rejected"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class StoreVerification:
    store: str
    source_count: int = 0  # good records read from the source (those the target refuses left out)
    target_count: int = 0
    rejected: int = 0  # rejected by the source reader or refused by the target (not expected in the target)
    source_digest: str = ""
    target_digest: str = ""
    lossy_fields: List[str] = field(default_factory=list)
    examples: List[str] = field(default_factory=list)  # keys that differ (a few)
    error: Optional[str] = None  # the target's store could not be read back
    source_from_copy: bool = False  # the source side was digested during the copy, not read again

    @property
    def ok(self) -> bool:
        return self.error is None and self.source_count == self.target_count and self.source_digest == self.target_digest

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
            "error": self.error,
            "source_from_copy": self.source_from_copy,
        }


class _Side:
    """How one side is read for one store: present or not, which records count, how they hash."""

    def __init__(self, session: BackendSession, store: StoreInfo, lossy: Dict[str, str], *, present: bool,
                 screener: Optional[BackendSession], record_vector: Optional[str],
                 skip: AbstractSet[str] = frozenset()) -> None:
        self.session, self.store, self.lossy, self.present = session, store, lossy, present
        self.screener = screener  # the target, asked which source records it cannot hold
        self.record_vector = record_vector
        self.skip = skip  # keys known to be refused by the target (from a job's rejects)
        self.rejected = 0

    async def records(self, batch_size: int):
        if not self.present:
            return
        async for batch in self.session.read(self.store, None, batch_size):
            records = batch.records
            self.rejected += len(batch.rejected)
            if self.screener is not None and records:
                records, refused = self.screener.screen(self.store, records)
                self.rejected += len(refused)
            for record in records:
                if record.key in self.skip:
                    self.rejected += 1
                    continue
                yield record

    def hash(self, record: Record) -> int:
        return record_hash(record, self.lossy, record_vector=self.record_vector)


async def _digest(side: _Side, batch_size: int) -> SourceDigest:
    """One side read and digested (the same sum the copy keeps for a source; ``rejected`` is the side's)."""
    total = 0
    count = 0
    async for record in side.records(batch_size):
        total = (total + side.hash(record)) % MOD
        count += 1
    return SourceDigest(count, total, side.rejected)


async def _examples(source: _Side, target: _Side, batch_size: int) -> List[str]:
    """A few keys missing, extra or different; costs one more pass over each side."""
    expected: Dict[str, int] = {}
    async for record in source.records(batch_size):
        expected[record.key] = source.hash(record)
        if len(expected) > EXAMPLE_SCAN_MAX:
            return []
    examples: List[str] = []
    async for record in target.records(batch_size):
        want = expected.pop(record.key, None)
        if want is None:
            examples.append(f"{escape_key(record.key)} (extra in target)")
        elif want != target.hash(record):
            examples.append(f"{escape_key(record.key)} (content differs)")
        if len(examples) >= EXAMPLE_LIMIT:
            return examples
    for key in expected:
        examples.append(f"{escape_key(key)} (missing in target)")
        if len(examples) >= EXAMPLE_LIMIT:
            break
    return examples


def _what(exc: BaseException) -> str:
    """The "what is wrong" half of an ``error: <what>; <what to do>`` message."""
    return redact(str(exc)).split("; ", 1)[0]


def _target_read_failure(exc: Exception, store: str) -> str:
    """The store's ``error`` when its target copy cannot be read back (a failed store, verification goes
    on); raises where verification cannot go on: the server is gone, or a bug."""
    if isinstance(exc, (ConnectionFailure, MigrationInterrupted)):
        raise TargetError(
            f"the target cannot be read back to verify store {store} ({_what(exc)}); check the server, then "
            f"re-check with 'hybridrag-backends verify SOURCE TARGET'"
        ) from exc
    if isinstance(exc, HybridRAGBackendsError):
        return f"the target's copy of {store} cannot be read back: {_what(exc)}"
    raise TargetError(f"verification could not read store {store} of the target: {type(exc).__name__}: {redact(exc)}") from exc


async def _both(first: Awaitable[Any], second: Awaitable[Any]) -> Tuple[Any, Any]:
    """Run both; the first failure cancels the other and is raised (asyncio.gather would leave it running)."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return done[0], done[1]


async def verify_store(
    source: BackendSession,
    target: BackendSession,
    store: StoreInfo,
    *,
    batch_size: int = 1000,
    in_source: bool = True,
    in_target: bool = True,
    refused: AbstractSet[str] = frozenset(),
    rejected: Optional[int] = None,
    source_digest: Optional[SourceDigest] = None,
) -> StoreVerification:
    """``refused``: keys of this store a job's target refused (left out of the source side besides what
    ``screen`` says); ``rejected``: the job's count of records not expected in the target (else the
    count this pass finds); ``source_digest``: the source side as digested during the copy (then the
    source is not read, unless the target differs and example keys are looked for)."""
    lossy, keeps_record_vector = comparison(target, store)
    src = _Side(source, store, lossy, present=in_source, screener=target,
                record_vector="source" if keeps_record_vector else None, skip=refused)
    dst = _Side(target, store, lossy, present=in_target, screener=None,
                record_vector="target" if keeps_record_vector else None)
    result = StoreVerification(store=store.name, lossy_fields=sorted(lossy))

    async def source_side() -> SourceDigest:
        if source_digest is not None:
            return source_digest
        try:
            return await _digest(src, batch_size)
        except HybridRAGBackendsError:
            raise
        except Exception as exc:
            raise SourceError(f"verification could not read store {store.name} of the source: {type(exc).__name__}: {redact(exc)}") from exc

    async def target_side() -> Tuple[Optional[SourceDigest], Optional[str]]:
        try:
            return await _digest(dst, batch_size), None
        except Exception as exc:
            return None, _target_read_failure(exc, store.name)

    # The two sides are read at the same time: each is mostly waiting on its own backend (a server, or the
    # JSON parser in a worker thread), so the pass costs about the slower side instead of their sum.
    source_read, target_read = await _both(source_side(), target_side())
    result.source_count, result.source_digest = source_read.count, source_read.digest
    result.source_from_copy = source_digest is not None
    result.rejected = source_read.rejected if rejected is None else rejected
    (digest, result.error) = target_read
    if digest is not None:
        result.target_count, result.target_digest = digest.count, digest.digest
    if result.error is None and not result.ok:
        try:
            result.examples = await _examples(
                _Side(source, store, lossy, present=in_source, screener=target, record_vector=src.record_vector,
                      skip=refused), dst, batch_size)
        except Exception as exc:
            result.error = _target_read_failure(exc, store.name)
    return result


async def verify(
    source: BackendSession,
    target: BackendSession,
    stores: List[StoreInfo],
    *,
    batch_size: int = 1000,
    on_store: Optional[Callable[[StoreVerification], None]] = None,
    missing_in_source: AbstractSet[str] = frozenset(),
    missing_in_target: AbstractSet[str] = frozenset(),
    refused: Optional[Dict[str, AbstractSet[str]]] = None,
    rejected: Optional[Dict[str, int]] = None,
    source_digests: Optional[Dict[str, SourceDigest]] = None,
) -> Dict[str, object]:
    """Verify every store; returns the ``job.verification`` mapping. A store named in
    ``missing_in_source`` / ``missing_in_target`` is not read on that side (compared as empty);
    ``refused`` / ``rejected`` / ``source_digests``: per store, as :func:`verify_store` takes them
    (from a job)."""
    refused = refused or {}
    rejected = rejected or {}
    source_digests = source_digests or {}
    results = []
    for store in stores:
        result = await verify_store(
            source, target, store, batch_size=batch_size,
            in_source=store.name not in missing_in_source, in_target=store.name not in missing_in_target,
            refused=refused.get(store.name, frozenset()), rejected=rejected.get(store.name),
            source_digest=source_digests.get(store.name),
        )
        results.append(result)
        if on_store is not None:
            on_store(result)
    return {
        "ok": all(r.ok for r in results),
        "stores": {r.store: r.to_dict() for r in results},
        "failed_stores": [r.store for r in results if not r.ok],
    }


async def stores_of_both(source: BackendSession, target: BackendSession) -> Tuple[List[StoreInfo], Set[str], Set[str]]:
    """Every store of either side (the source's description where both have it), sorted, with the
    names missing in the source and in the target."""
    try:
        theirs = {s.name: s for s in await source.list_stores()}
    except HybridRAGBackendsError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot list the stores of the source: {type(exc).__name__}: {redact(exc)}") from exc
    try:
        ours = {s.name: s for s in await target.list_stores()}
    except HybridRAGBackendsError as exc:
        raise TargetError(f"cannot list the stores of the target: {_what(exc)}") from exc
    except Exception as exc:
        raise TargetError(f"cannot list the stores of the target: {type(exc).__name__}: {redact(exc)}") from exc
    merged = {**ours, **theirs}
    stores = sorted(merged.values(), key=StoreInfo.sort_key)
    return stores, set(merged) - set(theirs), set(merged) - set(ours)
