"""Streaming reader of LightRAG KV files (``kv_store_*.json``), normalising old layouts.

Each file is one JSON object ``{key: record}``. It is parsed with ijson
(yajl2_c), one top-level entry at a time, so memory is bounded by the largest
record, never by the file. Records are yielded in file order; the cursor is the
index of the record in that order (after normalisation), so resuming skips
exactly the records already copied.

Normalisations (old layout -> LightRAG 1.5.7 layout), each tested in
tests/test_json_reader.py:

=====================================  ==================================================================
found on disk                          yielded
=====================================  ==================================================================
UTF-8 byte-order mark at file start    skipped (LightRAG reads with ``utf-8-sig``); a BOM inside a string
                                       (document text) is data and is kept
empty or blank file                    no records, as LightRAG's ``load_json`` (noted as ``empty_file``)
``_id`` field in a record              dropped from the payload: it is LightRAG's copy of the key, which it
                                       re-stamps from the key on every read and write (some mid-2025
                                       files hold a truncated copy)
LLM cache nested by mode               flattened exactly as 1.5.7's ``_migrate_legacy_cache_structure``:
``{mode: {hash: entry}}``              key ``{mode}:{entry.cache_type or "extract"}:{hash}``, entry
                                       unchanged; only for ``*_cache`` namespaces whose first key is not
                                       already ``a:b:c`` and only for top-level values whose values are
                                       all objects with a ``return`` field
oldest LLM cache                       kept as is (key = hash, payload ``{return, model}``): 1.5.7's
``{hash: {return, model}}``            migration leaves these entries untouched, so does this reader;
                                       they are counted in ``notes`` as ``legacy_unkeyed_cache``
empty mode object ``{mode: {}}``       kept as key ``mode`` with payload ``{}`` (1.5.7 would drop it
                                       silently; nothing is dropped here)
cache entries with ``embedding``,      kept unchanged (1.5.7 loads and ignores them); counted in
``embedding_shape/min/max`` fields     ``notes`` as ``cache_embedding_fields``
doc_status with embedded ``content``   kept in the payload; a target that cannot hold it reports it
                                       through ``lossy_fields``
a record that is not a JSON object     RejectedRecord naming file, key and byte offset
a key written twice (or more)          the last value only, as ``json.load`` reads it; the earlier
                                       entries are not records (counted in ``notes`` as
                                       ``duplicate_keys_superseded`` and in the migration plan)
``NaN``, ``Infinity``, integers        read as ``json.load`` reads them, through the exact path
beyond 64 bits, lone surrogates        (``exact.py``); NaN / Infinity as ``exact.NonFinite``; a key or
(``"\\ud800"``)                        value is never rewritten
a file that is not a JSON object       SourceError (never read as zero records)
truncated or malformed file            SourceError naming file and byte offset, after the good records
=====================================  ==================================================================

Fast path and exact path: records are parsed by ijson's C backend unless the file's structure scan
(``kvscan``) found ``\\udXXX`` escapes, which that backend silently rewrites. When the C backend stops
on something Python's json accepts (NaN, a huge integer...), the file is read again from its start by
the exact path, which skips the records already yielded; a file that the exact path cannot read either
is a SourceError with the true byte offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Set, Tuple, Union

import ijson
from ijson.common import ObjectBuilder

from hybridrag_backends.errors import SourceError

from .exact import ExactError, ExactWalker
from .kvscan import READ_SIZE, KVScan, _ijson, cached_scan
from .scan import RegionReader, bom_len

FAST_PATH_ERRORS = (ijson.JSONError, UnicodeDecodeError)
CACHE_EMBEDDING_FIELDS = ("embedding", "embedding_shape", "embedding_min", "embedding_max")


@dataclass
class Rejected:
    reason: str
    offset: int
    exact: bool = False  # ``offset`` is the record's own byte offset (else: how far parsing had got)


@dataclass
class KVNotes:
    """What normalisation did to a file (reported, so nothing changes silently)."""

    flattened_cache_entries: int = 0
    legacy_unkeyed_cache: int = 0
    cache_embedding_fields: int = 0
    dropped_id_fields: int = 0
    duplicate_keys_superseded: int = 0
    exact_path: bool = False
    bom: bool = False
    extra: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


Item = Tuple[int, str, Union[Dict[str, Any], Rejected], Optional[int]]  # (index, key, value, exact byte offset)


def exact_source_error(path: Path, exc: ExactError, after: str, fix: str) -> SourceError:
    """A one-line SourceError for JSON not even Python's json reads: file, true byte offset, the last
    good record, the fix."""
    end = " (end of file)" if exc.offset >= path.stat().st_size else ""
    return SourceError(
        f"{path}: invalid JSON at byte {exc.offset}{end}, {after}: {exc}; the file is truncated or corrupt - {fix} and retry"
    )


def is_cache_namespace(namespace: str) -> bool:
    # LightRAG runs its legacy-cache migration on every namespace ending in "_cache"
    return namespace.endswith("_cache")


def _is_flat_cache_key(key: str) -> bool:
    return ":" in key and len(key.split(":")) == 3


class KVFile:
    """One ``kv_store_<namespace>.json`` file."""

    FIX = "restore it from a backup (or re-run LightRAG's indexing)"

    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self.notes = KVNotes()
        self._legacy: Optional[Set[int]] = None  # indexes of top-level entries that are mode dicts
        self._flat_count: Optional[int] = None

    # -- structure -------------------------------------------------------------

    def _open(self):
        f = open(self.path, "rb")
        start = bom_len(self.path)
        self.notes.bom = bool(start)
        return f, RegionReader(f, start, None)

    def shape(self) -> str:
        """"empty" (no bytes but whitespace: LightRAG reads it as no records), or "object".

        Anything else (a JSON array, a number...) is not a KV file: SourceError, never zero records."""
        start = bom_len(self.path)
        with open(self.path, "rb") as f:
            f.seek(start)
            while True:
                block = f.read(64 * 1024)
                if not block:
                    return "empty"
                stripped = block.lstrip()
                if stripped:
                    break
        if stripped[:1] != b"{":
            raise SourceError(
                f"{self.path}: not a LightRAG KV file (it holds a JSON {'array' if stripped[:1] == b'[' else 'value'}, "
                f"not an object of records at byte {start}); move it out of the working dir or restore it from a backup"
            )
        return "object"

    def scan(self, complete: bool = True) -> KVScan:
        """Entries, duplicate keys, non-object records (see kvscan). ``complete``: SourceError (with the
        true byte offset) for a file not even Python's json reads; else the structure up to the damage,
        which the reader still copies before it stops there."""
        if self.shape() == "empty":
            return KVScan(method="empty file (LightRAG reads it as no records)")
        scan = cached_scan(self.path)
        if complete and scan.error is not None:
            after = f"after {scan.entries} records"
            raise exact_source_error(self.path, scan.error, after, self.FIX)
        return scan

    def record_count(self) -> int:
        """Records as the reader yields them: LightRAG's count (last of duplicated keys), after an old
        nested cache is flattened."""
        flat = self.flattened_count()
        return flat if flat is not None else self.scan().records

    def legacy_modes(self) -> Set[int]:
        """Indexes of top-level entries to flatten (empty unless this is an old nested cache)."""
        if self._legacy is None:
            self._legacy = set()
            if is_cache_namespace(self.namespace) and self.shape() == "object":
                self._scan_cache()
        return self._legacy

    def _scan_cache(self) -> None:
        """Decide, like LightRAG, which top-level values are mode dicts of cache entries, and count the
        flattened records (superseded duplicates left out). One streaming pass over ijson events, no
        objects built; the exact path when ijson cannot read the file."""
        superseded = self.scan(complete=False).superseded
        if self.scan(complete=False).escapes:
            self._scan_cache_exact(superseded)
            return
        f, reader = self._open()
        legacy: Set[int] = set()
        total = 0
        with f:
            events = _ijson.basic_parse(reader, buf_size=READ_SIZE)
            depth = 0
            index = -1
            first = True
            candidate = False
            inner = 0
            entry_has_return = False
            try:
                for event, value in events:
                    if event == "map_key":
                        if depth == 1:
                            index += 1
                            if first:
                                first = False
                                if _is_flat_cache_key(value):
                                    self._legacy, self._flat_count = set(), None
                                    return
                            candidate, inner = True, 0
                        elif depth == 2 and candidate:
                            inner += 1
                        elif depth == 3 and candidate and value == "return":
                            entry_has_return = True
                        continue
                    if event in ("start_map", "start_array"):
                        if depth == 1 and event == "start_array":
                            candidate = False
                        elif depth == 2 and candidate:
                            if event == "start_array":
                                candidate = False
                            entry_has_return = False
                        depth += 1
                        continue
                    if event in ("end_map", "end_array"):
                        depth -= 1
                        if depth == 2 and candidate and not entry_has_return:
                            candidate = False
                        if depth == 1 and index not in superseded:
                            if candidate and inner:
                                legacy.add(index)
                                total += inner
                            else:
                                total += 1
                        continue
                    # a scalar
                    if depth == 1:
                        if index not in superseded:
                            total += 1  # scalar top-level value: not a mode dict (rejected later)
                    elif depth == 2 and candidate:
                        candidate = False  # a scalar inside: not a mode dict
            except FAST_PATH_ERRORS:
                self._scan_cache_exact(superseded)
                return
        self._legacy = legacy
        self._flat_count = total

    def _scan_cache_exact(self, superseded: Set[int]) -> None:
        legacy: Set[int] = set()
        total = 0
        try:
            with ExactWalker(self.path, bom_len(self.path)) as walker:
                for index, (key, _) in enumerate(walker.members()):
                    value = walker.value()
                    if index == 0 and _is_flat_cache_key(key):
                        self._legacy, self._flat_count = set(), None
                        return
                    if index in superseded:
                        continue
                    if _is_mode_dict(value):
                        legacy.add(index)
                        total += len(value)
                    else:
                        total += 1
        except ExactError as exc:
            raise exact_source_error(self.path, exc, "scanning the LLM cache layout", self.FIX) from None
        self._legacy = legacy
        self._flat_count = total

    def flattened_count(self) -> Optional[int]:
        """Record count after normalisation, when it differs from the top-level key count."""
        self.legacy_modes()
        return self._flat_count if self._legacy else None

    # -- records ---------------------------------------------------------------

    def items(self, after: Optional[int] = None) -> Iterator[Item]:
        """(index, key, payload or Rejected, byte offset or None), in file order, skipping indexes <=
        ``after``; the offset is the record's own (exact path) or None (fast path: ijson gives none)."""
        self.notes = KVNotes()
        if self.shape() == "empty":
            self.notes.extra["empty_file"] = 1
            return
        scan = self.scan(complete=False)  # a damaged file is copied up to the damage, then stops there
        legacy = self.legacy_modes()
        self.notes.duplicate_keys_superseded = len(scan.superseded)
        done = -1 if after is None else after  # the last index already handed out (or skipped)
        if not scan.escapes:
            f, reader = self._open()
            with f:
                try:
                    for index, (key, value, flat, top) in enumerate(self._fast_entries(reader, legacy, scan)):
                        if index <= done:
                            continue
                        done = index
                        # a non-object record's own offset is known from the scan
                        known = None if flat or isinstance(value, dict) else scan.not_objects.get(top, (0, None))[1]
                        offset = reader.consumed if known is None else known
                        yield index, key, self._normalise(key, value, offset, flat, known), None
                    return
                except FAST_PATH_ERRORS:
                    pass  # read on, exactly, from the record it stopped in
        self.notes.exact_path = True
        last_key = None
        index = -1
        try:
            for index, (key, value, flat, offset) in enumerate(self._exact_entries(legacy, scan)):
                last_key = key
                if index <= done:
                    continue
                yield index, key, self._normalise(key, value, offset, flat, offset), offset
        except ExactError as exc:
            after_txt = f"after key {last_key!r} (record #{index})" if last_key is not None else "before the first record"
            raise exact_source_error(self.path, exc, after_txt, self.FIX) from None

    def _fast_entries(self, reader: RegionReader, legacy: Set[int], scan: KVScan) -> Iterator[Tuple[str, Any, bool, int]]:
        """(key, value, flattened?, top-level index) through ijson's C backend, superseded duplicates
        left out."""
        if not legacy:
            skip = scan.superseded
            for top, (key, value) in enumerate(_ijson.kvitems(reader, "", use_float=True, buf_size=READ_SIZE)):
                if top not in skip:
                    yield key, value, False, top
            return
        events = _ijson.basic_parse(reader, use_float=True, buf_size=READ_SIZE)
        event, _ = next(events)
        if event != "start_map":
            raise ijson.JSONError("the file is not a JSON object")
        top = -1
        for event, value in events:
            if event == "end_map":
                return
            key = value  # map_key at depth 1
            top += 1
            if top in scan.superseded:
                _build(events)
                continue
            if top in legacy:
                next(events)  # start_map of the mode dict
                for ev, cache_hash in events:
                    if ev == "end_map":
                        break
                    entry = _build(events)
                    yield f"{key}:{entry.get('cache_type', 'extract')}:{cache_hash}", entry, True, top
            else:
                yield key, _build(events), False, top

    def _exact_entries(self, legacy: Set[int], scan: KVScan) -> Iterator[Tuple[str, Any, bool, int]]:
        """(key, value, flattened?, byte offset of the key) through Python's json, as json.load reads."""
        with ExactWalker(self.path, bom_len(self.path)) as walker:
            for top, (key, offset) in enumerate(walker.members()):
                value = walker.value()
                if top in scan.superseded:
                    continue
                if top in legacy:
                    for cache_hash, entry in value.items():
                        yield f"{key}:{entry.get('cache_type', 'extract')}:{cache_hash}", entry, True, offset
                else:
                    yield key, value, False, offset
            walker.end()

    def _normalise(self, key: str, value: Any, offset: int, flat: bool, exact: Optional[int]) -> Union[Dict[str, Any], Rejected]:
        if flat:
            self.notes.flattened_cache_entries += 1
        if not isinstance(value, dict):
            return Rejected(f"record is not a JSON object (found {type(value).__name__})", offset, exact is not None)
        if "_id" in value:
            del value["_id"]
            self.notes.dropped_id_fields += 1
        if is_cache_namespace(self.namespace):
            if any(f in value for f in CACHE_EMBEDDING_FIELDS):
                self.notes.cache_embedding_fields += 1
            if not _is_flat_cache_key(key) and set(value) <= {"return", "model"} and "return" in value:
                self.notes.legacy_unkeyed_cache += 1
        return value


def _is_mode_dict(value: Any) -> bool:
    """LightRAG 1.5.7's test for an old cache's ``{mode: {hash: entry}}`` value."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, dict) and "return" in v for v in value.values())
    )


def _build(events: Iterator[Tuple[str, Any]]) -> Any:
    """Build the next complete value from a basic_parse event stream."""
    builder = ObjectBuilder()
    depth = 0
    for event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        if depth == 0:
            return builder.value
    raise ijson.IncompleteJSONError("premature EOF")
