"""A source that changed during the copy: the copy is not reported complete.

HybridRAG keeps ingesting while a migration may run. The source session's ``fingerprint()`` (the JSON
session gives each file's size and modification time in nanoseconds, taken only once the newest of them
is older than the file system's timestamp granularity, so a later write cannot share its timestamp) is
saved in the job when it starts; after the copy and the verification it is taken again. Any difference
fails the job as a verification failure (exit 4) naming what changed, instead of reporting a copy of a
moving target as complete. A resume of such a job is refused as well (the engine compares the same
fingerprint), so the way on is a new run with ``--force`` once nothing writes into the source.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import orjson

from ..errors import VerificationFailed
from ..provider import BackendSession
from .job import MigrationJob

EXAMPLES = 3


def _flat(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        out: Dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}" if not prefix else f"{prefix}/{k}"))
        return out
    return {prefix: value}


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="microseconds")


def describe_change(before: Any, after: Any) -> str:
    """What differs between two fingerprints, a few items in words (file sizes and times when the
    fingerprint holds ``[size, mtime_ns]`` pairs)."""
    old, new = _flat(before), _flat(after)
    changes: List[str] = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            changes.append(f"{name} appeared")
        elif b is None:
            changes.append(f"{name} disappeared")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 2 and all(isinstance(x, int) for x in a + b):
            parts = []
            if a[0] != b[0]:
                parts.append(f"size {a[0]} -> {b[0]} bytes")
            if a[1] != b[1]:
                parts.append(f"modified {_when(a[1])} -> {_when(b[1])}")
            changes.append(f"{name}: {', '.join(parts)}")
        else:
            changes.append(f"{name or 'fingerprint'} changed")
    more = f" and {len(changes) - EXAMPLES} more" if len(changes) > EXAMPLES else ""
    return "; ".join(changes[:EXAMPLES]) + more


async def source_change(src: BackendSession, job: MigrationJob) -> Optional[str]:
    """What changed in the source since ``job`` started, or None (also when the session has no fingerprint)."""
    saved = (job.options.get("source_fingerprint") or {}).get("session")
    fingerprint = getattr(src, "fingerprint", None)
    if saved is None or fingerprint is None:
        return None
    try:
        now = fingerprint()
        if inspect.isawaitable(now):
            now = await now
    except OSError as exc:  # a file went away while it was being looked at
        return f"its files changed ({exc.strerror or exc}: {exc.filename})"
    now = orjson.loads(orjson.dumps(now))  # the saved copy went through JSON too
    return None if now == saved else describe_change(saved, now)


async def check_source_unchanged(src: BackendSession, job: MigrationJob) -> None:
    """Raise VerificationFailed (recorded in ``job.verification["source_changed"]``) when the source changed."""
    reason = await source_change(src, job)
    if reason is None:
        return
    if job.verification is not None:
        job.verification["ok"] = False
        job.verification["source_changed"] = reason
    raise VerificationFailed(
        f"the source {job.source} changed during the copy ({reason}), so the copy may mix old and new records "
        f"and is not complete; stop what writes into the source (HybridRAG's watcher waits while "
        f"hybridrag_backends.hybridrag.migration_in_progress() names a run) and migrate again with --force"
    )
