"""Quick before/after benchmark: ``status`` and JSON -> JSON ``migrate`` on a generated ~200 MB database.

    python benchmarks/bench_json_quick.py [--size 200MB] [--runs 3] [--baseline-code DIR]

Generates the database once (cached under ``benchmarks/.data/``), then runs the real CLI in
subprocesses: ``status --json`` ``--runs`` times, ``migrate`` (copy + verification) and
``migrate --no-verify`` ``--runs`` times each, and prints the medians with MB/s and the machine's
load before and after. ``--baseline-code DIR`` runs the same commands first with another checkout's
code (e.g. ``git worktree add /tmp/main main``; its core and plugins are put first on PYTHONPATH), so
both figures come from the same run and the ratio is what to compare on a noisy machine.

Not part of the test suite; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hybridrag_backends.devtools.generate import parse_size  # noqa: E402

DATA = REPO / "benchmarks" / ".data"


def ensure_database(size: str) -> Path:
    path = DATA / f"quick-{size}"
    if not (path / "kv_store_full_docs.json").exists():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "hybridrag_backends.devtools.generate", str(path), "--target-size", size],
                       check=True, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return path


def run_all(data: Path, runs: int, code: Optional[Path]) -> Dict[str, List[float]]:
    env = dict(os.environ, HYBRIDRAG_HOME=tempfile.mkdtemp(prefix="bench-home-"))
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(code / p) for p in ("", "plugins/json", "plugins/postgres", "plugins/mongodb"))

    def timed(*args: str) -> float:
        started = time.perf_counter()
        # cwd outside any checkout: `python -m` puts the working directory first on sys.path
        done = subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], env=env, capture_output=True,
                              text=True, cwd=tempfile.gettempdir())
        if done.returncode != 0:
            raise SystemExit(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return time.perf_counter() - started

    out: Dict[str, List[float]] = {"status": [], "migrate": [], "migrate --no-verify": []}
    for _ in range(runs):
        out["status"].append(timed("status", str(data), "--json"))
    for _ in range(runs):
        for name, extra in (("migrate", ()), ("migrate --no-verify", ("--no-verify",))):
            target = Path(tempfile.mkdtemp(prefix="bench-copy-")) / "dst"
            try:
                out[name].append(timed("migrate", "--from", str(data), "--to", str(target), "--json", *extra))
            finally:
                shutil.rmtree(target.parent, ignore_errors=True)
    return out


def report(label: str, times: Dict[str, List[float]], megabytes: float) -> Dict[str, float]:
    medians = {}
    for name, values in times.items():
        median = statistics.median(values)
        medians[name] = median
        rate = "" if name == "status" else f"  {megabytes / median:6.1f} MB/s"
        print(f"  {label:<9} {name:<20} median {median:7.2f} s{rate}   runs: {', '.join(f'{v:.2f}' for v in values)}")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="200MB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-code", type=Path, default=None)
    args = parser.parse_args()
    parse_size(args.size)
    data = ensure_database(args.size)
    megabytes = sum(p.stat().st_size for p in data.iterdir()) / 1e6
    print(f"{os.cpu_count()} cores, load {os.getloadavg()}; database {data} ({megabytes:.1f} MB), page cache warm")
    results = {}
    if args.baseline_code is not None:
        results["baseline"] = report("baseline", run_all(data, args.runs, args.baseline_code.resolve()), megabytes)
    results["this"] = report("this", run_all(data, args.runs, None), megabytes)
    if "baseline" in results:
        for name in results["this"]:
            print(f"  ratio this/baseline {name:<20} {results['this'][name] / results['baseline'][name]:.2f}")
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
