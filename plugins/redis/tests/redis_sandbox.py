"""A local ``redis-server`` for the tests, started idempotently (the way scripts/pg-sandbox starts PostgreSQL).

    python plugins/redis/tests/redis_sandbox.py start|stop|status    # start prints the URL

The server runs as a daemon on a free local port, its state (port, pid, log) in ``HYBRIDRAG_REDIS_DIR``
(default: a folder in the temp dir named after this checkout), without persistence: it is for tests.
``start`` reuses a running one (same URL on every run); a lock serialises concurrent callers.
``redis-server`` comes from Debian's ``redis-server`` package: when it is missing and this runs as root on a
machine with apt-get (as ``make test`` on a fresh machine of this project's kind does), it is installed
first, the way ``scripts/pg-sandbox`` installs what it needs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from filelock import FileLock

CHECKOUT = Path(__file__).resolve().parents[3]
STATE = Path(os.environ.get("HYBRIDRAG_REDIS_DIR") or Path(tempfile.gettempdir()) / (
    f"hybridrag-redis-{os.getuid()}-{hashlib.sha1(str(CHECKOUT).encode()).hexdigest()[:10]}"))


class Unavailable(RuntimeError):
    """redis-server cannot be started here (the message says why and what to do)."""


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _port() -> Optional[int]:
    try:
        return int((STATE / "port").read_text())
    except (OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> Optional[str]:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def _install() -> Optional[str]:
    """Install Debian's redis-server when we may (root, apt-get); None when we may not or it failed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    return _binary()


def url() -> Optional[str]:
    port = _port()
    return f"redis://127.0.0.1:{port}/0" if port and _ping(port) else None


def start() -> str:
    """The URL of a running server, started if none is."""
    STATE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(STATE / "lock"), timeout=60):
        running = url()
        if running:
            return running
        binary = _binary() or _install()
        if binary is None:
            raise Unavailable("redis-server is not installed; apt-get install -y redis-server (CI's .ci/run does it), "
                              "or set HYBRIDRAG_TEST_REDIS_URL to a server of yours")
        port = _free_port()
        proc = subprocess.run(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", str(STATE),
             "--pidfile", str(STATE / "redis.pid"), "--logfile", str(STATE / "redis.log"),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise Unavailable(f"redis-server did not start (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        deadline = time.monotonic() + 20
        while not _ping(port):
            if time.monotonic() > deadline:
                log = (STATE / "redis.log").read_text(errors="replace")[-800:] if (STATE / "redis.log").exists() else ""
                raise Unavailable(f"redis-server on port {port} did not answer within 20 s; its log: {log}")
            time.sleep(0.05)
        (STATE / "port").write_text(str(port))
        return f"redis://127.0.0.1:{port}/0"


def stop() -> None:
    with FileLock(str(STATE / "lock"), timeout=60):
        try:
            pid = int((STATE / "redis.pid").read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        (STATE / "port").unlink(missing_ok=True)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    try:
        if command == "start":
            print(start())
        elif command == "stop":
            stop()
        elif command == "status":
            running = url()
            print(f"running {running}" if running else "stopped")
            sys.exit(0 if running else 3)
        else:
            sys.exit("usage: redis_sandbox.py start|stop|status")
    except Unavailable as exc:
        sys.exit(f"redis-sandbox: error: {exc}")
