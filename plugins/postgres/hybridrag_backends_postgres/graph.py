"""Apache AGE graph in bulk: rows go straight into the label tables LightRAG reads
(``<graph>.base`` for vertices, ``<graph>."DIRECTED"`` for edges), not one Cypher statement per row.

Ids come from the label tables' own column default, ``_graphid(_label_id(graph, label),
nextval(<label>_id_seq))``, so AGE's sequences advance with the load and LightRAG's later
``upsert_node`` / ``upsert_edge`` (Cypher MERGE) allocate fresh ids after ours.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import asyncpg
import orjson

from hybridrag_backends.errors import TargetError
from hybridrag_backends.provider import Record

from .naming import quote_ident

ENTITY = "agtype_access_operator(VARIADIC ARRAY[{alias}.properties, '\"entity_id\"'::agtype])"


def _entity(alias: str) -> str:
    return ENTITY.format(alias=alias)


async def _index_lookups(conn: asyncpg.Connection) -> None:
    # The stage table has no statistics, so the planner hashes the whole vertex table (computing
    # entity_id for every vertex) per batch; index lookups on entity_idx_node_id are ~4x faster.
    await conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")


def node_rows(records: List[Record]) -> Tuple[List[tuple], List[tuple]]:
    """(stage rows (key_ag, props), overlay rows (key, overlay json)). ``entity_id`` must equal the key
    (LightRAG looks nodes up by it); a source that differs keeps its own value in the overlay."""
    rows, overlays = [], []
    for r in records:
        props = dict(r.payload)
        original = props.get("entity_id", None) if "entity_id" in props else _ABSENT
        props["entity_id"] = r.key
        if original is _ABSENT:
            overlays.append((r.key, orjson.dumps({"unset": ["entity_id"]}).decode()))
        elif original != r.key or not isinstance(original, str):
            overlays.append((r.key, orjson.dumps({"set": {"entity_id": original}}).decode()))
        rows.append((orjson.dumps(r.key).decode(), orjson.dumps(props).decode()))
    return rows, overlays


_ABSENT = object()


def edge_rows(records: List[Record]) -> List[tuple]:
    rows = []
    for r in records:
        props = {k: v for k, v in r.payload.items() if k not in ("source", "target")}
        # endpoints as the vertices' entity_id (node keys are strings)
        rows.append((str(r.payload["source"]), str(r.payload["target"]), orjson.dumps(props).decode()))
    return rows


async def ensure_stages(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS hrb_stage_nodes (key_ag text, props text) ON COMMIT DELETE ROWS"
    )


class VertexIds:
    """entity_id -> graphid (text) of vertices known to be committed, so edge batches need no lookup
    for the vertices this session wrote. Bounded: past LIMIT entries it stops remembering and edges
    look their endpoints up in the index instead."""

    LIMIT = 500_000

    def __init__(self) -> None:
        self.ids: Dict[str, str] = {}
        self.full = False

    def add(self, found: Dict[str, str]) -> None:
        if self.full or len(self.ids) + len(found) > self.LIMIT:
            self.full, self.ids = True, {}
        else:
            self.ids.update(found)


async def upsert_nodes(conn: asyncpg.Connection, graph: str, rows: List[tuple]) -> Dict[str, str]:
    """Insert the vertices that are new; update the others only when there are any (a resumed or
    repeated load), so a fresh load costs one index lookup per vertex. Returns the new vertices'
    {entity_id: graphid}."""
    g = quote_ident(graph)
    await _index_lookups(conn)
    await conn.copy_records_to_table("hrb_stage_nodes", records=rows, columns=["key_ag", "props"])
    new = await conn.fetch(
        f"INSERT INTO {g}.base (properties) SELECT s.props::agtype FROM hrb_stage_nodes s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {g}.base b WHERE {_entity('b')} = s.key_ag::agtype) "
        f"RETURNING id::text AS gid, agtype_out({_entity('base')})::text AS name"
    )
    if len(new) < len(rows):
        await conn.execute(
            f"UPDATE {g}.base b SET properties = s.props::agtype FROM hrb_stage_nodes s "
            f"WHERE {_entity('b')} = s.key_ag::agtype"
        )
    return {orjson.loads(r["name"]): r["gid"] for r in new}


async def vertex_ids(conn: asyncpg.Connection, graph: str, names: List[str]) -> Dict[str, str]:
    """entity_id -> graphid (as text) for the vertices named (one index lookup each)."""
    g = quote_ident(graph)
    rows = await conn.fetch(
        f"SELECT k.name, b.id::text AS gid FROM unnest($1::text[]) AS k(name) "
        f"JOIN {g}.base b ON {_entity('b')} = to_json(k.name)::text::agtype",
        names,
    )
    return {r["name"]: r["gid"] for r in rows}


async def upsert_edges(conn: asyncpg.Connection, graph: str, rows: List[tuple], known: VertexIds) -> None:
    """Replace the edges between each pair (LightRAG's graph is undirected: either direction).
    ``rows``: (source entity_id, target entity_id, properties json). The endpoints' ids are looked up
    in ``known`` or once per batch; the delete and insert then work on ids alone."""
    g = quote_ident(graph)
    await _index_lookups(conn)
    names = {e for r in rows for e in r[:2]}
    unknown = sorted(n for n in names if n not in known.ids)
    found = await vertex_ids(conn, graph, unknown) if unknown else {}
    known.add(found)
    ids = {n: found.get(n) or known.ids.get(n) for n in names}
    ids = {n: i for n, i in ids.items() if i is not None}
    missing = [f"{a} - {b}" for a, b, _ in rows if a not in ids or b not in ids]
    if missing:
        raise TargetError(
            f"graph {graph}: {len(missing)} edge(s) name a node that is not in the graph "
            f"(first: {missing[0]}); add the node to the source graph or remove the edge"
        )
    starts = [ids[a] for a, _, _ in rows]
    ends = [ids[b] for _, b, _ in rows]
    await conn.execute(
        f'DELETE FROM {g}."DIRECTED" e USING unnest($1::text[], $2::text[]) AS p(a, b) '
        f"WHERE (e.start_id = p.a::graphid AND e.end_id = p.b::graphid) "
        f"OR (e.start_id = p.b::graphid AND e.end_id = p.a::graphid)",
        starts, ends,
    )
    await conn.execute(
        f'INSERT INTO {g}."DIRECTED" (start_id, end_id, properties) '
        f"SELECT p.a::graphid, p.b::graphid, p.props::agtype FROM unnest($1::text[], $2::text[], $3::text[]) AS p(a, b, props)",
        starts, ends, [r[2] for r in rows],
    )


async def read_nodes(conn: asyncpg.Connection, graph: str, after: Optional[str], limit: int) -> List[Tuple[str, Dict[str, Any]]]:
    g = quote_ident(graph)
    where = "WHERE id > $1::text::graphid" if after is not None else ""
    args = [after] if after is not None else []
    rows = await conn.fetch(
        f"SELECT id::text AS gid, agtype_out(properties)::text AS props FROM {g}.base {where} ORDER BY id LIMIT {int(limit)}", *args
    )
    return [(r["gid"], orjson.loads(r["props"])) for r in rows]


async def read_edges(conn: asyncpg.Connection, graph: str, after: Optional[str], limit: int) -> List[Tuple[str, str, str, Dict[str, Any]]]:
    g = quote_ident(graph)
    where = "WHERE e.id > $1::text::graphid" if after is not None else ""
    args = [after] if after is not None else []
    rows = await conn.fetch(
        f"SELECT e.id::text AS gid, agtype_out(e.properties)::text AS props, agtype_out(a.properties)::text AS ap, agtype_out(b.properties)::text AS bp "
        f'FROM {g}."DIRECTED" e JOIN {g}.base a ON a.id = e.start_id JOIN {g}.base b ON b.id = e.end_id '
        f"{where} ORDER BY e.id LIMIT {int(limit)}",
        *args,
    )
    return [
        (r["gid"], orjson.loads(r["ap"])["entity_id"], orjson.loads(r["bp"])["entity_id"], orjson.loads(r["props"]))
        for r in rows
    ]


async def graph_exists(conn: asyncpg.Connection, graph: str) -> bool:
    if not await conn.fetchval("SELECT to_regclass('ag_catalog.ag_graph') IS NOT NULL"):
        return False  # AGE not created in this database: no graph
    return bool(await conn.fetchval("SELECT 1 FROM ag_catalog.ag_graph WHERE name = $1", graph))


async def count(conn: asyncpg.Connection, graph: str, label: str) -> int:
    if not await graph_exists(conn, graph):
        return 0
    has = await conn.fetchval(
        "SELECT 1 FROM ag_catalog.ag_label l JOIN ag_catalog.ag_graph g ON g.graphid = l.graph "
        "WHERE g.name = $1 AND l.name = $2", graph, label)
    if not has:
        return 0
    return int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(graph)}.{quote_ident(label)}"))
