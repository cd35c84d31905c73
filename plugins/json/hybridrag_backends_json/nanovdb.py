"""Streaming reader of NanoVectorDB files (``vdb_*.json``).

Layout (``json.dump`` by nano-vectordb, no indent)::

    {"embedding_dim": D, "data": [{"__id__": ..., meta...}, ...], "matrix": "<base64 float32 rows>"}

The ``data`` entries are parsed with ijson from a *region* of the file that
stops before the ``"matrix"`` key (with a synthetic ``"matrix": ""}`` ending),
so the matrix, often most of the file, is never built as a Python string. A
second handle decodes the matrix in chunks (base64 in multiples of 4
characters) and hands out float32 rows aligned with the data entries; resuming
at record ``r`` seeks straight to its row.

Normalisations: ``__id__`` becomes the record key and the float32 matrix row
is ``Record.vector``. The per-record ``vector`` field (base64 of zlib of
float16: what LightRAG 1.5.7's ``get_vectors_by_ids`` decodes) stays in the
payload exactly as written: it is not a copy of the matrix row (nano-vectordb
normalises the rows for cosine search, the field keeps the embedding as it
came), so it is copied and verified as it is; a JSON writer regenerates it from
the row only for a record that has none. When the matrix is shorter than
``data`` (an empty ``matrix``), the record's own ``vector`` is used as the row
if present (noted in ``notes``), else the record is rejected. A 2024 record with only ``__id__`` and a name is yielded as it is.
Keys after the matrix (nano-vectordb's ``additional_data``, unused by
LightRAG) are not copied; ``notes`` says so. A wrong-dimension record vector
is rejected; a matrix whose length is not whole rows, or a file cut short, is a
SourceError naming the file and byte offset.

The ``data`` entries are parsed by ijson's C backend unless the part before the
matrix holds ``\\udXXX`` escapes (which that backend rewrites) or the backend
stops on something Python's json accepts (NaN, huge integers): then they are
read by the exact path (``exact.py``), as ``json.load`` reads them.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import pybase64

from hybridrag_backends.errors import SourceError

from .exact import ExactError, ExactWalker
from .kvread import FAST_PATH_ERRORS, Rejected, exact_source_error
from .kvscan import READ_SIZE, _ijson, region_flags
from .scan import JUDGE, RegionReader, bom_len, find_first, head, judge, read_at, regex_matches, tail_bytes

MATRIX_KEY_RE = re.compile(rb'"matrix"\s*:\s*"')
ID_OR_MATRIX_RE = re.compile(rb'"(?:(__id__":)|(matrix"))')  # a literal first byte: fast in re
DIM_RE = re.compile(rb'^\s*\{\s*"embedding_dim"\s*:\s*(\d+)')
B64_READ = 4 * 1024 * 1024  # a multiple of 4


@dataclass
class VDBNotes:
    vectors_from_record_field: int = 0
    matrix_extra_rows: int = 0
    records_without_vector_field: int = 0
    exact_path: bool = False
    bom: bool = False
    extra: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def decode_record_vector(text: str) -> np.ndarray:
    """LightRAG's per-record ``vector``: base64(zlib(float16 bytes)) -> float32."""
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=np.float16).astype(np.float32)


def _is_matrix_key(data: bytes, i: int) -> bool:
    """``data[i:]`` starts with the top-level key ``"matrix"`` and its string value (not an escaped
    quote inside some string: a quote preceded by a backslash is one)."""
    return (i == 0 or data[i - 1 : i] != b"\\") and MATRIX_KEY_RE.match(data, i) is not None


class VDBFile:
    def __init__(self, path: Path, namespace: str) -> None:
        self.path = path
        self.namespace = namespace
        self.notes = VDBNotes()
        self._dim: Optional[int] = None
        self._matrix: Optional[Tuple[int, int]] = None  # (key start, base64 start)
        self._matrix_found: Optional[bool] = None

    # -- structure -------------------------------------------------------------

    @property
    def bom(self) -> int:
        return bom_len(self.path)

    def embedding_dim(self) -> int:
        if self._dim is None:
            m = DIM_RE.match(head(self.path, 256)[self.bom:])
            if m:
                self._dim = int(m.group(1))
            else:  # embedding_dim written elsewhere: find it by streaming (never reaches the matrix)
                with open(self.path, "rb") as f:
                    reader = RegionReader(f, self.bom, self.matrix_key_offset(), self._suffix())
                    try:
                        dims = list(_ijson.items(reader, "embedding_dim", buf_size=READ_SIZE))
                    except FAST_PATH_ERRORS:
                        dims = self._exact_dim()
                if not dims or not isinstance(dims[0], int) or dims[0] < 1:
                    raise SourceError(f"{self.path}: no valid embedding_dim; this is not a NanoVectorDB file LightRAG can open")
                self._dim = dims[0]
        return self._dim

    def _locate_matrix(self) -> None:
        if self._matrix_found is None:
            self._set_matrix_key(find_first(self.path, b'"matrix"', self.bom, _is_matrix_key))

    def _set_matrix_key(self, hit: Optional[int]) -> None:
        self._matrix_found = hit is not None
        if hit is not None:
            m = MATRIX_KEY_RE.match(read_at(self.path, hit, len(b'"matrix"') + JUDGE))
            self._matrix = (hit, hit + m.end())

    def count_records_before_matrix(self) -> int:
        """The ``"__id__":`` keys before the matrix key (in the whole file when there is none), counted in
        the pass that finds the key: the part before the matrix is read once, the matrix not at all. A
        quote preceded by a backslash is inside some string's text (``\\"__id__":`` ends a key's text),
        not a key: neither is counted (an unescaped quote cannot occur inside a JSON string)."""
        records, hit = 0, None
        for offset, which, before in regex_matches(self.path, ID_OR_MATRIX_RE, len(b'"__id__":'), self.bom):
            if before == ord("\\"):
                continue
            if which == 1:
                records += 1
            elif judge(self.path, offset, self.bom, len(b'"matrix"'), _is_matrix_key):
                hit = offset
                break
        self._set_matrix_key(hit)
        return records

    def matrix_key_offset(self) -> Optional[int]:
        self._locate_matrix()
        return self._matrix[0] if self._matrix else None

    def matrix_b64_span(self) -> Optional[Tuple[int, Optional[int]]]:
        """(start, end) of the base64 text; end is None unless the file ends with ``"}`` right after it."""
        self._locate_matrix()
        if not self._matrix:
            return None
        start = self._matrix[1]
        raw_tail = tail_bytes(self.path, 64)
        tail = raw_tail.rstrip()
        end = self.path.stat().st_size - (len(raw_tail) - len(tail)) - 2
        return start, end if tail.endswith(b'"}') and end >= start else None

    def matrix_rows_by_size(self) -> Optional[int]:
        """Rows of the matrix from its base64 length alone (no decoding), when the layout allows."""
        span = self.matrix_b64_span()
        if not span or span[1] is None:
            return None
        n = span[1] - span[0]
        if n % 4:
            return None
        raw = n // 4 * 3
        if n:
            raw -= tail_bytes(self.path, 64).rstrip()[:-2][-2:].count(b"=")  # base64 padding
        row = 4 * self.embedding_dim()
        return raw // row if raw % row == 0 else None

    def check_matrix(self) -> None:
        """Decode the whole matrix (strict base64, whole float32 rows, the file closed after it) without
        keeping it: ``validate``'s full read. ``status`` only compares the matrix's length with the rows it
        should hold. Raises SourceError naming the file and byte offset."""
        self._locate_matrix()
        if self._matrix is None:
            return
        rows = MatrixRows(self.path, self._matrix[1], self.embedding_dim())
        rows.close()  # finish() reads with a handle of its own
        try:
            rows.finish()
        finally:
            rows.close()

    FIX = "restore it from a backup (or rebuild the vectors with lightrag.tools.rebuild_vdb)"

    def _suffix(self) -> bytes:
        """What ends the region parsed before the matrix (the matrix itself is decoded apart)."""
        return b'"matrix": ""}' if self.matrix_key_offset() is not None else b""

    def _exact_dim(self) -> list:
        try:
            with ExactWalker(self.path, self.bom, self.matrix_key_offset(), self._suffix()) as walker:
                for name, _ in walker.members():
                    value = walker.value()
                    if name == "embedding_dim":
                        return [value]
        except ExactError as exc:
            raise exact_source_error(self.path, exc, "reading embedding_dim", self.FIX) from None
        return []

    def exact_records(self) -> Iterator[Tuple[Any, int]]:
        """(entry of ``data``, its byte offset), as json.load reads them."""
        with ExactWalker(self.path, self.bom, self.matrix_key_offset(), self._suffix()) as walker:
            for name, _ in walker.members():
                if name != "data" or walker.skip_ws() != "[":
                    walker.value()
                    continue
                for offset in walker.items():
                    yield walker.value(), offset
            walker.end()

    # -- records ---------------------------------------------------------------

    def items(self, after: Optional[int] = None) -> Iterator[Tuple[int, str, Union[Tuple[Dict[str, Any], np.ndarray], Rejected], Optional[int]]]:
        """(index, key, (payload, float32 vector) or Rejected, byte offset or None), in file order after
        index ``after``; the offset is the record's own (exact path) or None (fast path)."""
        self.notes = VDBNotes(bom=bool(self.bom))
        dim = self.embedding_dim()
        key_offset = self.matrix_key_offset()
        done = -1 if after is None else after  # the last index handed out (or skipped)
        rows = MatrixRows(self.path, self._matrix[1], dim) if self._matrix else None
        last_key: Optional[str] = None
        index = -1
        finished = False
        try:
            if not region_flags(self.path, self.bom, key_offset, candidates=False)[0]:  # no \udXXX escape: the fast path
                if rows is not None:
                    rows.seek_row(done + 1)
                with open(self.path, "rb") as f:
                    reader = RegionReader(f, self.bom, key_offset, self._suffix())
                    try:
                        for index, rec in enumerate(_ijson.items(reader, "data.item", use_float=True, buf_size=READ_SIZE)):
                            if index <= done:
                                continue
                            done = index
                            row = rows.next_row() if rows is not None else None
                            key = rec.get("__id__") if isinstance(rec, dict) else None
                            last_key = key if isinstance(key, str) else last_key
                            yield index, (key if isinstance(key, str) else f"#{index}"), self._record(rec, row, dim, reader.consumed, False), None
                        finished = True
                    except FAST_PATH_ERRORS:
                        pass  # read on, exactly, from the record it stopped in
            if not finished:
                self.notes.exact_path = True
                if rows is not None:
                    rows.seek_row(done + 1)
                try:
                    for index, (rec, offset) in enumerate(self.exact_records()):
                        key = rec.get("__id__") if isinstance(rec, dict) else None
                        last_key = key if isinstance(key, str) else last_key
                        if index <= done:
                            continue
                        row = rows.next_row() if rows is not None else None
                        yield index, (key if isinstance(key, str) else f"#{index}"), self._record(rec, row, dim, offset, True), offset
                except ExactError as exc:
                    after_txt = f"after vector {last_key!r} (record #{index})" if last_key else "before the first record"
                    raise exact_source_error(self.path, exc, after_txt, self.FIX) from None
        finally:
            if rows is not None:
                rows.close()
        if rows is not None:
            self.notes.matrix_extra_rows = rows.finish()
            if rows.keys_after_matrix:  # e.g. nano-vectordb's additional_data, which LightRAG never uses
                self.notes.extra["keys_after_matrix_not_copied"] = 1

    def _record(self, rec: Any, row: Optional[np.ndarray], dim: int, offset: int, exact: bool):
        if not isinstance(rec, dict):
            return Rejected(f"vector record is not a JSON object (found {type(rec).__name__})", offset, exact)
        key = rec.pop("__id__", None)
        if not isinstance(key, str):
            return Rejected("vector record has no string __id__", offset, exact)
        packed = rec.get("vector")  # kept in the payload: what get_vectors_by_ids returns
        if packed is None:
            self.notes.records_without_vector_field += 1
        if row is None:
            if packed is None:
                return Rejected("no matrix row and no 'vector' field for this record (matrix shorter than data)", offset, exact)
            try:
                row = decode_record_vector(packed)
            except (ValueError, TypeError, zlib.error, binascii.Error) as exc:
                return Rejected(f"undecodable 'vector' field ({exc}) and no matrix row", offset, exact)
            self.notes.vectors_from_record_field += 1
        if row.shape != (dim,):
            return Rejected(f"vector has dimension {row.shape[0]}, expected embedding_dim {dim}", offset, exact)
        return rec, row


class MatrixRows:
    """float32 rows decoded from the base64 ``matrix`` text, in order, from any row."""

    def __init__(self, path: Path, b64_start: int, dim: int) -> None:
        self.path = path
        self.b64_start = b64_start
        self.row_bytes = 4 * dim
        self.dim = dim
        self._f = open(path, "rb")
        self._buf = b""  # decoded bytes; the rows not handed out yet start at _off
        self._off = 0
        self._carry = b""
        self._pos = b64_start
        self._ended = False  # closing quote seen
        self._end_pos: Optional[int] = None
        self.keys_after_matrix = False

    def seek_row(self, row: int) -> None:
        offset = row * self.row_bytes
        self._pos = self.b64_start + offset // 3 * 4
        self._buf, self._off = b"", 0
        self._carry = b""
        self._ended = False
        skip = offset % 3
        if skip:
            self._fill()
            self._off = skip

    def _fill(self) -> bool:
        """Decode the next chunk into the buffer; False at the end of the matrix."""
        if self._ended:
            return False
        self._f.seek(self._pos)
        raw = self._f.read(B64_READ)
        quote = raw.find(b'"')
        if quote >= 0:
            raw = raw[:quote]
            self._ended = True
            self._end_pos = self._pos + quote
        elif not raw:
            raise SourceError(
                f"{self.path}: the matrix text is cut off at byte {self._pos} (end of file, no closing quote); "
                f"the file is truncated - restore it from a backup and retry"
            )
        start = self._pos - len(self._carry)
        self._pos += len(raw)
        text = self._carry + raw
        usable = len(text) if self._ended else len(text) - len(text) % 4
        self._carry = text[usable:]
        try:  # pybase64 (SIMD) decodes several times faster than binascii, as strictly (validate=True)
            decoded = pybase64.b64decode(text[:usable], validate=True)
        except binascii.Error as exc:
            raise SourceError(
                f"{self.path}: the matrix is not valid base64 between bytes {start} and {start + usable} ({exc}); "
                f"the file is corrupt - restore it from a backup and retry"
            ) from None
        self._buf, self._off = self._buf[self._off :] + decoded, 0
        return True

    def _available(self) -> int:
        return len(self._buf) - self._off

    def next_row(self) -> Optional[np.ndarray]:
        while self._available() < self.row_bytes:
            if not self._fill():
                return None
        # one copy: straight from the decoded bytes into the row's own (native float32) array
        row = np.frombuffer(self._buf, dtype="<f4", count=self.dim, offset=self._off).astype(np.float32)
        self._off += self.row_bytes
        return row

    def close(self) -> None:
        self._f.close()

    def finish(self) -> int:
        """Read to the end of the matrix (so a truncated file is caught); the rows left over."""
        extra = 0
        self._f = open(self.path, "rb")
        while True:
            rows = self._available() // self.row_bytes
            extra += rows
            self._off += rows * self.row_bytes
            if not self._fill():
                break
        after = read_at(self.path, self._end_pos + 1, 64).lstrip()[:1] if self._end_pos is not None else b""
        self.keys_after_matrix = after == b","
        if after not in (b"}", b",") or not tail_bytes(self.path, 64).rstrip().endswith(b"}"):
            raise SourceError(
                f"{self.path}: the file ends without closing its JSON object after the matrix "
                f"(byte {self.path.stat().st_size}); the file is truncated - restore it from a backup and retry"
            )
        self._f.close()
        if self._available():
            raise SourceError(
                f"{self.path}: the matrix ends with {self._available()} bytes that are not a whole row of "
                f"{self.dim} float32 values; the file is corrupt or embedding_dim is wrong - restore it from a backup"
            )
        return extra
