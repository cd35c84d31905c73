"""The database registry: ``~/.hybridrag/registry.yaml``.

Location: ``$HYBRIDRAG_CONFIG`` if set, else ``$HYBRIDRAG_HOME/registry.yaml``
(``HYBRIDRAG_HOME`` defaults to ``~/.hybridrag``). Shape (the spec's)::

    databases:
      specstory:
        name: specstory
        path: /home/user/databases/specstory_db
        source_folder: /home/user/jira-issues
        source_type: specstory
        auto_watch: true
        watch_interval: 300
        backend_type: postgres
        backend_config:
          postgres_host: localhost
          postgres_password: ${POSTGRES_PASSWORD}
          connection_string: postgresql://me:${POSTGRES_PASSWORD}@db.example/hybridrag

Rules:

* An entry without ``backend_type`` / ``backend_config`` (written before
  backends existed) is a JSON backend whose working dir is ``path``.
* An unknown key (in an entry or in its ``backend_config``) is a
  :class:`RegistryError` naming the key, the entry and the allowed keys;
  values are validated by :class:`BackendConfig` when the file is loaded.
* Writes are atomic (temp file in the same dir, fsync, ``os.replace``) and
  locked (``registry.yaml.lock``): :meth:`Registry.save` re-reads the file under
  the lock and applies only this object's changes, so parallel writers lose
  nothing.
* No password is ever written. A literal password is replaced on save by a
  ``${VAR}`` reference (see :func:`scrub_secrets`) and resolved from the
  environment when the config is used (:meth:`DatabaseEntry.get_backend_config`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from filelock import FileLock, Timeout

from .durable import write_atomic
from .errors import ConfigError, NotFoundError, RegistryError
from .models import BackendConfig, DatabaseEntry, backend_name
from .secrets import is_env_ref, uri_password_to_ref

ENTRY_KEYS = tuple(f.name for f in dataclasses.fields(DatabaseEntry))
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(BackendConfig))
LOCK_TIMEOUT_S = 30

# Default environment variable a password is taken from, per field.
DEFAULT_PASSWORD_ENV = {
    "postgres_password": "POSTGRES_PASSWORD",
    "connection_string": "POSTGRES_PASSWORD",
    "mongo_uri": "MONGO_PASSWORD",
}
_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret)")


def hybridrag_home() -> Path:
    return Path(os.environ.get("HYBRIDRAG_HOME") or Path.home() / ".hybridrag").expanduser()


def registry_path() -> Path:
    configured = os.environ.get("HYBRIDRAG_CONFIG")
    return Path(configured).expanduser() if configured else hybridrag_home() / "registry.yaml"


# -- secrets -----------------------------------------------------------------------


def scrub_secrets(config: Dict[str, Any], password_env: Optional[str] = None) -> Tuple[Dict[str, Any], List[str]]:
    """Return ``config`` with every literal password replaced by a ``${VAR}`` reference,
    and the names of the variables the user must export.

    * ``postgres_password``, ``connection_string`` -> ``${POSTGRES_PASSWORD}``;
      ``mongo_uri`` -> ``${MONGO_PASSWORD}`` (put in the URI's password position);
      ``password_env`` overrides these names.
    * any other key containing password/passwd/secret, and any other URI with a
      password, at any depth (``extra_options``) -> ``${<KEY>}`` / ``${<KEY>_PASSWORD}``.
    """
    needed: List[str] = []

    def var_for(key: str, default: str) -> str:
        return password_env or DEFAULT_PASSWORD_ENV.get(key) or default

    def clean(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(key, v) for v in value]
        if not isinstance(value, str) or not value or is_env_ref(value):
            return value
        if "://" in value:
            var = var_for(key, _env_name(key) + "_PASSWORD")
            try:
                out, replaced = uri_password_to_ref(value, var)
            except ValueError:  # not a parseable URI: leave it to validation
                return value
            if replaced:
                needed.append(var)
            return out
        if _SECRET_KEY.search(key):
            var = var_for(key, _env_name(key))
            needed.append(var)
            return f"${{{var}}}"
        return value

    cleaned = {k: clean(k, v) for k, v in config.items()}
    return cleaned, sorted(set(needed))


def _env_name(key: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", key.upper())


# -- parsing -----------------------------------------------------------------------


def _refuse_unknown_keys(what: str, mapping: Dict[Any, Any], allowed: Sequence[str]) -> None:
    for key in mapping:
        if key not in allowed:
            raise RegistryError(f"{what} has unknown key {key!r} (allowed: {', '.join(allowed)}); remove or rename it")


def _entry_from_yaml(path: Path, name: Any, raw: Any) -> DatabaseEntry:
    where = f"{path}: entry {name!r}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where} must be a mapping of settings, got {type(raw).__name__}; fix the file")
    _refuse_unknown_keys(where, raw, ENTRY_KEYS)
    stored_name = raw.get("name", name)
    if stored_name != name:
        raise RegistryError(f"{where} has name: {stored_name!r}; the name must equal the key, fix one of them")
    if not isinstance(raw.get("path"), str) or not raw["path"]:
        raise RegistryError(f"{where} has no 'path' (the database's working dir); add it")
    config = raw.get("backend_config")
    if config is not None:
        if not isinstance(config, dict):
            raise RegistryError(f"{where}: backend_config must be a mapping, got {type(config).__name__}; fix the file")
        _refuse_unknown_keys(f"{where}: backend_config", config, CONFIG_KEYS)
    for key, kind in (("auto_watch", bool), ("source_type", str)):
        if key in raw and not isinstance(raw[key], kind):
            raise RegistryError(f"{where}: {key} must be {kind.__name__}, got {raw[key]!r}; fix the file")
    if raw.get("source_folder") is not None and not isinstance(raw["source_folder"], str):
        raise RegistryError(f"{where}: source_folder must be a path, got {raw['source_folder']!r}; fix the file")
    try:
        entry = DatabaseEntry(**{**raw, "name": str(name)})
        validate_entry(entry)
    except ConfigError as exc:
        raise RegistryError(f"{where}: {exc}; fix the file or register the database again") from None
    return entry


def validate_entry(entry: DatabaseEntry) -> BackendConfig:
    """Check the stored config without resolving ``${VAR}`` references (they may be unset now)."""
    return entry.get_backend_config(resolve_secrets=False)


def entry_to_yaml(entry: DatabaseEntry) -> Dict[str, Any]:
    """The entry as written to the file (spec's key order; None values left out)."""
    out: Dict[str, Any] = {
        "name": entry.name,
        "path": entry.path,
        "source_folder": entry.source_folder,
        "source_type": entry.source_type,
        "auto_watch": entry.auto_watch,
        "watch_interval": entry.watch_interval,
        "backend_type": backend_name(entry.backend_type),
        "backend_config": dict(entry.backend_config) if entry.backend_config is not None else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def _read(path: Path) -> Dict[str, DatabaseEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc.strerror}; check its permissions") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise RegistryError(f"registry {path} is not valid YAML{at} ({problem}); fix or restore the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RegistryError(f"registry {path} must be a mapping with a 'databases' key; fix or restore the file")
    for key in data:
        if key != "databases":
            raise RegistryError(f"registry {path} has unknown top-level key {key!r} (allowed: databases); remove it")
    databases = data.get("databases") or {}
    if not isinstance(databases, dict):
        raise RegistryError(f"registry {path}: 'databases' must be a mapping of name -> entry; fix the file")
    return {str(name): _entry_from_yaml(path, name, raw) for name, raw in databases.items()}


def _write_atomic(path: Path, entries: Iterable[DatabaseEntry]) -> None:
    data = {"databases": {e.name: entry_to_yaml(e) for e in sorted(entries, key=lambda e: e.name)}}
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if yaml.safe_load(text) != data:  # PyYAML emits some characters (NEL, LS...) raw that it then reads as breaks
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False, default_flow_style=False)
    write_atomic(path, text.encode("utf-8"), mode=0o600)  # references only, but still the user's private config


# -- the registry --------------------------------------------------------------


class Registry:
    """Entries by name. ``add`` / ``remove`` change this object; ``save`` merges them into the file."""

    def __init__(self, path: Path, entries: Dict[str, DatabaseEntry]) -> None:
        self.path = path
        self._entries = entries
        self._added: Dict[str, Tuple[DatabaseEntry, bool]] = {}
        self._removed: set = set()

    @classmethod
    def load(cls, path: "str | os.PathLike[str] | None" = None) -> "Registry":
        p = Path(path).expanduser() if path is not None else registry_path()
        return cls(p, _read(p))

    def entries(self) -> List[DatabaseEntry]:
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: str) -> Optional[DatabaseEntry]:
        return self._entries.get(name)

    def add(self, entry: DatabaseEntry, *, replace: bool = False, password_env: Optional[str] = None) -> List[str]:
        """Add (or with ``replace`` overwrite) an entry; returns the env vars its passwords come from."""
        if entry.name in self._entries and not replace:
            raise RegistryError(
                f"database {entry.name!r} is already registered (path {self._entries[entry.name].path}); "
                f"remove it first with 'hybridrag-backends db remove {entry.name}' or pass --replace"
            )
        needed: List[str] = []
        if entry.backend_config is not None:
            cleaned, needed = scrub_secrets(entry.backend_config, password_env)
            entry = dataclasses.replace(entry, backend_config=cleaned)
        validate_entry(entry)
        self._entries[entry.name] = entry
        self._added[entry.name] = (entry, replace)
        self._removed.discard(entry.name)
        return needed

    def remove(self, name: str) -> DatabaseEntry:
        if name not in self._entries:
            raise NotFoundError(f"no database named {name!r} in {self.path}; see 'hybridrag-backends db list'")
        self._added.pop(name, None)
        self._removed.add(name)
        return self._entries.pop(name)

    def save(self) -> None:
        """Write this object's changes, merged with what other writers saved meanwhile."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S):
                current = _read(self.path)
                for name in self._removed:
                    current.pop(name, None)
                for name, (entry, replace) in self._added.items():
                    if name in current and not replace and current[name] != entry:
                        raise RegistryError(
                            f"database {name!r} was registered by another process meanwhile; "
                            f"check 'hybridrag-backends db show {name}' and retry with --replace if intended"
                        )
                    current[name] = entry
                for entry in current.values():  # defence in depth: never write a literal password
                    if entry.backend_config is not None:
                        cleaned, _ = scrub_secrets(entry.backend_config)
                        current[entry.name] = dataclasses.replace(entry, backend_config=cleaned)
                _write_atomic(self.path, current.values())
        except Timeout:
            raise RegistryError(
                f"registry {self.path} is locked by another process for over {LOCK_TIMEOUT_S}s; "
                f"retry, or delete {self.path}.lock if no hybridrag-backends process is running"
            ) from None
        except OSError as exc:  # permissions, a read-only or full disk: the user's to fix
            raise RegistryError(f"cannot write registry {self.path}: {exc.strerror or exc}; check permissions and free space") from None
        self._entries = current
        self._added.clear()
        self._removed.clear()
