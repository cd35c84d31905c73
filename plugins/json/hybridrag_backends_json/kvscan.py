"""One pass over a KV file's structure: records, duplicate keys, non-object records, JSON-only values.

LightRAG reads a KV file with ``json.load``: a key written twice keeps its *last* value, and the
file holds as many records as distinct keys. :func:`scan_kv` finds, without building the records:

* ``entries``: top-level entries as written; ``superseded``: the indexes of entries hidden by a later
  entry with the same key (``entries - len(superseded)`` is LightRAG's record count);
* ``not_objects``: entries whose value is not a JSON object (the reader rejects them), with their
  key and byte offset;
* ``escapes``: the file holds ``\\ud800``-``\\udfff`` escapes, which ijson's C backend silently turns
  into ``?``: the reader then takes the exact path (``exact.py``).

``region_flags`` says the same ``escapes`` for any part of a file and, for ``status`` / ``validate``,
``candidates``: bytes that may be a value only Python's json accepts (``NaN`` / ``Infinity`` after
``:``, ``[`` or ``,``, or a surrogate escape), confirmed by parsing the file exactly. Integers beyond
64 bits are not looked for (finding runs of 19+ digits costs more than the whole scan); the reader
finds them (ijson's C backend stops on them) and the targets that cannot hold them reject those
records by name.

Fast path (a file as ``json.dump(indent=2)`` writes it, which is how LightRAG writes): a raw newline
is only ever JSON white space and top-level keys are exactly the lines starting with two spaces and a
quote, so one regex pass (in C, ``findall``) over 8 MB blocks finds every key and the first byte of its
value. Keys are
compared by hash (8 bytes each in memory); keys whose hashes collide are compared for real in a
second pass, which only runs when there is a collision. Other files are scanned by streaming ijson
events, or by the exact walker when ijson cannot read them.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import ijson
import numpy as np

from .exact import ExactError, ExactWalker
from .scan import CHUNK, RegionReader, bom_len, head, tail_bytes

try:  # the C backend is ~10x faster; fall back to whatever ijson picked
    from ijson.backends import yajl2_c as _ijson
except ImportError:  # pragma: no cover - depends on the wheel
    _ijson = ijson

READ_SIZE = 256 * 1024
KV_HEAD = b'{\n  "'
# a top-level key line of an indent=2 file (no raw newline can sit inside a JSON string) and its value's first byte;
# the key's text as runs of plain bytes between escapes ("unrolled"): the same matches as (?:[^"\\\n]|\\.)*,
# 2.5x faster in re (measured), which status' time on KV files is mostly
_TOP_KEY = re.compile(rb'\n  "([^"\\\n]*(?:\\.[^"\\\n]*)*)": (.)')
_SURROGATE_HIGH_DIGIT = b"89abcdefABCDEF"  # \\ud800-\\udfff: "d", then one of these
_JSON_WS = b" \t\r\n"
_OVERLAP = 64  # bytes carried between blocks so a pattern cut by a block boundary is still seen
NOT_OBJECT_KEEP = 10_000  # exact offsets kept for this many non-object records (more: counted only)


@dataclass
class KVScan:
    entries: int = 0
    superseded: Set[int] = field(default_factory=set)
    duplicate_keys: int = 0  # distinct keys written more than once
    not_objects: Dict[int, Tuple[str, int, str]] = field(default_factory=dict)  # index -> (key, offset, type)
    not_object_count: int = 0
    escapes: bool = False
    candidates: bool = False  # NaN / Infinity / surrogate escapes may be there (see region_flags)
    method: str = ""
    error: Optional[ExactError] = None  # not even Python's json reads the file: the scan stops there


    @property
    def records(self) -> int:
        """Records as LightRAG reads them (before an old nested cache is flattened)."""
        return self.entries - len(self.superseded)


def has_surrogate_escape(data: bytes) -> bool:
    """``data`` holds a ``\\udXXX`` escape of a surrogate (paired or not; an escaped backslash followed
    by ``u`` is text, not an escape)."""
    i = data.find(b"\\u")
    while i >= 0:
        if i + 4 <= len(data) and data[i + 2] in b"dD" and data[i + 3] in _SURROGATE_HIGH_DIGIT:
            j = i
            while j > 0 and data[j - 1] == 0x5C:  # backslashes before it: an even number means a real escape
                j -= 1
            if (i - j) % 2 == 0:
                return True
        i = data.find(b"\\u", i + 2)
    return False


def _after_separator(data: bytes, i: int) -> bool:
    """``data[i]`` starts a value: after ``:``, ``[`` or ``,`` (white space and a minus sign aside)."""
    if i > 0 and data[i - 1 : i] == b"-":
        i -= 1
    i -= 1
    while i >= 0 and data[i] in _JSON_WS:
        i -= 1
    return i >= 0 and data[i : i + 1] in (b":", b"[", b",")


def _non_finite(data: bytes) -> bool:
    for word in (b"NaN", b"Infinity"):
        i = data.find(word)
        while i >= 0:
            if _after_separator(data, i):
                return True
            i = data.find(word, i + 1)
    return False


def may_hold_json_only(data: bytes) -> bool:
    """Bytes that may hold NaN / Infinity or an escaped lone surrogate: values only Python's json
    reads. False means surely none; True is confirmed by parsing (the same words in a text, or a
    valid surrogate pair, also say True)."""
    return has_surrogate_escape(data) or _non_finite(data)


class _Flags:
    """``escapes`` / ``candidates`` over consecutive blocks; a pattern cut by a block boundary is
    seen in the small seam around it (no block is copied). ``candidates`` only when asked: looking
    for NaN / Infinity costs two more passes, which reading never needs (ijson stops on them)."""

    def __init__(self, candidates: bool = True) -> None:
        self.escapes = False
        self.candidates = False
        self._want_candidates = candidates
        self._tail = b""

    def feed(self, data: bytes) -> None:
        for part in (self._tail + data[:_OVERLAP], data):
            if not self.escapes and has_surrogate_escape(part):
                self.escapes = self.candidates = True
            if self._want_candidates and not self.candidates and _non_finite(part):
                self.candidates = True
        self._tail = data[-_OVERLAP:]


def region_flags(path: Path, start: int = 0, end: Optional[int] = None, *, candidates: bool = True) -> Tuple[bool, bool]:
    """(escapes, candidates) for ``path[start:end]`` (see the module docstring), once per file version;
    ``candidates=False``: only escapes are looked for (candidates then says False)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, start, end, candidates)
    if key not in _FLAGS:
        if len(_FLAGS) > 256:
            _FLAGS.clear()
        flags = _Flags(candidates)
        with open(path, "rb") as f:
            f.seek(start)
            pos = start
            while end is None or pos < end:
                data = f.read(CHUNK if end is None else min(CHUNK, end - pos))
                if not data:
                    break
                flags.feed(data)
                pos += len(data)
                if flags.escapes:
                    break
        _FLAGS[key] = (flags.escapes, flags.candidates)
    return _FLAGS[key]


_FLAGS: Dict[Tuple[str, int, int, int, Optional[int], bool], Tuple[bool, bool]] = {}


def _key_text(raw: bytes) -> str:
    if b"\\" in raw:
        return json.loads(b'"' + raw + b'"')  # escapes, lone surrogates included, as json.load reads them
    return raw.decode("utf-8", "surrogateescape")


def is_indent2(path: Path) -> bool:
    start = bom_len(path)
    return head(path, 64 * 1024)[start:].startswith(KV_HEAD) and tail_bytes(path, 16).rstrip().endswith(b"}")


def _key_regions(path: Path, start: int, flags: Optional[_Flags] = None) -> Iterator[Tuple[bytes, int, int, int]]:
    """(buffer, from, to, file offset of buffer[0]): regions of an indent=2 file in which every
    top-level key line starts and ends; ``flags`` is fed every block on the way. A key line never holds
    a raw newline, so each block is searched up to its last newline and the unfinished line is carried
    into the next (no copy of the block itself)."""
    with open(path, "rb") as f:
        f.seek(start)
        base = start  # file offset of data[0]
        carry = b""  # the unfinished last line of the previous block (starts with its newline)
        while True:
            data = f.read(CHUNK)
            if flags is not None and data:
                flags.feed(data)
            if not data:  # the last line
                yield carry, 0, len(carry), base - len(carry)
                return
            first_nl = data.find(b"\n")
            if first_nl < 0:  # one line longer than a block
                carry += data
                base += len(data)
                continue
            last_nl = data.rfind(b"\n")
            seam = carry + data[:first_nl]
            yield seam, 0, len(seam), base - len(carry)
            yield data, first_nl, last_nl, base
            carry = data[last_nl:]
            base += len(data)


def _top_keys(path: Path, start: int) -> Iterator[Tuple[int, bytes, int, bytes]]:
    """(index, raw key, byte offset of the key's quote, first byte of the value) of an indent=2 file."""
    index = -1
    for buf, lo, hi, base in _key_regions(path, start):
        for m in _TOP_KEY.finditer(buf, lo, hi):
            index += 1
            yield index, m.group(1), base + m.start(1) - 1, m.group(2)


def _fast(path: Path) -> KVScan:
    """One pass: the regex runs in C over each block (findall); Python only touches the rare keys with
    escapes and, in a block that has one, the records that are not objects."""
    start = bom_len(path)
    scan = KVScan(method="fast: top-level keys of an indent=2 file")
    flags = _Flags()  # in the same pass: status needs candidates, reading only escapes
    hashes = array("q")
    for buf, lo, hi, base in _key_regions(path, start, flags):
        pairs = _TOP_KEY.findall(buf, lo, hi)
        if not pairs:
            continue
        first_index = len(hashes)
        keys = list(map(itemgetter(0), pairs))
        hashes.extend(map(hash, keys))  # a key is hashed as its UTF-8 bytes...
        for i in [i for i, k in enumerate(keys) if b"\\" in k]:  # ...also when it was written with escapes
            hashes[first_index + i] = hash(_key_text(keys[i]).encode("utf-8", "surrogatepass"))
        firsts = b"".join(map(itemgetter(1), pairs))
        if firsts.count(b"{") != len(firsts):
            for i, m in enumerate(_TOP_KEY.finditer(buf, lo, hi)):
                if m.group(2) != b"{":
                    scan.not_object_count += 1
                    if len(scan.not_objects) < NOT_OBJECT_KEEP:
                        offset = base + m.start(1) - 1
                        scan.not_objects[first_index + i] = (_key_text(m.group(1)), offset, _json_type(m.group(2)))
    scan.entries = len(hashes)
    scan.escapes, scan.candidates = flags.escapes, flags.candidates
    if scan.entries > 1:
        values = np.frombuffer(hashes, dtype=np.int64)
        ordered = np.sort(values)
        colliding = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        if colliding:  # rare: compare the real keys of colliding hashes only
            seen: Dict[str, List[int]] = {}
            for index, raw, _, _ in _top_keys(path, start):
                if hashes[index] in colliding:
                    seen.setdefault(_key_text(raw), []).append(index)
            _mark_superseded(scan, seen)
    return scan


def _json_type(first: bytes) -> str:
    return {b'"': "str", b"[": "list", b"t": "bool", b"f": "bool", b"n": "NoneType"}.get(first, "number")


def _mark_superseded(scan: KVScan, positions: Dict[str, List[int]]) -> None:
    for indexes in positions.values():
        if len(indexes) > 1:
            scan.duplicate_keys += 1
            scan.superseded.update(indexes[:-1])


def _streamed(path: Path) -> KVScan:
    """Any valid file: ijson events (keys at depth 1 and the type of their value)."""
    start = bom_len(path)
    scan = KVScan(method="streamed (ijson)")
    scan.escapes, scan.candidates = region_flags(path, start)
    if scan.escapes:
        return _exact(path)
    positions: Dict[str, List[int]] = {}
    with open(path, "rb") as f:
        reader = RegionReader(f, start, None)
        depth = 0
        index = -1
        pending: Optional[Tuple[int, str, int]] = None  # a key whose value is not seen yet
        try:
            for event, value in _ijson.basic_parse(reader, buf_size=READ_SIZE):
                if pending is not None:
                    i, key, offset = pending
                    pending = None
                    if event != "start_map":
                        scan.not_object_count += 1
                        if len(scan.not_objects) < NOT_OBJECT_KEEP:
                            scan.not_objects[i] = (key, offset, _event_type(event))
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                elif event == "map_key" and depth == 1:
                    index += 1
                    positions.setdefault(value, []).append(index)
                    pending = (index, value, reader.consumed)
        except (ijson.JSONError, UnicodeDecodeError):
            return _exact(path)  # NaN, Infinity, huge integers...: what json.load reads, read exactly
    scan.entries = index + 1
    _mark_superseded(scan, positions)
    return scan


def _event_type(event: str) -> str:
    return {"string": "str", "start_array": "list", "boolean": "bool", "null": "NoneType"}.get(event, "number")


def _exact(path: Path) -> KVScan:
    """The exact walker (slow; only for files the other two cannot read). Raises ExactError."""
    start = bom_len(path)
    scan = KVScan(method="exact (Python's json parser, streamed)")
    scan.escapes, scan.candidates = region_flags(path, start)
    positions: Dict[str, List[int]] = {}
    try:
        with ExactWalker(path, start) as walker:
            for index, (key, offset) in enumerate(walker.members()):
                value = walker.value()
                positions.setdefault(key, []).append(index)
                scan.entries += 1
                if not isinstance(value, dict):
                    scan.not_object_count += 1
                    if len(scan.not_objects) < NOT_OBJECT_KEEP:
                        scan.not_objects[index] = (key, offset, type(value).__name__)
            walker.end()
    except ExactError as exc:  # what comes before the damage is still described (the reader copies it)
        scan.error = exc
    _mark_superseded(scan, positions)
    return scan


def scan_kv(path: Path) -> KVScan:
    """The structure of a non-empty KV file that holds a JSON object. For a file not even Python's
    json can read, the structure up to the damage, with ``error`` set."""
    return _fast(path) if is_indent2(path) else _streamed(path)


_CACHE: Dict[Tuple[str, int, int], KVScan] = {}


def cached_scan(path: Path) -> KVScan:
    """:func:`scan_kv`, once per file version (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = scan_kv(path)
    return _CACHE[key]


def exact_error_text(exc: ExactError) -> str:
    return f"{exc} at byte {exc.offset}"
