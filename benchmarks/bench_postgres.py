"""Benchmark: JSON -> PostgreSQL migration against the same records through LightRAG's own storage API.

    python benchmarks/bench_postgres.py [--data DIR] [--url URL] [--sample N] [--batch-size N]

1. Generates (once, cached in benchmarks/.data/pg) a database of 52k docs' chunks / 52k entities /
   52k relations, 1536-d vectors (>= 50k vectors per vector store, >= 50k nodes, >= 50k edges).
2. Runs ``migrate`` (copy + vector index builds + verification) into a fresh database in a subprocess;
   times every store and reads the child's peak RSS from ``wait4``.
3. Migrates the graph alone into another workspace (nothing else running): the edge figure.
4. In another subprocess and a fresh database, copies the records through LightRAG 1.5.7's PG storage
   API (KV / doc status ``upsert``; vectors ``upsert`` + ``index_done_callback`` with a lookup
   embedding function, so no model runs; graph: the first --single records with ``upsert_node`` /
   ``upsert_edge`` one call each, as LightRAG's pipeline calls them, the rest with
   ``upsert_nodes_batch`` / ``upsert_edges_batch``). ``--sample 0`` sends every record (about half an
   hour); otherwise a sample per store and each store's time is EXTRAPOLATED from its rate.
5. Prints absolute times, per-store and end-to-end ratios (against LightRAG's fastest path), peak RSS.
Targets: >= 5x end to end, >= 50x on graph edges, migration peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
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
                      "error": error, "notes": job.options.get("notes", []),
                      "vector_indexes": job.options.get("vector_indexes", {})}))

asyncio.run(main(*sys.argv[1:4], int(sys.argv[4])))
"""

CHILD_LIGHTRAG = r"""
import asyncio, json, os, sys, time
sys.path.insert(0, os.path.join(sys.argv[7], "tests"))
import pg_lightrag
from pg_lightrag import lightrag_env, open_storages, close_storages

class Counting(dict):  # counts texts the lookup "embedding" did not know (they would be zero vectors)
    misses = 0
    def get(self, k, default=None):
        if k not in self:
            Counting.misses += 1
        return super().get(k, default)

_lookup = pg_lightrag.lookup_embedding
pg_lightrag.lookup_embedding = lambda dim, model, table=None: _lookup(dim, model, Counting())
from hybridrag_backends.targets import resolve_target
from hybridrag_backends.provider import StoreKind

# Records are read from the JSON source batch by batch (untimed: only LightRAG's calls are timed, which
# favours LightRAG) and written through its storage API, as a copy script would.
async def main(src_dir, url, ws, n, vn, single):
    src = resolve_target(src_dir)
    dst = resolve_target(url, workspace=ws)
    out = {}
    async with src.provider.open(src.config) as s:
        stores = await s.list_stores()
        dims = {st.namespace: st.embedding_dim for st in stores if st.kind is StoreKind.VECTOR}
        with lightrag_env(dst.config):
            lr = await open_storages(dst.config, "%s", dims)
            try:
                for st in stores:
                    limit = (5 * n if st.kind in (StoreKind.KV, StoreKind.DOC_STATUS) else
                             vn if st.kind is StoreKind.VECTOR else n) or None
                    if st.kind in (StoreKind.KV, StoreKind.DOC_STATUS) and st.namespace not in lr:
                        continue
                    timed = {"api": [0, 0.0], "one at a time": [0, 0.0]}
                    seen = 0
                    async for b in s.read(st, None, 1000):
                        recs = b.records[: (limit - seen) if limit else None]
                        seen += len(recs)
                        if st.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
                            data = {r.key: r.payload for r in recs}
                            t = time.perf_counter()
                            await lr[st.namespace].upsert(data); await lr[st.namespace].index_done_callback()
                            timed["api"][0] += len(recs); timed["api"][1] += time.perf_counter() - t
                        elif st.kind is StoreKind.VECTOR:
                            v = lr[st.namespace]; data = {}
                            for r in recs:
                                p = dict(r.payload); p.setdefault("content", r.key); p["content"] = f"{r.key}|{p['content']}"
                                p.setdefault("tokens", 0); p.setdefault("chunk_order_index", 0)  # the pipeline passes them from the chunk
                                v.lookup[p["content"]] = r.vector
                                data[r.key] = p
                            # LightRAG 1.5.7 buffers vector upserts and embeds + writes them when flushed
                            # (index_done_callback): flush every batch, as its docstring asks of big ingests
                            t = time.perf_counter(); await v.upsert(data); await v.index_done_callback()
                            timed["api"][0] += len(recs); timed["api"][1] += time.perf_counter() - t
                            v.lookup.clear()
                        else:
                            g = lr["graph"]
                            edges = st.kind is StoreKind.GRAPH_EDGES
                            props = lambda r: {k: v for k, v in r.payload.items() if k not in ("source", "target")}
                            if edges and limit:  # a sample: its endpoints may not have been copied (untimed)
                                ends = {e for r in recs for e in (r.payload["source"], r.payload["target"])}
                                await g.upsert_nodes_batch([(e, {"entity_id": e}) for e in ends])
                            # the first SINGLE records one call each, as LightRAG's pipeline calls them
                            k = max(0, min(len(recs), single - timed["one at a time"][0]))
                            t = time.perf_counter()
                            for r in recs[:k]:
                                if edges:
                                    await g.upsert_edge(r.payload["source"], r.payload["target"], props(r))
                                else:
                                    await g.upsert_node(r.key, r.payload)
                            timed["one at a time"][0] += k; timed["one at a time"][1] += time.perf_counter() - t
                            rest = recs[k:]
                            if rest:
                                t = time.perf_counter()
                                if edges:
                                    await g.upsert_edges_batch([(r.payload["source"], r.payload["target"], props(r)) for r in rest])
                                else:
                                    await g.upsert_nodes_batch([(r.key, r.payload) for r in rest])
                                timed["api"][0] += len(rest); timed["api"][1] += time.perf_counter() - t
                        if limit and seen >= limit:
                            break
                    out[st.name] = {k: v for k, v in timed.items() if v[0]}
                    if Counting.misses:
                        sys.exit(f"{st.name}: {Counting.misses} texts had no vector in the lookup; the timing would be wrong")
                    print(st.name, out[st.name], file=sys.stderr, flush=True)
            finally:
                await close_storages(lr)
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
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
    ap.add_argument("--sample", type=int, default=1000,
                    help="records per store sent through LightRAG's API (x5 for KV); 0 = every record (~30 min)")
    ap.add_argument("--vector-sample", type=int, default=None,
                    help="vectors per vector store sent through LightRAG's API (default: --sample); 0 = all")
    ap.add_argument("--single", type=int, default=1000,
                    help="graph records sent one call at a time (upsert_node / upsert_edge) before the batch API")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--maintenance-work-mem", default="1GB")
    args = ap.parse_args()
    if args.vector_sample is None:
        args.vector_sample = args.sample
    if not (args.data / "vdb_entities.json").exists():
        print(f"generating {args.data} ...", flush=True)
        subprocess.run([sys.executable, "-m", "hybridrag_backends.devtools.generate", str(args.data), *GENERATE,
                        "--quiet", "--force"], check=True, cwd=REPO)
    base = server_url(args.url)
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; data {args.data}; server {base.split('@', 1)[-1]}",
          flush=True)
    counts = _counts(args.data)
    opts = f"?embedding_model={MODEL}&maintenance_work_mem={args.maintenance_work_mem}"

    # 1. ours, the whole database, into a fresh database
    url = asyncio.run(fresh_database(base))
    out, wall, rss = peak_rss_mb(CHILD_MIGRATE, str(args.data), url + opts, "bench", str(args.batch_size))
    ours = json.loads(out.strip().splitlines()[-1])
    print(f"migrate done: copy {ours['copy']:.1f} s, load {os.getloadavg()[0]:.2f}", flush=True)

    # 2. ours, the graph alone (same file, another workspace), nothing else running on the server:
    #    the per-store figure for the edges, comparable with LightRAG's (also measured alone)
    with tempfile.TemporaryDirectory() as tmp:
        graphml = next(args.data.glob("graph_*.graphml"))
        (Path(tmp) / graphml.name).symlink_to(graphml)
        gout, _, grss = peak_rss_mb(CHILD_MIGRATE, tmp, url + opts, "bench_graph", str(args.batch_size))
    graph_alone = json.loads(gout.strip().splitlines()[-1])

    # 3. LightRAG's own storage API, into another fresh database (as a user's copy script would start)
    lr_url = asyncio.run(fresh_database(base))
    t0 = time.perf_counter()
    out, _, lr_rss = peak_rss_mb(CHILD_LIGHTRAG, str(args.data), f"{lr_url}?embedding_model={MODEL}", "lightrag_api",
                                 str(args.sample), str(args.vector_sample), str(args.single), str(REPO))
    lr_wall = time.perf_counter() - t0
    measured: Dict[str, Dict[str, list]] = json.loads(out.strip().splitlines()[-1])

    print(f"\nJSON -> PostgreSQL migrate: {ours['records']:,} records, copy {ours['copy']:.1f} s "
          f"(vector index builds included), verify {ours['verify']:.1f} s, total {ours['total']:.1f} s, "
          f"peak RSS {rss:.0f} MB, verification {'ok' if ours['ok'] else 'FAILED'}")
    if ours.get("error"):
        print(f"  migrate reported: {ours['error'][:600]}")
    for note in ours["notes"]:
        print(f"  note: {note}")
    mode = ("every record" if not args.sample else f"{args.sample:,} records per store (x5 KV), extrapolated")
    mode += "" if args.vector_sample == args.sample else (
        f"; vector stores: {args.vector_sample:,} vectors each, extrapolated" if args.vector_sample else "; every vector")
    print(f"LightRAG API: {mode}; child wall time {lr_wall:.0f} s, peak RSS {lr_rss:.0f} MB")
    print(f"\n{'store':30} {'records':>8} {'ours s':>7} {'LightRAG s':>11} {'ratio':>7}   LightRAG path")
    total = lightrag_totals(measured, counts)
    for name, secs in ours["stores"].items():
        n = counts.get(name, 0)
        m = measured.get(name)
        if not m:
            print(f"{name:30} {n:>8,} {secs:>7.1f} {'-':>11} {'':>7}   (no LightRAG table)")
            continue
        for path, t in lightrag_estimates(m, n).items():
            graph = name.startswith("chunk_entity_relation")
            label = {"api": "upsert_nodes_batch / upsert_edges_batch" if graph else "upsert",
                     "one at a time": "upsert_node / upsert_edge"}[path]
            print(f"{name:30} {n:>8,} {secs:>7.1f} {t:>11.1f} {t / secs:>6.1f}x   {label}")
    copy = ours["copy"]
    print(f"\nend to end, copy {copy:.1f} s: {total['fast'] / copy:.1f}x against LightRAG's fastest path "
          f"({total['fast']:.0f} s), {total['one at a time'] / copy:.1f}x with one graph call per record "
          f"({total['one at a time']:.0f} s)")
    print(f"end to end with verification ({ours['total']:.1f} s): {total['fast'] / ours['total']:.1f}x / "
          f"{total['one at a time'] / ours['total']:.1f}x")
    print("  (vector stores: ours loads the rows and builds each HNSW index in the background while the next"
          " stores load, so their per-store times above exclude the builds; the end-to-end copy time includes them)")
    print("\ngraph alone (workspace bench_graph, nothing else running): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in graph_alone["stores"].items()) + f", peak RSS {grss:.0f} MB")
    for name, secs in graph_alone["stores"].items():
        m = measured.get(name)
        n = counts.get(name, 0)
        if m:
            print(f"  {name}: " + ", ".join(
                f"{n * t / k / secs:.0f}x vs {'upsert_edge/upsert_node' if p == 'one at a time' else 'batch API'}"
                f" ({n * t / k:.1f} s)" for p, (k, t) in m.items()))
    print(f"peak RSS: migrate {rss:.0f} MB (target <= 300)")
    return 0


def lightrag_estimates(m: Dict[str, list], n: int) -> Dict[str, float]:
    """Seconds per LightRAG path for all ``n`` records of a store, from [records sent, seconds] (exact when all were sent)."""
    return {path: n * t / k for path, (k, t) in m.items()}


def lightrag_totals(measured: Dict[str, Dict[str, list]], counts: Dict[str, int]) -> Dict[str, float]:
    """End-to-end seconds through LightRAG's API: its fastest path per store, and one graph call per record."""
    total = {"fast": 0.0, "one at a time": 0.0}
    for name, m in measured.items():
        est = lightrag_estimates(m, counts.get(name, 0))
        fast = min(est.values())
        total["fast"] += fast
        total["one at a time"] += est.get("one at a time", fast)
    return total


def _counts(data: Path) -> Dict[str, int]:
    async def go():
        from hybridrag_backends.targets import resolve_target

        t = resolve_target(str(data))
        async with t.provider.open(t.config) as s:
            return {st.name: await s.count(st) for st in await s.list_stores()}

    return asyncio.run(go())


if __name__ == "__main__":
    raise SystemExit(main())
