"""Ingestion speed per registered database, and the slowdown check ``status NAME`` runs.

HybridRAG's seed setting ``backend_config.performance_degradation_pct`` (default 50) says how much slower
ingestion may get before it is worth moving off LightRAG's JSON files (which are loaded whole and rewritten
whole on every commit, so ingestion slows as they grow). What this module measures:

* a **run** is one ingestion the caller timed: ``record_ingestion(name, documents, seconds)``, or
  :func:`timed_ainsert`, which times LightRAG's ``ainsert`` and records it; its **rate** is documents per
  second. Each run is recorded with the database's backend at that moment.
* the **baseline** of a backend is the median rate of the first ``BASELINE_RUNS`` (5) runs recorded for the
  database on that backend. It is set once and kept (dropping old runs does not move it); a migration to
  another backend starts a baseline of its own there.
* **recent** is the median rate of the last ``RECENT_RUNS`` (3) runs on the current backend recorded after
  its baseline runs (baseline and recent never share a run).
* the **slowdown** is ``(baseline - recent) / baseline`` in percent. ``status NAME`` warns when it is at
  least ``performance_degradation_pct``, with the command that moves the database to PostgreSQL and
  switches its entry. With fewer than ``BASELINE_RUNS + RECENT_RUNS`` runs on the current backend there is
  nothing to compare: no warning, and ``status NAME --verbose`` says how many runs there are.

History: ``$HYBRIDRAG_HOME/ingestion/NAME.json`` (``HISTORY_RUNS`` newest runs, replaced atomically under a
file lock, so the watcher and ``status`` may use it at once)::

    {"version": 1, "database": "kb", "next_seq": 12,
     "baselines": {"json": {"docs_per_second": 2.5, "runs": 5, "last_seq": 5, "set_at": "2026-..."}},
     "runs": [{"seq": 1, "at": "2026-...", "documents": 3, "seconds": 1.2, "backend": "json"}, ...]}
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import orjson
from filelock import FileLock

from .durable import write_atomic
from .errors import ConfigError, HybridRAGBackendsError, NotFoundError, RegistryError
from .models import DATABASE_NAME_RE, DatabaseEntry, backend_name, coerce_backend_type
from .registry import hybridrag_home

logger = logging.getLogger(__name__)

HISTORY_RUNS = 200
BASELINE_RUNS = 5
RECENT_RUNS = 3
HISTORY_VERSION = 1


def history_path(name: str) -> Path:
    if not isinstance(name, str) or not DATABASE_NAME_RE.fullmatch(name):
        raise ConfigError("name", name, "must be a registered database name (letters, digits, '_', '.', '-')")
    return hybridrag_home() / "ingestion" / f"{name}.json"


@dataclass(frozen=True)
class IngestionRun:
    seq: int
    at: str
    documents: int
    seconds: float
    backend: str

    @property
    def rate(self) -> float:
        """Documents per second."""
        return self.documents / self.seconds


def _load(path: Path, name: str) -> Dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"version": HISTORY_VERSION, "database": name, "next_seq": 1, "baselines": {}, "runs": []}
    except (OSError, ValueError) as exc:
        raise HybridRAGBackendsError(
            f"ingestion history {path} is unreadable ({exc}); delete it to start a new history") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not isinstance(data.get("baselines"), dict):
        raise HybridRAGBackendsError(f"ingestion history {path} is not one this package wrote; delete it to start a new history")
    return data


def _runs(data: Dict[str, Any]) -> List[IngestionRun]:
    return [IngestionRun(r["seq"], r["at"], r["documents"], r["seconds"], r["backend"]) for r in data["runs"]]


def _entry(name: str) -> DatabaseEntry:
    from .registry import Registry

    entry = Registry.load().get(name)
    if entry is None:
        raise NotFoundError(f"no database named {name!r} in the registry; record ingestion under a registered "
                            f"name (see 'hybridrag-backends db list'), or pass backend=")
    return entry


def record_ingestion(name: str, documents: int, seconds: float, *, backend: Optional[str] = None) -> IngestionRun:
    """Record that ``documents`` documents took ``seconds`` to ingest into registered database ``name``
    (its backend read from the registry unless ``backend`` is given). Returns the recorded run."""
    if isinstance(documents, bool) or not isinstance(documents, int) or documents < 1:
        raise ConfigError("documents", documents, "must be a whole number of at least 1")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError("seconds", seconds, "must be a positive number of seconds")
    path = history_path(name)
    kind = backend_name(coerce_backend_type(backend) if backend is not None else _entry(name).backend_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        data = _load(path, name)
        run = IngestionRun(int(data["next_seq"]), datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                           documents, float(seconds), kind)
        data["next_seq"] = run.seq + 1
        data["runs"] = (data["runs"] + [asdict(run)])[-HISTORY_RUNS:]
        if kind not in data["baselines"]:
            first = [r for r in _runs(data) if r.backend == kind][:BASELINE_RUNS]
            if len(first) == BASELINE_RUNS:
                data["baselines"][kind] = {"docs_per_second": statistics.median(r.rate for r in first),
                                           "runs": BASELINE_RUNS, "last_seq": first[-1].seq, "set_at": run.at}
        write_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return run


async def timed_ainsert(rag: Any, name: str, input: Any, **kwargs: Any) -> Any:  # noqa: A002 - LightRAG's name
    """``await rag.ainsert(input, **kwargs)``, timed and recorded for registered database ``name``
    (documents: the length of a list input, else 1). Returns what ``ainsert`` returns; a failed insert
    is not recorded. A history that cannot be written is logged, never raised: the insert succeeded."""
    documents = len(input) if isinstance(input, (list, tuple)) else 1
    started = time.perf_counter()
    result = await rag.ainsert(input, **kwargs)
    seconds = time.perf_counter() - started
    if documents:
        try:
            await asyncio.to_thread(record_ingestion, name, documents, max(seconds, 1e-9))
        except HybridRAGBackendsError as exc:
            logger.warning("ingestion of %s not recorded: %s", name, exc)
    return result


@dataclass
class IngestionCheck:
    """The slowdown check of one database on its current backend (see the module docstring)."""

    database: str
    backend: str
    runs: int  # runs on this backend in the history
    baseline: Optional[float]  # documents per second
    recent: Optional[float]
    threshold_pct: int

    @property
    def slowdown_pct(self) -> Optional[float]:
        if self.baseline is None or self.recent is None or self.baseline <= 0:
            return None
        return (self.baseline - self.recent) / self.baseline * 100.0

    @property
    def slowed(self) -> bool:
        return self.slowdown_pct is not None and self.slowdown_pct >= self.threshold_pct

    def note(self) -> str:
        """One line for ``status --verbose``."""
        if self.slowdown_pct is None:
            return (f"ingestion: {self.runs} run(s) recorded on {self.backend}; comparing recent ingestion with its "
                    f"baseline needs {BASELINE_RUNS + RECENT_RUNS} ({BASELINE_RUNS} for the baseline, then "
                    f"{RECENT_RUNS} recent), so there is no slowdown check yet")
        return f"ingestion: {self.comparison()}"

    def comparison(self) -> str:
        assert self.recent is not None and self.baseline is not None and self.slowdown_pct is not None
        return (f"recent {self.recent:.3g} docs/s (median of the last {RECENT_RUNS} runs) against a baseline of "
                f"{self.baseline:.3g} docs/s (median of the first {BASELINE_RUNS} on {self.backend}): "
                f"{self.slowdown_pct:.0f}% slower, warning at {self.threshold_pct}% (performance_degradation_pct)")

    def to_dict(self) -> Dict[str, Any]:
        return {"backend": self.backend, "runs": self.runs, "baseline_docs_per_second": self.baseline,
                "recent_docs_per_second": self.recent, "slowdown_pct": self.slowdown_pct,
                "threshold_pct": self.threshold_pct, "slowed": self.slowed,
                "enough_history": self.slowdown_pct is not None}


def ingestion_check(entry: DatabaseEntry) -> IngestionCheck:
    """The slowdown check of a registry entry, with its own ``performance_degradation_pct``."""
    from .registry import validate_entry

    kind = backend_name(entry.backend_type)
    data = _load(history_path(entry.name), entry.name)
    runs = [r for r in _runs(data) if r.backend == kind]
    baseline = data["baselines"].get(kind)
    after = [r for r in runs if baseline is not None and r.seq > baseline["last_seq"]][-RECENT_RUNS:]
    enough = baseline is not None and len(after) == RECENT_RUNS
    try:
        threshold = validate_entry(entry).performance_degradation_pct
    except (ConfigError, RegistryError):
        threshold = 50
    return IngestionCheck(entry.name, kind, len(runs), float(baseline["docs_per_second"]) if enough else None,
                          statistics.median(r.rate for r in after) if enough else None, threshold)


def slowdown_warning(entry: DatabaseEntry, check: IngestionCheck) -> str:
    """The ``status`` warning for a database whose ingestion slowed, with the command to run."""
    from .cutover import suggested_switch

    where = f"ingestion into {entry.name!r} has slowed down: {check.comparison()}"
    if check.backend == "json":
        return f"{where}; LightRAG's JSON files are rewritten whole on every commit, move it to PostgreSQL: {suggested_switch(entry)}"
    from .hints import run_hint

    return f"{where}; check the server: {run_hint(['hybridrag-backends', 'validate', entry.name])}"
