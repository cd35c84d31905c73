"""Resolve a TARGET (registry name, JSON working-dir path, or URL) to a provider and config.

Order: a URL whose scheme a provider claims; a registry entry with that name;
a filesystem path some provider claims (the JSON provider claims LightRAG
working dirs). Anything else is NotFoundError with the three forms spelled out.

A registry entry whose backend no installed plugin provides (HybridRAG registries
may name neo4j, milvus, qdrant, faiss, redis, memgraph) is NotFoundError (exit 1)
saying so; the registry itself loads. An entry holding a password in the file
resolves with :attr:`ResolvedTarget.warnings` naming it (``status`` / ``validate``
print them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from .errors import NotFoundError, RegistryError, ValidationFailure
from .models import BackendConfig, BackendType, DatabaseEntry, backend_name
from .plugins import get_manager
from .provider import BackendProvider
from .secrets import redact

if TYPE_CHECKING:
    from .registry import Registry


@dataclass
class ResolvedTarget:
    provider: BackendProvider
    config: BackendConfig
    name: Optional[str] = None  # registry name, when it came from the registry
    warnings: List[str] = field(default_factory=list)  # about the registry entry (a password in the file)

    @property
    def location(self) -> str:
        """Credential-free description; equal strings mean the same place."""
        return self.provider.describe(self.config)


def resolve_target(
    target: str,
    *,
    workspace: Optional[str] = None,
    registry_path: Optional[str] = None,
    for_write: bool = False,
) -> ResolvedTarget:
    """``for_write``: a path that does not exist yet (or an empty dir) is a new database of the
    default backend (JSON), so ``migrate --to ./new_dir`` works."""
    manager = get_manager()
    if "://" in target:
        provider = manager.provider_for_url(target)
        if provider is None:
            scheme = target.split("://", 1)[0]
            claimed = sorted(s for p in manager.providers.values() for s in p.url_schemes)
            raise NotFoundError(
                f"no installed backend handles {scheme}:// URLs (handled: {', '.join(claimed) or 'none'}); "
                f"install the plugin for it, e.g. pip install 'hybridrag-backends[all]'"
            )
        return ResolvedTarget(provider, provider.config_from_target(target, workspace=workspace))

    from .registry import Registry

    path = Path(target).expanduser()
    registry: Optional[Registry] = None
    try:
        registry = Registry.load(registry_path)
        entry = registry.get(target)
    except RegistryError:
        if not path.exists():
            raise
        entry = None  # a broken registry (or entry) must not block working on a path

    if entry is not None:
        assert registry is not None
        return resolve_entry(registry, entry, workspace=workspace)

    try:
        if for_write and (not path.exists() or (path.is_dir() and not any(path.iterdir()))):
            provider = manager.get(BackendType.default())
            return ResolvedTarget(provider, provider.config_from_target(str(path), workspace=workspace))
        if path.exists():
            for provider in manager.providers.values():
                if provider.claims_path(path):
                    return ResolvedTarget(provider, provider.config_from_target(str(path), workspace=workspace))
            raise NotFoundError(
                f"{redact(target)} exists but is not a LightRAG working dir any installed backend recognises "
                f"(expected kv_store_*.json / vdb_*.json / graph_*.graphml files)"
            )
    except PermissionError as exc:  # a folder on the way that this user may not enter or list
        raise ValidationFailure(
            f"cannot look into {redact(exc.filename or target)} (permission denied); give the current user "
            f"access to it (read and enter), or run as a user who has it"
        ) from None
    raise NotFoundError(
        f"{redact(target)!s} is not a registered database, an existing path, or a URL; "
        f"see 'hybridrag-backends db list', or give a working dir or a postgresql:// / mongodb:// URL"
    )



def resolve_entry(registry: "Registry", entry: DatabaseEntry, *, workspace: Optional[str] = None) -> ResolvedTarget:
    """A registry entry as a target: its provider (NotFoundError when no plugin provides the backend),
    its config with secrets resolved, and the warnings about the entry itself."""
    kind = backend_name(entry.backend_type)
    manager = get_manager()
    if kind not in manager.providers:
        installed = ", ".join(sorted(manager.providers)) or "none"
        raise NotFoundError(
            f"registry entry {entry.name!r} uses backend {kind!r}, which no installed plugin provides "
            f"(installed: {installed}); install a hybridrag-backends plugin for {kind}, or use HybridRAG itself "
            f"for this database"
        )
    config = entry.get_backend_config()
    if workspace is not None:
        config = config.with_workspace(workspace)
    from .registry import password_warnings

    return ResolvedTarget(manager.providers[kind], config, name=entry.name,
                          warnings=password_warnings(entry, registry.path))
