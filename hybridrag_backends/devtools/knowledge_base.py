"""The records of a generated LightRAG knowledge base, one store at a time, as LightRAG 1.5.7 writes them.

Text comes from :mod:`corpus`, the cross-references from :mod:`layout`, vectors from a
numpy generator seeded per (seed, store, block), so every store can be produced on its
own, in any order, any number of times, with identical results.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

from .corpus import Corpus
from .layout import Layout

EPOCH = 1767225600  # 2026-01-01T00:00:00Z: fixed timestamps keep the output byte-identical
VECTOR_BLOCK_ROWS = 384  # a multiple of 3: each block's float32 bytes base64-encode without padding
ENTITY_TYPES = ("concept", "method", "artifact", "category", "organization", "event")
VECTOR_STORES = ("chunks", "entities", "relationships")
SEP = "<SEP>"


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class KnowledgeBase:
    def __init__(self, layout: Layout, dim: int, seed: int, corpus: Corpus) -> None:
        self.layout = layout
        self.dim = dim
        self.seed = seed
        self.corpus = corpus

    def _hash(self, *parts: object) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{parts}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")

    # -- documents and chunks ------------------------------------------------

    def chunk_content(self, chunk: int) -> str:
        doc, order = divmod(chunk, self.layout.chunks_per_doc)
        start = self._hash("doc", doc) + sum(self._chunk_words(doc, k) for k in range(order))
        text = self.corpus.passage(start, self._chunk_words(doc, order))
        if order == 0:  # a title line makes every document's text, hence its id, unique
            title = self.corpus.titles[self._hash("title", doc) % len(self.corpus.titles)]
            text = f"Python reference: {title} (document {doc})\n\n{text}"
        return text

    def _chunk_words(self, doc: int, order: int) -> int:
        return 150 + self._hash("words", doc, order) % 300

    def doc_content(self, doc: int) -> str:
        return "\n\n".join(self.chunk_content(c) for c in self.layout.doc_chunks(doc))

    @cached_property
    def doc_ids(self) -> List[str]:
        return ["doc-" + md5(self.doc_content(d)) for d in range(self.layout.docs)]

    def chunk_id(self, chunk: int) -> str:
        doc, order = divmod(chunk, self.layout.chunks_per_doc)
        return f"{self.doc_ids[doc]}-chunk-{order:03d}"

    def file_path(self, doc: int) -> str:
        return f"python-reference-{doc:06d}.txt"

    def doc_time(self, doc: int) -> int:
        return EPOCH + 60 * doc

    def _extract_prompt(self, content: str) -> str:
        return (
            "---Task---\nExtract entities and relationships from the input text to be processed.\n\n"
            f"---Input Text---\n```\n{content}\n```"
        )

    def _extract_return(self, chunk: int) -> str:
        lines = []
        for u in self.layout.chunk_entities(chunk):
            lines.append(f"entity<|#|>{self.entity_name(u)}<|#|>{self.entity_type(u)}<|#|>{self.entity_description(u)}")
        for r in self.layout.chunk_relations(chunk):
            u, v = self.layout.relation_ends(r)
            lines.append(
                f"relation<|#|>{self.entity_name(u)}<|#|>{self.entity_name(v)}<|#|>"
                f"{self.relation_keywords(r)}<|#|>{self.relation_description(r)}"
            )
        lines.append("<|COMPLETE|>")
        return "\n".join(lines)

    # -- entities and relations ----------------------------------------------

    def entity_name(self, u: int) -> str:
        return self.corpus.entity_name(u)

    def entity_type(self, u: int) -> str:
        return ENTITY_TYPES[self._hash("type", u) % len(ENTITY_TYPES)]

    def entity_description(self, u: int) -> str:
        return self.corpus.sentences[self._hash("entity", u) % len(self.corpus.sentences)]

    def relation_names(self, r: int) -> Tuple[str, str]:
        u, v = self.layout.relation_ends(r)
        return self.entity_name(u), self.entity_name(v)

    def relation_keywords(self, r: int) -> str:
        names = self.corpus.names
        h = self._hash("keywords", r)
        return f"{names[h % len(names)].lower()},{names[(h >> 20) % len(names)].lower()}"

    def relation_description(self, r: int) -> str:
        return self.corpus.sentences[self._hash("relation", r) % len(self.corpus.sentences)]

    def _file_paths(self, chunks: List[int]) -> str:
        docs = dict.fromkeys(c // self.layout.chunks_per_doc for c in chunks)
        return SEP.join(self.file_path(d) for d in docs)

    # -- KV stores -----------------------------------------------------------

    def full_docs(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for d in range(self.layout.docs):
            t = self.doc_time(d)
            yield self.doc_ids[d], {"content": self.doc_content(d), "file_path": self.file_path(d),
                                    "create_time": t, "update_time": t, "_id": self.doc_ids[d]}

    def text_chunks(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for c in range(self.layout.chunks):
            d, order = divmod(c, self.layout.chunks_per_doc)
            content = self.chunk_content(c)
            cid = self.chunk_id(c)
            t = self.doc_time(d)
            yield cid, {
                "tokens": len(content.split()),
                "content": content,
                "chunk_order_index": order,
                "full_doc_id": self.doc_ids[d],
                "file_path": self.file_path(d),
                "llm_cache_list": ["default:extract:" + md5(self._extract_prompt(content))],
                "create_time": t,
                "update_time": t + 30,
                "_id": cid,
            }

    def llm_response_cache(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        # Two chunks can draw the same passage; LightRAG then shares one cache entry (the key is
        # the prompt's md5), and a JSON object cannot hold a key twice, so repeats are skipped.
        seen: set = set()
        for d in range(self.layout.docs):
            t = self.doc_time(d)
            for c in self.layout.doc_chunks(d):
                prompt = self._extract_prompt(self.chunk_content(c))
                key = "default:extract:" + md5(prompt)
                if key in seen:
                    continue
                seen.add(key)
                yield key, {"return": self._extract_return(c), "cache_type": "extract",
                            "chunk_id": self.chunk_id(c), "original_prompt": prompt, "queryparam": None,
                            "create_time": t + 10, "update_time": t + 10, "_id": key}
            title = self.corpus.titles[self._hash("title", d) % len(self.corpus.titles)]
            question = f"What does the Python reference say about {title} (document {d})?"
            key = "mix:query:" + md5(question)
            answer = self.corpus.passage(self._hash("answer", d), 80)
            yield key, {"return": answer, "cache_type": "query", "chunk_id": None, "original_prompt": question,
                        "queryparam": {"mode": "mix", "response_type": "Multiple Paragraphs", "top_k": 40,
                                       "chunk_top_k": 20, "enable_rerank": False},
                        "create_time": t + 50, "update_time": t + 50, "_id": key}

    def full_entities(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for d in range(self.layout.docs):
            found: Dict[int, None] = {}
            for c in self.layout.doc_chunks(d):
                found.update(dict.fromkeys(self.layout.chunk_entities(c)))
            if found:
                t = self.doc_time(d) + 40
                yield self.doc_ids[d], {"entity_names": [self.entity_name(u) for u in found], "count": len(found),
                                        "create_time": t, "update_time": t, "_id": self.doc_ids[d]}

    def full_relations(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for d in range(self.layout.docs):
            pairs = [sorted(self.relation_names(r)) for c in self.layout.doc_chunks(d) for r in self.layout.chunk_relations(c)]
            if pairs:
                t = self.doc_time(d) + 40
                yield self.doc_ids[d], {"relation_pairs": pairs, "count": len(pairs),
                                        "create_time": t, "update_time": t, "_id": self.doc_ids[d]}

    def entity_chunks(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for u in range(self.layout.entities):
            name = self.entity_name(u)
            ids = [self.chunk_id(c) for c in self.layout.entity_chunks(u)]
            yield name, {"chunk_ids": ids, "count": len(ids), "create_time": EPOCH + u, "update_time": EPOCH + u,
                         "_id": name}

    def relation_chunks(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for r in range(self.layout.relations):
            key = SEP.join(sorted(self.relation_names(r)))
            ids = [self.chunk_id(self.layout.relation_chunk(r))]
            yield key, {"chunk_ids": ids, "count": len(ids), "create_time": EPOCH + r, "update_time": EPOCH + r,
                        "_id": key}

    def doc_status(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for d in range(self.layout.docs):
            content = self.doc_content(d)
            t = self.doc_time(d)
            summary = content.strip()
            summary = summary if len(summary) <= 250 else summary[:250] + "..."
            chunk_ids = [self.chunk_id(c) for c in self.layout.doc_chunks(d)]
            yield self.doc_ids[d], {
                "status": "processed",
                "chunks_count": len(chunk_ids),
                "chunks_list": chunk_ids,
                "content_summary": summary,
                "content_length": len(content),
                "created_at": iso(t),
                "updated_at": iso(t + 50),
                "file_path": self.file_path(d),
                "track_id": f"insert_{datetime.fromtimestamp(t, timezone.utc):%Y%m%d_%H%M%S}_{md5(str(d))[:8]}",
                "content_hash": md5(content),
                "metadata": {"processing_start_time": t, "processing_end_time": t + 50},
            }

    # -- vector stores -------------------------------------------------------

    def vector_count(self, store: str) -> int:
        return {"chunks": self.layout.chunks, "entities": self.layout.entities,
                "relationships": self.layout.relations}[store]

    def matrix_blocks(self, store: str) -> Iterator[np.ndarray]:
        """L2-normalised float32 rows, in blocks; block b of a store is the same on every call."""
        n = self.vector_count(store)
        for b, start in enumerate(range(0, n, VECTOR_BLOCK_ROWS)):
            rng = np.random.default_rng([self.seed, VECTOR_STORES.index(store), b])
            rows = rng.standard_normal((min(VECTOR_BLOCK_ROWS, n - start), self.dim), dtype=np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            yield rows

    def vdb_records(self, store: str) -> Iterator[Dict[str, Any]]:
        meta = {"chunks": self._chunk_meta, "entities": self._entity_meta, "relationships": self._relation_meta}[store]
        i = 0
        for block in self.matrix_blocks(store):
            for row in block.astype(np.float16):
                record = meta(i)
                # LightRAG 1.5.7 keeps a lossy float16+zlib+base64 copy per record (the matrix is the
                # truth). Level 0 (stored) decodes to the same bytes and is 20x faster than level 6
                # on incompressible vector data.
                record["vector"] = base64.b64encode(zlib.compress(row.tobytes(), 0)).decode()
                yield record
                i += 1

    def _vdb_head(self, key: str, created: int) -> Dict[str, Any]:
        return {"__id__": key, "__created_at__": created, "__write_seq__": created * 1_000_000_000}

    def _chunk_meta(self, c: int) -> Dict[str, Any]:
        d = c // self.layout.chunks_per_doc
        record = self._vdb_head(self.chunk_id(c), self.doc_time(d) + 20)
        record.update(content=self.chunk_content(c), full_doc_id=self.doc_ids[d], file_path=self.file_path(d))
        return record

    def _entity_meta(self, u: int) -> Dict[str, Any]:
        name = self.entity_name(u)
        chunks = self.layout.entity_chunks(u)
        record = self._vdb_head("ent-" + md5(name), EPOCH + u)
        record.update(entity_name=name, content=f"{name}\n{self.entity_description(u)}",
                      source_id=SEP.join(self.chunk_id(c) for c in chunks), file_path=self._file_paths(chunks))
        return record

    def _relation_meta(self, r: int) -> Dict[str, Any]:
        lo, hi = sorted(self.relation_names(r))
        chunk = self.layout.relation_chunk(r)
        record = self._vdb_head("rel-" + md5(lo + hi), EPOCH + r)
        record.update(src_id=lo, tgt_id=hi, source_id=self.chunk_id(chunk),
                      content=f"{self.relation_keywords(r)}\t{lo}\n{hi}\n{self.relation_description(r)}",
                      file_path=self._file_paths([chunk]))
        return record

    # -- graph ---------------------------------------------------------------

    def graph_nodes(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for u in range(self.layout.entities):
            name = self.entity_name(u)
            chunks = self.layout.entity_chunks(u)
            yield name, {"entity_id": name, "entity_type": self.entity_type(u),
                         "description": self.entity_description(u),
                         "source_id": SEP.join(self.chunk_id(c) for c in chunks),
                         "file_path": self._file_paths(chunks), "created_at": EPOCH + u, "truncate": ""}

    def graph_edges(self) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
        """Edges in networkx's order: by the earlier endpoint in node order, then by insertion."""
        for u in range(self.layout.entities):
            later = sorted(r for r in self.layout.entity_relations(u) if self._other_end(r, u) > u)
            for r in later:
                yield self._edge(u, r)

    def _other_end(self, r: int, u: int) -> int:
        a, b = self.layout.relation_ends(r)
        return b if a == u else a

    def _edge(self, u: int, r: int) -> Tuple[str, str, Dict[str, Any]]:
        chunk = self.layout.relation_chunk(r)
        attrs = {"weight": float(1 + self._hash("weight", r) % 5), "description": self.relation_description(r),
                 "keywords": self.relation_keywords(r), "source_id": self.chunk_id(chunk),
                 "file_path": self._file_paths([chunk]), "created_at": EPOCH + r, "truncate": ""}
        return self.entity_name(u), self.entity_name(self._other_end(r, u)), attrs
