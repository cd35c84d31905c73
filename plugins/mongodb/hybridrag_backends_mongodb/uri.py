"""MongoDB URIs: syntax, database names, and ``${VAR}`` password references.

The registry never stores a password: a URI can name it as
``mongodb://user:${MONGO_PASSWORD}@host/db``; :func:`resolve_uri` substitutes
the environment variable (percent-encoded) only when a connection is made.
Every error message here is built from redacted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from hybridrag_backends.errors import ConfigError
from hybridrag_backends.secrets import QUERY_PASSWORD_REFUSED, query_password, redact, resolve_uri_refs

SCHEMES = ("mongodb", "mongodb+srv")
DEFAULT_DATABASE = "LightRAG"  # LightRAG 1.5.7's MONGO_DATABASE default
DEFAULT_PORT = 27017

# MongoDB's database name rules (the stricter cross-platform set): at most 63 bytes,
# none of / \ . space " $ * < > : | ? and no NUL.
_BAD_DB_CHARS = re.compile(r'[/\\. "$*<>:|?\x00]')
_PASSWORD_REF = re.compile(r"^(?P<scheme>mongodb(?:\+srv)?://)(?P<user>[^:@/]+):\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)\}@")


@dataclass(frozen=True)
class MongoUri:
    scheme: str
    hosts: Tuple[str, ...]  # "host:port" (port omitted for +srv), lower-cased, sorted
    database: Optional[str]  # from the URI path, decoded
    username: Optional[str]
    has_password: bool
    password_var: Optional[str]  # NAME when the password is a ${NAME} reference


def check_database_name(name: str) -> Optional[str]:
    """None when ``name`` is a valid MongoDB database name, else what is wrong."""
    if not name:
        return "must not be empty"
    if len(name.encode("utf-8")) > 63:
        return "must be at most 63 bytes"
    bad = _BAD_DB_CHARS.search(name)
    if bad:
        return f"must not contain {bad.group(0)!r} (MongoDB forbids / \\ . space \" $ * < > : | ? and NUL)"
    return None


def parse_uri(uri: str) -> MongoUri:
    """Validate ``uri`` with pymongo's own parser (no DNS lookup for +srv) and split it."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError("mongo_uri", redact(uri), "must be a mongodb:// or mongodb+srv:// URI")
    shown = redact(uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError("mongo_uri", shown, "must start with mongodb:// or mongodb+srv://")
    if query_password(uri):  # pymongo would refuse it as an unknown option without saying what to do
        raise ConfigError("mongo_uri", shown, QUERY_PASSWORD_REFUSED)
    ref = _PASSWORD_REF.match(uri)
    # Validate the reference form with a placeholder so pymongo checks everything else.
    checked = _PASSWORD_REF.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:x@", uri, count=1)
    # pymongo's validator is private but stable across 4.x (pinned <5); the public
    # parse_uri resolves +srv names over DNS, which a syntax check must not do.
    from pymongo.errors import ConfigurationError, InvalidURI
    from pymongo.uri_parser_shared import _validate_uri

    try:
        parts = _validate_uri(checked, default_port=DEFAULT_PORT, validate=True, warn=False, normalize=True)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise ConfigError("mongo_uri", shown, f"is not a valid MongoDB URI: {redact(exc)}") from None
    database = parts["database"]
    if parts.get("collection"):
        database = f"{database}.{parts['collection']}"
    if database is not None:
        problem = check_database_name(database)
        if problem:
            raise ConfigError("mongo_uri", shown, f"database name {database!r} {problem}")
    if parts["fqdn"]:
        hosts: Tuple[str, ...] = (parts["fqdn"].lower(),)
    else:
        hosts = tuple(sorted(f"{h.lower()}:{p}" for h, p in parts["nodelist"]))
    return MongoUri(
        scheme=scheme,
        hosts=hosts,
        database=database,
        username=parts["username"],
        has_password=bool(parts["password"]) or ref is not None,
        password_var=ref.group("var") if ref else None,
    )


def resolve_uri(uri: str, env: Optional[Dict[str, str]] = None) -> str:
    """The URI to connect with: a ``${NAME}`` password replaced by $NAME, percent-encoded."""
    return resolve_uri_refs(uri, env, field="mongo_uri") or ""
