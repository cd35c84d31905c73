"""Keep credentials out of output, logs, errors and the registry file.

The tools: :func:`redact` for any text that may hold a URL with a password or a
``password=...`` pair; :func:`redact_fields` / :func:`redact_strings` for
structures (a job record is redacted field by field, never as serialised text,
so its data - record keys, checkpoints - is never changed and it stays valid
JSON); and :func:`resolve_env_refs` for ``${VAR}`` references, which is how the
registry names a password without storing it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Collection
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from .errors import ConfigError

# scheme://user:password@host -> the password part; also catches user-only forms. The userinfo runs
# to the LAST '@' of the authority, as URL parsers read it: a password typed with a raw '@' is masked whole.
_URL_CRED = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s]+)@")
# name=value / name: value pairs whose name ends in password, passwd or pwd: password=..., PGPASSWORD=...,
# postgres_password='...' (a repr), "postgres_password": "..." (JSON). A quoted value is masked up to its
# closing quote (escapes included); an unquoted one up to the next white space.
_KEYVAL_PW = re.compile(
    r"""(?P<name>\b[\w.-]*?(?:password|passwd|pwd))(?P<sep>["']?\s*[=:]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""",
    re.IGNORECASE,
)
_ALREADY_MASKED_TAIL = re.compile(r"""[\]'"(),.:;}]*""")
_ENV_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")

MASK = "***"


def redact(text: object) -> str:
    """Return ``text`` with URL passwords and ``password=...`` pairs masked."""

    def _mask_userinfo(m: re.Match[str]) -> str:
        userinfo = m.group("userinfo")
        user, sep, password = userinfo.partition(":")
        if sep and not is_env_ref(password):  # a ${VAR} reference names a variable, not a secret
            return f"{m.group('scheme')}{user}:{MASK}@"
        return m.group(0)

    def _mask_value(m: re.Match[str]) -> str:
        value = m.group("value")
        quote_char = value[0] if value[0] in "'\"" and len(value) > 1 and value[-1] == value[0] else ""
        if is_env_ref(value[1:-1] if quote_char else value):
            return m.group(0)
        if value.startswith(MASK) and _ALREADY_MASKED_TAIL.fullmatch(value[len(MASK):]):
            return m.group(0)  # masked before (a message redacted twice): keep the punctuation after it
        return f"{m.group('name')}{m.group('sep')}{quote_char}{MASK}{quote_char}"

    out = _URL_CRED.sub(_mask_userinfo, str(text))
    return _KEYVAL_PW.sub(_mask_value, out)


def redact_strings(value: Any) -> Any:
    """A copy of a JSON-like structure with :func:`redact` applied to every string in it (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_strings(k): redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v) for v in value]
    return value


def redact_fields(value: Any, fields: Collection[str]) -> Any:
    """A copy of a JSON-like structure in which the strings under a key named in ``fields`` (at any depth)
    are redacted, and nothing else: free-text fields (messages) are masked while data (record keys,
    checkpoints, digests) comes back exactly as it was, so a key like ``pwd=x`` survives."""
    if isinstance(value, dict):
        return {k: redact_strings(v) if k in fields else redact_fields(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_fields(v, fields) for v in value]
    return value


QUERY_PASSWORD_REFUSED = (
    "a 'password' query parameter is not accepted; give the password before the host, as USER:PASSWORD@HOST, "
    "or better a variable there, as USER:${VAR}@HOST"
)


def query_password(url: str) -> bool:
    """True when a URL carries a ``password`` query parameter (``...?password=x``)."""
    try:
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return False
    return any(name.lower() == "password" for name in query)


def strip_password(url: str) -> str:
    """The same URL without its password (user kept), for storing or showing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def is_env_ref(value: object) -> bool:
    return isinstance(value, str) and bool(_ENV_REF.match(value))


def resolve_env_refs(value: str | None, env: dict[str, str] | None = None, *, field: str = "password") -> str | None:
    """Turn ``${NAME}`` into the value of environment variable NAME.

    A literal value is returned unchanged. A reference to an unset variable is
    an error that names the variable (never a value).
    """
    if value is None:
        return None
    m = _ENV_REF.match(value)
    if not m:
        return value
    env = os.environ if env is None else env
    name = m.group("name")
    if name not in env:
        raise ConfigError(field, value, f"environment variable {name} is not set; set it to the value it should "
                          f"hold (VALUE) and rerun; run: export {name}=VALUE")
    return env[name]


def _split_netloc(netloc: str) -> tuple[str | None, str | None, str]:
    """(raw user, raw password, host[:port]) of a netloc, still percent-encoded."""
    if "@" not in netloc:
        return None, None, netloc
    userinfo, host = netloc.rsplit("@", 1)
    user, sep, password = userinfo.partition(":")
    return user, (password if sep else None), host


def uri_password_to_ref(uri: str, var: str) -> tuple[str, bool]:
    """Replace a literal password in ``uri`` by ``${var}``; True when one was replaced.

    This is how a URI is stored in the registry: ``postgresql://me:${POSTGRES_PASSWORD}@host/db``.
    """
    parts = urlsplit(uri)
    user, password, host = _split_netloc(parts.netloc)
    if password is None or is_env_ref(password):
        return uri, False
    netloc = f"{user}:${{{var}}}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), True


def resolve_uri_refs(uri: str | None, env: dict[str, str] | None = None, *, field: str = "uri") -> str | None:
    """Put the value of ``${NAME}`` back into a URI's password position (percent-encoded)."""
    if uri is None:
        return None
    parts = urlsplit(uri)
    user, password, host = _split_netloc(parts.netloc)
    if password is None or not is_env_ref(password):
        return uri
    value = resolve_env_refs(password, env, field=field) or ""
    netloc = f"{user}:{quote(value, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
