"""The Redis provider: LightRAG's ``RedisKVStorage`` + ``RedisDocStatusStorage``, with the vector and
graph stores in files (``NanoVectorDBStorage`` + ``NetworkXStorage``), the combination LightRAG users
run when only the KV side should leave the working dir.

It composes the JSON provider rather than re-implementing the file formats: it asks the plugin
manager for the provider named ``json`` (``hybridrag_backends.get_provider``), builds that
provider's config for the same working dir and workspace, and delegates the file stores, their
storage classes, their environment and their health to it.

TARGET: ``redis[s]://[[user]:password@]host[:port][/db]?working_dir=PATH`` (see layout.py); the
registry can hold the same URL (``db register NAME --backend redis --path PATH --url URL``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Dict, List, Optional

from hybridrag_backends import BackendConfig, BackendProvider, Check, StorageMetrics, get_provider
from hybridrag_backends.errors import ConfigError, ConnectionFailure, HybridRAGBackendsError
from hybridrag_backends.secrets import redact, resolve_uri_refs

from . import layout
from .session import RedisSession

REDIS_CLASSES = {"kv_storage": "RedisKVStorage", "doc_status_storage": "RedisDocStatusStorage"}
FILE_KINDS = ("vector_storage", "graph_storage")
PING_TIMEOUT_S = 3.0


class RedisProvider(BackendProvider):
    name = "redis"
    description = "Redis for KV and doc status (LightRAG RedisKVStorage); vectors and graph in files"
    url_schemes = ("redis", "rediss")

    # -- configuration ------------------------------------------------------------------

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        parsed = layout.parse_target(target)
        if not parsed.working_dir:
            raise ConfigError("working_dir", None, "is required: the vector and graph files live there",
                              "add ?working_dir=/path/to/lightrag/dir to the URL")
        return BackendConfig(backend_type=self.name, working_dir=os.path.abspath(os.path.expanduser(parsed.working_dir)),
                             workspace=workspace or "", extra_options={"uri": parsed.uri})

    @staticmethod
    def _target(config: BackendConfig) -> layout.RedisTarget:
        uri = config.extra_options.get("uri")
        if not uri:
            raise ConfigError("extra_options.uri", None, "is required for a Redis database", "give a redis:// URL")
        target = layout.parse_target(uri)
        if not config.working_dir:
            raise ConfigError("working_dir", None, "is required: the vector and graph files live there",
                              "register the database with --path, or add ?working_dir= to the URL")
        return target

    @staticmethod
    def _files(config: BackendConfig):  # noqa: ANN205 - (provider, config) of the file part
        files = get_provider("json")
        return files, files.config_from_target(str(config.working_dir), workspace=config.workspace or None)

    def describe(self, config: BackendConfig) -> str:
        t = self._target(config)
        where = f"redis://{t.host}:{t.port}/{t.db}?working_dir={config.working_dir}"
        return f"{where}#{config.workspace}" if config.workspace else where

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        files, files_config = self._files(config)
        file_classes = files.storage_classes(files_config)
        return {**REDIS_CLASSES, **{k: file_classes[k] for k in FILE_KINDS}}

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        files, files_config = self._files(config)
        env = dict(files.env_vars(files_config))  # WORKING_DIR, WORKSPACE, ...
        env.update({f"LIGHTRAG_{k.upper()}": v for k, v in self.storage_classes(config).items()})
        env["REDIS_URI"] = resolve_uri_refs(self._target(config).uri, field="extra_options.uri") or ""
        env["REDIS_WORKSPACE"] = config.workspace or ""  # LightRAG: REDIS_WORKSPACE overrides the workspace
        return env

    def secret_env_vars(self) -> tuple:
        return ("REDIS_URI",)  # holds the password whenever the URL has one

    def lightrag_kwargs(self, config: BackendConfig) -> Dict[str, Any]:
        return {**self.storage_classes(config), "working_dir": str(config.working_dir), "workspace": config.workspace or ""}

    def open(self, config: BackendConfig) -> RedisSession:
        files, files_config = self._files(config)
        return RedisSession(config, self._target(config), files.open(files_config))

    # -- health ------------------------------------------------------------------------

    async def _server(self, config: BackendConfig) -> Dict[str, Any]:
        """PING latency, version, memory and eviction policy; ConnectionFailure when unreachable."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError, ResponseError

        target = self._target(config)
        uri = resolve_uri_refs(target.uri, field="extra_options.uri")
        client = aioredis.Redis.from_url(uri, socket_connect_timeout=PING_TIMEOUT_S, socket_timeout=PING_TIMEOUT_S)
        try:
            started = time.perf_counter()
            await client.ping()
            info: Dict[str, Any] = {"latency_ms": (time.perf_counter() - started) * 1000}
            server = await client.info("server")
            memory = await client.info("memory")
            info.update(version=server.get("redis_version"), used_memory=int(memory.get("used_memory", 0)),
                        keys=await client.dbsize())
            try:
                settings = await client.config_get("maxmemory*")
                info["policy"] = (settings.get("maxmemory-policy") or settings.get(b"maxmemory-policy") or b"")
                info["maxmemory"] = int(settings.get("maxmemory") or settings.get(b"maxmemory") or 0)
            except ResponseError:  # managed Redis often refuses CONFIG
                info["policy"] = None
            return info
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise ConnectionFailure(f"cannot reach Redis at {target.host}:{target.port}/{target.db}: "
                                    f"{redact(exc)}") from None
        finally:
            await client.aclose()

    async def validate(self, config: BackendConfig) -> List[Check]:
        try:
            target = self._target(config)
            resolve_uri_refs(target.uri, field="extra_options.uri")
        except ConfigError as exc:
            fix = ("export the environment variable named above" if "environment variable" in str(exc)
                   else "give redis://[:password@]host:port/db?working_dir=PATH")
            return [Check("configuration", False, str(exc), fix)]
        checks = [Check("url", True, redact(target.uri))]
        try:
            server = await self._server(config)
        except ConnectionFailure as exc:
            return checks + [Check("reachable", False, str(exc), "start redis-server, or fix host, port and password")]
        checks.append(Check("reachable", True, f"Redis {server['version']} answered in {server['latency_ms']:.1f} ms"))
        policy = server["policy"]
        policy = policy.decode() if isinstance(policy, bytes) else policy
        evicting = bool(policy) and policy.startswith("allkeys") and server.get("maxmemory", 0) > 0
        checks.append(Check(
            "eviction policy", not evicting,
            f"maxmemory-policy {policy}" if policy is not None else "not readable (CONFIG refused); LightRAG warns",
            "LightRAG refuses an evicting Redis (records have no TTL): CONFIG SET maxmemory-policy noeviction, "
            "or a volatile-* policy" if evicting else ""))
        wd = config.working_dir or ""
        parent = os.path.dirname(wd.rstrip(os.sep)) or os.sep
        usable = os.path.isdir(wd) or (os.path.isdir(parent) and os.access(parent, os.W_OK))
        checks.append(Check("working dir", usable, f"{wd} ({'exists' if os.path.isdir(wd) else 'will be created'})",
                            "" if usable else f"create {wd}: the vector and graph files live there"))
        return checks

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        try:
            server = await self._server(config)
        except ConnectionFailure as exc:
            return StorageMetrics(backend_type=self.name, is_connected=False, health="error", warnings=[str(exc)])
        m = StorageMetrics(backend_type=self.name, connection_latency_ms=server["latency_ms"],
                           details={"redis_version": server["version"], "used_memory": server["used_memory"],
                                    "keys_in_db": server["keys"], "working_dir": config.working_dir,
                                    "workspace": config.workspace or ""})
        async with self.open(config) as session:
            m.store_counts = {ns: n for ns, n in (await session._namespaces()).items()}
        files, files_config = self._files(config)
        if os.path.isdir(os.path.join(str(config.working_dir), config.workspace or "")):
            try:
                file_metrics = await files.metrics(files_config)
            except HybridRAGBackendsError as exc:
                m.warnings.append(str(exc))
            else:
                kept = {n for n in file_metrics.store_counts if not _is_kv(n, file_metrics)}
                m.store_counts.update({n: file_metrics.store_counts[n] for n in kept})
                m.file_sizes = {f: s for f, s in file_metrics.file_sizes.items() if not f.startswith("kv_store_")}
                m.total_size_bytes = sum(m.file_sizes.values())
                m.warnings += file_metrics.warnings
                if file_metrics.health != "healthy":
                    m.health = file_metrics.health
                m.entity_count, m.relation_count = file_metrics.entity_count, file_metrics.relation_count
        m.doc_count = m.store_counts.get("full_docs", m.store_counts.get("doc_status", 0))
        m.chunk_count = m.store_counts.get("text_chunks", m.store_counts.get("chunks", 0))
        return m


def _is_kv(store_name: str, file_metrics: StorageMetrics) -> bool:
    """Store counts of the file part that are KV files (not this backend's: LightRAG reads KV from Redis)."""
    return f"kv_store_{store_name}.json" in file_metrics.file_sizes

