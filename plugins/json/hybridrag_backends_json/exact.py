"""The exact path: Python's own JSON parser, the one LightRAG's ``json.load`` uses, streamed value by value.

ijson's C backend (the fast path, see kvread / nanovdb) refuses some JSON that ``json.load`` accepts
(``NaN``, ``Infinity``, ``-Infinity``, numbers too large for a float, integers beyond 64 bits) and
silently rewrites an escaped lone surrogate (``"\\ud800"``) to ``"?"``. Files holding any of these are
read here instead: :class:`ExactWalker` decodes the bytes as UTF-8 block by block and hands
``json.JSONDecoder.raw_decode`` one value at a time, so memory stays bounded by the largest record
and every record and every error has its true byte offset.

Values are what ``json.load`` gives, except that NaN / Infinity / -Infinity (and floats that
overflow to infinity) are :class:`NonFinite`, a float subclass: orjson refuses it instead of writing
``null``, so neither the verification digest nor a writer can turn it into null unnoticed, and the
stdlib ``json.dumps`` writes it back as LightRAG would (``NaN``, ``Infinity``).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

READ = 1024 * 1024
_WS = re.compile(r"[ \t\n\r]*")
# how close to the end of the decoded text an error may be and still be caused by the cut
_NEAR_END = 16


class NonFinite(float):
    """NaN, Infinity or -Infinity as Python's json reads them (see the module docstring)."""

    __slots__ = ()


def _constant(name: str) -> NonFinite:
    return NonFinite(name)  # "NaN", "Infinity", "-Infinity": float() reads all three


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(value)  # 1e400 -> inf, as json.load


DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float)


class ExactError(Exception):
    """Invalid JSON (or UTF-8) at a byte offset; the caller names the file and the last good record."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class ExactWalker:
    """``path[start:end]`` followed by ``suffix``, parsed value by value (see the module docstring).

    ``offset()`` is the byte offset of the parsing position; text already parsed is dropped as the
    walker reads on, so it never holds more than a block plus the value being parsed."""

    def __init__(self, path: Path, start: int = 0, end: Optional[int] = None, suffix: bytes = b"") -> None:
        self.path = path
        self._f = open(path, "rb")
        self._f.seek(start)
        self._left = None if end is None else max(0, end - start)
        self._suffix = suffix
        self._raw_at = start  # file offset of the next byte to read
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self._mark = 0  # a position in buf whose byte offset is _base
        self._base = start
        self.eof = False

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ExactWalker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- text ------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        if self._left is None:
            data = self._f.read(n)
        elif self._left > 0:
            data = self._f.read(min(n, self._left))
            self._left -= len(data)
        else:
            data = b""
        if not data and self._suffix:
            data, self._suffix = self._suffix, b""
        return data

    def _more(self, at_least: int = READ) -> bool:
        """Append the next block of text; False at the end."""
        if self.eof:
            return False
        raw = self._read(max(READ, at_least))
        pending = len(self._utf8.getstate()[0])
        try:
            text = self._utf8.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise ExactError(f"invalid UTF-8 ({exc.reason})", self._raw_at - pending + exc.start) from None
        self._raw_at += len(raw)
        if not raw:
            self.eof = True
        # drop what is parsed (everything before the mark); positions shift with it
        cut = self._mark
        self.buf = self.buf[cut:] + text
        self.pos -= cut
        self._mark = 0
        return bool(raw)

    def offset(self, pos: Optional[int] = None) -> int:
        """Byte offset of text position ``pos`` (default: the parsing position)."""
        pos = self.pos if pos is None else pos
        return self._base + len(self.buf[self._mark : pos].encode("utf-8"))

    def settle(self) -> None:
        """Everything before the parsing position is done with (keeps offset() cheap)."""
        self._base = self.offset()
        self._mark = self.pos

    def skip_ws(self) -> str:
        """Skip white space; the next character, or "" at the end."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        ch = self.skip_ws()
        if not ch or ch not in chars:
            found = f"{ch!r}" if ch else "the end of the file"
            raise ExactError(f"expected {' or '.join(repr(c) for c in chars)}, found {found}", self.offset())
        self.pos += 1
        return ch

    def value(self) -> Any:
        """The next complete JSON value, as ``json.load`` builds it."""
        self.skip_ws()
        while True:
            try:
                value, end = DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                cut_short = exc.pos >= len(self.buf) - _NEAR_END or exc.msg.startswith("Unterminated string")
                if cut_short and self._more(len(self.buf)):
                    continue
                raise ExactError(exc.msg, self.offset(exc.pos)) from None
            if end == len(self.buf) and self._more(len(self.buf)):
                continue  # a number or literal may go on in the next block
            self.pos = end
            return value

    def key(self) -> str:
        if self.skip_ws() != '"':
            raise ExactError("expected a key (a string in double quotes)", self.offset())
        key = self.value()
        self.expect(":")
        return key

    # -- structures --------------------------------------------------------------

    def _entries(self, opening: str, closing: str) -> Iterator[int]:
        """Positions the walker on each entry of the object or array starting here (after its
        separator), yielding the entry's byte offset; the caller consumes the entry."""
        self.expect(opening)
        first = True
        while True:
            if self.skip_ws() == closing:
                self.pos += 1
                return
            if not first:
                self.expect(",")
                self.skip_ws()
            first = False
            self.settle()
            yield self.offset()

    def members(self) -> Iterator[Tuple[str, int]]:
        """The members of the object starting here: yields (key, byte offset of the key) with the
        walker on the member's value, which the caller must consume (value() or a nested walk)."""
        for at in self._entries("{", "}"):
            yield self.key(), at

    def items(self) -> Iterator[int]:
        """The items of the array starting here: yields each item's byte offset with the walker on
        the item, which the caller must consume."""
        return self._entries("[", "]")

    def end(self) -> None:
        """Only white space may follow the top-level value."""
        ch = self.skip_ws()
        if ch:
            raise ExactError(f"extra data after the top-level value ({ch!r})", self.offset())
