"""Resolve a TARGET (registry name, JSON working-dir path, or URL) to a provider and config.

Order: a URL whose scheme a provider claims; a registry entry with that name;
a filesystem path some provider claims (the JSON provider claims LightRAG
working dirs). Anything else is NotFoundError with the three forms spelled out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import NotFoundError, RegistryError, ValidationFailure
from .models import BackendConfig, BackendType
from .plugins import get_manager
from .provider import BackendProvider
from .secrets import redact


@dataclass
class ResolvedTarget:
    provider: BackendProvider
    config: BackendConfig
    name: Optional[str] = None  # registry name, when it came from the registry

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
    try:
        entry = Registry.load(registry_path).get(target)
    except RegistryError:
        if not path.exists():
            raise
        entry = None  # a broken registry must not block working on a path

    if entry is not None:
        config = entry.get_backend_config()
        if workspace is not None:
            config = config.with_workspace(workspace)
        return ResolvedTarget(manager.get(config.backend_type), config, name=entry.name)

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

