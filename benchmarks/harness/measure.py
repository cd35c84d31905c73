"""Run one step in a subprocess: wall time, the child's peak RSS, the server's memory meanwhile.

Peak RSS is the kernel's high-water mark of the step's process, read by GNU time (``/usr/bin/time -f %M``),
so it is exact and costs nothing while the step runs. Not from our own ``os.wait4``: a child forked from this
(large) Python process carries the parent's high-water mark across ``exec`` (Linux keeps the larger of the
two in ``ru_maxrss``), so every small step would report at least the harness's own RSS. GNU time is small and
forks the step itself, so the step starts from its own few pages. Without GNU time, ``wait4`` is used and the
result says so (``rss_method``). The PostgreSQL server's memory is
polled (psutil, every ``interval`` s) over the postmaster's process tree as the sum of PSS (proportional
set size: shared buffers are split between the processes that map them instead of counted once per
process, which a sum of RSS would do).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import psutil

from . import REPO

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # the program, not the shell keyword


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    exit_code: int
    stdout: str
    stderr: str
    server_peak_mb: Optional[float] = None  # PSS of the server's processes, summed; None: not watched
    load_before: float = 0.0
    load_after: float = 0.0
    rss_method: str = "GNU time"


def run(cmd: Sequence[str], *, env: Optional[Dict[str, str]] = None, server_pid: Optional[int] = None,
        cwd=REPO, discard_output: bool = False) -> Measured:
    """Run ``cmd`` to its end; ``discard_output`` sends its stdout to /dev/null (``cat`` of the files)."""
    load_before = os.getloadavg()[0]
    watch = ServerWatch(server_pid) if server_pid else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "wb") as null, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *cmd] if GNU_TIME else list(cmd)
        if watch:
            watch.start()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=null if discard_output else out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        server = watch.stop() if watch else None
        out.seek(0)
        err.seek(0)
        # GNU time writes "Command exited with non-zero status N" before the figure when the step fails
        reported = rss_file.read().split()
        peak_kb = int(reported[-1]) if GNU_TIME and reported and reported[-1].isdigit() else usage.ru_maxrss
        return Measured(seconds, peak_kb / 1024, proc.returncode, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"), server, load_before, os.getloadavg()[0],
                        "GNU time" if GNU_TIME else "wait4 (includes the harness's own RSS at fork)")


class ServerWatch(threading.Thread):
    """Polls the summed PSS of a process and its descendants until :meth:`stop`; returns the peak in MB."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0.0
        self._stop_event = threading.Event()

    def sample(self) -> float:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:  # a backend that ended between the listing and the read
                pass
        return total / 2**20

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return round(max(self.peak, self.sample()), 1)


def machine() -> Dict[str, object]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}"}


def load() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]

