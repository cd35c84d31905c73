"""Child process: copy a JSON working dir into PostgreSQL through LightRAG 1.5.7's own storage API.

    python benchmarks/harness/child_lightrag_pg.py SOURCE_DIR TARGET_URL WORKSPACE BUDGET_SECONDS  (0: no budget)

What a user's copy script would do with LightRAG's PG storages (``tests/pg_lightrag.py`` opens them):
KV and doc status ``upsert`` + ``index_done_callback``; vectors ``upsert`` + ``index_done_callback`` per
batch (1.5.7 buffers vector upserts and embeds and writes them on that flush; a lookup embedding function
returns the source's own vectors, so no model runs, and the run stops if a text has no vector); graph
``upsert_nodes_batch`` / ``upsert_edges_batch``, LightRAG's fastest graph path. Records are read from the
JSON source batch by batch with our reader, untimed: only LightRAG's calls are timed, which favours
LightRAG.

The budget: each store gets the budget left divided by the stores left (a fast store leaves its unused
share to the next). A store whose share runs out stops after the batch in flight and its time is
EXTRAPOLATED from its measured rate to all its records; the output marks it. Extrapolation favours
LightRAG too: its HNSW index (created by ``initialize``) and its graph grow with the table, so the first
records are the cheapest. Prints one JSON line: per store records sent, records total, seconds measured.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402  (puts the repository on sys.path)

sys.path.insert(0, str(harness.REPO / "tests"))
import pg_lightrag  # noqa: E402
from pg_lightrag import close_storages, lightrag_env, open_storages  # noqa: E402

from hybridrag_backends.provider import StoreKind  # noqa: E402
from hybridrag_backends.targets import resolve_target  # noqa: E402

MODEL = "bench-embed"


class Counting(dict):
    """The lookup table of the embedding function; counts texts it did not know (zero vectors)."""

    misses = 0

    def get(self, key, default=None):
        if key not in self:
            Counting.misses += 1
        return super().get(key, default)


_lookup = pg_lightrag.lookup_embedding
pg_lightrag.lookup_embedding = lambda dim, model, table=None: _lookup(dim, model, Counting())


async def send(lr, store, records, nodes_complete):  # noqa: ANN001
    """Write one batch through LightRAG's API; returns the seconds its calls took."""
    if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS):
        target = lr[store.namespace]
        started = time.perf_counter()
        await target.upsert({r.key: r.payload for r in records})
        await target.index_done_callback()
        return time.perf_counter() - started
    if store.kind is StoreKind.VECTOR:
        target = lr[store.namespace]
        data = {}
        for r in records:
            payload = dict(r.payload)
            payload["content"] = f"{r.key}|{payload.get('content', r.key)}"  # unique text -> its own vector
            payload.setdefault("tokens", 0)
            payload.setdefault("chunk_order_index", 0)  # LightRAG's pipeline passes them from the chunk
            target.lookup[payload["content"]] = r.vector
            data[r.key] = payload
        started = time.perf_counter()
        await target.upsert(data)
        await target.index_done_callback()
        elapsed = time.perf_counter() - started
        target.lookup.clear()
        return elapsed
    graph = lr["graph"]
    if store.kind is StoreKind.GRAPH_NODES:
        started = time.perf_counter()
        await graph.upsert_nodes_batch([(r.key, r.payload) for r in records])
        return time.perf_counter() - started
    if not nodes_complete:  # the nodes were cut short by the budget: make the endpoints exist, untimed
        ends = {e for r in records for e in (r.payload["source"], r.payload["target"])}
        await graph.upsert_nodes_batch([(e, {"entity_id": e}) for e in ends])
    started = time.perf_counter()
    await graph.upsert_edges_batch([(r.payload["source"], r.payload["target"],
                                     {k: v for k, v in r.payload.items() if k not in ("source", "target")})
                                    for r in records])
    return time.perf_counter() - started


async def main(source_dir: str, url: str, workspace: str, budget: float) -> dict:
    source = resolve_target(source_dir)
    target = resolve_target(f"{url}?embedding_model={MODEL}", workspace=workspace)
    out = {}
    started = time.perf_counter()
    async with source.provider.open(source.config) as reader:
        stores = [s for s in await reader.list_stores()]
        dims = {s.namespace: s.embedding_dim for s in stores if s.kind is StoreKind.VECTOR}
        with lightrag_env(target.config):
            lr = await open_storages(target.config, MODEL, dims)
            try:
                nodes_complete = True
                for index, store in enumerate(stores):
                    if store.kind in (StoreKind.KV, StoreKind.DOC_STATUS) and store.namespace not in lr:
                        continue  # no LightRAG PG table for it
                    left = budget - (time.perf_counter() - started)
                    share = left / (len(stores) - index) if budget > 0 else float("inf")
                    total = await reader.count(store)
                    sent, seconds, store_started = 0, 0.0, time.perf_counter()
                    async for batch in reader.read(store, None, 1000):
                        seconds += await send(lr, store, batch.records, nodes_complete)
                        sent += len(batch.records)
                        if Counting.misses:
                            sys.exit(f"{store.name}: {Counting.misses} texts had no vector; the timing would be wrong")
                        if time.perf_counter() - store_started > share:
                            break
                    if store.kind is StoreKind.GRAPH_NODES:
                        nodes_complete = sent >= total
                    out[store.name] = {"sent": sent, "records": total, "seconds": round(seconds, 3)}
                    print(store.name, out[store.name], file=sys.stderr, flush=True)
            finally:
                await close_storages(lr)
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))))
