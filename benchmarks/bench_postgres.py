"""Benchmark: JSON -> PostgreSQL migration against the same records through LightRAG's own storage API.

    python benchmarks/bench_postgres.py [--data DIR] [--url URL] [--sample N] [--batch-size N]

1. Generates (once, cached in benchmarks/.data/pg) a database of 52k docs' chunks / 52k entities /
   52k relations, 1536-d vectors (>= 50k vectors per vector store, >= 50k nodes, >= 50k edges).
2. Runs ``migrate`` (copy + vector index builds + verification) into a fresh database in a subprocess;
   times every store and reads the child's peak RSS from ``wait4``.
3. In another subprocess, copies a SAMPLE of every store through LightRAG 1.5.7's PG storage API
   (KV / doc status ``upsert``; vectors ``upsert`` + ``index_done_callback`` with a lookup
   embedding function, so no model runs; graph ``upsert_node`` / ``upsert_edge`` one at a time, as
   LightRAG's pipeline calls them, and ``upsert_nodes_batch`` / ``upsert_edges_batch``), and
   EXTRAPOLATES each store's full time from the measured per-record rate (a full run would take hours).
4. Prints absolute times, per-store and end-to-end ratios, and the peak RSS.
Targets: >= 5x end to end, >= 50x on graph edges, migration peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[1]
GENERATE = ["--docs", "13000", "--chunks-per-doc", "4", "--entities", "52000", "--relations", "52000", "--dim", "1536"]
MODEL = "bench-embed"

CHILD_MIGRATE = r"""
import asyncio, json, resource, sys, time
from hybridrag_backends.targets import resolve_target
from hybridrag_backends.migration.engine import migrate, ProgressListener

class Timer(ProgressListener):
    def __init__(self):
        self.t = {}; self.start = {}; self.verify_start = None
    def store_started(self, store, cp): self.start[store.store.name] = time.perf_counter()
    def store_finished(self, store, cp): self.t[store.store.name] = time.perf_counter() - self.start[store.store.name]
    def verify_started(self, stores): self.verify_start = time.perf_counter()

async def main(src, dst, ws, batch):
    timer = Timer()
    t0 = time.perf_counter()
    error = None
    try:
        job = (await migrate(resolve_target(src), resolve_target(dst, workspace=ws), batch_size=batch,
                             progress=timer)).job
    except Exception as exc:  # a verification failure still has timings worth printing
        job, error = getattr(exc, "job", None), str(exc)
        if job is None:
            raise
    end = time.perf_counter()
    print(json.dumps({"total": end - t0, "copy": (timer.verify_start or end) - t0,
                      "verify": end - (timer.verify_start or end), "stores": timer.t,
                      "records": job.migrated_records, "ok": bool(job.verification and job.verification["ok"]),
                      "error": error, "notes": job.options.get("notes", [])}))

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4])))
"""

CHILD_LIGHTRAG = r"""
import asyncio, json, os, sys, time
sys.path.insert(0, os.path.join(sys.argv[5], "tests"))
from pg_lightrag import lightrag_env, open_storages, close_storages
from hybridrag_backends.targets import resolve_target
from hybridrag_backends.provider import StoreKind

async def sample(session, store, n):
    out = []
    async for b in session.read(store, None, min(n, 1000)):
        out.extend(b.records)
        if len(out) >= n:
            break
    return out[:n]

async def main(src_dir, url, ws, n):
    src = resolve_target(src_dir)
    dst = resolve_target(url, workspace=ws)
    rates = {}
    async with src.provider.open(src.config) as s:
        stores = await s.list_stores()
        dims = {st.namespace: st.embedding_dim for st in stores if st.kind is StoreKind.VECTOR}
        with lightrag_env(dst.config):
            lr = await open_storages(dst.config, "%s", dims)
            try:
                for st in stores:
                    k = n if st.kind in (StoreKind.VECTOR, StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES) else 5 * n
                    recs = await sample(s, st, k)
                    if st.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
                        if st.namespace not in lr:
                            continue
                        data = {r.key: r.payload for r in recs}
                        t = time.perf_counter(); await lr[st.namespace].upsert(data); await lr[st.namespace].index_done_callback()
                        rates[st.name] = len(recs) / (time.perf_counter() - t)
                    elif st.kind is StoreKind.VECTOR:
                        v = lr[st.namespace]
                        data = {}
                        for r in recs:
                            p = dict(r.payload); p.setdefault("content", r.key); p["content"] = f"{r.key}|{p['content']}"
                            p.setdefault("tokens", 0); p.setdefault("chunk_order_index", 0)  # the pipeline passes them from the chunk
                            v.lookup[p["content"]] = r.vector
                            data[r.key] = p
                        t = time.perf_counter(); await v.upsert(data); await v.index_done_callback()
                        rates[st.name] = len(recs) / (time.perf_counter() - t)
                    elif st.kind is StoreKind.GRAPH_NODES:
                        g = lr["graph"]; half = len(recs) // 2
                        t = time.perf_counter()
                        for r in recs[:half]:
                            await g.upsert_node(r.key, r.payload)
                        rates[st.name] = half / (time.perf_counter() - t)
                        t = time.perf_counter(); await g.upsert_nodes_batch([(r.key, r.payload) for r in recs[half:]])
                        rates[st.name + " (batch API)"] = (len(recs) - half) / (time.perf_counter() - t)
                    elif st.kind is StoreKind.GRAPH_EDGES:
                        g = lr["graph"]; half = len(recs) // 2
                        props = lambda r: {k: v for k, v in r.payload.items() if k not in ("source", "target")}
                        ends = {e for r in recs for e in (r.payload["source"], r.payload["target"])}
                        await g.upsert_nodes_batch([(e, {"entity_id": e}) for e in ends])  # endpoints first, untimed
                        t = time.perf_counter()
                        for r in recs[:half]:
                            await g.upsert_edge(r.payload["source"], r.payload["target"], props(r))
                        rates[st.name] = half / (time.perf_counter() - t)
                        t = time.perf_counter()
                        await g.upsert_edges_batch([(r.payload["source"], r.payload["target"], props(r)) for r in recs[half:]])
                        rates[st.name + " (batch API)"] = (len(recs) - half) / (time.perf_counter() - t)
            finally:
                await close_storages(lr)
    print(json.dumps(rates))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
""" % MODEL


def peak_rss_mb(code: str, *args: str) -> tuple:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    out, err = proc.stdout.read(), proc.stderr.read()  # stderr is kept short: LightRAG logs go to WARNING
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"child failed with status {status}:\n{err[-4000:]}")
    return out, wall, usage.ru_maxrss / 1024


def server_url(arg: str | None) -> str:
    if arg:
        return arg
    if os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL"):
        return os.environ["HYBRIDRAG_TEST_POSTGRES_URL"]
    out = subprocess.run([str(REPO / "scripts" / "pg-sandbox"), "start"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


async def fresh_database(url: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    new = url.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(new)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS age")
    await conn.close()
    return new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data" / "pg")
    ap.add_argument("--url", default=None, help="server URL (default: HYBRIDRAG_TEST_POSTGRES_URL or the sandbox)")
    ap.add_argument("--sample", type=int, default=1000, help="records per store sent through LightRAG's API")
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--maintenance-work-mem", default="1GB")
    args = ap.parse_args()
    if not (args.data / "vdb_entities.json").exists():
        print(f"generating {args.data} ...", flush=True)
        subprocess.run([sys.executable, "-m", "hybridrag_backends.devtools.generate", str(args.data), *GENERATE,
                        "--quiet", "--force"], check=True, cwd=REPO)
    url = asyncio.run(fresh_database(server_url(args.url)))
    shown = url.split("@", 1)[-1]
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; data {args.data}; server {shown}", flush=True)

    target = f"{url}?embedding_model={MODEL}&maintenance_work_mem={args.maintenance_work_mem}"
    out, wall, rss = peak_rss_mb(CHILD_MIGRATE, str(args.data), target, "bench", str(args.batch_size))
    ours = json.loads(out.strip().splitlines()[-1])
    out, _, lr_rss = peak_rss_mb(CHILD_LIGHTRAG, str(args.data), f"{url}?embedding_model={MODEL}", "lightrag_api",
                                 str(args.sample), str(REPO))
    rates: Dict[str, float] = json.loads(out.strip().splitlines()[-1])
    counts = _counts(args.data)

    print(f"\nJSON -> PostgreSQL migrate: {ours['records']:,} records, copy {ours['copy']:.1f} s "
          f"(vector index builds included), verify {ours['verify']:.1f} s, total {ours['total']:.1f} s, "
          f"peak RSS {rss:.0f} MB, verification {'ok' if ours['ok'] else 'FAILED'}")
    if ours.get("error"):
        print(f"  migrate reported: {ours['error'][:600]}")
    for note in ours["notes"]:
        print(f"  note: {note}")
    print(f"\n{'store':34} {'records':>9} {'ours s':>8} {'LightRAG API s (extrapolated)':>30} {'ratio':>8}")
    total_lr = 0.0
    total_lr_batch = 0.0
    edge_ratio = edge_ratio_batch = None
    for name, secs in ours["stores"].items():
        n = counts.get(name, 0)
        rate = rates.get(name)
        if not rate:
            print(f"{name:34} {n:>9,} {secs:>8.1f} {'(no LightRAG API)':>30}")
            continue
        lr = n / rate
        total_lr += lr
        brate = rates.get(name + " (batch API)")
        total_lr_batch += n / brate if brate else lr
        print(f"{name:34} {n:>9,} {secs:>8.1f} {lr:>30.1f} {lr / secs:>7.1f}x")
        if brate:
            print(f"{'  same, LightRAG batch API':34} {n:>9,} {secs:>8.1f} {n / brate:>30.1f} {n / brate / secs:>7.1f}x")
        if name.endswith(".edges"):
            edge_ratio, edge_ratio_batch = lr / secs, (n / brate / secs if brate else None)
    print(f"\nend to end: ours {ours['copy']:.1f} s copy ({ours['total']:.1f} s with verification) vs LightRAG API "
          f"{total_lr:.0f} s (one-at-a-time graph calls) / {total_lr_batch:.0f} s (graph batch API)")
    print(f"ratio end to end (copy): {total_lr / ours['copy']:.1f}x / {total_lr_batch / ours['copy']:.1f}x; "
          f"with verification: {total_lr / ours['total']:.1f}x / {total_lr_batch / ours['total']:.1f}x")
    if edge_ratio:
        print(f"ratio on graph edges: {edge_ratio:.0f}x (upsert_edge) / {edge_ratio_batch or 0:.0f}x (upsert_edges_batch)")
    print(f"peak RSS: migrate {rss:.0f} MB (target <= 300), LightRAG API sample run {lr_rss:.0f} MB")
    print(f"LightRAG API rates (records/s, measured on {args.sample} per store, x5 for KV): "
          + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))
    return 0


def _counts(data: Path) -> Dict[str, int]:
    async def go():
        from hybridrag_backends.targets import resolve_target

        t = resolve_target(str(data))
        async with t.provider.open(t.config) as s:
            return {st.name: await s.count(st) for st in await s.list_stores()}

    return asyncio.run(go())


if __name__ == "__main__":
    raise SystemExit(main())
