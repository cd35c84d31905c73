"""A per-database migration lock under ``HYBRIDRAG_HOME``, for HybridRAG's watcher to wait on.

HybridRAG ingests continuously (its watcher, one process per database) while a migration of the same
database may run. While ``migrate`` copies a registered database (as its source or its target, given by
name or by a location some registry entry points at) it holds, for each such database NAME:

* ``$HYBRIDRAG_HOME/watcher_control/NAME.migration.lock``: an OS file lock (``flock``, through filelock),
  held by the migrating process and released when it ends, however it ends (a SIGKILL included);
* ``$HYBRIDRAG_HOME/watcher_control/NAME.migration``: JSON naming the run (``job_id``, ``pid``, ``host``,
  ``started_at``, ``source``, ``target``), written once the lock is held, removed when the run ends.

``watcher_control/`` is the folder HybridRAG keeps its own watcher signals in
(``~/.hybridrag/watcher_control/NAME.pause``); the pattern is the one its watcher uses for its PID file
(a file naming the process, locked while it runs). A ``.migration`` file whose lock nobody holds was left
by a process that was killed: :func:`migration_lock` reports it as ``stale``, :func:`migration_in_progress`
returns None for it, and the next ``migrate`` of that database (``--resume``) takes the lock over and says so.

A watcher asks :func:`migration_in_progress` (also exported by :mod:`hybridrag_backends.hybridrag`) before it
ingests, and waits while it returns a run (README, "Coordinating with HybridRAG's watcher"). A second
``migrate`` of a locked database exits 2 (:class:`~hybridrag_backends.errors.DatabaseBusy`) naming the job.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

import orjson
from filelock import FileLock, Timeout

from .durable import write_atomic
from .errors import ConfigError, DatabaseBusy, HybridRAGBackendsError, MigrationError
from .models import DATABASE_NAME_RE, backend_name
from .registry import hybridrag_home

if TYPE_CHECKING:
    from .migration.job import MigrationJob
    from .targets import ResolvedTarget

CONTROL_DIR = "watcher_control"  # HybridRAG's folder for watcher signals (src/watcher_control.py)
INFO_SUFFIX = ".migration"
LOCK_SUFFIX = ".migration.lock"
# A watcher testing for staleness holds the lock for an instant: a starting migration waits that long
# rather than taking the probe for a running migration.
ACQUIRE_TIMEOUT_S = 2.0


def control_dir() -> Path:
    return hybridrag_home() / CONTROL_DIR


def lock_files(name: str) -> Tuple[Path, Path]:
    """``(info file, lock file)`` of database ``name``."""
    if not isinstance(name, str) or not DATABASE_NAME_RE.fullmatch(name):
        raise ConfigError("name", name, "must be a registered database name (letters, digits, '_', '.', '-')")
    return control_dir() / f"{name}{INFO_SUFFIX}", control_dir() / f"{name}{LOCK_SUFFIX}"


@dataclass(frozen=True)
class RunningMigration:
    """A migration holding (or, ``stale``, having left) a database's lock."""

    database: str
    job_id: str
    pid: int
    host: str
    started_at: str
    source: str
    target: str
    stale: bool = False  # the process ended without releasing the lock (killed)

    def job(self) -> "Optional[MigrationJob]":
        """The job record (None until the run has created it, or when it is gone)."""
        from .migration import jobstore

        try:
            return jobstore.load(self.job_id)
        except HybridRAGBackendsError:
            return None

    def describe(self) -> str:
        return (f"job {self.job_id} (process {self.pid} on {self.host}, started {self.started_at}: "
                f"{self.source} -> {self.target})")

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _read_info(path: Path, name: str, stale: bool) -> Optional[RunningMigration]:
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raw = {}  # being written, or damaged: the lock still says whether a run holds it
    if not isinstance(raw, dict):
        raw = {}

    def text(key: str) -> str:
        return str(raw.get(key) or "?")

    pid = raw.get("pid")
    return RunningMigration(name, text("job_id"), pid if isinstance(pid, int) else -1, text("host"),
                            text("started_at"), text("source"), text("target"), stale)


def migration_lock(name: str) -> Optional[RunningMigration]:
    """The migration lock of database ``name``: None when there is none; a :class:`RunningMigration`
    otherwise, ``stale`` when the process that took it ended without releasing it."""
    info, lock_path = lock_files(name)
    if not info.exists():
        return None
    probe = FileLock(str(lock_path), thread_local=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return _read_info(info, name, stale=False)
    except OSError:  # cannot even open the lock file: say what the info file says
        return _read_info(info, name, stale=False)
    try:
        # read again under the lock: a run that just ended removed its file before releasing the lock
        return _read_info(info, name, stale=True)
    finally:
        probe.release()


def migration_in_progress(name: str) -> Optional[RunningMigration]:
    """The migration of registered database ``name`` running now (job id, process, source and target),
    or None. A lock left by a killed process is not a running migration (see :func:`migration_lock`)."""
    found = migration_lock(name)
    return found if found is not None and not found.stale else None


class DatabaseMigrationLock:
    """The locks of the databases one migration touches; :meth:`acquire` before the job exists,
    :meth:`release` when the run ends (the OS releases them if the process dies first)."""

    def __init__(self, names: Iterable[str], *, source: str, target: str) -> None:
        self.names = sorted(set(names))  # one order for every process: no two runs wait on each other
        self.source, self.target = source, target
        self.taken_over: List[RunningMigration] = []  # stale locks this run took over
        self._held: List[Tuple[FileLock, Path]] = []

    def acquire(self, job_id: str) -> List[RunningMigration]:
        """Lock every database; DatabaseBusy (exit 2) naming the running job when one is taken.
        Returns the stale locks taken over (left by killed runs)."""
        for name in self.names:
            info, lock_path = lock_files(name)
            lock = FileLock(str(lock_path), thread_local=False)
            try:
                lock.acquire(timeout=ACQUIRE_TIMEOUT_S, poll_interval=0.05)
            except Timeout:
                self.release()
                running = _read_info(info, name, stale=False)
                who = running.describe() if running else "another process (starting)"
                hint = f" (see 'hybridrag-backends jobs show {running.job_id}')" if running and running.job_id != "?" else ""
                raise DatabaseBusy(
                    f"database {name!r} is being migrated by {who}; wait for it to finish{hint}, or stop that "
                    f"process and continue its job with --resume"
                ) from None
            except OSError as exc:
                self.release()
                raise MigrationError(f"cannot create the migration lock {lock_path} ({exc.strerror or exc}); "
                                     f"set HYBRIDRAG_HOME to a writable folder") from None
            self._held.append((lock, info))
            left = _read_info(info, name, stale=True)
            if left is not None:
                self.taken_over.append(left)
            record = {"job_id": job_id, "pid": os.getpid(), "host": socket.gethostname(),
                      "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "source": self.source, "target": self.target}
            write_atomic(info, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        return list(self.taken_over)

    def release(self) -> None:
        while self._held:
            lock, info = self._held.pop()
            info.unlink(missing_ok=True)  # still holding the lock: nobody else wrote it
            lock.release()


def databases_involved(source: "ResolvedTarget", target: "ResolvedTarget") -> List[str]:
    """Registered databases a migration from ``source`` to ``target`` touches: the names given, and
    every entry whose location is the source's or the target's (a working dir given as a path)."""
    names = {t.name for t in (source, target) if t.name}
    return sorted(names | set(databases_at({source.location, target.location})))


def databases_at(locations: "set[str]") -> List[str]:
    """Names of the usable registry entries whose location is one of ``locations`` (a broken
    registry, or an entry no plugin provides, gives nothing rather than an error)."""
    from .plugins import get_manager
    from .registry import Registry, validate_entry

    try:
        entries = Registry.load().entries()
    except HybridRAGBackendsError:
        return []
    providers = get_manager().providers
    found = []
    for entry in entries:
        provider = providers.get(backend_name(entry.backend_type))
        if provider is None:
            continue
        try:
            where = provider.describe(validate_entry(entry))
        except Exception:  # noqa: BLE001 - an entry its provider cannot describe is not a match
            continue
        if where in locations:
            found.append(entry.name)
    return found
