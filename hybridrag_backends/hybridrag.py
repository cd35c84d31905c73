"""Integration helpers for HybridRAG (the app that embeds LightRAG).

* :func:`lightrag_settings` gives the ``LightRAG(...)`` keyword arguments and the
  environment variables for a registry entry or a config, without touching
  ``os.environ`` (HybridRAG decides how to apply them, e.g. per subprocess).
* :func:`backend_group` returns the CLI as a click group HybridRAG mounts as
  ``hybridrag backend``::

      from hybridrag_backends.hybridrag import backend_group
      cli.add_command(backend_group())          # hybridrag backend status mydb
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple, Union

import click

from .models import BackendConfig, DatabaseEntry
from .plugins import get_provider


def lightrag_settings(
    entry_or_config: Union[DatabaseEntry, BackendConfig], env: Optional[Mapping[str, str]] = None
) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``(kwargs, env_vars)`` for ``LightRAG(**kwargs)`` with ``env_vars`` set in its environment.

    ``kwargs`` holds the four storage class names, ``working_dir`` and ``workspace``
    (when not LightRAG's default). ``${VAR}`` password references in a registry
    entry are resolved from ``env`` (default: ``os.environ``, only read). The
    env vars may hold a password: never log them unredacted.
    """
    if isinstance(entry_or_config, DatabaseEntry):
        config = entry_or_config.get_backend_config(dict(env) if env is not None else None)
        default_dir: Optional[str] = entry_or_config.path
    else:
        config = entry_or_config
        default_dir = config.working_dir
    provider = get_provider(config.backend_type)
    kwargs = dict(provider.lightrag_kwargs(config))
    if "working_dir" not in kwargs and default_dir:
        kwargs["working_dir"] = default_dir  # server backends still keep LightRAG's local files there
    if "workspace" not in kwargs:
        if config.workspace_value:
            kwargs["workspace"] = config.workspace_value
    return kwargs, dict(provider.env_vars(config))


def backend_group(name: str = "backend") -> click.Group:
    """The ``hybridrag-backends`` commands as a group to mount in HybridRAG's CLI."""
    from .cli.main import build_cli

    return build_cli(name=name)
