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
a file that is not a JSON object       SourceError (never read as zero records)
truncated or malformed file            SourceError naming file and byte offset, after the good records
=====================================  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Set, Tuple, Union

import ijson
from ijson.common import ObjectBuilder

from hybridrag_backends.errors import SourceError

from .scan import RegionReader, bom_len

try:  # the C backend is ~10x faster; fall back to whatever ijson picked
    from ijson.backends import yajl2_c as _ijson
except ImportError:  # pragma: no cover - depends on the wheel
    _ijson = ijson

READ_SIZE = 256 * 1024  # ijson read size: small enough that "near byte N" is precise
CACHE_EMBEDDING_FIELDS = ("embedding", "embedding_shape", "embedding_min", "embedding_max")


@dataclass
class Rejected:
    reason: str
    offset: int


@dataclass
class KVNotes:
    """What normalisation did to a file (reported, so nothing changes silently)."""

    flattened_cache_entries: int = 0
    legacy_unkeyed_cache: int = 0
    cache_embedding_fields: int = 0
    dropped_id_fields: int = 0
    bom: bool = False
    extra: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


Item = Tuple[int, str, Union[Dict[str, Any], Rejected]]


def json_source_error(path: Path, exc: Exception, reader: RegionReader, after: str, fix: str) -> SourceError:
    """A one-line SourceError for an ijson failure: file, exact byte offset, the last good record, the fix.

    ijson reports no position, so the region is parsed again (events only) with one-byte reads
    from a buffer before where the first parse stopped: the read that fails holds the bad byte.
    """
    msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    size = path.stat().st_size
    if "premature EOF" in msg:  # a small file is consumed whole by one read: that alone says nothing
        where = f"at byte {size} (end of file)"
    else:
        where = f"near byte {reader.consumed}"
        with open(path, "rb") as f:
            again = RegionReader(f, reader.start, reader.end, reader.suffix, slow_from=max(reader.start, reader.consumed - 2 * READ_SIZE))
            try:
                for _ in _ijson.basic_parse(again, buf_size=READ_SIZE):
                    pass
            except ijson.JSONError:
                where = f"at byte {again.consumed - 1}"
    return SourceError(f"{path}: invalid JSON {where}, {after}: {msg}; the file is truncated or corrupt - {fix} and retry")


def is_cache_namespace(namespace: str) -> bool:
    # LightRAG runs its legacy-cache migration on every namespace ending in "_cache"
    return namespace.endswith("_cache")


def _is_flat_cache_key(key: str) -> bool:
    return ":" in key and len(key.split(":")) == 3


class KVFile:
    """One ``kv_store_<namespace>.json`` file."""

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

    def _error(self, exc: Exception, reader: RegionReader, after: str) -> SourceError:
        return json_source_error(self.path, exc, reader, after, "restore it from a backup (or re-run LightRAG's indexing)")

    def legacy_modes(self) -> Set[int]:
        """Indexes of top-level entries to flatten (empty unless this is an old nested cache)."""
        if self._legacy is None:
            self._legacy = set()
            if is_cache_namespace(self.namespace) and self.shape() == "object":
                self._scan_cache()
        return self._legacy

    def _scan_cache(self) -> None:
        """One streaming pass over events (no objects built) deciding, like LightRAG, which
        top-level values are mode dicts of cache entries, and counting the flattened records."""
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
                        if depth == 1:
                            if candidate and inner:
                                legacy.add(index)
                                total += inner
                            else:
                                total += 1
                        continue
                    # a scalar
                    if depth == 1:
                        total += 1  # scalar top-level value: not a mode dict (rejected later)
                    elif depth == 2 and candidate:
                        candidate = False  # a scalar inside: not a mode dict
            except ijson.JSONError as exc:
                raise self._error(exc, reader, f"after top-level entry #{index}") from None
        self._legacy = legacy
        self._flat_count = total

    def flattened_count(self) -> Optional[int]:
        """Record count after normalisation, when it differs from the top-level key count."""
        self.legacy_modes()
        return self._flat_count if self._legacy else None

    # -- records ---------------------------------------------------------------

    def items(self, after: Optional[int] = None) -> Iterator[Item]:
        """(index, key, payload or Rejected), in file order, skipping indexes <= ``after``."""
        self.notes = KVNotes()
        if self.shape() == "empty":
            self.notes.extra["empty_file"] = 1
            return
        legacy = self.legacy_modes()
        f, reader = self._open()
        index = -1
        last_key = None
        with f:
            try:
                if legacy:
                    source = self._flattened(reader)
                else:
                    source = ((k, v, reader.consumed) for k, v in _ijson.kvitems(reader, "", use_float=True, buf_size=READ_SIZE))
                for key, value, offset in source:
                    index += 1
                    last_key = key
                    if after is not None and index <= after:
                        continue
                    yield index, key, self._normalise(key, value, offset)
            except ijson.JSONError as exc:
                after_txt = f"after key {last_key!r} (record #{index})" if last_key is not None else "before the first record"
                raise self._error(exc, reader, after_txt) from None

    def _flattened(self, reader: RegionReader) -> Iterator[Tuple[str, Any, int]]:
        """Entries of a nested cache file, mode dicts flattened (built one entry at a time)."""
        legacy = self._legacy or set()
        events = _ijson.basic_parse(reader, use_float=True, buf_size=READ_SIZE)
        event, _ = next(events)
        if event != "start_map":
            raise ijson.JSONError("the file is not a JSON object")
        index = -1
        for event, value in events:
            if event == "end_map":
                return
            key = value  # map_key at depth 1
            index += 1
            if index in legacy:
                next(events)  # start_map of the mode dict
                for ev, cache_hash in events:
                    if ev == "end_map":
                        break
                    entry = _build(events)
                    cache_type = entry.get("cache_type", "extract")
                    self.notes.flattened_cache_entries += 1
                    yield f"{key}:{cache_type}:{cache_hash}", entry, reader.consumed
            else:
                yield key, _build(events), reader.consumed

    def _normalise(self, key: str, value: Any, offset: int) -> Union[Dict[str, Any], Rejected]:
        if not isinstance(value, dict):
            return Rejected(f"record is not a JSON object (found {type(value).__name__})", offset)
        if "_id" in value:
            del value["_id"]
            self.notes.dropped_id_fields += 1
        if is_cache_namespace(self.namespace):
            if any(f in value for f in CACHE_EMBEDDING_FIELDS):
                self.notes.cache_embedding_fields += 1
            if not _is_flat_cache_key(key) and set(value) <= {"return", "model"} and "return" in value:
                self.notes.legacy_unkeyed_cache += 1
        return value


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
