"""MigrationStatus / MigrationCheckpoint / MigrationJob from the spec, with enforced transitions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Dict, List, Optional

from ..errors import InvalidTransition
from ..models import BackendType, backend_name, coerce_backend_type
from ..secrets import redact_fields

# The job's free-text fields: redacted in every record of a job (job file, the target's job row or
# document, CLI output). Everything else - checkpoints' last keys, verification examples - is data
# and is kept exactly (a record key may well read "pwd=...").
MESSAGE_FIELDS = ("last_error", "database_name", "notes")


class MigrationStatus(str, Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value


# The spec's diagram: PENDING -> IN_PROGRESS -> COMPLETED; IN_PROGRESS -> FAILED | PAUSED;
# FAILED -> IN_PROGRESS and PAUSED -> IN_PROGRESS (resume). Nothing else.
ALLOWED_TRANSITIONS: Dict[MigrationStatus, frozenset] = {
    MigrationStatus.PENDING: frozenset({MigrationStatus.IN_PROGRESS}),
    MigrationStatus.IN_PROGRESS: frozenset(
        {MigrationStatus.COMPLETED, MigrationStatus.FAILED, MigrationStatus.PAUSED}
    ),
    MigrationStatus.FAILED: frozenset({MigrationStatus.IN_PROGRESS}),
    MigrationStatus.PAUSED: frozenset({MigrationStatus.IN_PROGRESS}),
    MigrationStatus.COMPLETED: frozenset(),
}


@dataclass
class MigrationCheckpoint:
    """Checkpoint for resumable migration (one per store)."""

    store_name: str  # e.g., "kv_store_full_docs"
    last_key: Optional[str]  # Last successfully migrated key
    migrated_count: int  # Keys migrated in this store
    total_count: int  # Total keys in source store
    # Added: the store is fully copied, records rejected in it, and an opaque
    # position the target uses to resume exactly (e.g. a byte offset of a
    # partially written JSON file). Committed together with the batch.
    done: bool = False
    rejected_count: int = 0
    target_position: Optional[Dict[str, Any]] = None
    # Added: the source side of the store's verification digest, summed while copying (see
    # migration.verify.SourceDigest); None when the source is read again at verification.
    source_digest: Optional[Dict[str, Any]] = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class MigrationJob:
    """Represents a migration operation."""

    job_id: str
    database_name: str
    source_backend: BackendType
    target_backend: BackendType

    # Progress tracking
    status: MigrationStatus = MigrationStatus.PENDING
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None

    # Checkpoint for resume
    checkpoints: List[MigrationCheckpoint] = field(default_factory=list)
    current_store: Optional[str] = None

    # Statistics
    total_records: int = 0
    migrated_records: int = 0
    failed_records: int = 0

    # Error tracking
    last_error: Optional[str] = None

    # Added: where from and to (credential-free descriptions), options, verification.
    # SPEC FIX: "source_backend must differ from target_backend" is kept as
    # "source and target must differ": the same backend type is allowed between
    # different locations or workspaces (the engine refuses the same location).
    source: str = ""
    target: str = ""
    workspace: Optional[str] = None
    batch_size: int = 1000
    created_at: datetime = field(default_factory=_now)
    verification: Optional[Dict[str, Any]] = None
    options: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source_backend = coerce_backend_type(self.source_backend)  # type: ignore[assignment]
        self.target_backend = coerce_backend_type(self.target_backend)  # type: ignore[assignment]
        self.status = MigrationStatus(self.status)

    @property
    def progress_percent(self) -> float:
        if self.total_records == 0:
            return 0.0
        return (self.migrated_records / self.total_records) * 100

    @property
    def is_resumable(self) -> bool:
        return self.status in (MigrationStatus.PAUSED, MigrationStatus.FAILED)

    def transition(self, new_status: MigrationStatus, error: Optional[str] = None) -> None:
        """Move to ``new_status``; raises InvalidTransition for a change the spec forbids."""
        new_status = MigrationStatus(new_status)
        if new_status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"job {self.job_id}: cannot go from {self.status.value} to {new_status.value}"
            )
        self.status = new_status
        if new_status is MigrationStatus.IN_PROGRESS and self.started_at is None:
            self.started_at = _now()
        if new_status is MigrationStatus.COMPLETED:
            self.completed_at = _now()
        if error is not None:
            self.last_error = error

    def checkpoint(self, store_name: str) -> Optional[MigrationCheckpoint]:
        for cp in self.checkpoints:
            if cp.store_name == store_name:
                return cp
        return None

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source_backend"] = backend_name(self.source_backend)
        d["target_backend"] = backend_name(self.target_backend)
        d["status"] = self.status.value
        for k in ("started_at", "completed_at", "created_at"):
            d[k] = d[k].isoformat() if d[k] else None
        d["progress_percent"] = round(self.progress_percent, 2)
        return redact_fields(d, MESSAGE_FIELDS)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "MigrationJob":
        d = dict(d)
        d.pop("progress_percent", None)
        for k in ("started_at", "completed_at", "created_at"):
            if d.get(k):
                d[k] = datetime.fromisoformat(d[k])
            elif k == "created_at":
                d.pop(k, None)
        d["checkpoints"] = [MigrationCheckpoint(**cp) for cp in d.get("checkpoints", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
