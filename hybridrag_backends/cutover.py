"""Cutover: point a registered database's entry at the backend it was just copied to, and back.

``migrate --from NAME --to TARGET --switch`` copies and verifies as always; then, still holding the
database's migration lock (:mod:`.watcher`), it rewrites the entry in one locked, atomic registry write
(:meth:`Registry.locked`), only if the keys it changes are still what they were when the run started.
``db switch NAME --back`` puts them back. The other keys of the entry and every other entry keep their
bytes (comments included).

**The keys a switch changes**: ``backend_type``, ``backend_config``, and where needed ``path`` (a JSON
target is its working dir) and ``model_config`` (the target's embedding model and dimension when the
entry names none: PostgreSQL names its vector tables after them).

**Where the previous backend is kept**: in the new ``backend_config.extra_options.switched_from``, this
package's key. HybridRAG builds its ``DatabaseEntry`` with ``cls(**data)`` and its ``BackendConfig`` with
``BackendConfig(**backend_config)``, so a new top-level or ``backend_config`` key would stop HybridRAG
from loading the entry; ``extra_options`` is a mapping it keeps without reading::

    backend_config:
      connection_string: postgresql://alice@db.example:5432/kb
      postgres_workspace: kb
      extra_options:
        switched_from:
          entry:                    # the changed keys as they were (null: the key was absent)
            backend_type: json
            backend_config: null
          location: json:/home/alice/kb
          job_id: 20260101-120000-a1b2c3
          switched_at: '2026-01-01T12:03:10+00:00'

A password the previous entry held in the file is not kept there (the registry never gets one written):
after ``--back`` it is read from the environment like any entry this package writes.

**TARGET for a switch** (and for any ``migrate --to``):

* a **bare backend name** (``postgres``, ``mongodb``, ``json``...; ``./postgres`` is the folder) means the
  ``--from`` entry's own configuration for that backend: the backend it was switched from (``switched_from``),
  else its ``backend_config`` when that holds the backend's settings (PostgreSQL: ``connection_string`` or
  ``postgres_host``, as HybridRAG's ``backend migrate`` reads them; MongoDB: ``mongo_uri``); the workspace is
  the entry's own, else the entry's name (what HybridRAG's ``backend migrate`` uses). Anything else is an
  error asking for a URL or a registry name; a folder is never created for it;
* a **URL**: the entry gets it without its password (read from the environment when used, as ``db register``
  stores it); with ``--switch`` and no ``--target-workspace`` the workspace is the entry's own, else its name;
* a **registry name**: the entry gets that entry's backend settings;
* a **path**: a JSON working dir, which becomes the entry's ``path``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from .errors import MigrationError, NotFoundError, RegistryError
from .hints import run_hint
from .models import DatabaseEntry, backend_name, workspace_field
from .plugins import get_manager
from .registry import Registry, entry_from_raw, literal_passwords, validate_entry, without_passwords
from .targets import ResolvedTarget, resolve_entry, resolve_target

SWITCH_KEY = "switched_from"
SWITCHED_KEYS = ("backend_type", "backend_config", "path", "model_config")
EMBEDDING_KEYS = ("embedding_model", "embedding_dim")
_ALIASES = {"postgresql": "postgres", "pg": "postgres", "mongo": "mongodb"}


# -- the previous backend ------------------------------------------------------------


def switched_from(entry: DatabaseEntry) -> Optional[Dict[str, Any]]:
    """The ``switched_from`` record of an entry a switch wrote, or None."""
    extra = (entry.backend_config or {}).get("extra_options")
    stash = extra.get(SWITCH_KEY) if isinstance(extra, dict) else None
    return stash if isinstance(stash, dict) and isinstance(stash.get("entry"), dict) else None


def _restored(stash: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in stash["entry"].items() if k in SWITCHED_KEYS}


def _with(stored: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    """``stored`` (an entry as the file has it) with ``changes`` applied (None deletes a key)."""
    out = {k: v for k, v in stored.items() if k not in changes}
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


# -- TARGET ----------------------------------------------------------------------------


def bare_backend(target: str) -> Optional[str]:
    """The backend a bare ``--to`` names (``postgres``, ``pg``, ``mongodb``, ``json``...), or None."""
    if "://" in target or "/" in target or os.sep in target:
        return None
    name = _ALIASES.get(target.strip().lower(), target.strip().lower())
    return name if name in get_manager().providers else None


def _holds_settings(backend: str, config: Dict[str, Any]) -> bool:
    """Whether an entry's backend_config carries ``backend``'s connection settings."""
    uri = str(config.get("connection_string") or "")
    if backend == "postgres":
        return uri.startswith(("postgresql://", "postgres://")) or bool(config.get("postgres_host"))
    if backend == "mongodb":
        return bool(config.get("mongo_uri")) or uri.startswith("mongodb")
    return False


def default_workspace(entry: DatabaseEntry) -> str:
    """The workspace a database keeps on a new backend: its own, else its name (HybridRAG's choice)."""
    try:
        own = validate_entry(entry).workspace_value
    except Exception:  # noqa: BLE001 - an entry that does not validate has no workspace to offer
        own = ""
    return own if own and own != "default" else entry.name


@dataclass
class Destination:
    """``--to`` resolved: the target, and how it was named (``previous`` / ``own`` / ``url`` / ``entry`` /
    ``path``)."""

    resolved: ResolvedTarget
    kind: str
    text: str  # --to as given
    backend_config: Optional[Dict[str, Any]] = None  # kind "own": the entry's config read as the backend


def _load_registry() -> Optional[Registry]:
    try:
        return Registry.load()
    except RegistryError:
        return None  # resolve_target reports a broken registry where it matters


def resolve_destination(target: str, source: ResolvedTarget, *, workspace: Optional[str], switch: bool) -> Destination:
    """``migrate``'s ``--to``: a bare backend name (the source entry's own configuration for it, see the
    module docstring), else :func:`resolve_target` (a new folder for a path that does not exist)."""
    registry = _load_registry()
    entry = registry.get(source.name) if registry is not None and source.name else None
    backend = bare_backend(target)
    if backend is not None and (registry is None or target not in registry.names()):
        return _own_destination(registry, entry, backend, target, workspace)
    if "://" in target and switch and entry is not None and workspace is None:
        workspace = default_workspace(entry)
    resolved = resolve_target(target, workspace=workspace, for_write=True)
    kind = "entry" if resolved.name else ("url" if "://" in target else "path")
    if switch and entry is not None and kind == "url":
        resolved.config = _with_embedding(resolved.config, entry)
    return Destination(resolved, kind, target)


def _with_embedding(config: Any, entry: DatabaseEntry) -> Any:
    """The target config naming the entry's embedding model when it names none itself."""
    model = entry.model_config if isinstance(entry.model_config, dict) else {}
    filled = {k: model[k] for k in EMBEDDING_KEYS if getattr(config, k) is None and model.get(k) not in (None, "")}
    return dataclasses.replace(config, **filled) if filled else config


def _own_destination(registry: Optional[Registry], entry: Optional[DatabaseEntry], backend: str, target: str,
                     workspace: Optional[str]) -> Destination:
    url_hint = {"postgres": "postgresql://USER@HOST:5432/DB", "mongodb": "mongodb://USER@HOST:27017/"}.get(backend, "a URL")
    if entry is None or registry is None:
        raise MigrationError(
            f"--to {target} names a backend, not a database: it stands for the --from database's own {backend} "
            f"settings, and --from is not a registered database; give a URL ({url_hint}) or a registered "
            f"database's name as --to (a folder named {target} is ./{target})")
    if backend_name(entry.backend_type) == backend:
        raise MigrationError(f"registry entry {entry.name!r} already uses {backend}; give another place as --to "
                             f"(a URL, a registered database or a folder)")
    stash = switched_from(entry)
    if stash is not None:
        before = entry_from_raw(registry.path, entry.name, _with(registry.stored(entry.name), _restored(stash)))
        if backend_name(before.backend_type) == backend:
            resolved = resolve_entry(registry, before, workspace=workspace)
            resolved.name = None  # a place of its own, not the registered database
            return Destination(resolved, "previous", target)
    config = dict(entry.backend_config or {})
    if not _holds_settings(backend, config):
        keys = {"postgres": "backend_config.connection_string or postgres_host",
                "mongodb": "backend_config.mongo_uri"}.get(backend, f"{backend} settings")
        raise MigrationError(
            f"--to {target} names a backend, not a database, and registry entry {entry.name!r} has no {backend} "
            f"settings ({keys}) and was not switched from {backend}; give a URL ({url_hint}) or a registered "
            f"database's name as --to (a folder named {target} is ./{target})")
    if "backend_type" in config:
        config["backend_type"] = backend  # HybridRAG writes it into backend_config too
    uri = str(config.get("connection_string") or "")
    if backend == "postgres" and uri.startswith(("postgresql://", "postgres://")):
        from .cli.db import build_backend_config

        # HybridRAG's own BackendConfig reads the separate keys (get_env_vars), as db register --url writes them
        separate, _ = build_backend_config(backend, uri, None, None, None, {})
        config = {**{k: v for k, v in (separate or {}).items() if k.startswith("postgres_")}, **config}
    field_name = workspace_field(backend)
    if workspace is not None:
        config[field_name] = workspace
    elif not config.get(field_name) and not config.get("workspace"):
        config[field_name] = default_workspace(entry)
    own = dataclasses.replace(entry, backend_type=backend, backend_config=config)
    resolved = resolve_entry(registry, own)
    resolved.name = None
    return Destination(resolved, "own", target, backend_config=config)


# -- the switch ------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Cutover:
    """A switch prepared before the copy (so a switch that cannot happen stops the run before it starts)
    and applied after it (:meth:`apply`)."""

    name: str
    fields: Dict[str, Any]  # the keys to write (None deletes), switched_from included
    snapshot: Dict[str, Any]  # SWITCHED_KEYS as the file had them when the run started
    source_location: str
    target_location: str
    target_backend: str
    notes: list = field(default_factory=list)  # what the user must know (a password now read from the environment)

    @classmethod
    def prepare(cls, source: ResolvedTarget, dest: Destination, *, workspace: Optional[str], verify: bool) -> "Cutover":
        if source.name is None:
            raise MigrationError("--switch repoints a registry entry: give the registered database as --from "
                                 "(see 'hybridrag-backends db list')")
        if not verify:
            raise MigrationError("--switch switches the entry only after a verified copy; drop --no-verify")
        registry = Registry.load()
        entry = registry.get(source.name)
        assert entry is not None  # source.name came from this registry
        own_workspace = validate_entry(entry).workspace_value
        if workspace is not None and workspace != own_workspace:
            raise MigrationError(f"--switch moves the whole of {entry.name!r}, whose workspace is "
                                 f"{own_workspace or '(none)'!r}; drop --workspace {workspace}")
        target = dest.resolved
        if target.name == entry.name:
            raise MigrationError(f"--to {dest.text} is {entry.name!r} itself; give another place")
        stored = registry.stored(entry.name)
        new = _new_fields(registry, stored, dest)
        _check_embedding(entry, target)
        changed = {k: v for k, v in new.items() if v != stored.get(k)}
        # always written (it carries switched_from), so always restored by --back
        changed.setdefault("backend_config", new.get("backend_config", stored.get("backend_config")))
        before = {k: stored.get(k) for k in changed}
        notes = []
        if dest.kind == "url" and (target.config.postgres_password or _uri_password(target.config.mongo_uri)):
            var = {"postgres": "POSTGRES_PASSWORD", "mongodb": "MONGO_PASSWORD"}.get(target.provider.name, "the environment")
            notes.append(f"the password given in --to is not stored: after the switch {entry.name!r} reads it from ${var}")
        if "backend_config" in before and literal_passwords(entry):
            before["backend_config"] = without_passwords(entry)[0].backend_config
            notes.append(f"the password registry entry {entry.name!r} held in the file is not kept with its previous "
                         f"backend; after 'db switch {entry.name} --back' it is read from ${entry.password_env or 'POSTGRES_PASSWORD'}")
        config = dict(changed["backend_config"] or {})
        extra = dict(config.get("extra_options") or {})
        extra[SWITCH_KEY] = {"entry": before, "location": source.location, "job_id": None, "switched_at": None}
        config["extra_options"] = extra
        changed["backend_config"] = config
        return cls(entry.name, changed, {k: stored.get(k) for k in SWITCHED_KEYS}, source.location,
                   target.location, target.provider.name, notes)

    def apply(self, job_id: str) -> Dict[str, Any]:
        """Write the switch (one locked, atomic registry write); RegistryError when the entry changed
        meanwhile (then nothing is written)."""
        fields = copy.deepcopy(self.fields)
        stash = fields["backend_config"]["extra_options"][SWITCH_KEY]
        stash.update(job_id=job_id, switched_at=_now())
        with Registry.locked() as registry:
            try:
                stored = registry.stored(self.name)
            except NotFoundError:
                raise RegistryError(f"registry entry {self.name!r} was removed while job {job_id} ran; the copy is "
                                    f"complete and verified, register the database again to use it") from None
            if {k: stored.get(k) for k in SWITCHED_KEYS} != self.snapshot:
                raise RegistryError(
                    f"registry entry {self.name!r} was changed while job {job_id} ran, so it was not switched (the copy "
                    f"is complete and verified); check 'hybridrag-backends db show {self.name}' and rerun the same "
                    f"migrate with --force --switch")
            registry.update(self.name, **fields)
        return {"database": self.name, "job_id": job_id, "backend": self.target_backend, "location": self.target_location,
                "previous_location": self.source_location, "notes": list(self.notes)}


def _new_fields(registry: Registry, stored: Dict[str, Any], dest: Destination) -> Dict[str, Any]:
    """The switched entry's SWITCHED_KEYS (before switched_from is added)."""
    from .cli.db import build_backend_config

    target = dest.resolved
    kind = target.provider.name
    if dest.kind == "previous":
        stash = switched_from(entry_from_raw(registry.path, str(stored["name"]), stored))
        assert stash is not None
        return _restored(stash)
    if dest.kind == "own":
        return {"backend_type": kind, "backend_config": dest.backend_config}
    if dest.kind == "entry":
        assert target.name is not None
        other = registry.stored(target.name)
        new = {"backend_type": other.get("backend_type") or "json", "backend_config": other.get("backend_config")}
        if kind == "json":
            new["path"] = other["path"]
        return _merge_model(new, stored, other.get("model_config"))
    if dest.kind == "url":
        config, model_keys = build_backend_config(kind, dest.text, target.config.workspace_value or None, None, None, {})
        if kind == "postgres":
            config = dict(config or {}, postgres_workspace=target.config.postgres_workspace)
        model_keys.update({k: getattr(target.config, k) for k in EMBEDDING_KEYS if getattr(target.config, k) is not None})
        return _merge_model({"backend_type": kind, "backend_config": config}, stored, model_keys)
    # a JSON working dir
    workspace = target.config.workspace_value
    return {"backend_type": kind, "path": str(Path(target.config.working_dir or ".").expanduser().resolve()),
            "backend_config": {workspace_field(kind): workspace} if workspace else None}


def _merge_model(new: Dict[str, Any], stored: Dict[str, Any], model: Any) -> Dict[str, Any]:
    """``model_config`` gains the target's embedding model and dimension where the entry names none."""
    current = dict(stored.get("model_config") or {}) if isinstance(stored.get("model_config"), dict) else {}
    merged = dict(current)
    for k in EMBEDDING_KEYS:
        value = (model or {}).get(k) if isinstance(model, dict) else None
        if value not in (None, "") and merged.get(k) in (None, ""):
            merged[k] = value
    if merged != current:
        new["model_config"] = merged
    return new


def _uri_password(uri: Optional[str]) -> bool:
    from .secrets import strip_password

    try:
        return bool(uri) and strip_password(uri) != uri  # type: ignore[arg-type]
    except ValueError:
        return False


def _check_embedding(entry: DatabaseEntry, target: ResolvedTarget) -> None:
    """The entry must keep reading the tables the copy writes: its embedding model is the target's."""
    model = entry.model_config if isinstance(entry.model_config, dict) else {}
    for k in EMBEDDING_KEYS:
        mine, theirs = model.get(k), getattr(target.config, k)
        if mine not in (None, "") and theirs is not None and str(mine) != str(theirs):
            raise MigrationError(
                f"registry entry {entry.name!r} embeds with {k}={mine!r} (model_config) but the target is set up for "
                f"{theirs!r}; LightRAG would not find the copied vectors after the switch: give the target the "
                f"entry's {k}")


def switch_back(name: str) -> Dict[str, Any]:
    """``db switch NAME --back``: restore the keys the last switch changed. NotFoundError when the entry
    was not switched; DatabaseBusy while a migration of it runs."""
    from .watcher import DatabaseMigrationLock

    lock = DatabaseMigrationLock([name], source=f"db switch {name} --back", target=name)
    lock.acquire(f"switch-back-{name}")
    try:
        with Registry.locked() as registry:
            entry = registry.get(name)
            if entry is None:
                raise NotFoundError(f"no database named {name!r} in {registry.path}; see 'hybridrag-backends db list'")
            stash = switched_from(entry)
            if stash is None:
                raise NotFoundError(
                    f"registry entry {name!r} has no previous backend to go back to: it was not switched by "
                    f"'migrate --switch', or was switched back already (see 'hybridrag-backends db show {name}')")
            left = _describe(entry)
            registry.update(name, **_restored(stash))
            restored = registry.get(name)
            assert restored is not None
        return {"database": name, "backend": backend_name(restored.backend_type), "location": _describe(restored),
                "left": left, "job_id": stash.get("job_id"), "switched_at": stash.get("switched_at")}
    finally:
        lock.release()


def _describe(entry: DatabaseEntry) -> str:
    try:
        return get_manager().get(backend_name(entry.backend_type)).describe(validate_entry(entry))
    except Exception:  # noqa: BLE001 - a backend without a plugin: its path still says where
        return f"{backend_name(entry.backend_type)}:{entry.path}"


def suggested_switch(entry: DatabaseEntry) -> str:
    """The pasteable command that moves ``entry`` to PostgreSQL and switches it (hints.py format)."""
    base = ["hybridrag-backends", "migrate", "--from", entry.name]
    stash = switched_from(entry)
    previous = backend_name((stash or {}).get("entry", {}).get("backend_type") or "json") if stash else None
    if previous == "postgres" or _holds_settings("postgres", dict(entry.backend_config or {})):
        return run_hint(base + ["--to", "postgres", "--switch"])
    model = entry.model_config if isinstance(entry.model_config, dict) else {}
    query = "" if model.get("embedding_model") and model.get("embedding_dim") else (
        "?embedding_model=MODEL&embedding_dim=DIM (MODEL and DIM: the embedding model this database uses and "
        "its dimension; PostgreSQL names its vector tables after them)")
    return run_hint(base + ["--to", "PG_URL", "--switch"], {
        "PG_URL": f"a PostgreSQL database with pgvector and Apache AGE, as postgresql://USER@HOST:5432/DB{query}, "
                  f"with the password after the user (USER:PASSWORD@HOST; used for the copy and not stored, the "
                  f"switched entry reads it from POSTGRES_PASSWORD), or the name of one registered with "
                  f"'hybridrag-backends db register'; a local one: hybridrag-backends postgres up"})
