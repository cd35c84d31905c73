"""MongoProvider: LightRAG's MongoDB storages (``mongodb://`` and ``mongodb+srv://`` TARGETs)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from hybridrag_backends.errors import ConfigError, ConnectionFailure
from hybridrag_backends.hints import run_hint
from hybridrag_backends.models import BackendConfig, BackendType, StorageMetrics
from hybridrag_backends.provider import BackendProvider, Check
from hybridrag_backends.secrets import redact

from . import metrics as metrics_mod
from .client import DEFAULT_SERVER_SELECTION_TIMEOUT_MS
from .session import MongoSession
from .uri import DEFAULT_DATABASE, check_database_name, parse_uri, resolve_uri

# pymongo 4.x supports servers from 4.4 (pymongo.common.MIN_SUPPORTED_SERVER_VERSION).
MIN_SERVER_VERSION = (4, 4)

# What has been checked where. No MongoDB server could be installed where this plugin was
# built; move items up when the suite has passed with HYBRIDRAG_TEST_MONGO_URI set.
VERIFIED_ON_REAL_SERVER: List[str] = []
VERIFIED_WITH_DRIVER_ONLY: List[str] = [
    "an unreachable server: the timeout (serverSelectionTimeoutMS) and its error message, with pymongo itself",
    "URI syntax checks (pymongo's own parser)",
]
VERIFIED_ON_FAKE_ONLY: List[str] = [
    "reading and writing every store in LightRAG's collection layout, resume and rejects",
    "LightRAG 1.5.7's MongoKVStorage / MongoDocStatusStorage / MongoGraphStorage reading what was written, "
    "and data written by them read back as records",
    "LightRAG's MongoVectorDBStorage creating its index and returning every vector bit for bit "
    "(the fake's Atlas mode; $vectorSearch queries are not emulated)",
    "JSON -> MongoDB -> JSON migrations of the real test databases, verified",
    "crash safety (SIGKILL at random points, then resume)",
    "index creation (names, keys, unique, partial filter; the fake does not keep collations)",
    "dbStats / $collStats sizes (the fake computes them from BSON sizes) and latency",
    "the vector-search warning (the fake answers like a server without search indexes)",
]


class MongoProvider(BackendProvider):
    name = "mongodb"
    description = "MongoDB in LightRAG's collection layout (pymongo AsyncMongoClient)"
    url_schemes = ("mongodb", "mongodb+srv")

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        parsed = parse_uri(target)
        return BackendConfig(
            backend_type=BackendType.MONGODB,
            mongo_uri=target,
            mongo_database=parsed.database or DEFAULT_DATABASE,
            workspace=workspace or "",
        )

    def describe(self, config: BackendConfig) -> str:
        parsed = parse_uri(self._uri(config))
        where = f"{parsed.scheme}://{','.join(parsed.hosts)}/{config.mongo_database or DEFAULT_DATABASE}"
        return f"{where}?workspace={config.workspace}" if config.workspace else where

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        return {
            "kv_storage": "MongoKVStorage",
            "vector_storage": "MongoVectorDBStorage",
            "graph_storage": "MongoGraphStorage",
            "doc_status_storage": "MongoDocStatusStorage",
        }

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        # Names as lightrag/kg/mongo_impl.py reads them (note MONGODB_ for the workspace).
        return {
            "MONGO_URI": resolve_uri(self._uri(config)),
            "MONGO_DATABASE": config.mongo_database or DEFAULT_DATABASE,
            "MONGODB_WORKSPACE": config.workspace or "",
        }

    def secret_env_vars(self) -> tuple:
        return ("MONGO_URI",)  # holds the password whenever the URI has one

    def lightrag_kwargs(self, config: BackendConfig) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = dict(self.storage_classes(config))
        if config.workspace:
            kwargs["workspace"] = config.workspace
        return kwargs

    @staticmethod
    def _uri(config: BackendConfig) -> str:
        if not config.mongo_uri:
            raise ConfigError("mongo_uri", None, "is required for a MongoDB database", "give a mongodb:// URI")
        return config.mongo_uri

    def open(self, config: BackendConfig, *, timeout_ms: Optional[int] = None) -> MongoSession:
        self._uri(config)
        return MongoSession(config, timeout_ms=timeout_ms or self._timeout_ms(config))

    @staticmethod
    def _timeout_ms(config: BackendConfig) -> int:
        """``extra_options.server_selection_timeout_ms`` (default 5000): how long to wait for a server."""
        value = config.extra_options.get("server_selection_timeout_ms", DEFAULT_SERVER_SELECTION_TIMEOUT_MS)
        try:
            ms = int(value)
        except (TypeError, ValueError):
            ms = 0
        if not 1 <= ms <= 600_000:
            raise ConfigError("extra_options.server_selection_timeout_ms", value, "must be from 1 to 600000 (milliseconds)")
        return ms

    async def validate(self, config: BackendConfig) -> List[Check]:
        checks: List[Check] = []
        try:
            parsed = parse_uri(self._uri(config))
            checks.append(Check("uri syntax", True, redact(config.mongo_uri)))
        except ConfigError as exc:
            return [Check("uri syntax", False, str(exc), "give a URI like mongodb://user:${MONGO_PASSWORD}@host:27017/LightRAG")]
        database = config.mongo_database or DEFAULT_DATABASE
        problem = check_database_name(database)
        checks.append(Check("database name", problem is None, f"{database!r}" + (f" {problem}" if problem else ""),
                            "" if problem is None else "choose a name of letters, digits, '_' or '-' (at most 63 bytes)"))
        if parsed.password_var:
            try:
                resolve_uri(config.mongo_uri or "")
                checks.append(Check("password", True, f"from environment variable {parsed.password_var}"))
            except ConfigError as exc:
                checks.append(Check("password", False, str(exc),
                                    run_hint(f"export {parsed.password_var}=VALUE", {"VALUE": "the MongoDB password"})))
                return checks
        if problem:
            return checks
        session = self.open(config)
        try:
            await session.connect()
        except ConnectionFailure as exc:
            checks.append(Check("reachable", False, str(exc),
                                "start the server or fix host/port/credentials; the check waits "
                                f"{session.timeout_ms} ms (serverSelectionTimeoutMS)"))
            return checks
        try:
            checks.append(Check("reachable", True, f"within {session.timeout_ms} ms"))
            version = (await session.db.command("buildInfo")).get("version", "0")
            parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
            ok = parts >= MIN_SERVER_VERSION
            checks.append(Check("server version", ok, version,
                                "" if ok else "upgrade MongoDB to 4.4 or newer (the oldest pymongo 4.x supports)"))
        finally:
            await session.close()
        return checks

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        session = self.open(config)
        try:
            await session.connect()
        except ConnectionFailure as exc:
            return StorageMetrics(backend_type=BackendType.MONGODB, is_connected=False, health="error", warnings=[str(exc)])
        try:
            return await metrics_mod.collect(session)
        finally:
            await session.close()

    def status_notes(self, config: BackendConfig) -> List[str]:
        lines = ["Checked against a real MongoDB server: " + ("; ".join(VERIFIED_ON_REAL_SERVER) or "nothing yet")]
        lines.append("Checked with the real pymongo driver, without a server: " + "; ".join(VERIFIED_WITH_DRIVER_ONLY))
        lines.append("Checked only against an in-process fake (mongomock), not a real server: " + "; ".join(VERIFIED_ON_FAKE_ONLY))
        lines.append("To check them against a server: HYBRIDRAG_TEST_MONGO_URI=mongodb://... pytest -m mongodb")
        return lines
