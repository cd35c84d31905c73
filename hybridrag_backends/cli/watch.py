"""What ``status NAME`` adds for a registered database: a migration running on it (or the stale lock of a
killed one, :mod:`hybridrag_backends.watcher`) and the ingestion slowdown check
(:mod:`hybridrag_backends.ingestion`). JSON keys in :mod:`hybridrag_backends.cli.main`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from ..errors import HybridRAGBackendsError
from ..ingestion import ingestion_check, slowdown_warning
from ..registry import Registry
from ..targets import ResolvedTarget
from ..watcher import migration_lock


@dataclass
class WatchReport:
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # for --verbose
    json: Dict[str, Any] = field(default_factory=lambda: {"migration": None, "ingestion": None})


def watch_report(resolved: ResolvedTarget) -> WatchReport:
    report = WatchReport()
    if resolved.name is None:  # a path or URL: no registered database to speak of
        return report
    name = resolved.name
    lock = migration_lock(name)
    if lock is not None:
        report.json["migration"] = lock.to_dict()
        if lock.stale:
            report.warnings.append(
                f"the migration of {name!r} by {lock.describe()} ended without releasing its lock (that process is "
                f"gone: the lock is stale); see 'hybridrag-backends jobs show {lock.job_id}' and continue it by "
                f"running the same migrate command with --resume {lock.job_id}")
        else:
            report.warnings.append(f"{name!r} is being migrated by {lock.describe()}; HybridRAG's watcher should wait "
                                   f"until it ends (hybridrag_backends.hybridrag.migration_in_progress)")
    entry = Registry.load().get(name)
    if entry is None:
        return report
    try:
        check = ingestion_check(entry)
    except HybridRAGBackendsError as exc:  # an unreadable history must not hide the database's status
        report.warnings.append(str(exc))
        return report
    report.json["ingestion"] = check.to_dict()
    report.notes.append(check.note())
    if check.slowed:
        report.warnings.append(slowdown_warning(entry, check))
    return report
