"""The shape of a generated knowledge base, computed by arithmetic so no store is held in memory.

Chunk ``i`` belongs to document ``i // chunks_per_doc``. Relation ``r`` joins entity
``u = r % E`` and ``v = (u + d) % E`` with ``d = 1 + r // E`` (unique undirected pairs
while ``d <= (E - 1) // 2``) and comes from chunk ``r % C``. An entity is mentioned by its
home chunk ``u % C`` and by the chunk of every relation it takes part in. Both directions
of every cross-reference (entity -> chunks, chunk -> entities, doc -> relations...) are
computed from these rules, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Tuple


@dataclass(frozen=True)
class Layout:
    docs: int
    chunks_per_doc: int
    entities: int
    relations: int

    def __post_init__(self) -> None:
        if self.docs < 1 or self.chunks_per_doc < 1:
            raise ValueError("--docs and --chunks-per-doc must be at least 1")
        if self.entities < 1:
            raise ValueError("--entities must be at least 1")
        if self.relations < 0:
            raise ValueError("--relations must not be negative")
        if self.relations > self.max_relations(self.entities):
            raise ValueError(
                f"--relations {self.relations} is more than {self.entities} entities can hold as distinct pairs "
                f"({self.max_relations(self.entities)}); raise --entities"
            )

    @staticmethod
    def max_relations(entities: int) -> int:
        return entities * ((entities - 1) // 2)

    @property
    def chunks(self) -> int:
        return self.docs * self.chunks_per_doc

    def doc_chunks(self, doc: int) -> range:
        return range(doc * self.chunks_per_doc, (doc + 1) * self.chunks_per_doc)

    # -- relations ---------------------------------------------------------

    def relation_ends(self, r: int) -> Tuple[int, int]:
        u = r % self.entities
        d = 1 + r // self.entities
        return u, (u + d) % self.entities

    def relation_chunk(self, r: int) -> int:
        return r % self.chunks

    def chunk_relations(self, chunk: int) -> range:
        return range(chunk, self.relations, self.chunks)

    def entity_relations(self, u: int) -> Iterator[int]:
        """Every relation with ``u`` as an end, in relation order per distance."""
        e = self.entities
        for d in range(1, 1 + (self.relations + e - 1) // e):
            as_first = u + (d - 1) * e
            if as_first < self.relations:
                yield as_first
            as_second = (u - d) % e + (d - 1) * e
            if as_second < self.relations:
                yield as_second

    # -- entities ----------------------------------------------------------

    def entity_chunks(self, u: int) -> List[int]:
        chunks = {u % self.chunks}
        chunks.update(self.relation_chunk(r) for r in self.entity_relations(u))
        return sorted(chunks)

    def chunk_entities(self, chunk: int) -> List[int]:
        """Entities mentioned by a chunk, in first-mention order."""
        found = dict.fromkeys(range(chunk, self.entities, self.chunks))
        for r in self.chunk_relations(chunk):
            found.update(dict.fromkeys(self.relation_ends(r)))
        return list(found)
