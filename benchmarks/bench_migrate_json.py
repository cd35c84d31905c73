"""Benchmark: JSON -> JSON migration of a >= 1 GB generated database, against loading it with LightRAG.

    python benchmarks/bench_migrate_json.py [--data DIR] [--out DIR] [--batch-size N] [--no-lightrag]

1. Generates the database with the project's generator unless ``--data`` already holds one
   (1536-d vectors, >= 100k KV records, >= 50k graph edges, >= 1 GB).
2. Runs ``hybridrag-backends migrate --from DATA --to OUT --json`` in a subprocess (copy and
   verification included) and reads its peak RSS exactly from ``wait4``'s rusage.
3. Loads the same database through LightRAG 1.5.7's own JSON storage classes
   (``LightRAG(...).initialize_storages()``) in a subprocess, time and peak RSS.
4. Prints MB/s, records/s and the ratios. Target: migration peak RSS <= 300 MB.

Not part of the test suite (it takes minutes and needs ~3 GB of disk).

Last run (2026-11-28, 2-core VM shared with other jobs; 1174 MB, 255,400 records: 104,200 KV/doc
status, 60,000 edges, 1536-d): copy + verify 76.9 s, 15.3 MB/s, 3,321 records/s, peak RSS 226 MB;
LightRAG ``initialize_storages`` on the same data: 20.4 s, peak RSS 2,854 MB (RSS ratio 0.08).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

RSS_TARGET_MB = 300
# ~1.1 GB: 2600 docs x 4 chunks give 44k KV records besides the 60k relation_chunks (>= 100k in all)
GENERATE = ["--docs", "2600", "--chunks-per-doc", "4", "--dim", "1536", "--relations", "60000"]

LIGHTRAG_LOAD = r"""
import asyncio, json, resource, sys, time
import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer

class ByteTokenizer:  # keeps LightRAG from fetching a tiktoken model: we only load storages
    def encode(self, s): return list(s.encode())
    def decode(self, t): return bytes(t).decode(errors="ignore")

async def main(wd, dim):
    async def embed(texts, **kw):
        return np.zeros((len(texts), dim), np.float32)
    async def llm(*a, **k):
        return ""
    start = time.perf_counter()
    rag = LightRAG(working_dir=wd, embedding_func=EmbeddingFunc(embedding_dim=dim, max_token_size=8192, func=embed),
                   llm_model_func=llm, tokenizer=Tokenizer("bytes", ByteTokenizer()))
    await rag.initialize_storages()
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def run_measured(cmd: List[str], env: Dict[str, str]) -> Tuple[int, float, float, str, str]:
    """Run ``cmd``; returns (exit code, wall seconds, peak RSS MB of that process, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, wall, usage.ru_maxrss / 1024, out.read().decode(), err.read().decode()


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "hybridrag-bench-migrate" / "src")
    parser.add_argument("--out", type=Path, default=None, help="target dir (default: beside --data, removed after)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-lightrag", action="store_true", help="skip the LightRAG load comparison")
    args = parser.parse_args()

    python = sys.executable
    env = dict(os.environ)
    if not any(args.data.glob("vdb_*.json")):
        print(f"generating {' '.join(GENERATE)} into {args.data} ...", flush=True)
        subprocess.run([python, "-m", "hybridrag_backends.devtools.generate", str(args.data), *GENERATE], check=True)
    size = dir_size(args.data)
    out_dir = args.out or args.data.parent / "dst"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    home = Path(tempfile.mkdtemp(prefix="hybridrag-bench-home-"))
    env["HYBRIDRAG_HOME"] = str(home)
    env["HYBRIDRAG_CONFIG"] = str(home / "registry.yaml")

    print(f"source: {args.data} ({size / 2**20:.0f} MB)", flush=True)
    code, wall, rss, out, err = run_measured(
        [python, "-m", "hybridrag_backends", "migrate", "--from", str(args.data), "--to", str(out_dir),
         "--batch-size", str(args.batch_size), "--json"], env)
    if code != 0:
        print(f"migration failed (exit {code}): {err.strip()}", file=sys.stderr)
        return 1
    result = json.loads(out)
    records = result["migrated_records"]
    plan = result["plan"]
    dim = max((s["embedding_dim"] or 0) for s in plan["stores"])
    edges = sum(s["records"] for s in plan["stores"] if s["kind"] == "graph_edges")
    kv = sum(s["records"] for s in plan["stores"] if s["kind"] in ("kv", "doc_status"))
    print(f"data: {records:,} records ({kv:,} KV/doc status, {edges:,} edges, {dim}-d vectors)")
    if size < 2**30 or kv < 100_000 or edges < 50_000 or dim != 1536:
        print("warning: the data is below the benchmark's spec (>= 1 GB, >= 100k KV records, >= 50k edges, 1536-d)")
    print(f"migrate JSON->JSON (copy + verify): {wall:.1f} s, {size / 2**20 / wall:.1f} MB/s, "
          f"{records / wall:,.0f} records/s, peak RSS {rss:.0f} MB "
          f"({'OK' if rss <= RSS_TARGET_MB else 'OVER'} target {RSS_TARGET_MB} MB), "
          f"verification {'passed' if result['verification']['ok'] else 'FAILED'}")
    figures = {"source_mb": round(size / 2**20, 1), "records": records, "migrate_seconds": round(wall, 2),
               "migrate_mb_per_s": round(size / 2**20 / wall, 2), "migrate_records_per_s": round(records / wall),
               "migrate_peak_rss_mb": round(rss, 1)}
    if not args.no_lightrag:
        code, lwall, lrss, lout, lerr = run_measured([python, "-c", LIGHTRAG_LOAD, str(args.data), str(dim)], env)
        if code != 0:
            print(f"LightRAG load failed (exit {code}): {lerr.strip()[-500:]}", file=sys.stderr)
            return 1
        loaded = json.loads(lout.strip().splitlines()[-1])
        print(f"LightRAG 1.5.7 load (initialize_storages): {loaded['seconds']:.1f} s in storage init, "
              f"{lwall:.1f} s process, peak RSS {lrss:.0f} MB")
        print(f"ratios: migration RSS / LightRAG load RSS = {rss / lrss:.2f}; "
              f"migration time / LightRAG load time = {wall / lwall:.2f}")
        figures.update(lightrag_load_seconds=round(lwall, 2), lightrag_peak_rss_mb=round(lrss, 1),
                       rss_ratio=round(rss / lrss, 3), time_ratio=round(wall / lwall, 3))
    print(json.dumps(figures, sort_keys=True))
    if args.out is None:
        shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return 0 if rss <= RSS_TARGET_MB else 2


if __name__ == "__main__":
    sys.exit(main())
