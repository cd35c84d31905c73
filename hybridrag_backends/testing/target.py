"""What an author's one fixture returns: the provider under test and a fresh place to write to."""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

from ..models import BackendConfig
from ..provider import BackendProvider, StoreKind

#: the password the suite puts into URL targets: it must never come out of describe(), env, errors
SUITE_SECRET = "Conf0rmance-S3cret-pw"


@dataclass
class ConformanceTarget:
    """The provider under test and one fresh, empty location it can write to.

    Only ``provider`` and ``target`` are required; the rest has defaults that fit most backends.
    """

    provider: BackendProvider
    #: a TARGET the provider claims (a URL of one of its ``url_schemes``, or a path it claims);
    #: nothing there yet, or only other workspaces
    target: str
    #: the workspace inside ``target`` (None: the provider's default). The suite makes more fresh
    #: locations by deriving workspace names from it, so workspaces must isolate data (LightRAG's do).
    workspace: Optional[str] = None
    #: the store kinds the backend can hold (all five for a complete LightRAG backend)
    store_kinds: Sequence[StoreKind] = tuple(StoreKind)
    #: a TARGET of this backend with nothing answering; default: ``target`` with the host and port
    #: of a closed local port (URL targets), or a path that does not exist (path targets)
    unreachable_target: Optional[str] = None
    #: TARGETs that config_from_target() must refuse, each with the field its error must name
    invalid_targets: Mapping[str, str] = field(default_factory=dict)
    #: how a subprocess starts Python (the CLI and the LightRAG reader run through it); a fake
    #: server's launcher goes here
    python: Sequence[str] = (sys.executable,)
    #: extra environment for those subprocesses
    env: Mapping[str, str] = field(default_factory=dict)
    #: validate() / metrics() on a small target must answer within this many seconds
    time_limit_s: float = 10.0
    #: SIGKILLs during the engine run of the crash test
    kill_points: int = 5

    # -- derived values ---------------------------------------------------------

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def is_url(self) -> bool:
        return "://" in self.target and urlsplit(self.target).scheme.lower() in self.provider.url_schemes

    def config(self, workspace: Optional[str] = None, *, target: Optional[str] = None) -> BackendConfig:
        return self.provider.config_from_target(target or self.target, workspace=self.workspace if workspace is None else workspace)

    def fresh_workspace(self, n: int) -> str:
        """A workspace name no other check uses (letters, digits and '_': valid for every LightRAG backend)."""
        base = re.sub(r"[^A-Za-z0-9_]", "_", self.workspace or "")[:28]
        return f"{base}_c{n}" if base else f"c{n}"

    def with_secret(self, secret: str = SUITE_SECRET) -> Optional[str]:
        """``target`` carrying ``secret`` as its password (URL targets only)."""
        if not self.is_url:
            return None
        parts = urlsplit(self.target)
        user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0] if "@" in parts.netloc else "conformance"
        host = parts.netloc.rsplit("@", 1)[-1]
        netloc = f"{user}:{quote(secret, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def with_bad_port(self, target: Optional[str] = None) -> Optional[str]:
        """``target`` (default: the target) with a port that is not a number (URL targets only)."""
        if not self.is_url:
            return None
        parts = urlsplit(target or self.target)
        host = (parts.hostname or "localhost").split(",")[0]
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, f"{userinfo}{host}:notaport", parts.path, parts.query, parts.fragment))

    def unreachable(self, scratch: Path) -> str:
        if self.unreachable_target:
            return self.unreachable_target
        if self.is_url:
            parts = urlsplit(self.target)
            userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
            netloc = f"{userinfo}127.0.0.1:{closed_port()}"
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return str(scratch / "nothing-here" / "no-such-dir")

    def subprocess_env(self, home: Path) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["HYBRIDRAG_HOME"] = str(home)
        env["HYBRIDRAG_CONFIG"] = str(home / "registry.yaml")
        env.pop("HYBRIDRAG_BACKENDS_DEBUG", None)
        return env

    def cli(self, *args: str) -> Tuple[str, ...]:
        return (*self.python, "-m", "hybridrag_backends", *args)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound and released: nobody took it a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
