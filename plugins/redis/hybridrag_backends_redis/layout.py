"""Where LightRAG 1.5.7's Redis storages keep things (``lightrag/kg/redis_impl.py``), and the TARGET URL.

* One string key per record: ``<final_namespace>:<record id>``, the value ``json.dumps(record)``.
  ``final_namespace`` is ``<workspace>_<namespace>``, or ``<namespace>`` for the default workspace
  (``REDIS_WORKSPACE``, when set, overrides the workspace LightRAG is given).
* ``RedisKVStorage.upsert`` stamps ``_id`` (= the id) into KV records; ``RedisDocStatusStorage``
  does not.
* The doc status storage keeps a derived scheduling index under ``<final_namespace>__sched:*``
  (and ``__sched_rebuild:*`` while rebuilding); it rebuilds it from the rows on ``initialize()``
  when absent. A writer that does not maintain it deletes it, so LightRAG rebuilds it.
* No store list exists: stores are found by scanning key prefixes.

TARGET: ``redis[s]://[[user]:password@]host[:port][/db]?working_dir=PATH``: ``working_dir`` is the
LightRAG working dir holding the vector and graph files (with ``--workspace W``: ``PATH/W/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Set
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hybridrag_backends.errors import ConfigError
from hybridrag_backends.provider import STANDARD_KV_NAMESPACES
from hybridrag_backends.secrets import redact

DEFAULT_PORT = 6379
JOBS_KEY = b"hybridrag_backends:jobs"  # hash: job id -> the job as JSON (checkpoints committed with the data)
OUR_PREFIX = "hybridrag_backends"
SIDECAR_SUFFIXES = ("__sched", "__sched_rebuild")
REDIS_NAMESPACES = (*STANDARD_KV_NAMESPACES, "doc_status")
OUR_QUERY = ("working_dir",)  # query parameters this provider takes; the rest go to the Redis client
_GLOB = re.compile(r"([*?\[\]\\])")


def final_namespace(workspace: str, namespace: str) -> str:
    return f"{workspace}_{namespace}" if workspace else namespace


def record_key(workspace: str, namespace: str, record_id: str) -> bytes:
    # surrogateescape: an id read from a key that is not UTF-8 gives back the same bytes
    return f"{final_namespace(workspace, namespace)}:{record_id}".encode("utf-8", "surrogateescape")


def glob_escape(text: str) -> str:
    return _GLOB.sub(r"\\\1", text)


def records_pattern(workspace: str, namespace: str) -> str:
    return f"{glob_escape(final_namespace(workspace, namespace))}:*"


def sidecar_patterns(workspace: str, namespace: str) -> list:
    base = glob_escape(final_namespace(workspace, namespace))
    return [f"{base}{suffix}:*" for suffix in SIDECAR_SUFFIXES]


def namespaces_in(prefixes: Iterable[str], workspace: str) -> Set[str]:
    """The LightRAG namespaces of ``workspace`` among key prefixes (the text before a key's first ':').

    The default workspace has no prefix of its own, so a prefix ``<w>_<namespace>`` is another
    workspace's when ``<w>_`` also prefixes one of LightRAG's standard namespaces (``<w>_full_docs``...).
    """
    found = set()
    prefixes = set(prefixes)
    others = {p[: -len(ns) - 1] for p in prefixes for ns in REDIS_NAMESPACES
              if p.endswith("_" + ns) and len(p) > len(ns) + 1}
    for prefix in prefixes:
        if prefix == OUR_PREFIX or prefix.endswith(SIDECAR_SUFFIXES):
            continue
        if workspace:
            if prefix.startswith(workspace + "_"):
                found.add(prefix[len(workspace) + 1:])
        elif not any(prefix.startswith(w + "_") for w in others):
            found.add(prefix)
    return found


@dataclass(frozen=True)
class RedisTarget:
    uri: str  # for the Redis client and LightRAG's REDIS_URI: our own query parameters removed
    host: str
    port: int
    db: int
    working_dir: Optional[str]


def parse_target(target: str) -> RedisTarget:
    """Split and check a TARGET URL; ConfigError naming the field on anything wrong."""
    shown = redact(target)
    parts = urlsplit(target)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError("uri", shown, "must start with redis:// or rediss://")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError("port", shown, f"is not a TCP port ({exc})", "give host:port with a number, e.g. :6379") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError("database", shown, "the path must be a database number (e.g. /0)")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ours = {k: query.pop(k) for k in OUR_QUERY if k in query}
    uri = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return RedisTarget(uri, parts.hostname or "localhost", port, int(path or 0), ours.get("working_dir") or None)


def with_working_dir(uri: str, working_dir: str) -> str:
    """``uri`` with the ``working_dir`` query parameter (how a registry entry can spell the target)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["working_dir"] = working_dir
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
