"""Benchmark: one workspace migrated into PostgreSQL vector tables that another workspace already fills (issue 13).

    python benchmarks/bench_postgres_shared.py [--url URL] [--no-strategies] [--regenerate]

In one run, on one server (``scripts/pg-sandbox`` unless --url / HYBRIDRAG_TEST_POSTGRES_URL):

1. neighbour: the 1 GB database (the generator's migration-benchmark preset, ~70,000 1536-d vectors) is
   migrated into database B (set-up, timed for the record);
2. fresh: the small database (12,000 1536-d vectors) migrated into a fresh database A;
3. shared: the same small database migrated into B's tables (``auto``), while a poller samples every 0.5 s
   the plan of the neighbour's LightRAG vector query (LightRAG 1.5.7's SQL, prepared by asyncpg as
   LightRAG's pool does, ``EXPLAIN EXECUTE`` of that statement);
4. LightRAG API: the small database written through LightRAG 1.5.7's own storage API into B's tables
   (every record; vectors from a lookup embedding function, so no model runs; bench_postgres.py's child);
5. strategies (unless --no-strategies): the small database again into B, ``index_strategy=incremental``
   with 2 and 1 writer connections; then B's tables are put in LightRAG's own layout (one index over
   every row, built as LightRAG builds it: the cost the old drop-and-rebuild paid per migration) and the
   small database goes in with ``auto`` (incremental there) and with ``partial`` (which first gives the
   neighbour an own index).

Every migration runs ``migrate`` in a subprocess (copy, index builds, verification; peak RSS from wait4).
Prints the figures and ratios and writes them to ``benchmarks/results/<UTC date-time>-postgres-shared.txt``;
the databases it made are dropped at the end (``--keep`` keeps them).
Targets: shared <= 2x fresh (copy with index builds); LightRAG's API into the shared tables >= 3x shared.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_postgres as bp  # noqa: E402  (the migrate / LightRAG children, wait4, the sandbox)

REPO = bp.REPO
MODEL = bp.MODEL
DIM = 1536
NEIGHBOUR = ["--target-size", "1GB", "--dim", str(DIM), "--relations", "60000"]  # the migration-benchmark preset
SMALL = ["--docs", "600", "--chunks-per-doc", "4", "--entities", "4000", "--relations", "5600", "--dim", str(DIM)]
VECTOR_NS = ("chunks", "entities", "relationships")


class Tee:
    """Print to stdout and keep every line for the results file."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def generate(path: Path, gen_args: List[str], regenerate: bool, out: Tee) -> None:
    stamp = path / ".generator-args"
    if not regenerate and stamp.exists() and stamp.read_text() == " ".join(gen_args):
        return
    out(f"generating {' '.join(gen_args)} into {path} ...")
    subprocess.run([sys.executable, "-m", "hybridrag_backends.devtools.generate", str(path), *gen_args,
                    "--quiet", "--force"], check=True, cwd=REPO)
    stamp.write_text(" ".join(gen_args))


def run_migrate(src: Path, url: str, ws: str, batch: int = 1000) -> dict:
    out, wall, rss = bp.peak_rss_mb(bp.CHILD_MIGRATE, str(src), url, ws, str(batch))
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall=wall, rss=rss)
    if result.get("error") or not result.get("ok"):
        sys.exit(f"migrate into {ws} failed: {result.get('error')}")
    return result


class PlanPoller(threading.Thread):
    """Every ``interval`` s, per vector table: LightRAG 1.5.7's query for ``workspace``, run by asyncpg as
    LightRAG's pool runs it (a named prepared statement), then ``EXPLAIN EXECUTE`` of that statement."""

    def __init__(self, url: str, workspace: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url, self.ws, self.interval = url, workspace, interval
        # per namespace, the vector index of each sample's plan (None: none)
        self.samples: Dict[str, List[Optional[str]]] = {ns: [] for ns in VECTOR_NS}
        self.stop = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    async def _loop(self) -> None:
        import asyncpg
        import numpy as np
        from lightrag.kg.postgres_impl import SQL_TEMPLATES
        from pgvector.asyncpg import register_vector

        from hybridrag_backends_postgres.naming import vector_table
        from hybridrag_backends_postgres.vector_index import plan_vector_index

        conn = await asyncpg.connect(self.url)
        await register_vector(conn)
        queries = {}
        for ns in VECTOR_NS:
            table = vector_table(ns, MODEL, DIM)
            q = await conn.fetchval(f"SELECT content_vector FROM {table} WHERE workspace = $1 LIMIT 1", self.ws)
            q = np.asarray(q.to_numpy(), dtype=np.float32)
            queries[ns] = (SQL_TEMPLATES[ns].format(table_name=table, vector_cast="vector"), q,
                           "'[" + ",".join(f"{x:.7g}" for x in q) + "]'")
        try:
            while not self.stop.is_set():
                for ns, (sql, q, literal) in queries.items():
                    await conn.fetch(sql, self.ws, 0.8, 10, q)
                    name = await conn.fetchval("SELECT name FROM pg_prepared_statements WHERE statement = $1", sql)
                    plan = await conn.fetchval(
                        f"EXPLAIN (FORMAT JSON) EXECUTE {name}('{self.ws}', 0.8, 10, {literal})")
                    self.samples[ns].append(plan_vector_index(json.loads(plan)[0]["Plan"]))
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()


async def lightrag_layout(url: str, keep: str) -> Dict[str, float]:
    """Put B's vector tables the way LightRAG keeps them: only ``keep``'s rows, one index over the table
    (LightRAG's CREATE INDEX, same name and parameters). Returns the build seconds per table."""
    import asyncpg

    from hybridrag_backends_postgres.naming import vector_table
    from hybridrag_backends_postgres.vector_index import shared_name

    conn = await asyncpg.connect(url)
    times = {}
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for ns in VECTOR_NS:
            table = vector_table(ns, MODEL, DIM).lower()
            for (name,) in await conn.fetch(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a "
                    "ON a.oid = c.relam WHERE i.indrelid = $1::regclass AND a.amname = 'hnsw'", table):
                await conn.execute(f"DROP INDEX {name}")
            await conn.execute(f"DELETE FROM {table} WHERE workspace <> $1", keep)
            await conn.execute(f"VACUUM {table}")
            t = time.perf_counter()
            await conn.execute(f"CREATE INDEX {shared_name(table, 'hnsw')} ON {table} USING hnsw "
                               f"(content_vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
            times[table] = time.perf_counter() - t
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()
    return times


async def table_rows(url: str) -> Dict[str, int]:
    import asyncpg

    from hybridrag_backends_postgres.naming import vector_table

    conn = await asyncpg.connect(url)
    try:
        return {ns: int(await conn.fetchval(f"SELECT count(*) FROM {vector_table(ns, MODEL, DIM)}")) for ns in VECTOR_NS}
    finally:
        await conn.close()


async def drop_database(base: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


def _short(table: str) -> str:
    return table.lower().split("_")[2]  # lightrag_vdb_<entity>_<model>_<dim>d


def strategy_line(r: dict) -> str:
    parts = []
    for table, c in sorted(r.get("vector_indexes", {}).items()):
        parts.append(f"{_short(table)}: {c['strategy']} (est {c['seconds']:.0f} s, other rows re-indexed "
                     f"{c['reindex_rows']:,})")
    return "; ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO / "benchmarks" / ".data" / "shared")
    ap.add_argument("--url", default=None, help="server URL (default: HYBRIDRAG_TEST_POSTGRES_URL or the sandbox)")
    ap.add_argument("--neighbour-args", default=" ".join(NEIGHBOUR), help="generator arguments of the neighbour")
    ap.add_argument("--small-args", default=" ".join(SMALL), help="generator arguments of the migrated database")
    ap.add_argument("--no-strategies", action="store_true", help="skip step 5 (the strategy comparison)")
    ap.add_argument("--no-lightrag", action="store_true", help="skip step 4 (LightRAG's API)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark's databases (dropped by default)")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    out = Tee()
    started = dt.datetime.now(dt.timezone.utc)
    neighbour_dir, small_dir = args.data / "neighbour", args.data / "small"
    generate(neighbour_dir, args.neighbour_args.split(), args.regenerate, out)
    generate(small_dir, args.small_args.split(), args.regenerate, out)
    base = bp.server_url(args.url)
    load = lambda: f"load {os.getloadavg()[0]:.2f}"  # noqa: E731
    out(f"{started:%Y-%m-%d %H:%M} UTC; cores {os.cpu_count()}, {load()}; server {base.split('@', 1)[-1]}")
    counts = bp._counts(small_dir)
    n_counts = bp._counts(neighbour_dir)
    vec = lambda c: sum(v for k, v in c.items() if k in VECTOR_NS)  # noqa: E731
    size = lambda p: sum(f.stat().st_size for f in p.iterdir() if f.is_file()) / 1e6  # noqa: E731
    out(f"small db: {size(small_dir):.0f} MB, {sum(counts.values()):,} records, {vec(counts):,} vectors "
        f"({' '.join(args.small_args.split())})")
    out(f"neighbour: {size(neighbour_dir):.0f} MB, {sum(n_counts.values()):,} records, {vec(n_counts):,} vectors "
        f"({' '.join(args.neighbour_args.split())})")
    opts = f"?embedding_model={MODEL}&maintenance_work_mem=1GB"

    # 1. the neighbour fills database B
    b_url = asyncio.run(bp.fresh_database(base))
    nb = run_migrate(neighbour_dir, b_url + opts, "neighbour")
    out(f"\n1. neighbour -> B: copy {nb['copy']:.1f} s (index builds included), verify {nb['verify']:.1f} s, "
        f"peak RSS {nb['rss']:.0f} MB, {load()}")

    # 2. fresh, 3. shared (polled)
    a_url = asyncio.run(bp.fresh_database(base))
    fresh = run_migrate(small_dir, a_url + opts, "small")
    out(f"2. small -> fresh database A: copy {fresh['copy']:.1f} s, verify {fresh['verify']:.1f} s, "
        f"peak RSS {fresh['rss']:.0f} MB, {load()}")
    poller = PlanPoller(b_url, "neighbour")
    poller.start()
    deadline = time.monotonic() + 180  # a baseline: three samples of each plan before the migration starts
    while min(len(v) for v in poller.samples.values()) < 3 and time.monotonic() < deadline and not poller.error:
        time.sleep(0.2)
    before = {ns: list(v) for ns, v in poller.samples.items()}
    shared = run_migrate(small_dir, b_url + opts, "small")
    poller.stop.set()
    poller.join()
    if poller.error:
        raise poller.error
    # tables whose query the planner serves from a vector index before the run must keep one throughout;
    # on a table with few of the neighbour's rows the planner prefers an exact scan, before and after
    indexed = [ns for ns in VECTOR_NS if before[ns] and all(before[ns])]
    during = {ns: poller.samples[ns][len(before[ns]):] for ns in VECTOR_NS}
    bare = sum(1 for ns in indexed for s in during[ns] if s is None)
    n_during = sum(len(during[ns]) for ns in indexed)
    out(f"3. small -> B's shared tables (auto): copy {shared['copy']:.1f} s, verify {shared['verify']:.1f} s, "
        f"peak RSS {shared['rss']:.0f} MB, {load()}")
    out(f"   strategy: {strategy_line(shared)}")
    out("   neighbour's LightRAG query plans, sampled every 0.5 s (vector index of the plan, None = scan):")
    for ns in VECTOR_NS:
        seen = sorted({str(s) for s in during[ns]})
        out(f"     {ns:14} before the run: {', '.join(sorted({str(s) for s in before[ns]}))}; during and after it: "
            f"{len(during[ns])} samples, {sum(1 for s in during[ns] if s)} on a vector index ({', '.join(seen)})")

    # 4. LightRAG's API into the same shared tables
    lr_total = None
    if not args.no_lightrag:
        t0 = time.perf_counter()
        lout, _, lr_rss = bp.peak_rss_mb(bp.CHILD_LIGHTRAG, str(small_dir), b_url + f"?embedding_model={MODEL}",
                                         "lightrag_api", "0", "0", "1000", str(REPO))
        lr_wall = time.perf_counter() - t0
        measured = json.loads(lout.strip().splitlines()[-1])
        lr_total = bp.lightrag_totals(measured, counts)
        vec_s = sum(min(bp.lightrag_estimates(measured[s], counts[s]).values()) for s in VECTOR_NS if s in measured)
        out(f"4. small -> B's shared tables through LightRAG's storage API (every record): {lr_total['fast']:.1f} s "
            f"in LightRAG's calls (fastest path per store; {vec_s:.1f} s of it vector upserts), child wall "
            f"{lr_wall:.0f} s, peak RSS {lr_rss:.0f} MB, {load()}")

    out("\nacceptance (copy = rows + index builds; verification is the same work on both sides):")
    out(f"  shared / fresh: {shared['copy']:.1f} / {fresh['copy']:.1f} s = {shared['copy'] / fresh['copy']:.2f}x "
        f"(target <= 2x); with verification {shared['total']:.1f} / {fresh['total']:.1f} s = "
        f"{shared['total'] / fresh['total']:.2f}x")
    if lr_total:
        out(f"  LightRAG API / shared: {lr_total['fast']:.1f} / {shared['copy']:.1f} s = "
            f"{lr_total['fast'] / shared['copy']:.1f}x (target >= 3x); with our verification "
            f"{lr_total['fast'] / shared['total']:.1f}x")
    out(f"  neighbour without a vector index, in the tables whose plan used one before the run "
        f"({', '.join(indexed) or 'none'}): {bare} of {n_during} samples (target 0)")

    # 5. the strategies compared
    if not args.no_strategies:
        out("\n5. strategies (same small db, other workspaces of B; table rows before each run shown):")
        runs = [("incremental, 2 writers, next to the neighbour's own index", "&index_strategy=incremental", "inc2"),
                ("incremental, 1 writer, next to the neighbour's own index",
                 "&index_strategy=incremental&index_writers=1", "inc1")]
        rows = []
        for label, extra, ws in runs:
            before = asyncio.run(table_rows(b_url))
            r = run_migrate(small_dir, b_url + opts + extra, ws)
            rows.append((label, sum(before.values()), r))
            out(f"   {label}: copy {r['copy']:.1f} s, {load()}; {strategy_line(r)}")
        builds = asyncio.run(lightrag_layout(b_url, "neighbour"))
        out(f"   B put in LightRAG's layout (neighbour only, one whole-table index per table): build "
            f"{sum(builds.values()):.1f} s ({', '.join(f'{_short(t)} {s:.1f} s' for t, s in builds.items())}) "
            f"= what the old drop-and-rebuild paid, plus the new rows, while every workspace had no index")
        for label, extra, ws in (("auto, next to LightRAG's whole-table index", "", "auto_lr"),
                                 ("partial, next to LightRAG's whole-table index", "&index_strategy=partial", "part_lr")):
            before = asyncio.run(table_rows(b_url))
            r = run_migrate(small_dir, b_url + opts + extra, ws)
            rows.append((label, sum(before.values()), r))
            out(f"   {label}: copy {r['copy']:.1f} s, {load()}; {strategy_line(r)}")
        out(f"\n   {'run':58} {'rows in tables':>14} {'copy s':>7} {'vs fresh':>8}")
        out(f"   {'fresh database (no neighbour)':58} {0:>14,} {fresh['copy']:>7.1f} {1:>7.2f}x")
        out(f"   {'partial (auto), next to the neighbour own index':58} {vec(n_counts):>14,} {shared['copy']:>7.1f} "
            f"{shared['copy'] / fresh['copy']:>7.2f}x")
        for label, before, r in rows:
            out(f"   {label:58} {before:>14,} {r['copy']:>7.1f} {r['copy'] / fresh['copy']:>7.2f}x")

    if not args.keep:
        for url in (a_url, b_url):
            asyncio.run(drop_database(base, url.rsplit("/", 1)[1]))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{started:%Y-%m-%d-%H%M}-postgres-shared.txt"
    path.write_text("\n".join(out.lines) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
