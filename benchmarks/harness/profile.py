"""A sampling profile of one step (py-spy), summarised as the functions the time goes to.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``), every thread that is
running (idle threads are left out), so the JSON reader's worker threads count as much as the event loop.
The summary gives, per function, its *self* share (samples where it is the innermost frame) and its
*total* share (samples where it is anywhere on the stack), as percentages of all samples. The total list
leaves out the plumbing every stack goes through (thread pools, the event loop, the script's entry point).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
PLUMBING = ("threading.py:", "thread.py:", "runners.py:", "base_events.py:", "events.py:Handle._run")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("error: --profile needs py-spy; install it with: .venv/bin/pip install py-spy")
    return found


def record(cmd: Sequence[str], output: Path, *, rate: int = 100, env=None, cwd=None) -> int:  # noqa: ANN001
    """Run ``cmd`` under py-spy; collapsed stacks go to ``output``. Returns the command's exit code."""
    spy = [py_spy(), "record", "--format", "raw", "--rate", str(rate), "--nonblocking", "-o", str(output), "--", *cmd]
    return subprocess.run(spy, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``module.py:func`` (short, stable across line numbers)."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{Path(match.group('file')).name}:{match.group('func')}"


def summarise(collapsed: str, top: int = 15) -> Dict[str, object]:
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f]
        samples += n
        own[frames[-1]] += n
        for name in set(frames):
            if not name.startswith(PLUMBING) and not name.endswith(":<module>"):
                total[name] += n

    def table(counter: Counter) -> List[List[object]]:
        return [[name, round(100 * n / samples, 1)] for name, n in counter.most_common(top)] if samples else []

    return {"samples": samples, "self": table(own), "total": table(total)}
