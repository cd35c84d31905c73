"""Values only LightRAG's JSON files can hold, and keys shown safely.

Python's ``json.load`` (LightRAG's JSON reader) accepts more than strict JSON: ``NaN``, ``Infinity``
and ``-Infinity``, integers of any size, and escaped lone surrogates (``"\\ud800"``) in keys and
strings. The JSON reader yields them exactly (NaN / Infinity as a float subclass orjson refuses, see
``hybridrag_backends_json.exact.NonFinite``). PostgreSQL (UTF-8 text, jsonb) and MongoDB (UTF-8
BSON strings, 64-bit integers) cannot store them: their sessions refuse such records (see
:meth:`BackendSession.screen <hybridrag_backends.provider.BackendSession.screen>`, with
:func:`screen_json_only`) with the reason :func:`json_only_problem` gives, and the engine writes them to
the rejects file instead.

:func:`escape_key` is how a key reaches a message, a rejects file or a JSON report: a lone surrogate
cannot be printed or encoded as UTF-8, so it is shown as its ``\\udXXX`` escape; any other key is
unchanged.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import orjson

from .provider import Record, RejectedRecord

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


def escape_key(key: Optional[str]) -> Optional[str]:
    """``key`` with lone surrogates written as ``\\udXXX`` (unchanged when it has none)."""
    if key is None or key.isascii():
        return key
    if not _has_surrogate(key):
        return key
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _find(value: Any, path: str) -> Optional[Tuple[str, str]]:
    """(what, where) for the first value strict JSON / UTF-8 cannot hold, depth first."""
    if isinstance(value, str):
        return ("a lone surrogate", path) if _has_surrogate(value) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= UINT64_MAX else (f"the integer {value} (beyond 64 bits)", path)
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return ("NaN" if value != value else "Infinity" if value > 0 else "-Infinity"), path
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and _has_surrogate(k):
                return "a lone surrogate in a field name", f"{path}.{escape_key(k)}" if path else escape_key(k)
            found = _find(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find(v, f"{path}[{i}]")
            if found:
                return found
    return None


def json_only_problem(key: str, payload: Any) -> Optional[str]:
    """Why ``key`` / ``payload`` holds a value only Python's json (and so only LightRAG's JSON files)
    can hold, naming the field; None when strict JSON in UTF-8 with 64-bit integers holds it all."""
    if _has_surrogate(key):
        return "the key holds a lone surrogate (an escaped \\udXXX not paired), which UTF-8 text cannot store"
    found = _find(payload, "")
    if found is None:
        return None
    what, where = found
    return f"field {where or '(the record)'} holds {what}, which only JSON files can store"


def screen_json_only(store: str, records: List[Record]) -> Tuple[List[Record], List[RejectedRecord]]:
    """A batch split into the records strict JSON in UTF-8 with 64-bit integers holds and named rejects
    (``side="target"``, the record's own location) for those that hold values only JSON files can store.

    One orjson call checks the whole batch (orjson refuses lone surrogates, integers beyond 64 bits
    and the JSON reader's NaN / Infinity); only a batch it refuses is examined record by record."""
    try:
        orjson.dumps([[r.key, r.payload] for r in records])
        return records, []
    except (TypeError, orjson.JSONEncodeError):
        pass
    kept: List[Record] = []
    refused: List[RejectedRecord] = []
    for r in records:
        problem = json_only_problem(r.key, r.payload)
        if problem is None:
            kept.append(r)
        else:
            refused.append(RejectedRecord(store, r.key, problem, r.location, r.position, side="target"))
    return kept, refused
