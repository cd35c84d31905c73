"""The database registry, shared with HybridRAG: ``~/.hybridrag/registry.yaml``.

Location, in HybridRAG's order: ``$HYBRIDRAG_CONFIG``; else the path written in
``~/.hybridrag/config_pointer``; else ``~/.hybridrag/registry.yaml``.
``HYBRIDRAG_HOME`` (this package's, not HybridRAG's) moves ``~/.hybridrag``.

The file is HybridRAG's (``src/database_registry.py`` writes it with PyYAML)::

    version: 1
    databases:
      specstory:                      # a comment stays where it is
        name: specstory
        path: /home/user/databases/specstory_db
        source_type: specstory
        model: azure/gpt-4o           # any of HybridRAG's keys, see models.HYBRIDRAG_ENTRY_KEYS
        backend_type: postgres
        backend_config:
          connection_string: postgresql://alice@db.example:5433/wizdb
          workspace: specstory
          extra_options:
            password_env: SPECSTORY_PG_PASSWORD   # this package's key: where the password comes from
        model_config:
          embedding_model: text-embedding-3-small  # names the PostgreSQL vector tables
          embedding_dim: 1536

Rules:

* Every key of HybridRAG's ``DatabaseEntry`` is read (``models.HYBRIDRAG_ENTRY_KEYS``);
  any other key, at any level, is kept verbatim and shown by ``db show``, never an
  error. An entry written before backends existed (no ``backend_type``) is a JSON
  database whose working dir is ``path``.
* A value this package uses that is wrong (a port of 70000, no ``path``...) makes
  that one entry unusable, with a message naming the file, entry and key
  (:attr:`Registry.problems`); the other entries work.
* The file is edited entry by entry (:class:`RegistryDocument`): an entry a command
  does not change keeps its bytes (keys, order, values, quoting, comments); a
  changed entry is re-emitted by ruamel.yaml's round-trip dumper (its comments and
  key order kept), a new one appended in the file's indentation style.
* Writes are atomic (temp file in the same dir, fsync, ``os.replace``) and locked
  (``registry.yaml.lock``): :meth:`Registry.save` re-reads the file under the lock
  and applies only this object's changes, so parallel writers lose nothing.
  :meth:`Registry.locked` holds the lock across a read-modify-write.
* Passwords: a literal password already in the file stays where it is (no command
  that does not edit that entry touches it), is masked in every output
  (:func:`masked`) and named by ``status`` / ``validate``
  (:func:`password_warnings`). An entry this package writes carries no password
  and no ``${...}`` placeholder (HybridRAG would pass it to the server as it is):
  the environment variable that holds the password is recorded in
  ``backend_config.extra_options.password_env`` when it is not the default
  (``POSTGRES_PASSWORD`` / ``MONGO_PASSWORD``, which LightRAG and HybridRAG read
  when the file has none). Entries with ``${VAR}`` references, written by earlier
  versions of this package, still load and work.

Keys this package writes besides HybridRAG's (documented for HybridRAG users):
``backend_config.extra_options.password_env``; ``backend_config.extra_options.switched_from`` (the
previous backend, written by ``migrate --switch``, :mod:`.cutover`); for MongoDB ``backend_config.mongo_uri``
and ``mongo_database`` (HybridRAG has no MongoDB settings); ``backend_config.workspace``
for JSON and MongoDB (the key HybridRAG's ``backend migrate`` writes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from filelock import FileLock, Timeout
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .durable import write_atomic
from .errors import ConfigError, NotFoundError, RegistryError
from .models import (
    CONFIG_FIELDS,
    DEFAULT_PASSWORD_ENV,
    HYBRIDRAG_ENTRY_KEYS,
    PASSWORD_ENV_KEY,
    BackendConfig,
    DatabaseEntry,
    backend_name,
)
from .secrets import MASK, is_env_ref, redact, strip_password

ENTRY_KEYS = HYBRIDRAG_ENTRY_KEYS
CONFIG_KEYS = CONFIG_FIELDS
LOCK_TIMEOUT_S = 30
REGISTRY_VERSION = 1

# Keys whose string values are secrets wherever they appear (password_env holds a variable *name*).
_SECRET_KEY = re.compile(r"(?i)(password|passwd|pwd|secret|token|api_?key|credential)(?!_env$)")
# HybridRAG's name rule (DATABASE_NAME_PATTERN): other names are skipped by its `db list`.
HYBRIDRAG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$|^[a-z0-9]$")
# Fields DatabaseEntry takes from the file, as checked types (others are kept as they are).
_TYPED_KEYS = {"auto_watch": bool, "source_type": str}


# -- location ---------------------------------------------------------------------


def hybridrag_home() -> Path:
    return Path(os.environ.get("HYBRIDRAG_HOME") or Path.home() / ".hybridrag").expanduser()


def config_pointer_path() -> Path:
    """HybridRAG's ``~/.hybridrag/config_pointer``: a file holding the path of the registry to use."""
    return hybridrag_home() / "config_pointer"


def registry_path() -> Path:
    configured = os.environ.get("HYBRIDRAG_CONFIG")
    if configured:
        return Path(configured).expanduser()
    pointer = config_pointer_path()
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        target = ""
    except OSError as exc:
        raise RegistryError(f"cannot read {pointer}: {exc.strerror}; fix its permissions or remove it") from None
    if target:
        return Path(target).expanduser().resolve()  # relative to the current dir, as HybridRAG reads it
    return hybridrag_home() / "registry.yaml"


# -- plain values and masking ---------------------------------------------------------


def plain(value: Any) -> Any:
    """ruamel's round-trip types as plain Python (dict, list, str, int, float, bool, datetime, None)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (datetime, date)):
        return value if type(value) in (datetime, date) else datetime.fromisoformat(value.isoformat())
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def masked(value: Any, key: str = "") -> Any:
    """``value`` for display: strings under a secret-looking key masked, URL passwords masked."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key) and not is_env_ref(value):
            return MASK
        return redact(value)
    return value


def literal_passwords(entry: DatabaseEntry) -> List[str]:
    """Where the entry's ``backend_config`` holds a password HybridRAG would send as it is:
    a literal, or a ``${VAR}`` reference (which HybridRAG does not resolve)."""
    found: List[str] = []

    def walk(value: Any, where: str, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}", str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]", key)
        elif isinstance(value, str) and value:
            if "://" in value:
                try:
                    has_password = strip_password(value) != value
                except ValueError:
                    has_password = False
                if has_password:
                    found.append(where)
            elif _SECRET_KEY.search(key):
                found.append(where)

    walk(entry.backend_config or {}, "backend_config", "")
    return found


def password_warnings(entry: DatabaseEntry, path: Path) -> List[str]:
    """One line per password the entry holds in the file: which key, and how to take it out."""
    var = entry.password_env or "POSTGRES_PASSWORD"
    out = []
    for where in literal_passwords(entry):
        value = _dig(entry.backend_config or {}, where.split(".", 1)[1])
        how = ("remove the password from the URL (keep user@host)" if isinstance(value, str) and "://" in value
               else f"delete {where.rsplit('.', 1)[-1]}")
        if isinstance(value, str) and (is_env_ref(value) or "${" in value):
            what = "a ${...} reference, which HybridRAG passes to the server as it is"
        else:
            what = "a password in clear text"
        out.append(f"registry entry {entry.name!r} holds {what} in {where}; {how} in {path} "
                   f"and set {var} in the environment instead (LightRAG and HybridRAG read it from there)")
    return out


def _dig(mapping: Dict[str, Any], dotted: str) -> Any:
    value: Any = mapping
    for part in dotted.split("."):
        part = part.split("[", 1)[0]
        value = value.get(part) if isinstance(value, dict) else None
    return value


# -- entries <-> YAML ----------------------------------------------------------------


def entry_from_raw(path: Path, name: Any, raw: Any) -> DatabaseEntry:
    """A DatabaseEntry from a file's entry mapping; RegistryError naming file, entry and key when a
    value this package uses is wrong. Keys it does not know are kept in ``extra``."""
    where = f"{path}: entry {str(name)!r}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where} must be a mapping of settings, got {type(raw).__name__}; fix the file")
    raw = plain(raw)
    stored_name = raw.get("name", name)
    if stored_name != name:
        raise RegistryError(f"{where} has name: {stored_name!r}; the name must equal the key, fix one of them")
    if not isinstance(raw.get("path"), str) or not raw["path"]:
        raise RegistryError(f"{where} has no 'path' (the database's working dir); add it")
    config = raw.get("backend_config")
    if config is not None and not isinstance(config, dict):
        raise RegistryError(f"{where}: backend_config must be a mapping, got {type(config).__name__}; fix the file")
    for key, kind in _TYPED_KEYS.items():
        if key in raw and not isinstance(raw[key], kind):
            raise RegistryError(f"{where}: {key} must be {kind.__name__}, got {raw[key]!r}; fix the file")
    if raw.get("source_folder") is not None and not isinstance(raw["source_folder"], str):
        raise RegistryError(f"{where}: source_folder must be a path, got {raw['source_folder']!r}; fix the file")
    known = {k: v for k, v in raw.items() if k in ENTRY_KEYS and v is not None}
    extra = {k: v for k, v in raw.items() if k not in ENTRY_KEYS}
    try:
        entry = DatabaseEntry(**{**known, "name": str(name)}, extra=extra)
        validate_entry(entry)
    except ConfigError as exc:
        raise RegistryError(f"{where}: {exc}; fix the file or register the database again") from None
    return entry


def validate_entry(entry: DatabaseEntry) -> BackendConfig:
    """Check the stored config without resolving ``${VAR}`` references (they may be unset now)."""
    return entry.get_backend_config(env={}, resolve_secrets=False)


def entry_to_yaml(entry: DatabaseEntry) -> Dict[str, Any]:
    """The entry as this package writes it: HybridRAG's key order, keys it leaves out when None left
    out, then the entry's other keys as they were."""
    out: Dict[str, Any] = {}
    for key in ENTRY_KEYS:
        value = getattr(entry, key)
        if key == "backend_type":
            value = backend_name(value)
        if value is not None:
            out[key] = value
    out.update(entry.extra)
    return out


def without_passwords(entry: DatabaseEntry, password_env: Optional[str] = None) -> Tuple[DatabaseEntry, List[str]]:
    """The entry as this package writes it: no password and no ``${...}`` in ``backend_config``.

    * ``postgres_password`` (literal or ``${VAR}``) is dropped; a password in
      ``connection_string`` / ``mongo_uri`` is cut out of the URL (user kept).
    * The variable the password is read from is ``password_env``, else the one a
      dropped ``${VAR}`` named, else the one the entry already records, else the
      backend's default; it is recorded in ``extra_options.password_env`` unless it
      is the default.
    * Any other password (a secret-looking key, a URL with a password elsewhere)
      is refused: this package cannot say where it would come from.

    Returns the entry and the variables the user must export (empty when the
    backend needs none).
    """
    kind = backend_name(entry.backend_type)
    if entry.backend_config is None and not (password_env and kind in DEFAULT_PASSWORD_ENV):
        return entry, ([DEFAULT_PASSWORD_ENV["postgres"]] if kind == "postgres" else [])
    config = dict(entry.backend_config or {})
    referenced: Optional[str] = None
    had_password = False
    pw = config.pop("postgres_password", None)
    if pw:
        had_password = True
        referenced = pw[2:-1] if is_env_ref(pw) else None
    for key in ("connection_string", "mongo_uri"):
        uri = config.get(key)
        if isinstance(uri, str) and "://" in uri:
            try:
                bare = strip_password(uri)
            except ValueError:
                continue  # not a parseable URL: validation names it
            if bare != uri:
                had_password = True
                secret = uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[0].partition(":")[2]
                referenced = referenced or (secret[2:-1] if is_env_ref(secret) else None)
                config[key] = bare
    leftovers = literal_passwords(dataclasses.replace(entry, backend_config=config))
    if leftovers:
        raise ConfigError(leftovers[0], MASK, "holds a password, and the registry never stores one",
                          "remove it; passwords come from the environment")
    default = DEFAULT_PASSWORD_ENV.get(kind, "")
    extra = dict(config.get("extra_options") or {})
    var = password_env or referenced or extra.pop(PASSWORD_ENV_KEY, None) or default
    if var and var != default:
        extra[PASSWORD_ENV_KEY] = var
    if extra:
        config["extra_options"] = extra
    else:
        config.pop("extra_options", None)
    needed = [var] if var and (kind == "postgres" or had_password or password_env) else []
    return dataclasses.replace(entry, backend_config=config or None), needed


# -- the file, edited entry by entry ---------------------------------------------------


def _yaml(indent: Tuple[int, int, int] = (2, 2, 0)) -> YAML:
    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.width = 4096  # never fold a long value onto a second line
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return y


def _dump(tree: Any, indent: Tuple[int, int, int]) -> str:
    """YAML text for ``tree`` that reads back as ``tree``: characters a YAML reader takes for line
    breaks (NEL, LS, PS) are written escaped."""
    for allow_unicode in (True, False):
        y = _yaml(indent)
        y.allow_unicode = allow_unicode
        buf = io.StringIO()
        y.dump(tree, buf)
        text = buf.getvalue()
        if plain(_yaml().load(text)) == plain(tree):
            return text
    raise RegistryError("internal error: an entry could not be written as YAML that reads back the same; please report it")


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _commented(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


class RegistryDocument:
    """The registry file's text and its ruamel round-trip tree.

    Edits (:meth:`put_entry`, :meth:`update_entry`, :meth:`remove_entry`) replace only
    the lines of the entry they touch, so every other entry keeps its bytes. An
    entry's lines are its key line and everything up to the next entry, plus the
    comment lines right above its key; blank lines and comments less indented than
    the entries at the end of the block stay where they are.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._parse()

    @classmethod
    def read(cls, path: Path) -> "RegistryDocument":
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            text = ""
        except UnicodeDecodeError as exc:
            raise RegistryError(f"registry {path} is not UTF-8 text (byte {exc.start}); fix or restore the file") from None
        except OSError as exc:
            raise RegistryError(f"cannot read registry {path}: {exc.strerror}; check its permissions") from None
        return cls(path, text)

    def _parse(self) -> None:
        try:
            root = _yaml().load(self.text)
        except (MarkedYAMLError, YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise RegistryError(f"registry {self.path} is not valid YAML{at} ({problem}); fix or restore the file") from None
        if root is not None and not isinstance(root, CommentedMap):
            raise RegistryError(f"registry {self.path} must be a mapping with a 'databases' key; fix or restore the file")
        databases = root.get("databases") if root is not None else None
        if databases is not None and not isinstance(databases, CommentedMap):
            raise RegistryError(f"registry {self.path}: 'databases' must be a mapping of name -> entry; fix the file")
        self.root: Optional[CommentedMap] = root
        self.databases: Optional[CommentedMap] = databases

    # -- reading ---------------------------------------------------------------

    def names(self) -> List[str]:
        return [str(k) for k in (self.databases or {})]

    def raw(self, name: str) -> Any:
        return (self.databases or {}).get(name)

    # -- editing ---------------------------------------------------------------

    def put_entry(self, name: str, mapping: Dict[str, Any]) -> None:
        """Replace entry ``name`` in place, or append it after the last entry."""
        if self._spliceable():
            col, indent = self._style()
            if name in self.databases:
                start, end = self._span(name)
            else:
                start = end = self._block_end()
            self._splice(start, end, self._render(name, mapping, col, indent))
        else:
            self._rebuild(lambda dbs: dbs.__setitem__(name, _commented(mapping)))

    def update_entry(self, name: str, changes: Dict[str, Any]) -> None:
        """Set (or with value None delete) keys of entry ``name``; the entry's other keys, their
        order and comments are kept, the other entries keep their bytes."""
        if name not in (self.databases or {}):
            raise NotFoundError(f"no database named {name!r} in {self.path}; see 'hybridrag-backends db list'")
        if not self._spliceable():
            self._rebuild(lambda dbs: _apply_changes(dbs[name], changes))
            return
        col, indent = self._style()
        start, end = self._span(name)
        fragment = "".join(line[col:] if line.startswith(" " * col) else line for line in self._lines()[start:end])
        tree = _yaml(indent).load(fragment)
        _apply_changes(tree[name], changes)
        self._splice(start, end, [(" " * col + line) if line.strip() else line
                                  for line in _dump(tree, indent).splitlines(keepends=True)])

    def remove_entry(self, name: str) -> None:
        if name not in (self.databases or {}):
            return
        if not self._spliceable():
            self._rebuild(lambda dbs: dbs.pop(name))
            return
        start, end = self._span(name)
        lines = self._lines()
        # a blank line that separated this entry from the one before goes with it
        after_gap = start == 0 or not lines[start - 1].strip() or start - 1 == self._key_line("databases")
        if end < len(lines) and not lines[end].strip() and after_gap:
            end += 1
        self._splice(start, end, [])

    # -- internals -------------------------------------------------------------

    def _lines(self) -> List[str]:
        lines = self.text.splitlines(keepends=True)
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += "\n"
        return lines

    def _spliceable(self) -> bool:
        """True when the entries are block-style lines of their own (the usual, PyYAML-written case)."""
        dbs = self.databases
        if self.root is None or not dbs or dbs.fa.flow_style() or self.root.fa.flow_style():
            return False
        lines = [dbs.lc.key(k)[0] for k in dbs]
        return len(set(lines)) == len(lines) and self._key_line("databases") not in lines

    def _key_line(self, key: str) -> int:
        assert self.root is not None
        return self.root.lc.key(key)[0]

    def _entry_lines(self) -> List[Tuple[int, str]]:
        assert self.databases is not None
        return sorted((self.databases.lc.key(k)[0], str(k)) for k in self.databases)

    def _block_end(self) -> int:
        """End (exclusive) of the last entry's content: where an appended entry goes."""
        last = self._entry_lines()[-1][1]
        return self._span(last)[1]

    def _span(self, name: str) -> Tuple[int, int]:
        lines = self._lines()
        assert self.databases is not None and self.root is not None
        key_line, col = self.databases.lc.key(name)
        start = key_line
        floor = self._key_line("databases") + 1
        while start > floor and lines[start - 1].strip().startswith("#"):
            start -= 1  # the comment right above the key is the entry's own
        following = [line for line, _ in self._entry_lines() if line > key_line]
        later_top = [self.root.lc.key(k)[0] for k in self.root if self.root.lc.key(k)[0] > key_line]
        limit = min(following + later_top + [len(lines)])
        end = key_line + 1
        for i in range(key_line + 1, limit):
            line = lines[i]
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip(" "))
            if line.strip().startswith("#") and indent <= col:
                continue  # belongs to what follows (or to the end of the file)
            end = i + 1
        return start, end

    def _style(self) -> Tuple[int, Tuple[int, int, int]]:
        """(column of the entry keys, ruamel indent triple) as the file has them."""
        assert self.databases is not None
        col = self.databases.lc.key(next(iter(self.databases)))[1] if len(self.databases) else 2
        step, dash = 2, 0
        for value in self.databases.values():
            if isinstance(value, CommentedMap) and len(value):
                step = max(1, value.lc.key(next(iter(value)))[1] - col)
                for k, v in value.items():
                    if isinstance(v, CommentedSeq) and len(v) and not v.fa.flow_style():
                        dash = max(0, v.lc.item(0)[1] - 2 - value.lc.key(k)[1])
                        break
                break
        return col, (step, max(step, dash + 2), dash)

    def _render(self, name: str, mapping: Dict[str, Any], col: int, indent: Tuple[int, int, int]) -> List[str]:
        tree = CommentedMap()
        tree[name] = _commented(mapping)
        return [(" " * col + line) if line.strip() else line for line in _dump(tree, indent).splitlines(keepends=True)]

    def _splice(self, start: int, end: int, new: List[str]) -> None:
        lines = self._lines()
        self.text = "".join(lines[:start] + new + lines[end:])
        self._parse()

    def _rebuild(self, edit: Any) -> None:
        """Structural fallback (no file yet, ``databases: {}`` or a flow-style map): edit the tree and
        dump the whole document with ruamel's round-trip dumper (comments and order kept)."""
        root = self.root if self.root is not None else CommentedMap([("version", REGISTRY_VERSION)])
        dbs = root.get("databases")
        if not isinstance(dbs, CommentedMap) or not dbs or dbs.fa.flow_style():
            dbs = _commented(plain(dbs or {}))  # `databases: {}` (HybridRAG's empty registry) becomes a block
            root["databases"] = dbs
        edit(dbs)
        self.text = _dump(root, (2, 2, 0))
        self._parse()


def _apply_changes(mapping: Any, changes: Dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = _commented(value)


# -- the registry --------------------------------------------------------------

_LOCKS: Dict[Tuple[int, str], FileLock] = {}


def _lock_for(path: Path) -> FileLock:
    """One lock object per file and process (a forked child needs its own), so a locked block can
    save (filelock is re-entrant per object)."""
    key = (os.getpid(), str(path) + ".lock")
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(key[1], timeout=LOCK_TIMEOUT_S)
    return _LOCKS[key]


@dataclasses.dataclass
class _Change:
    kind: str  # "put" | "update" | "remove"
    name: str
    entry: Optional[DatabaseEntry] = None
    replace: bool = False
    fields: Optional[Dict[str, Any]] = None


class Registry:
    """Entries by name. ``add`` / ``update`` / ``remove`` change this object; ``save`` applies those
    changes, in order, to the file as it is on disk at that moment (under the lock)."""

    def __init__(self, path: Path, document: RegistryDocument) -> None:
        self.path = path
        self._load_from(document)
        self._changes: List[_Change] = []

    def _load_from(self, document: RegistryDocument) -> None:
        self._document = document
        self._entries: Dict[str, DatabaseEntry] = {}
        #: entry name -> what is wrong with it (the entry cannot be used until the file is fixed)
        self.problems: Dict[str, str] = {}
        for name in document.names():
            try:
                self._entries[name] = entry_from_raw(self.path, name, document.raw(name))
            except RegistryError as exc:
                self.problems[name] = str(exc)

    @classmethod
    def load(cls, path: "str | os.PathLike[str] | None" = None) -> "Registry":
        p = Path(path).expanduser() if path is not None else registry_path()
        return cls(p, RegistryDocument.read(p))

    @classmethod
    @contextlib.contextmanager
    def locked(cls, path: "str | os.PathLike[str] | None" = None) -> Iterator["Registry"]:
        """Read, change and save under the registry lock (e.g. switch one entry's backend only if it
        is still what was checked); saved when the block ends without an exception."""
        p = Path(path).expanduser() if path is not None else registry_path()
        with cls._holding(p):
            registry = cls.load(p)
            yield registry
            registry.save()

    @staticmethod
    @contextlib.contextmanager
    def _holding(path: Path) -> Iterator[None]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _lock_for(path):
                yield
        except Timeout:
            raise RegistryError(
                f"registry {path} is locked by another process for over {LOCK_TIMEOUT_S}s; "
                f"retry, or delete {path}.lock if no hybridrag-backends process is running"
            ) from None

    # -- reading ---------------------------------------------------------------

    @property
    def version(self) -> Any:
        root = self._document.root
        return root.get("version") if root is not None else None

    def entries(self) -> List[DatabaseEntry]:
        """Usable entries, by name (see :attr:`problems` for the others)."""
        return [self._entries[n] for n in sorted(self._entries)]

    def names(self) -> List[str]:
        """Every entry name in the file, usable or not, sorted."""
        return sorted(set(self._entries) | set(self.problems))

    def get(self, name: str) -> Optional[DatabaseEntry]:
        """The entry, None when there is none; RegistryError when the file's entry is unusable."""
        if name in self.problems:
            raise RegistryError(self.problems[name])
        return self._entries.get(name)

    def stored(self, name: str) -> Dict[str, Any]:
        """The entry as the file has it (every key, plain values; unsaved changes applied)."""
        if name in self._entries and any(c.name == name for c in self._changes):
            return entry_to_yaml(self._entries[name])
        raw = self._document.raw(name)
        if raw is None and name not in self._document.names():
            raise NotFoundError(f"no database named {name!r} in {self.path}; see 'hybridrag-backends db list'")
        stored = plain(raw)
        if isinstance(stored, dict) and "name" not in stored:
            stored = {"name": name, **stored}  # HybridRAG's entries always say it; a hand-written one may not
        return stored

    def warnings(self, name: str) -> List[str]:
        entry = self.get(name)
        return password_warnings(entry, self.path) if entry is not None else []

    # -- changing ----------------------------------------------------------------

    def add(self, entry: DatabaseEntry, *, replace: bool = False, password_env: Optional[str] = None) -> List[str]:
        """Add (or with ``replace`` overwrite) an entry; returns the env vars its passwords come from.

        The entry is written without any password (see :func:`without_passwords`)."""
        if entry.name in self.names() and not replace:
            where = self._entries[entry.name].path if entry.name in self._entries else "unusable entry"
            raise RegistryError(
                f"database {entry.name!r} is already registered ({where}); "
                f"remove it first with 'hybridrag-backends db remove {entry.name}' or pass --replace"
            )
        entry, needed = without_passwords(entry, password_env)
        validate_entry(entry)
        self._entries[entry.name] = entry
        self.problems.pop(entry.name, None)
        self._changes.append(_Change("put", entry.name, entry=entry, replace=replace))
        return needed

    def update(self, name: str, **fields: Any) -> DatabaseEntry:
        """Change some keys of one entry (value None deletes the key), everything else kept as it is.

        Example: ``registry.update("kb", backend_type="postgres", backend_config={...})``.
        Passwords are refused as in :meth:`add`. Applied by :meth:`save`."""
        current = self.get(name)
        if current is None:
            raise NotFoundError(f"no database named {name!r} in {self.path}; see 'hybridrag-backends db list'")
        if "name" in fields:
            raise ConfigError("name", fields["name"], "cannot be changed by update; register the database again")
        fields = dict(fields)
        if fields.get("backend_type") is not None:
            fields["backend_type"] = backend_name(fields["backend_type"])
        stored = {k: v for k, v in {**entry_to_yaml(current), **fields}.items() if v is not None}
        changed = entry_from_raw(self.path, name, stored)
        if "backend_config" in fields:
            changed, _ = without_passwords(changed)
            fields["backend_config"] = changed.backend_config
        self._entries[name] = changed
        self._changes.append(_Change("update", name, fields=fields))
        return changed

    def remove(self, name: str) -> DatabaseEntry:
        if name not in self.names():
            raise NotFoundError(f"no database named {name!r} in {self.path}; see 'hybridrag-backends db list'")
        self._changes.append(_Change("remove", name))
        self.problems.pop(name, None)
        removed = self._entries.pop(name, None)
        return removed if removed is not None else DatabaseEntry(name=name, path="")

    def save(self) -> None:
        """Apply this object's changes to the file as it is now (under the lock), atomically."""
        try:
            with self._holding(self.path):
                document = RegistryDocument.read(self.path)
                before = document.text
                current = Registry(self.path, document)
                for change in self._changes:
                    self._apply(change, current, document)
                if document.text != before or not self.path.exists():
                    mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
                    write_atomic(self.path, document.text.encode("utf-8"), mode=mode)
        except OSError as exc:  # permissions, a read-only or full disk: the user's to fix
            raise RegistryError(f"cannot write registry {self.path}: {exc.strerror or exc}; check permissions and free space") from None
        self._load_from(document)
        self._changes.clear()

    def _apply(self, change: _Change, current: "Registry", document: RegistryDocument) -> None:
        name = change.name
        if change.kind == "remove":
            document.remove_entry(name)
        elif change.kind == "put":
            assert change.entry is not None
            if name in current._entries and not change.replace and current._entries[name] != change.entry:
                raise RegistryError(
                    f"database {name!r} was registered by another process meanwhile; "
                    f"check 'hybridrag-backends db show {name}' and retry with --replace if intended"
                )
            entry, _ = without_passwords(change.entry)  # again: the entry may have been changed since add()
            document.put_entry(name, entry_to_yaml(entry))
        else:
            if name not in document.names():
                raise RegistryError(f"database {name!r} was removed by another process meanwhile; nothing was changed")
            document.update_entry(name, change.fields or {})
        current._load_from(document)


def hybridrag_name_problem(name: str) -> Optional[str]:
    """Why HybridRAG would skip an entry of this name (its own name rule), or None."""
    if HYBRIDRAG_NAME.match(name):
        return None
    return (f"HybridRAG accepts only lowercase letters, digits and '-' in database names "
            f"(its 'db list' skips {name!r}); {name.lower().replace('_', '-').replace('.', '-')!r} would do")
