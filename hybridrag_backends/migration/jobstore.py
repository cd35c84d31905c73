"""Migration jobs on disk: ``$HYBRIDRAG_HOME/jobs/<job_id>/job.json`` plus ``rejects.jsonl``.

``job.json`` is replaced atomically (temp file, fsync, ``os.replace``) after every
committed batch, so a crash leaves either the previous or the new checkpoint,
never a torn file. ``rejects.jsonl`` is append-only; the job records its size
(``options["rejects_bytes"]``) with each checkpoint so a resume can cut off
lines appended for a batch that was never committed.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import orjson
from filelock import FileLock, Timeout

from ..durable import write_atomic
from ..errors import MigrationError, NotFoundError
from ..jsonvalues import escape_key
from ..provider import RejectedRecord
from ..registry import hybridrag_home
from .job import MigrationJob

JOB_FILE = "job.json"
REJECTS_FILE = "rejects.jsonl"
LOCK_FILE = "lock"


def jobs_dir() -> Path:
    return hybridrag_home() / "jobs"


def job_dir(job_id: str) -> Path:
    return jobs_dir() / job_id


def rejects_path(job_id: str) -> Path:
    return job_dir(job_id) / REJECTS_FILE


def new_job_id() -> str:
    """Sortable by creation time, unique without coordination."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _ready_dir(job_id: Optional[str] = None) -> Path:
    """The job's folder (the jobs folder when ``job_id`` is None), created; a HYBRIDRAG_HOME that cannot
    hold it is the user's to fix, not a bug."""
    directory = job_dir(job_id) if job_id else jobs_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MigrationError(
            f"cannot create the job folder {directory} ({exc.strerror or exc}); "
            f"set HYBRIDRAG_HOME to a writable folder"
        ) from None
    return directory


def ensure_jobs_dir() -> None:
    """Fail now, with the fix, when HYBRIDRAG_HOME cannot hold job files (before anything is written)."""
    _ready_dir()


def save(job: MigrationJob) -> None:
    directory = _ready_dir(job.job_id)
    write_atomic(directory / JOB_FILE, orjson.dumps(job.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def load(job_id: str) -> MigrationJob:
    path = job_dir(job_id) / JOB_FILE
    if not path.is_file():
        raise NotFoundError(f"no migration job {job_id!r} in {jobs_dir()}; see 'hybridrag-backends jobs'")
    try:
        return MigrationJob.from_dict(orjson.loads(path.read_bytes()))
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise MigrationError(f"job file {path} is unreadable ({exc}); start a new migration") from None


def list_jobs() -> List[MigrationJob]:
    """Every readable job, oldest first (unreadable ones are skipped: they cannot be resumed)."""
    root = jobs_dir()
    if not root.is_dir():
        return []
    jobs = []
    for path in sorted(root.glob(f"*/{JOB_FILE}")):
        try:
            jobs.append(MigrationJob.from_dict(orjson.loads(path.read_bytes())))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue
    return sorted(jobs, key=lambda j: (j.created_at, j.job_id))


def append_rejects(job_id: str, rejected: Iterable[RejectedRecord]) -> int:
    """Append one JSON line per rejected record (fsynced); returns the file's new size."""
    path = _ready_dir(job_id) / REJECTS_FILE
    with open(path, "ab") as fh:
        for r in rejected:
            # a lone surrogate in a key is written as its \udXXX escape: the file stays UTF-8 JSON
            line = {"store": r.store, "key": escape_key(r.key), "reason": escape_key(r.reason),
                    "location": escape_key(r.location), "side": r.side}
            fh.write(orjson.dumps(line) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


def target_refused_keys(job_id: str) -> Dict[str, Set[str]]:
    """store -> keys the target refused (side "target"): records verification must not expect there."""
    refused: Dict[str, Set[str]] = {}
    for line in read_rejects(job_id):
        if line.get("side") == "target" and line.get("key") is not None:
            refused.setdefault(line["store"], set()).add(line["key"])
    return refused


def truncate_rejects(job_id: str, size: int) -> None:
    """Drop lines appended after the last committed checkpoint."""
    path = rejects_path(job_id)
    if path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            os.fsync(fh.fileno())


def read_rejects(job_id: str, limit: Optional[int] = None) -> List[dict]:
    path = rejects_path(job_id)
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            out.append(orjson.loads(line))
    return out


class JobLock:
    """Held while a process runs a job, so a second process cannot resume it at the same time."""

    def __init__(self, job_id: str) -> None:
        self._lock = FileLock(str(_ready_dir(job_id) / LOCK_FILE))
        self.job_id = job_id

    def __enter__(self) -> "JobLock":
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise MigrationError(
                f"job {self.job_id} is running in another process; wait for it or stop it first"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
