"""Byte-level scanning of big files in fixed chunks: bounded memory, no mmap.

mmap is avoided on purpose: mapped pages count in the process RSS, and status
must stay under 200 MB on multi-GB files. One reused buffer is filled with
``readinto``; patterns that straddle two chunks are caught by carrying the last
``len(pattern) - 1`` bytes over.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Sequence, Tuple

CHUNK = 8 * 1024 * 1024
BOM = b"\xef\xbb\xbf"


def count_patterns(path: Path, patterns: Sequence[bytes], start: int = 0, end: Optional[int] = None) -> Dict[bytes, int]:
    """Occurrences of each pattern in ``path[start:end]``, chunk boundaries included."""
    counts = {p: 0 for p in patterns}
    keep = max(len(p) for p in patterns) - 1
    # one buffer: the carried tail of the previous chunk, then the new chunk read in place
    buf = bytearray(keep + CHUNK)
    view = memoryview(buf)
    tail = 0
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        pos = start
        while end is None or pos < end:
            want = CHUNK if end is None else min(CHUNK, end - pos)
            n = f.readinto(view[tail : tail + want])
            if not n:
                break
            pos += n
            size = tail + n
            for p in patterns:
                # an occurrence lying wholly inside the carried tail was counted last round
                counts[p] += buf.count(p, 0, size) - (buf.count(p, 0, tail) if tail else 0)
            tail = min(keep, size)
            buf[:tail] = buf[size - tail : size]
    return counts


JUDGE = 64  # bytes after a literal that find_first's ``accept`` sees


def find_first(path: Path, literal: bytes, start: int = 0, accept=None) -> Optional[int]:  # noqa: ANN001
    """Offset of the first ``literal`` in ``path`` from ``start`` for which ``accept(data, i)`` holds:
    ``data`` is the byte before the hit (unless the hit is at ``start``), the hit and ``JUDGE`` bytes
    after it when the file has them, ``i`` the hit's index in ``data``."""
    for offset, _, _ in regex_matches(path, re.compile(re.escape(literal)), len(literal), start):
        if accept is None or judge(path, offset, start, len(literal), accept):
            return offset
    return None


def judge(path: Path, offset: int, start: int, length: int, accept) -> bool:  # noqa: ANN001
    """``accept(data, i)`` for the ``length`` bytes at ``offset``, as :func:`find_first` calls it."""
    before = 1 if offset > start else 0
    return bool(accept(read_at(path, offset - before, before + length + JUDGE), before))


def regex_matches(path: Path, regex: "re.Pattern[bytes]", longest: int, start: int = 0) -> Iterator[Tuple[int, Optional[int], int]]:
    """(file offset, ``lastindex``, the byte before it or -1 at ``start``) of each match of ``regex`` in
    ``path`` from ``start``, in one chunked pass (bounded memory; stop iterating to stop reading).

    ``longest`` bounds the length of a match: one starting in the last ``longest - 1`` bytes of a chunk
    is looked for again with the next chunk, so every match is whole. A regex that begins with a
    literal byte (``b'"(?:a|b)'``) runs at about the speed of ``bytes.count``; an alternation of
    different first bytes is tens of times slower in ``re`` (measured).
    """
    buf = bytearray(1 + longest + CHUNK)
    view = memoryview(buf)
    tail = 0  # bytes carried over from the previous chunk
    context = 0  # buf[:context] is the byte before the unsearched part (0 or 1 bytes)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        base = start  # file offset of buf[0]
        while True:
            n = f.readinto(view[tail : tail + CHUNK])
            size = tail + n
            # a match starting before ``safe`` is whole in buf; at the end of the file every match is
            safe = size - longest + 1 if n else size
            resume = max(context, safe)
            for m in regex.finditer(buf, context, size):
                i = m.start()
                if i >= safe:
                    resume = i
                    break
                yield base + i, m.lastindex, buf[i - 1] if i else -1
                resume = m.end()
            if not n:
                return
            keep = resume - min(1, resume)  # carry from the byte before the unsearched part
            context = resume - keep
            tail = size - keep
            buf[:tail] = buf[keep:size]
            base += keep


def head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def tail_bytes(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


def bom_len(path: Path) -> int:
    return len(BOM) if head(path, 3) == BOM else 0


class RegionReader:
    """A read-only file object over ``f[start:end]`` followed by ``suffix`` bytes.

    Lets ijson parse the part of a NanoVectorDB file before the (huge) matrix
    string, with a synthetic ending, so the matrix is never built as a Python
    string. ``consumed`` tells how far into the file parsing got (for error offsets).
    """

    def __init__(self, f: BinaryIO, start: int, end: Optional[int], suffix: bytes = b"", slow_from: Optional[int] = None) -> None:
        self._f = f
        self._f.seek(start)
        self._pos = start
        self._end = end
        self._suffix = suffix
        self.start, self.end, self.suffix = start, end, suffix
        self._slow_from = slow_from  # from this offset on, hand out one byte per read (exact error offsets)
        self.consumed = start

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        if self._slow_from is not None:
            n = 1 if self._pos >= self._slow_from else min(n, self._slow_from - self._pos)
        if self._end is None or self._pos < self._end:
            want = n if self._end is None else min(n, self._end - self._pos)
            data = self._f.read(want)
            self._pos += len(data)
            self.consumed = self._pos
            if data or self._end is None:
                return data
        data, self._suffix = self._suffix[:n], self._suffix[n:]
        return data


def read_at(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)
