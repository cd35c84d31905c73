"""hybridrag-backends: pluggable storage backends for LightRAG-based HybridRAG.

Public API: the spec's data model, the provider contract, the plugin manager
and the HybridRAG integration helpers.
"""

from .hookspecs import hookimpl
from .migration.job import MigrationCheckpoint, MigrationJob, MigrationStatus
from .models import BackendConfig, BackendType, DatabaseEntry, StorageMetrics
from .plugins import get_manager, get_provider
from .provider import BackendProvider, BackendSession, Check, ReadBatch, Record, RejectedRecord, StoreInfo, StoreKind

__version__ = "0.1.0"

__all__ = [
    "BackendConfig",
    "BackendProvider",
    "BackendSession",
    "BackendType",
    "Check",
    "DatabaseEntry",
    "MigrationCheckpoint",
    "MigrationJob",
    "MigrationStatus",
    "ReadBatch",
    "Record",
    "RejectedRecord",
    "StorageMetrics",
    "StoreInfo",
    "StoreKind",
    "get_manager",
    "get_provider",
    "hookimpl",
    "__version__",
]
