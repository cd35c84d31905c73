"""Generate a deterministic LightRAG (1.5.7) JSON working dir: real text, consistent cross-references.

    python -m hybridrag_backends.devtools.generate OUT_DIR [--workspace W] [--docs N]
        [--chunks-per-doc N] [--entities N] [--relations N] [--dim D] [--seed S] [--target-size 2GB]

Same arguments -> byte-identical files (with the same Python and numpy versions: the text is
CPython's ``pydoc_data.topics`` and the vectors come from numpy's PCG64). Every store is streamed to disk (bounded memory),
each file written under a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from .corpus import corpus
from .knowledge_base import KnowledgeBase
from .layout import Layout
from .writers import write_graphml, write_kv, write_nano_vdb

KV_STORES = ("full_docs", "text_chunks", "llm_response_cache", "full_entities", "full_relations",
             "entity_chunks", "relation_chunks", "doc_status")
VDB_STORES = ("chunks", "entities", "relationships")
GRAPH_FILE = "graph_chunk_entity_relation.graphml"
STANDARD_FILES = tuple(f"kv_store_{n}.json" for n in KV_STORES) + tuple(f"vdb_{n}.json" for n in VDB_STORES) + (GRAPH_FILE,)

PRESETS_HELP = """\
size presets (what the project's demo, tests and benchmarks use):
  demo, about 3.5 MB:    --docs 40 --chunks-per-doc 4 --dim 256
  tests, tiny:           --docs 3 --chunks-per-doc 2 --entities 12 --relations 20 --dim 8
  migration benchmark:   --target-size 1GB --dim 1536 --relations 60000   (>= 100k KV records, >= 50k edges)
  PostgreSQL benchmark:  --docs 13000 --chunks-per-doc 4 --entities 52000 --relations 52000 --dim 1536  (52k of each)
  status benchmark:      --target-size 2GB --dim 1536

defaults: --entities = one per chunk, --relations = 1.5 per chunk (capped at what the
entities can hold as distinct pairs). With --target-size, --docs is computed (by generating
a small sample) so the total reaches the target; explicit --entities / --relations stay fixed.
"""


@dataclass(frozen=True)
class GenerateSpec:
    docs: int = 24
    chunks_per_doc: int = 4
    entities: Optional[int] = None  # None: one per chunk
    relations: Optional[int] = None  # None: 1.5 per chunk
    dim: int = 256
    seed: int = 0
    workspace: str = ""

    def layout(self) -> Layout:
        """The record counts; raises ValueError naming the option when a value is out of range."""
        if self.dim < 1:
            raise ValueError("--dim must be at least 1")
        chunks = self.docs * self.chunks_per_doc
        entities = self.entities if self.entities is not None else max(3, chunks)
        relations = self.relations if self.relations is not None else min(Layout.max_relations(entities), chunks * 3 // 2)
        return Layout(self.docs, self.chunks_per_doc, entities, relations)


@dataclass
class GenerateResult:
    directory: Path
    file_sizes: Dict[str, int]
    record_counts: Dict[str, int]  # file name -> records (graphml: nodes + edges)
    nodes: int
    edges: int
    seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(self.file_sizes.values())


def generate(out_dir: Path, spec: GenerateSpec, *, progress: Optional[Callable[[str], None]] = None) -> GenerateResult:
    """Write every standard LightRAG file for ``spec`` into ``out_dir[/workspace]``."""
    layout = spec.layout()
    directory = Path(out_dir) / spec.workspace if spec.workspace else Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    kb = KnowledgeBase(layout, spec.dim, spec.seed, corpus())
    started = time.perf_counter()
    counts: Dict[str, int] = {}
    for store in KV_STORES:
        name = f"kv_store_{store}.json"
        counts[name] = write_kv(directory / name, getattr(kb, store)())
        _report(progress, directory / name, counts[name])
    for store in VDB_STORES:
        name = f"vdb_{store}.json"
        counts[name] = write_nano_vdb(directory / name, spec.dim, kb.vdb_records(store), kb.matrix_blocks(store))
        _report(progress, directory / name, counts[name])
    nodes, edges = write_graphml(directory / GRAPH_FILE, kb.graph_nodes(), kb.graph_edges())
    counts[GRAPH_FILE] = nodes + edges
    _report(progress, directory / GRAPH_FILE, nodes + edges)
    sizes = {name: (directory / name).stat().st_size for name in STANDARD_FILES}
    return GenerateResult(directory, sizes, counts, nodes, edges, time.perf_counter() - started)


def _report(progress: Optional[Callable[[str], None]], path: Path, records: int) -> None:
    if progress:
        progress(f"  {path.name:<40} {records:>10,} records {path.stat().st_size / 1e6:>10.1f} MB")


def spec_for_size(target_bytes: int, spec: GenerateSpec) -> GenerateSpec:
    """``spec`` with ``docs`` chosen so the total size reaches ``target_bytes``.

    Sizes are measured on a small sample at the same entity/relation ratios (twice, to
    let fixed entity or relation counts settle), then scaled linearly with a 3% margin.
    """
    # Start large enough that default (per-chunk) entity counts can hold explicit relation counts.
    guess = replace(spec, docs=max(1000, spec.docs))
    for _ in range(2):
        layout = guess.layout()
        sample_docs = min(layout.docs, 40)
        scale = sample_docs / layout.docs
        sample = replace(
            guess,
            docs=sample_docs,
            workspace="",
            entities=max(3, round(layout.entities * scale)),
            relations=round(layout.relations * scale),
        )
        if sample.relations is not None and sample.entities is not None:
            sample = replace(sample, relations=min(sample.relations, Layout.max_relations(sample.entities)))
        with tempfile.TemporaryDirectory(prefix="hybridrag-generate-sample-") as tmp:
            sample_bytes = generate(Path(tmp), sample).total_bytes
        bytes_per_doc = sample_bytes / sample_docs
        guess = replace(guess, docs=max(1, math.ceil(target_bytes * 1.03 / bytes_per_doc)))
    return guess


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'2GB', '1.5G', '500MB', '123456' -> bytes (powers of 1024)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number with an optional unit, e.g. 2GB or 500MB")
    value, unit = float(match.group(1)), match.group(2).upper()
    return int(value * 1024 ** ("KMGT".index(unit) + 1 if unit else 0))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hybridrag_backends.devtools.generate",
        description="Write a deterministic LightRAG 1.5.7 JSON working dir (all 12 standard files) "
        "built from real English text (CPython's pydoc topics). Same arguments, same bytes.",
        epilog=PRESETS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = GenerateSpec()
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="working dir to write (created if missing)")
    parser.add_argument("--workspace", default="", help="write into OUT_DIR/WORKSPACE (LightRAG workspace)")
    parser.add_argument("--docs", type=_positive, default=default.docs, help=f"documents (default {default.docs})")
    parser.add_argument("--chunks-per-doc", type=_positive, default=default.chunks_per_doc,
                        help=f"chunks per document (default {default.chunks_per_doc})")
    parser.add_argument("--entities", type=_positive, default=None, help="entities = graph nodes (default: one per chunk)")
    parser.add_argument("--relations", type=_positive, default=None, help="relations = graph edges (default: 1.5 per chunk)")
    parser.add_argument("--dim", type=_positive, default=default.dim, help=f"embedding dimension (default {default.dim})")
    parser.add_argument("--seed", type=int, default=default.seed, help="random seed for text choice and vectors (default 0)")
    parser.add_argument("--target-size", type=parse_size, default=None, metavar="SIZE",
                        help="total size to reach, e.g. 2GB (computes --docs)")
    parser.add_argument("--force", action="store_true", help="overwrite LightRAG files already in the target dir")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workspace and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", args.workspace):
        return _fail(f"invalid --workspace {args.workspace!r}: use letters, digits, '_' or '-'")
    spec = GenerateSpec(docs=args.docs, chunks_per_doc=args.chunks_per_doc, entities=args.entities,
                        relations=args.relations, dim=args.dim, seed=args.seed, workspace=args.workspace)
    directory = args.out_dir / args.workspace if args.workspace else args.out_dir
    existing = [name for name in STANDARD_FILES if (directory / name).exists()]
    if existing and not args.force:
        return _fail(f"{directory} already holds LightRAG files ({existing[0]}, ...): choose an empty dir or pass --force")
    try:
        if args.target_size is not None:
            spec = spec_for_size(args.target_size, spec)
        layout = spec.layout()
        say: Callable[[str], None] = (lambda _: None) if args.quiet else print
        say(f"generating {layout.docs:,} docs, {layout.chunks:,} chunks, {layout.entities:,} entities, "
            f"{layout.relations:,} relations, dim {spec.dim}, seed {spec.seed} into {directory}")
        result = generate(args.out_dir, spec, progress=say)
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {directory}: {exc.strerror or exc} (check the path and free disk space)")
    mb = result.total_bytes / 1e6
    print(f"wrote {mb:,.1f} MB in 12 files to {result.directory} in {result.seconds:.1f} s "
          f"({mb / max(result.seconds, 1e-9):,.0f} MB/s)")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
