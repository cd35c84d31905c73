"""The PostgreSQL provider: pgvector + Apache AGE, laid out as LightRAG 1.5.7's PG storages read it.

TARGET URLs: ``postgresql://user[:password]@host[:port]/database[?query]`` (or ``postgres://``).
Query parameters besides ``sslmode``:

* ``embedding_model`` / ``embedding_dim``: LightRAG names the vector tables after them
  (``LIGHTRAG_VDB_ENTITY_<model>_<dim>d``); set them to what the reading LightRAG uses;
* ``vector_index_type`` (hnsw / ivfflat), ``hnsw_m``, ``hnsw_ef``, ``max_connections``;
* ``maintenance_work_mem`` (e.g. ``1GB``, used while building vector indexes) and
  ``defer_index=1`` (leave the vector index build for later; LightRAG builds it on its next start; only
  into tables no other workspace uses);
* ``index_strategy`` (auto / partial / incremental, as ``migrate --index-strategy``) and ``index_writers``
  (connections of an incremental load, default 2): how vector indexes shared with other workspaces are
  kept (vector_index.py).

A password in the URL is used, never shown; prefer ``${VAR}`` references in the registry.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from hybridrag_backends.models import BackendConfig, StorageMetrics
from hybridrag_backends.provider import BackendProvider, BackendSession, Check
from hybridrag_backends.secrets import resolve_env_refs, strip_password

from . import health
from .vector_index import STRATEGIES

URL_OPTIONS = {
    "embedding_model": "embedding_model",
    "embedding_dim": "embedding_dim",
    "vector_index_type": "vector_index_type",
    "hnsw_m": "hnsw_m",
    "hnsw_ef": "hnsw_ef",
    "max_connections": "postgres_max_connections",
}
EXTRA_URL_OPTIONS = ("maintenance_work_mem", "defer_index", "ivfflat_lists", "index_strategy", "index_writers")


class PostgresProvider(BackendProvider):
    name = "postgres"
    description = "PostgreSQL with pgvector and Apache AGE (LightRAG's PG* storages)"
    url_schemes = ("postgresql", "postgres")
    index_strategies = STRATEGIES  # migrate --index-strategy (vector_index.py)

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
        overrides: Dict[str, Any] = {"postgres_workspace": workspace or "default"}
        for param, field in URL_OPTIONS.items():
            if param in query:
                overrides[field] = query[param]
        extra = {k: query[k] for k in EXTRA_URL_OPTIONS if k in query}
        if extra:
            overrides["extra_options"] = extra
        config = BackendConfig.from_connection_string(target, **overrides)
        # the password lives in postgres_password only, so the stored/shown string holds none
        config.connection_string = strip_password(target)
        return config

    def describe(self, config: BackendConfig) -> str:
        return (
            f"postgres://{config.postgres_user}@{config.postgres_host}:{config.postgres_port}"
            f"/{config.postgres_database}#{config.postgres_workspace}"
        )

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        return {
            "kv_storage": "PGKVStorage",
            "vector_storage": "PGVectorStorage",
            "graph_storage": "PGGraphStorage",
            "doc_status_storage": "PGDocStatusStorage",
        }

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        """Every POSTGRES_* variable LightRAG 1.5.7 reads (kg/postgres_impl.py ClientManager.get_config)
        that the config holds."""
        env = {
            "POSTGRES_HOST": config.postgres_host,
            "POSTGRES_PORT": str(config.postgres_port),
            "POSTGRES_USER": config.postgres_user,
            "POSTGRES_DATABASE": config.postgres_database,
            "POSTGRES_WORKSPACE": config.postgres_workspace,
            "POSTGRES_MAX_CONNECTIONS": str(config.postgres_max_connections),
            "POSTGRES_VECTOR_INDEX_TYPE": config.vector_index_type.upper(),
            "POSTGRES_HNSW_M": str(config.hnsw_m),
            "POSTGRES_HNSW_EF": str(config.hnsw_ef),
        }
        # "prefer" (the default) is left out on purpose: LightRAG 1.5.7 turns an explicit
        # POSTGRES_SSL_MODE=prefer into asyncpg ssl=True, i.e. full certificate verification, which
        # fails on the self-signed certificates most servers have; unset, asyncpg does libpq's prefer.
        if config.postgres_ssl_mode != "prefer":
            env["POSTGRES_SSL_MODE"] = config.postgres_ssl_mode
        password = resolve_env_refs(config.postgres_password, field="postgres_password")
        if password is not None:
            env["POSTGRES_PASSWORD"] = password
        extra = config.extra_options or {}
        if "ivfflat_lists" in extra:
            env["POSTGRES_IVFFLAT_LISTS"] = str(extra["ivfflat_lists"])
        for key in ("ssl_cert", "ssl_key", "ssl_root_cert", "ssl_crl"):
            if key in extra:
                env[f"POSTGRES_{key.upper()}"] = str(extra[key])
        # EMBEDDING_MODEL / EMBEDDING_DIM (which name the vector tables), WORKSPACE and the storage
        # class names are added by hybridrag_backends.hybridrag.lightrag_env for every backend
        return env

    def secret_env_vars(self) -> tuple:
        return ("POSTGRES_PASSWORD",)

    def lightrag_kwargs(self, config: BackendConfig) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = dict(self.storage_classes(config))
        kwargs["workspace"] = config.postgres_workspace
        return kwargs

    async def validate(self, config: BackendConfig) -> List[Check]:
        return await health.validate(config)

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        return await health.metrics(config)

    def open(self, config: BackendConfig) -> BackendSession:
        from .session import PostgresSession

        return PostgresSession(config)

    def status_notes(self, config: BackendConfig) -> List[str]:
        return ["server requirements: PostgreSQL 14+, pgvector >= 0.5, Apache AGE < 1.8 (age in shared_preload_libraries)"]
