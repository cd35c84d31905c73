"""The JSON provider: LightRAG's default embedded backend (JSON KV files, NanoVectorDB, NetworkX GraphML)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from hybridrag_backends.errors import NotFoundError, SourceError
from hybridrag_backends.hints import command_text, run_hint
from hybridrag_backends.models import BackendConfig, BackendType, StorageMetrics
from hybridrag_backends.provider import BackendProvider, Check

from . import layout
from .metrics import record_problems, try_count
from .nanovdb import VDBFile
from .session import JsonSession
from .writer import is_ours

STORAGE_CLASSES = {
    "kv_storage": "JsonKVStorage",
    "vector_storage": "NanoVectorDBStorage",
    "graph_storage": "NetworkXStorage",
    "doc_status_storage": "JsonDocStatusStorage",
}
# what ``status`` sums into entity/relation/chunk/doc counts, best source first
_ENTITY_SOURCES = ("chunk_entity_relation.nodes", "entities")
_RELATION_SOURCES = ("chunk_entity_relation.edges", "relationships")
_CHUNK_SOURCES = ("text_chunks", "chunks")
_DOC_SOURCES = ("full_docs", "doc_status")


def lightrag_workspace_error(workspace: str) -> Optional[str]:
    """LightRAG 1.5.7's own rule (``lightrag.utils.validate_workspace``), without importing LightRAG."""
    if "/" in workspace or "\\" in workspace or workspace in (".", ".."):
        return f"invalid workspace name {workspace!r}: must not contain '/' or '\\' or be '.' or '..'"
    return None


class JsonProvider(BackendProvider):
    name = "json"
    description = "LightRAG's default files: JSON KV stores, NanoVectorDB vectors, NetworkX GraphML graph"
    url_schemes = ()

    def claims_path(self, path: Path) -> bool:
        path = Path(path).expanduser()
        if not path.exists():
            return True  # a new target
        if not path.is_dir():
            return False
        if layout.workspaces_with_files(path):
            return True
        # empty, or holding only the partial files of an interrupted copy into it (a resumable target) or the
        # lock of a copy into it that is starting now
        return all(
            is_ours(p) or (p.is_dir() and all(is_ours(q) for q in p.iterdir())) for p in path.iterdir()
        )

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        return BackendConfig(
            backend_type=BackendType.JSON,
            working_dir=os.path.abspath(os.path.expanduser(target)),
            workspace=workspace or "",
        )

    def describe(self, config: BackendConfig) -> str:
        where = str(_working_dir(config))
        return f"json:{where}" + (f"#{config.workspace}" if config.workspace else "")

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        return dict(STORAGE_CLASSES)

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        """LightRAG's JSON storages read no variable of their own: LightRAG Server finds the files
        through WORKING_DIR (and WORKSPACE, added by the core with the storage class names).
        EMBEDDING_DIM comes from the vdb files when they agree, because NanoVectorDB refuses to
        open a file whose embedding_dim differs from the server's."""
        env = {"WORKING_DIR": str(_working_dir(config))}
        dims = self.embedding_dims(config)
        if len(dims) == 1:
            env["EMBEDDING_DIM"] = str(dims.pop())
        return env

    def embedding_dims(self, config: BackendConfig) -> set:
        """The embedding dimensions the workspace's vdb files declare (read from each file's head)."""
        dims = set()
        folder = self._folder(config)
        if not folder.is_dir():
            return dims
        for sf in layout.store_files(folder):
            if sf.kind == "vdb":
                try:
                    dims.add(VDBFile(sf.path, sf.namespace).embedding_dim())
                except (SourceError, OSError):
                    continue  # a corrupt file: status / validate report it
        return dims

    def lightrag_kwargs(self, config: BackendConfig) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = dict(STORAGE_CLASSES)
        kwargs["working_dir"] = str(_working_dir(config))
        kwargs["workspace"] = config.workspace or ""
        return kwargs

    def _folder(self, config: BackendConfig) -> Path:
        return layout.workspace_dir(str(_working_dir(config)), config.workspace or "")

    async def validate(self, config: BackendConfig) -> List[Check]:
        checks: List[Check] = []
        wd = _working_dir(config)
        ws = config.workspace or ""
        exists = wd.is_dir()
        checks.append(Check(
            "working dir exists", exists, str(wd),
            "" if exists else "create it, or point to the LightRAG working_dir (the folder holding kv_store_*.json)",
        ))
        ws_error = lightrag_workspace_error(ws)
        checks.append(Check("workspace name", ws_error is None, ws or "(default)", ws_error or ""))
        if not exists or ws_error:
            return checks
        folder = self._folder(config)
        files = layout.store_files(folder)
        found = layout.workspaces_with_files(wd)
        checks.append(Check(
            "LightRAG files", bool(files), f"{len(files)} files in {folder}",
            "" if files else _no_files_fix(wd, folder, found),
        ))
        if not files:
            return checks
        unreadable = [sf.name for sf in files if not os.access(sf.path, os.R_OK)]
        checks.append(Check(
            "files readable", not unreadable, ", ".join(unreadable) or f"all {len(files)}",
            f"give the current user read permission; {run_hint(['chmod', 'u+r'] + [str(folder / n) for n in unreadable])}"
            if unreadable else "",
        ))
        # the bounded-memory structural scan status uses (a corrupt file fails here too), and more: every
        # matrix decoded, vector records parsed exactly where the bytes need it
        readable = [sf for sf in files if sf.name not in unreadable]
        problems = await asyncio.to_thread(_file_problems, readable)
        checks.append(Check(
            "files well-formed", not problems, "; ".join(problems) or f"all {len(readable)}",
            "restore the file(s) named above from a backup, fix the records named above, or move the files out of "
            "the working dir" if problems else "",
        ))
        return checks

    def migrate_command(self, config: BackendConfig) -> str:
        """The ``migrate`` command ``status`` suggests: into a registered PostgreSQL database that
        names its embedding model (a complete command), else into the placeholder PG_TARGET,
        explained on the next line (see :mod:`hybridrag_backends.hints`)."""
        parts = ["hybridrag-backends", "migrate", "--from", str(_working_dir(config))]
        if config.workspace:
            parts += ["--workspace", config.workspace]
        dims = self.embedding_dims(config)
        registered = _registered_postgres_target(dims)
        if registered:
            return command_text(parts + ["--to", registered])
        dim = str(next(iter(dims))) if len(dims) == 1 else "DIM"
        explained = (
            f"PG_TARGET: a PostgreSQL database with pgvector and Apache AGE, as "
            f"postgresql://USER:PASSWORD@HOST:5432/DB?embedding_model=MODEL&embedding_dim={dim} (MODEL: the embedding "
            f"model your LightRAG uses; PostgreSQL vector tables are named after it), or the name of one registered "
            f"with --embedding-model MODEL --embedding-dim {dim}; a local one: hybridrag-backends postgres up "
            f"--register NAME --embedding-model MODEL --embedding-dim {dim}")
        if dim == "DIM":
            explained += " (DIM: the dimension of your embedding model)"
        return command_text(parts + ["--to", "PG_TARGET"]) + "\n  " + explained

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        return await asyncio.to_thread(self._metrics, config)

    def _metrics(self, config: BackendConfig) -> StorageMetrics:
        folder = self._folder(config)
        if not folder.is_dir():
            raise NotFoundError(f"{folder} does not exist; give a LightRAG working dir (and --workspace if it uses one)")
        m = StorageMetrics(backend_type=BackendType.JSON)
        methods: Dict[str, str] = {}
        health = "healthy"
        for sf in layout.store_files(folder):
            size = sf.path.stat().st_size
            m.file_sizes[sf.name] = size
            m.total_size_bytes += size
            counted, problem = try_count(sf.path, sf.namespace)
            if counted is None:
                m.warnings.append(problem)
                methods[sf.name] = "unreadable"
                health = "degraded"
                continue
            methods[sf.name] = counted.method
            if counted.warning:
                m.warnings.append(counted.warning)
            rejects = record_problems(sf.path, sf.namespace)
            if rejects:  # LightRAG reads the file, but a migration would not take all of it
                m.warnings.extend(rejects)
                health = "degraded"
            if sf.kind == "graph":
                m.store_counts[f"{sf.namespace}.nodes"] = counted.records
                m.store_counts[f"{sf.namespace}.edges"] = counted.edges
            else:
                m.store_counts[sf.namespace] = counted.records
        m.entity_count = _first(m.store_counts, _ENTITY_SOURCES)
        m.relation_count = _first(m.store_counts, _RELATION_SOURCES)
        m.chunk_count = _first(m.store_counts, _CHUNK_SOURCES)
        m.doc_count = _first(m.store_counts, _DOC_SOURCES)
        m.health = health
        m.details = {
            "working_dir": str(_working_dir(config)),
            "workspace": config.workspace or "",
            "count_methods": methods,
            "other_files": [p.name for p in layout.other_files(folder) if not p.name.startswith(".")],
            "absent_standard_files": [n for n in layout.standard_file_names() if n not in m.file_sizes],
            "workspaces": layout.workspaces_with_files(_working_dir(config)),
        }
        m.check_migration_warnings(config.file_size_warning_mb, config.total_size_warning_mb, self.migrate_command(config))
        return m

    def open(self, config: BackendConfig) -> JsonSession:
        return JsonSession(str(_working_dir(config)), config.workspace or "")


def _no_files_fix(wd: Path, folder: Path, found: List[str]) -> str:
    text = f"no kv_store_*.json / vdb_*.json / graph_*.graphml in {folder}"
    if not found:
        return text + "; point to the LightRAG working dir (the folder holding them)"
    workspaces = ", ".join(f"--workspace {w}" if w else "no --workspace" for w in found)
    command = ["hybridrag-backends", "validate", str(wd)] + (["--workspace", found[0]] if found[0] else [])
    return f"{text}; workspaces with files: {workspaces}; {run_hint(command)}"


def _registered_postgres_target(dims: set) -> Optional[str]:
    """A registered PostgreSQL database that can take this workspace as it is: it names its embedding
    model, and its dimension (if set) is the one the files hold. The first by name, or None."""
    from hybridrag_backends.errors import HybridRAGBackendsError
    from hybridrag_backends.registry import Registry

    try:
        entries = Registry.load().entries()
    except HybridRAGBackendsError:  # a broken registry must not break status
        return None
    for entry in entries:
        if str(entry.backend_type) != "postgres":
            continue
        try:  # as the entry is used: model_config's embedding model and dimension count too
            config = entry.get_backend_config(resolve_secrets=False)
        except HybridRAGBackendsError:
            continue
        if not config.embedding_model:
            continue
        if config.embedding_dim and dims and {int(config.embedding_dim)} != dims:
            continue
        return entry.name
    return None


def _working_dir(config: BackendConfig) -> Path:
    return Path(config.working_dir or ".").expanduser().resolve()


def _file_problems(files: List[layout.StoreFile]) -> List[str]:
    problems = []
    for sf in files:
        counted, problem = try_count(sf.path, sf.namespace)
        if problem:
            problems.append(problem)
            continue
        problems.extend(record_problems(sf.path, sf.namespace, deep=True))
        if sf.kind == "vdb":  # status counts the matrix's rows from its length; validate decodes it
            try:
                VDBFile(sf.path, sf.namespace).check_matrix()
            except SourceError as exc:
                problems.append(str(exc))
    return problems


def _first(counts: Dict[str, int], names: tuple) -> int:
    for name in names:
        if name in counts:
            return counts[name]
    return 0
