"""Benchmark: ``hybridrag-backends status`` on a generated LightRAG JSON database of >= 2 GB.

    python benchmarks/bench_status.py [--size 2GB] [--dim 1536] [--runs 5] [--regenerate]

Targets (issue 2): status answers in <= 5 s with peak RSS <= 200 MB.

The database is generated once and cached under ``benchmarks/.data/`` (git-ignored);
it is reused while the generator arguments are unchanged. Each measurement runs
the real CLI in a subprocess; its peak RSS comes from ``os.wait4`` (that child only).

On a shared, noisy machine absolute seconds drift, so every figure is printed next to
a baseline measured in the same run: the time to read every file of the database once
(``cat`` to /dev/null). Both are measured cold (the files' pages dropped from the page
cache with ``posix_fadvise(DONTNEED)`` before the run) and warm (right after a full read).
This is a benchmark, not a timed test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hybridrag_backends.devtools.generate import STANDARD_FILES, GenerateSpec, generate, parse_size, spec_for_size  # noqa: E402

DATA = REPO / "benchmarks" / ".data"
TARGET_SECONDS = 5.0
TARGET_RSS_MB = 200.0


def ensure_database(size: int, dim: int, regenerate: bool) -> Tuple[Path, Dict]:
    """The cached database for (size, dim), generated when missing or stale."""
    directory = DATA / f"status-{size}-{dim}d"
    marker = directory.with_suffix(".json")
    wanted = {"size": size, "dim": dim, "generator": "hybridrag_backends.devtools.generate"}
    if not regenerate and marker.exists():
        recorded = json.loads(marker.read_text())
        sizes_ok = all((directory / n).exists() and (directory / n).stat().st_size == s
                       for n, s in recorded.get("file_sizes", {}).items())
        if recorded.get("wanted") == wanted and sizes_ok:
            print(f"reusing {directory} ({recorded['total_bytes'] / 1e9:.2f} GB)")
            return directory, recorded
    marker.unlink(missing_ok=True)
    for name in STANDARD_FILES:
        (directory / name).unlink(missing_ok=True)
    spec = spec_for_size(size, GenerateSpec(dim=dim))
    print(f"generating {spec.docs} docs ({dim}-d) into {directory} ...", flush=True)
    result = generate(directory, spec, progress=print)
    recorded = {"wanted": wanted, "docs": spec.docs, "file_sizes": result.file_sizes,
                "record_counts": result.record_counts, "total_bytes": result.total_bytes,
                "generate_seconds": round(result.seconds, 1)}
    marker.write_text(json.dumps(recorded, indent=2))
    print(f"generated {result.total_bytes / 1e9:.2f} GB in {result.seconds:.0f} s "
          f"({result.total_bytes / 1e6 / result.seconds:.0f} MB/s)")
    return directory, recorded


def drop_page_cache(files: List[Path]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(cmd: List[str]) -> Tuple[float, float, int, bytes]:
    """(wall seconds, peak RSS MB of that child, exit code, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("2GB"), help="database size (default 2GB)")
    parser.add_argument("--dim", type=int, default=1536, help="embedding dimension (default 1536)")
    parser.add_argument("--runs", type=int, default=5, help="warm runs (default 5)")
    parser.add_argument("--regenerate", action="store_true", help="generate the database again")
    args = parser.parse_args()

    directory, recorded = ensure_database(args.size, args.dim, args.regenerate)
    files = [directory / n for n in STANDARD_FILES]
    total = sum(f.stat().st_size for f in files)
    status_cmd = [sys.executable, "-m", "hybridrag_backends", "status", str(directory), "--json"]
    read_cmd = ["cat", *map(str, files)]
    startup_cmd = [sys.executable, "-m", "hybridrag_backends", "--version"]

    drop_page_cache(files)
    cold_read = read_seconds(read_cmd)
    drop_page_cache(files)
    cold_status, cold_rss, code, out = timed(status_cmd)
    if code != 0:
        print(f"status failed with exit code {code}; run: {' '.join(status_cmd)}", file=sys.stderr)
        return 1
    report = json.loads(out)

    warm_reads, warm_status, warm_rss, startups = [], [], [], []
    for _ in range(args.runs):
        warm_reads.append(read_seconds(read_cmd))
        seconds, rss, code, _ = timed(status_cmd)
        warm_status.append(seconds)
        warm_rss.append(rss)
        startups.append(timed(startup_cmd)[0])

    read_med, status_med = statistics.median(warm_reads), statistics.median(warm_status)
    peak = max([cold_rss, *warm_rss])
    print(f"\ndatabase: {directory}  {total / 1e9:.2f} GB in {len(files)} files, "
          f"{recorded['record_counts']['vdb_chunks.json']:,} chunks, "
          f"{recorded['record_counts']['vdb_entities.json']:,} entities, "
          f"{recorded['record_counts']['vdb_relationships.json']:,} relations, {args.dim}-d")
    print(f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':30}{'seconds':>10}{'peak RSS MB':>14}{'status/read':>14}")
    print(f"{'read all files, cold cache':30}{cold_read:>10.2f}")
    print(f"{'status, cold cache':30}{cold_status:>10.2f}{cold_rss:>14.1f}{cold_status / cold_read:>14.3f}")
    print(f"{'read all files, warm (median)':30}{read_med:>10.2f}")
    print(f"{'status, warm (median)':30}{status_med:>10.2f}{statistics.median(warm_rss):>14.1f}{status_med / read_med:>14.3f}")
    print(f"{'CLI start-up (--version)':30}{statistics.median(startups):>10.2f}")
    print(f"warm status runs: {', '.join(f'{s:.2f}' for s in warm_status)} s")
    ok = max(cold_status, status_med) <= TARGET_SECONDS and peak <= TARGET_RSS_MB
    print(f"targets: <= {TARGET_SECONDS} s and <= {TARGET_RSS_MB:.0f} MB peak RSS -> {'MET' if ok else 'NOT MET'} "
          f"(slowest {max(cold_status, *warm_status):.2f} s, peak {peak:.1f} MB)")
    counts = report.get("metrics", report).get("store_counts") if isinstance(report, dict) else None
    if counts:
        print("status store counts: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


def read_seconds(read_cmd: List[str]) -> float:
    """The baseline: wall time of reading every file once (cat to /dev/null)."""
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(read_cmd, stdout=sink, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
