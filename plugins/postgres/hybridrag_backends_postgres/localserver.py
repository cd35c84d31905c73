"""A local PostgreSQL with pgvector and Apache AGE, for ``hybridrag-backends postgres up|down|status|url``.

Two routes start one; ``--via auto`` takes the first that works here:

1. **docker**, when a Docker daemon answers (``docker info``): the compose file and Dockerfile in
   ``data/docker/`` (PostgreSQL 17, pgvector, Apache AGE < 1.8 from the PostgreSQL apt repository,
   ``age`` preloaded, port on 127.0.0.1 only, data in a named volume). The generated password and
   the port are kept in ``$HYBRIDRAG_HOME/postgres-docker/`` (mode 0600), the server's own state, so
   reruns give the same URL; it never goes into the registry.
2. **sandbox**, as root on Debian or Ubuntu: ``data/pg-sandbox.sh``, a Debian trixie debootstrap
   root holding PostgreSQL 17 + pgvector + AGE. It is the same file ``scripts/pg-sandbox``, the test
   suite and CI run; its root is ``$HYBRIDRAG_PG_ROOT`` (default ``/var/lib/hybridrag-pg/root``) or
   ``--root``. Its password is kept inside the root.

Otherwise :class:`NoRoute` carries the manual steps. The files in ``data/`` are package data, so a
``pip install 'hybridrag-backends[postgres]'`` user has them.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from hybridrag_backends.cli.output import one_line
from hybridrag_backends.errors import ConnectionFailure, NotFoundError, ValidationFailure
from hybridrag_backends.secrets import redact

DATA = Path(__file__).resolve().parent / "data"
SANDBOX_SCRIPT = DATA / "pg-sandbox.sh"
DOCKER_DIR = DATA / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ROOT_ENV = "HYBRIDRAG_PG_ROOT"
DEFAULT_ROOT = "/var/lib/hybridrag-pg/root"
ROUTES = ("docker", "sandbox")
DB_USER = DB_NAME = "hybridrag"
DOCKER_PROBE_TIMEOUT_S = 10

MANUAL_STEPS = """\
To run PostgreSQL for LightRAG yourself:
  1. install PostgreSQL 14+ with pgvector >= 0.5 and Apache AGE < 1.8 (the PostgreSQL project's apt
     repository has postgresql-17-pgvector and postgresql-17-age; any image that has both works too)
  2. in postgresql.conf set  shared_preload_libraries = 'age'  and restart the server
  3. as a superuser:  CREATE USER hybridrag PASSWORD 'PASSWORD';  CREATE DATABASE hybridrag OWNER hybridrag;
     then in database hybridrag:  CREATE EXTENSION vector;  CREATE EXTENSION age;
  4. check it:  hybridrag-backends validate postgresql://hybridrag:PASSWORD@localhost:5432/hybridrag
     PASSWORD: the password you chose in step 3"""


class NoRoute(ValidationFailure):
    """Neither route works here; ``steps`` says how to get a server by hand."""

    def __init__(self, reason: str) -> None:
        self.steps = MANUAL_STEPS
        super().__init__(
            f"cannot start a local PostgreSQL here: {reason}; start Docker and rerun "
            f"'hybridrag-backends postgres up', or set one up by hand (steps above)")


# -- what this machine offers ----------------------------------------------------------------


def docker_daemon(timeout: float = DOCKER_PROBE_TIMEOUT_S) -> Tuple[bool, str]:
    """(answers, why): whether ``docker info`` reaches a daemon, and what was seen."""
    docker = shutil.which("docker")
    if docker is None:
        return False, "no docker command on PATH"
    try:
        out = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"docker info failed: {exc}"
    version = out.stdout.strip()
    if out.returncode != 0 or not version:
        last = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return False, f"no Docker daemon answers ({redact(last)})"
    return True, f"Docker daemon {version} answers"


def debian_like(os_release: Path = Path("/etc/os-release")) -> bool:
    """Debian, Ubuntu or a derivative (what the sandbox's debootstrap and apt-get need)."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return False
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = " ".join(fields.get(k, "").strip('"').lower() for k in ("ID", "ID_LIKE")).split()
    return any(i in ("debian", "ubuntu") for i in ids)


@dataclass
class Facts:
    """What decides the route (gathered once; tests pass their own)."""

    docker_answers: bool
    docker_why: str
    is_root: bool
    debian: bool

    @classmethod
    def gather(cls) -> "Facts":
        answers, why = docker_daemon()
        return cls(answers, why, os.geteuid() == 0, debian_like())

    def sandbox_why_not(self) -> Optional[str]:
        if not self.debian:
            return "the sandbox needs Debian or Ubuntu"
        if not self.is_root:
            return "the sandbox needs root (it uses chroot); rerun with sudo"
        return None


def choose_route(via: str, facts: Facts) -> str:
    """``docker`` or ``sandbox`` for ``via`` (auto, docker, sandbox); NoRoute when none works."""
    if via == "docker":
        if not facts.docker_answers:
            raise NoRoute(facts.docker_why)
        return "docker"
    if via == "sandbox":
        problem = facts.sandbox_why_not()
        if problem:
            raise NoRoute(problem)
        return "sandbox"
    if facts.docker_answers:
        return "docker"
    problem = facts.sandbox_why_not()
    if problem is None:
        return "sandbox"
    raise NoRoute(f"{facts.docker_why}, and {problem}")


# -- the routes ------------------------------------------------------------------------------


class Sandbox:
    """The debootstrap root of ``data/pg-sandbox.sh``."""

    name = "sandbox"

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT

    def where(self) -> str:
        return f"sandbox {self.root}"

    def command(self, action: str) -> List[str]:
        return ["bash", str(SANDBOX_SCRIPT), action]

    def shown_command(self, action: str) -> str:
        return f"{ROOT_ENV}={shlex.quote(self.root)} {shlex.join(self.command(action))}"

    def _run(self, action: str, *, progress: bool = False) -> subprocess.CompletedProcess:
        # progress (debootstrap, apt-get) goes straight to the user's stderr on start
        return subprocess.run(self.command(action), env={**os.environ, ROOT_ENV: self.root}, text=True,
                              stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                              stdin=subprocess.DEVNULL)

    def up(self) -> str:
        out = self._run("start", progress=True)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise ConnectionFailure(f"the sandbox at {self.root} did not start (exit {out.returncode}; its messages "
                                    f"are above); see {self.root}/var/log/postgresql/ and rerun")
        return lines[-1]

    def down(self) -> str:
        out = self._run("stop")
        if out.returncode != 0:
            raise ConnectionFailure(f"stopping the sandbox at {self.root} failed: {one_line(out.stderr)}")
        return one_line(out.stderr) or "stopped"

    def status(self) -> Tuple[str, Optional[int]]:
        out = self._run("status")
        words = out.stdout.split()
        if out.returncode == 0 and len(words) == 2 and words[0] == "running":
            return "running", int(words[1])
        if words[:1] in (["stopped"], ["absent"]):
            return words[0], None
        raise ConnectionFailure(f"cannot tell the sandbox's state at {self.root}: {one_line(out.stderr or out.stdout)}")

    def url(self) -> str:
        out = self._run("url")
        if out.returncode != 0:
            raise NotFoundError(f"the sandbox at {self.root} is not running; start it with: "
                                f"hybridrag-backends postgres up --via sandbox --root {shlex.quote(self.root)}")
        return out.stdout.strip().splitlines()[-1]


class Docker:
    """``docker compose`` on ``data/docker/compose.yaml``; password and port kept in a state dir."""

    name = "docker"

    def __init__(self, state_dir: Optional[Path] = None) -> None:
        if state_dir is None:
            from hybridrag_backends.registry import hybridrag_home

            state_dir = hybridrag_home() / "postgres-docker"
        self.state_dir = state_dir

    def where(self) -> str:
        return f"docker compose project hybridrag-pg ({COMPOSE_FILE})"

    def compose(self, *args: str) -> List[str]:
        return ["docker", "compose", "-f", str(COMPOSE_FILE), *args]

    def _state(self, create: bool) -> Tuple[Optional[str], Optional[int]]:
        pw_file, port_file = self.state_dir / "password", self.state_dir / "port"
        if create and not pw_file.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(16))  # hex: nothing to escape in a URL or in SQL
            port_file.write_text(str(_free_port(5432)))
        if not pw_file.exists():
            return None, None
        return pw_file.read_text().strip(), int(port_file.read_text().strip())

    def up_command(self) -> str:
        """The command ``up`` runs, password shown as where it comes from."""
        return (f"POSTGRES_PASSWORD=<generated, kept in {self.state_dir / 'password'}> HYBRIDRAG_PG_PORT=<5432, or a "
                f"free port if taken> {shlex.join(self.compose('up', '-d', '--build', '--wait'))}")

    def _env(self, password: str, port: int) -> Dict[str, str]:
        return {**os.environ, "POSTGRES_PASSWORD": password, "HYBRIDRAG_PG_PORT": str(port)}

    def up(self) -> str:
        password, port = self._state(create=True)
        assert password is not None and port is not None
        out = subprocess.run(self.compose("up", "-d", "--build", "--wait"), env=self._env(password, port),
                             stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ConnectionFailure(f"docker compose up failed (exit {out.returncode}; its messages are above)")
        return _url(password, port)

    def down(self) -> str:
        password, port = self._state(create=False)
        out = subprocess.run(self.compose("down"), env=self._env(password or "-", port or 5432),
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ConnectionFailure(f"docker compose down failed: {one_line(out.stderr)}")
        return "stopped (the data volume hybridrag-pg-data is kept)"

    def status(self) -> Tuple[str, Optional[int]]:
        password, port = self._state(create=False)
        if password is None:
            return "absent", None
        out = subprocess.run(self.compose("ps", "--status", "running", "-q"), env=self._env(password, port or 5432),
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return ("running", port) if out.returncode == 0 and out.stdout.strip() else ("stopped", None)

    def url(self) -> str:
        state, port = self.status()
        password, _ = self._state(create=False)
        if state != "running" or password is None or port is None:
            raise NotFoundError("the Docker PostgreSQL is not running; start it with: hybridrag-backends postgres up --via docker")
        return _url(password, port)


def route_for(name: str, root: Optional[str] = None) -> "Sandbox | Docker":
    return Docker() if name == "docker" else Sandbox(root)


def _url(password: str, port: int) -> str:
    return f"postgresql://{DB_USER}:{password}@127.0.0.1:{port}/{DB_NAME}"


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ConnectionFailure("no free TCP port on 127.0.0.1")
