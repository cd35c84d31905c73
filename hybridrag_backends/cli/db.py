"""``db register|list|show|remove``: the registry (shared with HybridRAG) from the command line.

* ``register`` writes an entry HybridRAG reads: HybridRAG's keys, no password and no
  ``${...}`` placeholder. A password given in ``--url`` is used for the connection
  check and never stored; the variable it is read from later is ``--password-env VAR``
  (recorded in ``backend_config.extra_options.password_env``) or the default
  ``POSTGRES_PASSWORD`` / ``MONGO_PASSWORD``. With ``--url`` the URL is stored as
  ``connection_string`` (password cut out, only ``sslmode`` kept in its query) with
  the host, port, user and database also as HybridRAG's separate keys;
  ``--embedding-model`` / ``--embedding-dim`` go to ``model_config`` (HybridRAG's own
  keys, which name the PostgreSQL vector tables). Server backends are checked
  (``validate``'s checks) before anything is saved: a failed check exits 2 with the
  fix and leaves the file as it was; ``--no-check`` skips it. ``--replace`` rewrites
  the keys ``register`` sets and keeps the entry's other keys (HybridRAG's ``model``,
  ``description``, ``created_at``..., any unknown key).
* ``list`` / ``show`` print entries as the file has them (every key), passwords masked.
* ``switch NAME --back`` undoes ``migrate --from NAME --to TARGET --switch``: the keys the switch changed get
  their previous values back (kept in ``backend_config.extra_options.switched_from``, see
  :mod:`hybridrag_backends.cutover`); the data is not copied back. Exit 1 when there is nothing to go back to,
  2 while a migration of NAME runs.

JSON shapes: see :mod:`hybridrag_backends.cli.main`; ``db switch NAME --back --json``::

    {"registry": "<file>", "database": <entry>, "backend": "json", "location": "<where it points now>",
     "left": "<where it pointed>", "job_id": "<the job whose --switch is undone>" | null,
     "switched_at": "<when it switched>" | null}
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click
import yaml
from rich.table import Table

from ..errors import ConfigError, ConnectionFailure, NotFoundError, RegistryError
from ..models import (
    PASSWORD_ENV_KEY,
    BackendConfig,
    BackendType,
    DatabaseEntry,
    backend_name,
    coerce_backend_type,
    workspace_field,
)
from ..registry import Registry, hybridrag_name_problem, masked, validate_entry
from ..secrets import redact
from .output import CliGroup, console, emit_json, json_option, load_plugins, shown, warn, workspace_option


@click.group("db", cls=CliGroup)
def db_group() -> None:
    """Register, list, show and remove databases in the registry (shared with HybridRAG)."""


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
# what the URL says for a PostgreSQL entry: --url and these options cannot both be given
_CONNECTION_OPTIONS = ("host", "port", "user", "ssl_mode")
# model_config keys (HybridRAG's) that name PostgreSQL's vector tables
_MODEL_KEYS = ("embedding_model", "embedding_dim")


def _libpq_url(url: str) -> str:
    """The URL as HybridRAG (asyncpg) can connect with it: only ``sslmode`` kept in the query (the
    registry drops the password when the entry is added)."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k == "sslmode"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def build_backend_config(
    backend: "BackendType | str", url: Optional[str], workspace: Optional[str], database: Optional[str],
    password_env: Optional[str], options: Dict[str, Any],
) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
    """``(backend_config, model_config keys)``: the settings that differ from the defaults, and the
    embedding keys for ``model_config``. A password the URL carries is still in it: the connection
    check uses it, :meth:`Registry.add` cuts it out before anything is written."""
    name = backend_name(backend)
    if password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        raise ConfigError("--password-env", password_env, "must be an environment variable name like POSTGRES_PASSWORD")
    if url and name == "postgres":
        clash = [o for o in _CONNECTION_OPTIONS if options.get(o) is not None] + (["database"] if database else [])
        if clash:
            opt = clash[0].replace("_", "-")
            raise ConfigError(f"--{opt}", options.get(clash[0], database), "cannot be combined with --url (the URL is the connection)",
                              f"put it in the URL instead of --{opt}")
    fields: Dict[str, Any] = {}
    if url:
        fields = load_plugins().get(name).config_from_target(url, workspace=workspace).to_dict()
        if name == "postgres":
            fields["connection_string"] = _libpq_url(url)
        fields.pop("postgres_password", None)  # it is in the URL
    fields.update({_OPTION_FIELDS[k]: v for k, v in options.items() if v is not None})
    if workspace is not None:
        fields[workspace_field(name)] = workspace
    if database is not None:
        fields["mongo_database" if name == "mongodb" else "postgres_database"] = database
    fields.pop("backend_type", None)
    try:
        config = BackendConfig(backend_type=backend, **fields)
    except ConfigError as exc:
        option = _FIELD_OPTIONS.get(exc.field)
        hint = f"fix --{option}" if option else "fix the option or --url"
        raise ConfigError(exc.field, exc.value, exc.allowed, hint) from None
    defaults = BackendConfig(backend_type=backend).to_dict()
    stored = {k: v for k, v in config.to_dict().items() if k != "backend_type" and v != defaults[k]}
    model_keys = {k: stored.pop(k) for k in _MODEL_KEYS if k in stored}
    return stored or None, model_keys


def _check_connection(entry: DatabaseEntry) -> None:
    """``validate``'s checks on a server backend before it is saved; ConnectionFailure (exit 2) with
    the fix when one fails. A JSON database is a folder HybridRAG may not have created yet: not checked."""
    kind = backend_name(entry.backend_type)
    if kind == "json":
        return
    provider = load_plugins().get(kind)
    try:
        config = entry.get_backend_config()
    except ConfigError as exc:  # e.g. the --password-env variable is not set
        raise ConnectionFailure(f"cannot register {entry.name!r}, the check cannot run: {exc}; nothing was saved "
                                f"(or pass --no-check to register it without checking)") from None
    checks = asyncio.run(provider.validate(config))
    failed = [c for c in checks if not c.ok]
    if failed:
        problems = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed)
        raise ConnectionFailure(
            f"cannot register {entry.name!r}, the check failed: {problems}; nothing was saved "
            f"(fix it and retry, or pass --no-check to register it without checking)"
        )


@db_group.command("register")
@click.argument("name")
@click.option("--path", "path", required=True, type=click.Path(path_type=Path),
              help="The database's LightRAG working dir (HybridRAG's dir for server backends).")
@click.option("--backend", default=None, help="json (default), postgres, mongodb or a plugin's backend.")
@click.option("--url", default=None, help="postgresql://... or mongodb://... (a password in it is used for the check, never stored).")
@workspace_option
@click.option("--source-folder", default=None, type=click.Path(path_type=Path), help="Folder HybridRAG ingests.")
@click.option("--source-type", default=None, help="HybridRAG source type (default filesystem).")
@click.option("--auto-watch/--no-auto-watch", default=None, help="HybridRAG watches the source folder (default no).")
@click.option("--watch-interval", type=int, default=None, help="Seconds between scans (default 300).")
@click.option("--host", default=None, help="PostgreSQL host.")
@click.option("--port", type=int, default=None, help="PostgreSQL port (1-65535).")
@click.option("--user", default=None, help="PostgreSQL user.")
@click.option("--database", default=None, help="PostgreSQL database / MongoDB database name.")
@click.option("--ssl-mode", default=None, help="disable, allow, prefer, require, verify-ca, verify-full.")
@click.option("--max-connections", type=int, default=None, help="PostgreSQL pool size (1-100).")
@click.option("--vector-index-type", default=None, help="hnsw or ivfflat.")
@click.option("--hnsw-m", type=int, default=None, help="HNSW M (4-64).")
@click.option("--hnsw-ef", type=int, default=None, help="HNSW ef (16-256).")
@click.option("--embedding-model", default=None, help="Embedding model (model_config; names the PostgreSQL vector tables).")
@click.option("--embedding-dim", type=int, default=None, help="Embedding dimension (model_config).")
@click.option("--password-env", default=None, metavar="VAR",
              help="Environment variable the password is read from (default POSTGRES_PASSWORD / MONGO_PASSWORD).")
@click.option("--replace", is_flag=True, help="Overwrite an entry with the same name (its other keys are kept).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check the connection before saving (server backends).")
@json_option
def db_register(name: str, path: Path, backend: Optional[str], url: Optional[str], workspace: Optional[str],
                source_folder: Optional[Path], source_type: Optional[str], auto_watch: Optional[bool],
                watch_interval: Optional[int], database: Optional[str], password_env: Optional[str], replace: bool,
                check: bool, as_json: bool, **options: Any) -> None:
    """Register database NAME. No password is stored: it is read from the environment when used."""
    backend_type = _infer_backend(backend, url)
    config, model_keys = build_backend_config(backend_type, url, workspace, database, password_env, options)
    if password_env:  # so the check reads the password where the entry will
        config = {**(config or {}), "extra_options": {**(config or {}).get("extra_options", {}), PASSWORD_ENV_KEY: password_env}}
    registry = Registry.load()
    try:
        old = registry.get(name) if replace else None
    except RegistryError:
        old = None  # an unusable entry is replaced whole
    base = old or DatabaseEntry(name=name, path=str(path), created_at=datetime.now().isoformat(timespec="seconds"))
    model_config = dict(base.model_config or {}) if isinstance(base.model_config, dict) else {}
    model_config.update(model_keys)
    entry = dataclasses.replace(
        base,
        path=str(path.expanduser().resolve()),
        source_folder=str(source_folder.expanduser().resolve()) if source_folder else base.source_folder,
        source_type=source_type if source_type is not None else base.source_type,
        auto_watch=auto_watch if auto_watch is not None else base.auto_watch,
        watch_interval=watch_interval if watch_interval is not None else base.watch_interval,
        backend_type=backend_type,
        backend_config=config,
        model_config=model_config or None,
    )
    if check:
        _check_connection(entry)
    needed = registry.add(entry, replace=replace, password_env=password_env)
    registry.save()
    problem = hybridrag_name_problem(name)
    if problem:
        warn(problem)
    stored = registry.stored(name)
    if as_json:
        emit_json({"registry": str(registry.path), "database": masked(stored), "password_env": needed, "checked": check})
        return
    console.print(f"registered [bold]{shown(name)}[/bold] ({shown(backend_name(backend_type))}) in {shown(registry.path)}")
    for var in needed:
        console.print(f"the password is read from ${var} when the database is used: export {var}=...", soft_wrap=True)


@db_group.command("list")
@json_option
def db_list(as_json: bool) -> None:
    """List registered databases (an unusable entry is listed with what is wrong)."""
    registry = Registry.load()
    entries = registry.entries()
    if as_json:
        emit_json({"registry": str(registry.path), "databases": [masked(registry.stored(e.name)) for e in entries],
                   "problems": registry.problems})
        return
    if not entries and not registry.problems:
        console.print(f"no databases registered in {shown(registry.path)}; add one with 'hybridrag-backends db register'")
        return
    table = Table(title=shown(registry.path))
    for col in ("name", "backend", "path", "location"):
        table.add_column(col)
    for name in registry.names():
        if name in registry.problems:
            table.add_row(shown(name), "?", "", f"[red]unusable:[/red] {shown(registry.problems[name])}")
            continue
        e = registry.get(name)
        assert e is not None
        table.add_row(shown(e.name), shown(backend_name(e.backend_type)), shown(e.path), shown(_location(e)))
    console.print(table)


def _location(entry: DatabaseEntry) -> str:
    """Where the data lives, without resolving ${VAR} references (they may be unset)."""
    try:
        return load_plugins().get(backend_name(entry.backend_type)).describe(validate_entry(entry))
    except NotFoundError:
        return f"{entry.path} (no installed plugin provides {backend_name(entry.backend_type)!r})"
    except Exception:  # a config the provider cannot describe: the path is still useful
        return entry.path


@db_group.command("show")
@click.argument("name")
@json_option
def db_show(name: str, as_json: bool) -> None:
    """Show one registry entry with every key it has (passwords masked)."""
    registry = Registry.load()
    if name not in registry.names():
        raise NotFoundError(f"no database named {name!r} in {registry.path}; see 'hybridrag-backends db list'")
    stored = masked(registry.stored(name))
    notes = [f"unusable: {registry.problems[name]}"] if name in registry.problems else registry.warnings(name)
    if as_json:
        emit_json({"registry": str(registry.path), "database": stored, "warnings": notes})
        return
    text = yaml.safe_dump(stored, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)
    console.print(text.rstrip("\n"), soft_wrap=True, markup=False, highlight=False)
    for note in notes:
        warn(note)


@db_group.command("remove")
@click.argument("name")
@json_option
def db_remove(name: str, as_json: bool) -> None:
    """Remove NAME from the registry (the data itself is not touched; other entries are left as they are)."""
    registry = Registry.load()
    registry.remove(name)
    registry.save()
    if as_json:
        emit_json({"registry": str(registry.path), "removed": name})
    else:
        console.print(f"removed {shown(name)} from {shown(registry.path)} (its data was not touched)")



@db_group.command("switch")
@click.argument("name")
@click.option("--back", is_flag=True, help="Point NAME at the backend it had before 'migrate --switch'.")
@json_option
def db_switch(name: str, back: bool, as_json: bool) -> None:
    """Undo 'migrate --from NAME --to TARGET --switch': NAME points at its previous backend again.

    Only the registry entry changes: data written to the new backend since the switch stays there (to
    bring it along, migrate it back with --switch instead: migrate --from NAME --to json --force --switch).
    """
    from ..cutover import switch_back

    if not back:
        raise click.UsageError("give --back (a switch to a new backend happens after a verified copy: "
                               f"hybridrag-backends migrate --from {name} --to TARGET --switch)")
    done = switch_back(name)
    registry = Registry.load()
    if as_json:
        emit_json({**done, "registry": str(registry.path), "database": masked(registry.stored(name))})
        return
    since = f" (switched by job {done['job_id']} at {done['switched_at']})" if done.get("job_id") else ""
    console.print(f"{shown(name)} points at {shown(done['backend'])} again: {shown(done['location'])}", soft_wrap=True)
    console.print(f"left {shown(done['left'])} as it is{shown(since)}; anything written there since the switch was "
                  f"not copied back", soft_wrap=True)
