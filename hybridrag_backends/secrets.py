"""Keep credentials out of output, logs, errors and the registry file.

Two tools: :func:`redact` for any text that may hold a URL with a password,
and :func:`resolve_env_refs` for ``${VAR}`` references, which is how the
registry names a password without storing it.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import ConfigError

# scheme://user:password@host -> the password part; also catches user-only forms. The userinfo runs
# to the LAST '@' of the authority, as URL parsers read it: a password typed with a raw '@' is masked whole.
_URL_CRED = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s]+)@")
_KEYVAL_PW = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|\"[^\"]*\"|\S+)")
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

    out = _URL_CRED.sub(_mask_userinfo, str(text))
    return _KEYVAL_PW.sub(lambda m: m.group(0) if is_env_ref(m.group(2)) else f"{m.group(1)}={MASK}", out)


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
