"""Integration helpers for HybridRAG (the app that embeds LightRAG) and LightRAG Server.

* :func:`lightrag_env` is every environment variable LightRAG and LightRAG Server
  (``lightrag-server``) read to use a backend: the four ``LIGHTRAG_*_STORAGE`` class
  names, ``WORKSPACE``, ``WORKING_DIR`` where the config has one, ``EMBEDDING_MODEL`` /
  ``EMBEDDING_DIM`` where known, and the backend's own variables (its provider's
  ``env_vars``). ``hybridrag-backends env`` prints exactly this mapping.
* :func:`lightrag_settings` gives the ``LightRAG(...)`` keyword arguments and the same
  environment variables for a registry entry or a config, without touching
  ``os.environ`` (HybridRAG decides how to apply them, e.g. per subprocess).
* :func:`backend_group` returns the CLI as a click group HybridRAG mounts as
  ``hybridrag backend``::

      from hybridrag_backends.hybridrag import backend_group
      cli.add_command(backend_group())          # hybridrag backend status mydb

* For HybridRAG's watcher: :func:`migration_in_progress` (the migration of a registered database running
  now, or None; :mod:`.watcher`), :func:`record_ingestion` and :func:`timed_ainsert` (the ingestion speed
  history ``status NAME`` compares with ``performance_degradation_pct``; :mod:`.ingestion`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

import click

from .ingestion import record_ingestion, timed_ainsert
from .models import BackendConfig, DatabaseEntry
from .plugins import get_provider
from .watcher import RunningMigration, migration_in_progress, migration_lock

__all__ = [
    "RunningMigration", "backend_group", "lightrag_env", "lightrag_settings", "migration_in_progress", "migration_lock",
    "record_ingestion", "settings_for", "timed_ainsert",
]

if TYPE_CHECKING:
    from .provider import BackendProvider

#: storage_classes() key -> the variable LightRAG Server chooses that storage from (lightrag/api/config.py)
STORAGE_ENV_VARS = {
    "kv_storage": "LIGHTRAG_KV_STORAGE",
    "vector_storage": "LIGHTRAG_VECTOR_STORAGE",
    "graph_storage": "LIGHTRAG_GRAPH_STORAGE",
    "doc_status_storage": "LIGHTRAG_DOC_STATUS_STORAGE",
}


def lightrag_env(provider: "BackendProvider", config: BackendConfig, *, working_dir: Optional[str] = None) -> Dict[str, str]:
    """Every variable LightRAG and LightRAG Server read to use ``config``'s backend.

    The generic ones come first, then the provider's ``env_vars`` (which may override
    them: the JSON provider knows the embedding dimension its files hold). ``working_dir``
    is where LightRAG keeps its local files (for JSON: the data itself). Values may hold
    a password: never print them unredacted.
    """
    env: Dict[str, str] = {
        var: provider.storage_classes(config)[key] for key, var in STORAGE_ENV_VARS.items()
    }
    env["WORKSPACE"] = config.workspace_value or ""
    working_dir = working_dir or config.working_dir
    if working_dir:
        env["WORKING_DIR"] = str(working_dir)
    # LightRAG Server builds its EmbeddingFunc from these; PostgreSQL names vector tables after them
    if config.embedding_model:
        env["EMBEDDING_MODEL"] = config.embedding_model
    if config.embedding_dim:
        env["EMBEDDING_DIM"] = str(config.embedding_dim)
    env.update(provider.env_vars(config))
    return env


def lightrag_settings(
    entry_or_config: Union[DatabaseEntry, BackendConfig], env: Optional[Mapping[str, str]] = None
) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``(kwargs, env_vars)`` for ``LightRAG(**kwargs)`` with ``env_vars`` set in its environment.

    ``kwargs`` holds the four storage class names, ``working_dir`` and ``workspace``
    (when not LightRAG's default). ``env_vars`` is :func:`lightrag_env`, the set
    ``hybridrag-backends env`` prints, with ``WORKING_DIR`` equal to ``kwargs["working_dir"]``.
    ``${VAR}`` password references in a registry entry are resolved from ``env``
    (default: ``os.environ``, only read). The env vars may hold a password: never log
    them unredacted.
    """
    if isinstance(entry_or_config, DatabaseEntry):
        config = entry_or_config.get_backend_config(dict(env) if env is not None else None)
        default_dir: Optional[str] = entry_or_config.path
    else:
        config = entry_or_config
        default_dir = config.working_dir
    return settings_for(config, default_dir)


def settings_for(config: BackendConfig, default_dir: Optional[str] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """:func:`lightrag_settings` for a resolved config; ``default_dir`` is the registry entry's path."""
    provider = get_provider(config.backend_type)
    kwargs = dict(provider.lightrag_kwargs(config))
    if "working_dir" not in kwargs and default_dir:
        kwargs["working_dir"] = default_dir  # server backends still keep LightRAG's local files there
    if "workspace" not in kwargs:
        if config.workspace_value:
            kwargs["workspace"] = config.workspace_value
    return kwargs, lightrag_env(provider, config, working_dir=kwargs.get("working_dir"))


def backend_group(name: str = "backend") -> click.Group:
    """The ``hybridrag-backends`` commands as a group to mount in HybridRAG's CLI."""
    from .cli.main import build_cli

    return build_cli(name=name)
