"""Connections: asyncpg with a timeout, the pgvector codec, and errors that never show a password."""

from __future__ import annotations

import asyncio
import ssl as _ssl
from typing import Any, Dict, Optional
from urllib.parse import quote

import asyncpg
from pgvector.asyncpg import register_vector

from hybridrag_backends.errors import ConnectionFailure
from hybridrag_backends.hints import run_hint
from hybridrag_backends.models import BackendConfig
from hybridrag_backends.secrets import redact, resolve_env_refs

from .naming import quote_ident

CONNECT_TIMEOUT = 5.0
# Docker when a daemon answers, else (root on Debian/Ubuntu) a sandbox: see localserver.py
LOCAL_SERVER_HINT = "run: hybridrag-backends postgres up"


def connect_kwargs(config: BackendConfig) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = dict(
        host=config.postgres_host,
        port=config.postgres_port,
        user=config.postgres_user,
        password=resolve_env_refs(config.postgres_password, field="postgres_password"),
        database=config.postgres_database,
        timeout=CONNECT_TIMEOUT,
    )
    if config.postgres_ssl_mode in ("require", "verify-ca", "verify-full"):
        ctx = _ssl.create_default_context()
        if config.postgres_ssl_mode == "require":
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
        kwargs["ssl"] = ctx
    elif config.postgres_ssl_mode == "disable":
        kwargs["ssl"] = False
    else:  # allow / prefer: asyncpg's own negotiation
        kwargs["ssl"] = config.postgres_ssl_mode
    return kwargs


def psql_hint(config: BackendConfig, sql: str, *, database: Optional[str] = None) -> str:
    """``run: psql <url without password> -c <sql>``: complete; psql asks for the password (or reads PGPASSWORD)."""
    url = (f"postgresql://{quote(config.postgres_user, safe='')}@{config.postgres_host}:{config.postgres_port}"
           f"/{quote(database or config.postgres_database, safe='')}")
    return run_hint(["psql", url, "-c", sql])


def where(config: BackendConfig) -> str:
    return f"{config.postgres_user}@{config.postgres_host}:{config.postgres_port}/{config.postgres_database}"


async def connect(config: BackendConfig, *, vectors: bool = True) -> asyncpg.Connection:
    """One connection; ConnectionFailure (with the fix) when the server cannot be reached."""
    try:
        conn = await asyncpg.connect(**connect_kwargs(config))
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConnectionFailure(describe_failure(config, exc)) from None
    if vectors:
        try:
            await register_vector(conn)
        except ValueError:  # the vector extension is missing; validate() says so
            pass
    return conn


def describe_failure(config: BackendConfig, exc: BaseException) -> str:
    reason = redact(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.InvalidPasswordError):
        fix = "check the user and password (POSTGRES_PASSWORD or the ${VAR} the config names)"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        fix = "create the database; as a superuser " + psql_hint(
            config, f"CREATE DATABASE {quote_ident(config.postgres_database)}", database="postgres")
    else:
        fix = f"start the server or fix host/port; for a local one, {LOCAL_SERVER_HINT}"
    return f"cannot connect to PostgreSQL at {where(config)}: {reason}; {fix}"
