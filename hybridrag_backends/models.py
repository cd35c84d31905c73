"""The user's data model (``shared/spec/data-model.md``): names, fields and defaults are public API.

Where the spec's sketch was wrong it is fixed here, each fix marked ``SPEC FIX``:

* ``from_connection_string`` dropped ``sslmode`` and did not percent-decode the
  user, password or database (``urlparse().password`` returns the raw
  ``p%40ss``); both are fixed, and the URI is validated.
* ``get_storage_classes`` / ``get_env_vars`` were if/elif chains over the enum;
  they now ask the provider plugin for the backend, so a third-party backend
  works the same way, and the env vars cover everything LightRAG 1.5.7 reads
  that the config holds (SSL mode, max connections, index type, HNSW
  settings, workspace).
* The sketch had no place for a JSON working directory, a Mongo URI, or the
  embedding model name and dimension that LightRAG names PostgreSQL vector
  tables after; fields were added for them (all optional, defaults keep the
  sketch's behaviour).
* ``StorageMetrics.check_migration_warnings`` used a hard-coded 500 MB and
  ignored ``total_size_warning_mb``; it now takes the config's thresholds and
  names the exact command to run.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ConfigError


class BackendType(str, Enum):
    """Supported storage backend types (first-party). Parsing is case-insensitive."""

    JSON = "json"  # Default - JSON files + NanoVectorDB + NetworkX
    POSTGRESQL = "postgres"  # PostgreSQL + pgvector + AGE
    MONGODB = "mongodb"  # MongoDB

    @classmethod
    def default(cls) -> "BackendType":
        return cls.JSON

    @classmethod
    def _missing_(cls, value: object) -> "BackendType | None":
        if isinstance(value, str):
            low = value.strip().lower()
            aliases = {"postgresql": "postgres", "pg": "postgres", "mongo": "mongodb"}
            low = aliases.get(low, low)
            for member in cls:
                if member.value == low:
                    return member
        return None

    @classmethod
    def parse(cls, value: "str | BackendType") -> "BackendType":
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ConfigError("backend_type", value, f"must be one of {allowed}") from None

    def __str__(self) -> str:  # "postgres", not "BackendType.POSTGRESQL"
        return self.value


def backend_name(backend_type: "BackendType | str") -> str:
    """The provider name for a backend type; third-party backends are plain strings."""
    return backend_type.value if isinstance(backend_type, BackendType) else str(backend_type).lower()


def coerce_backend_type(value: "BackendType | str") -> "BackendType | str":
    """First-party names become BackendType; other names stay strings for plugins to claim."""
    if isinstance(value, BackendType):
        return value
    try:
        return BackendType(value)
    except ValueError:
        if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", value.strip().lower()):
            raise ConfigError("backend_type", value, "must be json, postgres, mongodb or a plugin's backend name") from None
        return value.strip().lower()


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VECTOR_INDEX_TYPES = ("hnsw", "ivfflat")
# PostgreSQL workspace values become part of AGE graph names (<ws>_chunk_entity_relation),
# so they must be plain identifiers; this also makes injection through them impossible.
PG_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_]{1,40}$")


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool):
                raise ValueError
            value = int(str(value).strip())
        except ValueError:
            raise ConfigError(name, value, f"must be a whole number from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, value, f"must be from {lo} to {hi}")
    return value


@dataclass
class BackendConfig:
    """Configuration for a storage backend. Validated on construction (ConfigError, a ValueError)."""

    # Backend type selection
    backend_type: BackendType = BackendType.JSON

    # PostgreSQL-specific settings
    postgres_host: str = "localhost"
    postgres_port: int = 5432
    postgres_user: str = "hybridrag"
    postgres_password: Optional[str] = None  # a literal, or a ${ENV_VAR} reference (what the registry stores)
    postgres_database: str = "hybridrag"
    postgres_workspace: str = "default"  # Logical isolation
    postgres_ssl_mode: str = "prefer"  # disable, allow, prefer, require, verify-ca, verify-full
    postgres_max_connections: int = 10

    # Connection string (alternative to individual params)
    connection_string: Optional[str] = None

    # Vector index configuration
    vector_index_type: str = "hnsw"  # hnsw or ivfflat
    hnsw_m: int = 16
    hnsw_ef: int = 64

    # Extra backend-specific options
    extra_options: Dict[str, Any] = field(default_factory=dict)

    # Monitoring thresholds (for JSON backend warnings)
    file_size_warning_mb: int = 500  # Warn when any file exceeds this
    total_size_warning_mb: int = 2048  # Warn when total exceeds 2GB
    performance_degradation_pct: int = 50  # Warn when ingestion slows by this %

    # SPEC FIX: fields the sketch lacked (see module docstring).
    working_dir: Optional[str] = None  # JSON backend: LightRAG working_dir
    workspace: str = ""  # JSON / MongoDB workspace ("" = LightRAG's default)
    mongo_uri: Optional[str] = None
    mongo_database: str = "LightRAG"
    embedding_model: Optional[str] = None  # LightRAG names PG vector tables after it
    embedding_dim: Optional[int] = None

    def __repr__(self) -> str:
        """The dataclass repr with secrets masked: the password (unless a ``${VAR}`` reference) and any
        password inside a URI or an extra option. The fields themselves keep the real values."""
        from .secrets import MASK, is_env_ref, redact_strings

        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "postgres_password" and value is not None and not is_env_ref(value):
                value = MASK
            elif isinstance(value, (str, dict)) and not isinstance(value, Enum):
                value = redact_strings(value)
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __post_init__(self) -> None:
        self.backend_type = coerce_backend_type(self.backend_type)  # type: ignore[assignment]
        self.postgres_port = _check_int("postgres_port", self.postgres_port, 1, 65535)
        self.postgres_max_connections = _check_int("postgres_max_connections", self.postgres_max_connections, 1, 100)
        self.hnsw_m = _check_int("hnsw_m", self.hnsw_m, 4, 64)
        self.hnsw_ef = _check_int("hnsw_ef", self.hnsw_ef, 16, 256)
        self.file_size_warning_mb = _check_int("file_size_warning_mb", self.file_size_warning_mb, 1, 10**7)
        self.total_size_warning_mb = _check_int("total_size_warning_mb", self.total_size_warning_mb, 1, 10**8)
        self.performance_degradation_pct = _check_int("performance_degradation_pct", self.performance_degradation_pct, 1, 100)
        if self.embedding_dim is not None:
            self.embedding_dim = _check_int("embedding_dim", self.embedding_dim, 1, 65536)
        vit = str(self.vector_index_type).strip().lower()
        if vit not in VECTOR_INDEX_TYPES:
            raise ConfigError("vector_index_type", self.vector_index_type, "must be 'hnsw' or 'ivfflat'")
        self.vector_index_type = vit
        ssl = str(self.postgres_ssl_mode).strip().lower()
        if ssl not in SSL_MODES:
            raise ConfigError("postgres_ssl_mode", self.postgres_ssl_mode, "must be one of " + ", ".join(SSL_MODES))
        self.postgres_ssl_mode = ssl
        if not PG_WORKSPACE_RE.match(str(self.postgres_workspace)):
            raise ConfigError(
                "postgres_workspace", self.postgres_workspace, "must be 1-40 letters, digits or underscores"
            )
        if self.workspace and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", self.workspace):
            raise ConfigError("workspace", self.workspace, "must be letters, digits, '_' or '-' (at most 64)")
        if not isinstance(self.extra_options, dict):
            raise ConfigError("extra_options", self.extra_options, "must be a mapping")
        if self.connection_string is not None:
            parse_postgres_uri(self.connection_string)  # raises ConfigError when malformed

    # -- workspace: the spec keeps PostgreSQL's in postgres_workspace, the others in workspace --

    @property
    def workspace_value(self) -> str:
        return getattr(self, workspace_field(self.backend_type))

    def with_workspace(self, workspace: str) -> "BackendConfig":
        return dataclasses.replace(self, **{workspace_field(self.backend_type): workspace})

    # -- provider-backed views (SPEC FIX: no if/elif over the enum) ---------------

    def get_storage_classes(self) -> Dict[str, str]:
        """LightRAG storage class names for this backend, from its provider plugin."""
        from .plugins import get_provider

        return get_provider(self.backend_type).storage_classes(self)

    def get_env_vars(self) -> Dict[str, str]:
        """Environment variables LightRAG and LightRAG Server read for this backend
        (:func:`hybridrag_backends.hybridrag.lightrag_env`: storage class names, workspace, the
        provider plugin's own variables).

        Includes the password when one is configured (resolved from ``${VAR}``);
        never print this mapping without redaction.
        """
        from .hybridrag import lightrag_env
        from .plugins import get_provider

        return lightrag_env(get_provider(self.backend_type), self)

    @classmethod
    def from_connection_string(cls, conn_str: str, **overrides: Any) -> "BackendConfig":
        """Parse ``postgresql://user:pass@host:port/database?sslmode=...``.

        SPEC FIX: keeps ``sslmode`` and percent-decodes user, password and database.
        """
        parts = parse_postgres_uri(conn_str)
        kwargs: Dict[str, Any] = dict(
            backend_type=BackendType.POSTGRESQL,
            postgres_host=parts["host"] or "localhost",
            postgres_port=parts["port"] or 5432,
            postgres_user=parts["user"] or "hybridrag",
            postgres_password=parts["password"],
            postgres_database=parts["database"] or "hybridrag",
            connection_string=conn_str,
        )
        if parts["sslmode"]:
            kwargs["postgres_ssl_mode"] = parts["sslmode"]
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backend_type"] = backend_name(self.backend_type)
        return d


def workspace_field(backend_type: "BackendType | str") -> str:
    """The BackendConfig field that holds the LightRAG workspace for a backend."""
    return "postgres_workspace" if backend_name(backend_type) == "postgres" else "workspace"


def parse_postgres_uri(uri: str) -> Dict[str, Any]:
    """Split and validate a PostgreSQL URI; user, password and database come back decoded."""
    if not isinstance(uri, str):
        raise ConfigError("connection_string", "<not a string>", "must be a postgresql:// URI")
    from .secrets import QUERY_PASSWORD_REFUSED, query_password, redact

    shown = redact(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("connection_string", shown, f"is not a valid PostgreSQL URI ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("connection_string", shown, "must start with postgresql:// or postgres://")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError("connection_string", shown, "port must be from 1 to 65535")
    if query_password(uri):
        # Refused rather than used: the registry keeps a URI's password out of the file only in the
        # user-info part (as a ${VAR} reference), and the URI is stored and shown elsewhere as is.
        raise ConfigError("connection_string", shown, QUERY_PASSWORD_REFUSED)
    query = parse_qs(parts.query)
    sslmode = query.get("sslmode", [None])[-1]
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ConfigError("connection_string", shown, "sslmode must be one of " + ", ".join(SSL_MODES))
    raw_database = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in raw_database:  # checked before decoding: an encoded %2F is a legal name character
        raise ConfigError("connection_string", shown, "database name must not contain '/' (percent-encode it as %2F)")
    database = unquote(raw_database)
    return {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username) if parts.username is not None else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "database": database or None,
        "sslmode": sslmode,
    }


@dataclass
class DatabaseEntry:
    """Registry entry for a HybridRAG database."""

    # Existing fields
    name: str
    path: str
    source_folder: Optional[str] = None
    source_type: str = "filesystem"
    auto_watch: bool = False
    watch_interval: int = 300

    # NEW: Backend configuration
    backend_type: BackendType = BackendType.JSON
    backend_config: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        self.backend_type = coerce_backend_type(self.backend_type)  # type: ignore[assignment]
        if not self.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", self.name):
            raise ConfigError("name", self.name, "must be letters, digits, '_', '.' or '-' (at most 128)")
        self.watch_interval = _check_int("watch_interval", self.watch_interval, 1, 10**7)

    def get_backend_config(self, env: Optional[Dict[str, str]] = None, *, resolve_secrets: bool = True) -> BackendConfig:
        """Construct BackendConfig from stored settings.

        For a JSON entry the entry's ``path`` is the working dir unless the
        config names one. ``${VAR}`` password references (how the registry
        stores passwords) are resolved from ``env`` (default ``os.environ``),
        unless ``resolve_secrets`` is False (checking or describing an entry
        whose variables may be unset now).
        """
        from .secrets import resolve_env_refs, resolve_uri_refs

        stored = dict(self.backend_config or {})
        stored.pop("backend_type", None)
        if resolve_secrets:
            if "postgres_password" in stored:
                stored["postgres_password"] = resolve_env_refs(stored["postgres_password"], env, field="postgres_password")
            for key in ("connection_string", "mongo_uri"):
                if key in stored:
                    stored[key] = resolve_uri_refs(stored[key], env, field=key)
        cfg = BackendConfig(backend_type=self.backend_type, **stored)
        if cfg.working_dir is None and backend_name(self.backend_type) == "json":
            cfg.working_dir = self.path
        return cfg


def human_size(n: float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


@dataclass
class StorageMetrics:
    """Storage statistics for a database."""

    backend_type: BackendType

    # File sizes (JSON backend)
    file_sizes: Dict[str, int] = field(default_factory=dict)
    total_size_bytes: int = 0

    # Record counts
    entity_count: int = 0
    relation_count: int = 0
    chunk_count: int = 0
    doc_count: int = 0

    # Health status
    is_connected: bool = True
    connection_latency_ms: Optional[float] = None

    # Warnings
    warnings: List[str] = field(default_factory=list)

    # Added: records per store (store name -> count), health and backend details
    store_counts: Dict[str, int] = field(default_factory=dict)
    health: str = "healthy"  # healthy | degraded | error
    details: Dict[str, Any] = field(default_factory=dict)

    # Migration threshold (default 500MB); the config's thresholds take precedence.
    MIGRATION_WARNING_THRESHOLD = 500 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, size in self.file_sizes.items():
            if size < 0:
                raise ConfigError(f"file_sizes[{name}]", size, "must be non-negative")

    def check_migration_warnings(
        self,
        file_size_warning_mb: Optional[int] = None,
        total_size_warning_mb: Optional[int] = None,
        migrate_command: Optional[str] = None,
    ) -> None:
        """Add a warning per file over the file threshold and one for the total.

        ``migrate_command`` is the command to run (placeholder lines may follow it, see
        :mod:`hybridrag_backends.hints`)."""
        file_limit = (
            file_size_warning_mb * 1024 * 1024 if file_size_warning_mb is not None else self.MIGRATION_WARNING_THRESHOLD
        )
        advice = f"Consider migrating to PostgreSQL; run: {migrate_command}" if migrate_command else (
            "Consider migrating to PostgreSQL backend."
        )
        for filename, size in self.file_sizes.items():
            if size > file_limit:
                self.warnings.append(
                    f"{filename}: {size / (1024 * 1024):.1f}MB exceeds the {file_limit // (1024 * 1024)}MB threshold. {advice}"
                )
        if total_size_warning_mb is not None and self.total_size_bytes > total_size_warning_mb * 1024 * 1024:
            self.warnings.append(
                f"total {self.total_size_bytes / (1024 * 1024):.1f}MB exceeds the {total_size_warning_mb}MB threshold. {advice}"
            )

    def to_human_readable(self) -> Dict[str, str]:
        """Convert sizes to human-readable format."""
        return {filename: human_size(size) for filename, size in self.file_sizes.items()}

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backend_type"] = backend_name(self.backend_type)
        d["total_size_human"] = human_size(self.total_size_bytes)
        return d
