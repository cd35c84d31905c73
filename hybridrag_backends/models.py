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
* ``from_connection_string(conn_str, **overrides)`` let separate fields override
  the URI; ``connection_string`` is the connection (what HybridRAG's setup wizard
  and ``backend migrate`` write), so host, port, user, password, database and
  sslmode come from it and separate fields fill only what it lacks.
* ``DatabaseEntry`` had only the spec's eight keys, so HybridRAG's own registry
  files (``model``, ``recursive``, ``created_at``, ``model_config``...) could not be
  read. It now has every key of HybridRAG's ``DatabaseEntry`` (see
  :data:`HYBRIDRAG_ENTRY_KEYS`), keeps any other key in ``extra``, and
  :meth:`DatabaseEntry.get_backend_config` reads the stored config the way
  HybridRAG writes it: ``backend_config.workspace`` is the workspace for every
  backend, ``model_config.embedding_model`` / ``embedding_dim`` name the
  PostgreSQL vector tables, keys it does not know are ignored (and kept in the
  file), and the password comes from the file (literal, or a ``${VAR}`` written
  by earlier versions of this package) or else from the environment variable
  named by ``backend_config.extra_options.password_env`` (default
  ``POSTGRES_PASSWORD`` / ``MONGO_PASSWORD``), as LightRAG and HybridRAG read it.
* PostgreSQL workspaces may contain ``-`` (HybridRAG names the workspace after
  the database, e.g. ``my-project``); LightRAG 1.5.7 maps every character outside
  ``[A-Za-z0-9_]`` to ``_`` in the AGE graph name, and rows are keyed by the
  workspace value as it is.
* ``connection_string`` is validated as a PostgreSQL URI only for the postgres
  backend (HybridRAG stores other backends' URIs in it too).
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
# PostgreSQL workspace values become part of AGE graph names (<ws>_chunk_entity_relation, LightRAG maps
# '-' to '_'), so they are plain identifiers plus '-'; this also makes injection through them impossible.
PG_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,39}$")


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
    postgres_password: Optional[str] = None  # a literal, or a ${ENV_VAR} reference resolved from the environment
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
                "postgres_workspace", self.postgres_workspace, "must be 1-40 letters, digits, '_' or '-'"
            )
        if self.workspace and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", self.workspace):
            raise ConfigError("workspace", self.workspace, "must be letters, digits, '_' or '-' (at most 64)")
        if not isinstance(self.extra_options, dict):
            raise ConfigError("extra_options", self.extra_options, "must be a mapping")
        if self.connection_string is not None and backend_name(self.backend_type) == "postgres":
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
    def from_connection_string(cls, conn_str: str, **fields: Any) -> "BackendConfig":
        """Parse ``postgresql://user:pass@host:port/database?sslmode=...``.

        ``connection_string`` is the connection: host, port, user, password,
        database and sslmode come from it; ``fields`` (separate settings such as
        ``postgres_port``) fill only what it lacks, then the defaults. Other
        fields (workspace, index settings...) are taken as given.

        SPEC FIX: keeps ``sslmode``, percent-decodes user, password and database,
        and the URI wins over separate fields (see module docstring).
        """
        parts = parse_postgres_uri(conn_str)
        from_uri = {
            "postgres_host": parts["host"],
            "postgres_port": parts["port"],
            "postgres_user": parts["user"],
            "postgres_password": parts["password"],
            "postgres_database": parts["database"],
            "postgres_ssl_mode": parts["sslmode"],
        }
        kwargs: Dict[str, Any] = {"backend_type": BackendType.POSTGRESQL, **fields, "connection_string": conn_str}
        for name, value in from_uri.items():
            if value is not None:
                kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backend_type"] = backend_name(self.backend_type)
        return d


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(BackendConfig))


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


# Every key of HybridRAG's DatabaseEntry (src/database_registry.py), in its order: what a registry
# entry may hold besides keys of its own (kept in DatabaseEntry.extra).
HYBRIDRAG_ENTRY_KEYS = (
    "name", "path", "source_folder", "source_type", "auto_watch", "watch_interval", "model", "recursive",
    "file_extensions", "preprocessing_pipeline", "created_at", "last_sync", "description", "specstory_config",
    "api_config", "schema_config", "backend_type", "backend_config", "model_config", "ingestion_mode",
    "spoonfeed_files_per_day", "max_daily_cost_usd", "max_run_cost_usd", "fallback_llm_model", "fallback_tiers",
    "fallback_llm_api_base", "fallback_llm_num_ctx", "fallback_trigger",
)
#: A registry name this package accepts (HybridRAG's own rule is stricter: ``registry.HYBRIDRAG_NAME``); names
#: are also used as file names under ``HYBRIDRAG_HOME`` (migration locks, ingestion history).
DATABASE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: ``backend_config.extra_options`` key (this package's own; HybridRAG's BackendConfig keeps
#: ``extra_options`` without reading it) naming the environment variable that holds the password.
PASSWORD_ENV_KEY = "password_env"
#: Where the password comes from when the entry names no variable (what LightRAG itself reads).
DEFAULT_PASSWORD_ENV = {"postgres": "POSTGRES_PASSWORD", "mongodb": "MONGO_PASSWORD"}


@dataclass
class DatabaseEntry:
    """Registry entry for a HybridRAG database.

    The fields are HybridRAG's ``DatabaseEntry`` keys (SPEC FIX: the spec had the
    first eight only). ``None`` means "not in the file" for every field HybridRAG
    gives a default of its own; ``extra`` holds any other key, verbatim.
    """

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

    # HybridRAG's other keys (SPEC FIX): kept and written back as they are.
    model: Optional[str] = None
    recursive: Optional[bool] = None
    file_extensions: Optional[List[Any]] = None
    preprocessing_pipeline: Optional[List[Any]] = None
    created_at: Optional[Any] = None
    last_sync: Optional[Any] = None
    description: Optional[str] = None
    specstory_config: Optional[Dict[str, Any]] = None
    api_config: Optional[Dict[str, Any]] = None
    schema_config: Optional[Dict[str, Any]] = None
    model_config: Optional[Dict[str, Any]] = None  # HybridRAG's models: llm_model, embedding_model, embedding_dim...
    ingestion_mode: Optional[str] = None
    spoonfeed_files_per_day: Optional[Any] = None
    max_daily_cost_usd: Optional[Any] = None
    max_run_cost_usd: Optional[Any] = None
    fallback_llm_model: Optional[str] = None
    fallback_tiers: Optional[Any] = None
    fallback_llm_api_base: Optional[str] = None
    fallback_llm_num_ctx: Optional[Any] = None
    fallback_trigger: Optional[Any] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # keys HybridRAG's DatabaseEntry does not have

    def __post_init__(self) -> None:
        self.backend_type = coerce_backend_type(self.backend_type)  # type: ignore[assignment]
        if not self.name or not DATABASE_NAME_RE.fullmatch(self.name):
            raise ConfigError("name", self.name, "must be letters, digits, '_', '.' or '-' (at most 128)")
        self.watch_interval = _check_int("watch_interval", self.watch_interval, 1, 10**7)

    def __repr__(self) -> str:
        """The dataclass repr with secret values masked (a HybridRAG file may hold literal passwords)."""
        from .registry import masked

        shown = ", ".join(f"{f.name}={masked(getattr(self, f.name), f.name)!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({shown})"

    @property
    def password_env(self) -> str:
        """The environment variable the password comes from when the file holds none ("" for JSON)."""
        extra = (self.backend_config or {}).get("extra_options")
        named = extra.get(PASSWORD_ENV_KEY) if isinstance(extra, dict) else None
        return str(named) if named else DEFAULT_PASSWORD_ENV.get(backend_name(self.backend_type), "")

    def get_backend_config(self, env: Optional[Dict[str, str]] = None, *, resolve_secrets: bool = True) -> BackendConfig:
        """Construct BackendConfig from stored settings, read the way HybridRAG writes them.

        * Keys BackendConfig does not have (HybridRAG's or another tool's) are
          ignored here and stay in the file. ``backend_config.backend_type``
          (HybridRAG writes it) gives way to the entry's ``backend_type``.
        * ``connection_string`` is the connection (see
          :meth:`BackendConfig.from_connection_string`); for MongoDB it is the
          URI when ``mongo_uri`` is absent.
        * ``workspace`` is the workspace for every backend (``postgres_workspace``,
          when also given, wins for PostgreSQL).
        * ``model_config.embedding_model`` / ``embedding_dim`` fill the config's
          when it has none (they name PostgreSQL's vector tables).
        * For a JSON entry the entry's ``path`` is the working dir unless the
          config names one.
        * Password: the one in the file (literal, or a ``${VAR}`` reference
          written by earlier versions of this package), else the variable named by
          ``extra_options.password_env`` (an error when unset), else the
          backend's default variable when set (``POSTGRES_PASSWORD`` /
          ``MONGO_PASSWORD``), as LightRAG reads it. References are resolved
          from ``env`` (default ``os.environ``) unless ``resolve_secrets`` is
          False (checking or describing an entry whose variables may be unset now).
        """
        import os

        from .secrets import is_env_ref, resolve_env_refs, resolve_uri_refs

        env = os.environ if env is None else env
        kind = backend_name(self.backend_type)
        stored = {k: v for k, v in (self.backend_config or {}).items() if k in CONFIG_FIELDS and k != "backend_type"}
        if kind == "postgres" and stored.get("workspace") and "postgres_workspace" not in stored:
            stored["postgres_workspace"] = stored["workspace"]
        model_config = self.model_config if isinstance(self.model_config, dict) else {}
        for key in ("embedding_model", "embedding_dim"):
            if stored.get(key) is None and model_config.get(key) not in (None, ""):
                stored[key] = model_config[key]
        if kind == "mongodb" and not stored.get("mongo_uri") and str(stored.get("connection_string") or "").startswith("mongodb"):
            stored["mongo_uri"] = stored.pop("connection_string")

        connection = stored.pop("connection_string", None) if kind == "postgres" else None
        cfg = (BackendConfig.from_connection_string(connection, backend_type=self.backend_type, **stored) if connection
               else BackendConfig(backend_type=self.backend_type, **stored))
        var = self.password_env
        named = var != DEFAULT_PASSWORD_ENV.get(kind, "")  # a variable the entry names must be set
        if kind == "postgres" and cfg.postgres_password is None and (named or var in env):
            cfg.postgres_password = f"${{{var}}}"
        if kind == "mongodb" and cfg.mongo_uri and (named or var in env):
            cfg.mongo_uri = _uri_with_password_ref(cfg.mongo_uri, var)
        if resolve_secrets:
            if cfg.postgres_password is not None and is_env_ref(cfg.postgres_password):
                cfg.postgres_password = resolve_env_refs(cfg.postgres_password, env, field="postgres_password")
            cfg.connection_string = resolve_uri_refs(cfg.connection_string, env, field="connection_string")
            cfg.mongo_uri = resolve_uri_refs(cfg.mongo_uri, env, field="mongo_uri")
        if cfg.working_dir is None and kind == "json":
            cfg.working_dir = self.path
        return cfg


def _uri_with_password_ref(uri: str, var: str) -> str:
    """``uri`` with ``${var}`` as its password when it has a user and no password of its own."""
    scheme, sep, rest = uri.partition("://")
    netloc = rest.split("/", 1)[0]
    if not sep or "@" not in netloc:
        return uri
    userinfo, _, host = netloc.rpartition("@")
    if ":" in userinfo:
        return uri  # a password (literal or reference) is already there
    return f"{scheme}://{userinfo}:${{{var}}}@{host}{rest[len(netloc):]}"


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
