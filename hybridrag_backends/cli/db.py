"""``db register|list|show|remove``: the registry from the command line.

Passwords are never stored: ``register`` keeps a ``${VAR}`` reference
(default ``POSTGRES_PASSWORD`` / ``MONGO_PASSWORD``, or ``--password-env VAR``)
and tells the user what to export. JSON shapes: see :mod:`hybridrag_backends.cli.main`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Optional

import click
from rich.table import Table

from ..errors import ConfigError, NotFoundError
from ..models import BackendConfig, BackendType, DatabaseEntry, backend_name, coerce_backend_type, workspace_field
from ..plugins import get_manager
from ..registry import Registry, entry_to_yaml, validate_entry
from ..secrets import redact, uri_password_to_ref
from .output import CliGroup, console, emit_json, json_option, load_plugins, shown, workspace_option


@click.group("db", cls=CliGroup)
def db_group() -> None:
    """Register, list, show and remove databases in the registry."""


def _infer_backend(backend: Optional[str], url: Optional[str]) -> "BackendType | str":
    if backend:
        return coerce_backend_type(backend)
    if url and "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            return BackendType.POSTGRESQL
        if scheme in ("mongodb", "mongodb+srv"):
            return BackendType.MONGODB
        provider = load_plugins().provider_for_url(url)
        if provider is not None:
            return coerce_backend_type(provider.name)
        raise ConfigError("--url", redact(url), "has a scheme no installed backend claims", "pass --backend or install its plugin")
    return BackendType.default()


# option name -> BackendConfig field, per backend where they differ
_OPTION_FIELDS = {
    "host": "postgres_host",
    "port": "postgres_port",
    "user": "postgres_user",
    "ssl_mode": "postgres_ssl_mode",
    "max_connections": "postgres_max_connections",
    "vector_index_type": "vector_index_type",
    "hnsw_m": "hnsw_m",
    "hnsw_ef": "hnsw_ef",
    "embedding_model": "embedding_model",
    "embedding_dim": "embedding_dim",
}
_FIELD_OPTIONS = {
    **{v: k.replace("_", "-") for k, v in _OPTION_FIELDS.items()},
    "workspace": "workspace",
    "postgres_workspace": "workspace",
    "postgres_database": "database",
    "mongo_database": "database",
}


def build_backend_config(
    backend: "BackendType | str", url: Optional[str], workspace: Optional[str], database: Optional[str],
    password_env: Optional[str], options: Dict[str, Any],
) -> Optional[Dict[str, Any]]:
    """The ``backend_config`` to store: only fields that differ from the defaults; None when none do."""
    name = backend_name(backend)
    fields: Dict[str, Any] = {}
    if url:
        if name == "postgres":
            fields = BackendConfig.from_connection_string(url).to_dict()
        else:  # the provider knows its URL's parts (e.g. the Mongo database in the path)
            fields = get_manager().get(name).config_from_target(url, workspace=workspace).to_dict()
    fields.update({_OPTION_FIELDS[k]: v for k, v in options.items() if v is not None})
    if workspace is not None:
        fields[workspace_field(name)] = workspace
    if database is not None:
        fields["mongo_database" if name == "mongodb" else "postgres_database"] = database
    if password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        raise ConfigError("--password-env", password_env, "must be an environment variable name like POSTGRES_PASSWORD")
    if name == "postgres" and not fields.get("postgres_password"):
        # LightRAG insists on POSTGRES_PASSWORD; the registry only names where it comes from.
        fields["postgres_password"] = f"${{{password_env or 'POSTGRES_PASSWORD'}}}"
    if name == "mongodb" and password_env and fields.get("mongo_uri"):
        fields["mongo_uri"] = _uri_with_password_ref(fields["mongo_uri"], password_env)
    fields.pop("backend_type", None)
    try:
        config = BackendConfig(backend_type=backend, **fields)
    except ConfigError as exc:
        option = _FIELD_OPTIONS.get(exc.field)
        hint = f"fix --{option}" if option else "fix the option or --url"
        raise ConfigError(exc.field, exc.value, exc.allowed, hint) from None
    defaults = BackendConfig(backend_type=backend).to_dict()
    stored = {k: v for k, v in config.to_dict().items() if k != "backend_type" and v != defaults[k]}
    return stored or None


def _uri_with_password_ref(uri: str, var: str) -> str:
    """A URI with a user but no password gets ``${var}`` as its password."""
    out, replaced = uri_password_to_ref(uri, var)
    if replaced or "@" not in uri.split("://", 1)[-1].split("/", 1)[0]:
        return out
    scheme, rest = uri.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return out if ":" in userinfo else f"{scheme}://{userinfo}:${{{var}}}@{host}"


@db_group.command("register")
@click.argument("name")
@click.option("--path", "path", required=True, type=click.Path(path_type=Path),
              help="The database's LightRAG working dir (HybridRAG's dir for server backends).")
@click.option("--backend", default=None, help="json (default), postgres, mongodb or a plugin's backend.")
@click.option("--url", default=None, help="postgresql://... or mongodb://... (a password in it is not stored).")
@workspace_option
@click.option("--source-folder", default=None, type=click.Path(path_type=Path), help="Folder HybridRAG ingests.")
@click.option("--source-type", default="filesystem", show_default=True)
@click.option("--auto-watch/--no-auto-watch", default=False, show_default=True)
@click.option("--watch-interval", type=int, default=300, show_default=True, help="Seconds between scans.")
@click.option("--host", default=None, help="PostgreSQL host.")
@click.option("--port", type=int, default=None, help="PostgreSQL port (1-65535).")
@click.option("--user", default=None, help="PostgreSQL user.")
@click.option("--database", default=None, help="PostgreSQL database / MongoDB database name.")
@click.option("--ssl-mode", default=None, help="disable, allow, prefer, require, verify-ca, verify-full.")
@click.option("--max-connections", type=int, default=None, help="PostgreSQL pool size (1-100).")
@click.option("--vector-index-type", default=None, help="hnsw or ivfflat.")
@click.option("--hnsw-m", type=int, default=None, help="HNSW M (4-64).")
@click.option("--hnsw-ef", type=int, default=None, help="HNSW ef (16-256).")
@click.option("--embedding-model", default=None, help="Embedding model name (PostgreSQL vector table suffix).")
@click.option("--embedding-dim", type=int, default=None, help="Embedding dimension.")
@click.option("--password-env", default=None, metavar="VAR",
              help="Environment variable the password is read from (default POSTGRES_PASSWORD / MONGO_PASSWORD).")
@click.option("--replace", is_flag=True, help="Overwrite an entry with the same name.")
@json_option
def db_register(name: str, path: Path, backend: Optional[str], url: Optional[str], workspace: Optional[str],
                source_folder: Optional[Path], source_type: str, auto_watch: bool, watch_interval: int,
                database: Optional[str], password_env: Optional[str], replace: bool, as_json: bool,
                **options: Any) -> None:
    """Register database NAME. Passwords are never stored: the registry keeps a ${VAR} reference."""
    backend_type = _infer_backend(backend, url)
    config = build_backend_config(backend_type, url, workspace, database, password_env, options)
    entry = DatabaseEntry(
        name=name,
        path=str(path.expanduser().resolve()),
        source_folder=str(source_folder.expanduser().resolve()) if source_folder else None,
        source_type=source_type,
        auto_watch=auto_watch,
        watch_interval=watch_interval,
        backend_type=backend_type,
        backend_config=config,
    )
    registry = Registry.load()
    registry.add(entry, replace=replace, password_env=password_env)
    registry.save()
    stored = registry.get(name)
    assert stored is not None
    env_refs = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", str(stored.backend_config or {}))))
    if as_json:
        emit_json({"registry": str(registry.path), "database": entry_to_yaml(stored), "password_env": env_refs})
        return
    console.print(f"registered [bold]{shown(name)}[/bold] ({shown(backend_name(backend_type))}) in {shown(registry.path)}")
    for var in env_refs:
        console.print(f"the password is read from ${var} when the database is used: export {var}=...", soft_wrap=True)


@db_group.command("list")
@json_option
def db_list(as_json: bool) -> None:
    """List registered databases."""
    registry = Registry.load()
    entries = registry.entries()
    if as_json:
        emit_json({"registry": str(registry.path), "databases": [entry_to_yaml(e) for e in entries]})
        return
    if not entries:
        console.print(f"no databases registered in {shown(registry.path)}; add one with 'hybridrag-backends db register'")
        return
    table = Table(title=shown(registry.path))
    for col in ("name", "backend", "path", "location"):
        table.add_column(col)
    for e in entries:
        table.add_row(shown(e.name), shown(backend_name(e.backend_type)), shown(e.path), shown(_location(e)))
    console.print(table)


def _location(entry: DatabaseEntry) -> str:
    """Where the data lives, without resolving ${VAR} references (they may be unset)."""
    try:
        return load_plugins().get(backend_name(entry.backend_type)).describe(validate_entry(entry))
    except Exception:  # backend not installed: the path is still useful
        return entry.path


@db_group.command("show")
@click.argument("name")
@json_option
def db_show(name: str, as_json: bool) -> None:
    """Show one registry entry."""
    registry = Registry.load()
    entry = registry.get(name)
    if entry is None:
        raise NotFoundError(f"no database named {name!r} in {registry.path}; see 'hybridrag-backends db list'")
    if as_json:
        emit_json({"registry": str(registry.path), "database": entry_to_yaml(entry)})
        return
    for key, value in entry_to_yaml(entry).items():
        if isinstance(value, dict):
            console.print(f"{key}:", markup=False)
            for k, v in value.items():
                console.print(f"  {k}: {redact(v)}", soft_wrap=True, markup=False)
        else:
            console.print(f"{key}: {redact(value)}", soft_wrap=True, markup=False)


@db_group.command("remove")
@click.argument("name")
@json_option
def db_remove(name: str, as_json: bool) -> None:
    """Remove NAME from the registry (the data itself is not touched)."""
    registry = Registry.load()
    registry.remove(name)
    registry.save()
    if as_json:
        emit_json({"registry": str(registry.path), "removed": name})
    else:
        console.print(f"removed {shown(name)} from {shown(registry.path)} (its data was not touched)")
