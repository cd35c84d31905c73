"""The databases the harness runs on, generated once and cached under ``benchmarks/.data/``.

Every size has the shape of the generator's migration-benchmark preset (``--target-size 1GB --dim 1536
--relations 60000``, the 1 GB database of issue 15), scaled: ``--docs`` and ``--relations`` are the
preset's times the size in GB, so the 1 GB point is that preset exactly and every other size has the same
mix of stores (entities stay one per chunk). Cached while the generator arguments are unchanged and the
files have the sizes recorded beside them; ``regenerate`` rebuilds.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional

from . import BENCH
from hybridrag_backends.devtools.generate import STANDARD_FILES, GenerateSpec, generate, parse_size, spec_for_size

DATA = BENCH / ".data"
PRESET = GenerateSpec(dim=1536, relations=60_000)  # at --target-size 1GB


@functools.lru_cache(maxsize=None)
def _preset_1gb() -> GenerateSpec:
    return spec_for_size(parse_size("1GB"), PRESET)


def spec_for(size_gb: float) -> GenerateSpec:
    """The preset scaled to ``size_gb`` (same store mix at every size)."""
    base = _preset_1gb()
    return replace(base, docs=max(1, round(base.docs * size_gb)), relations=max(1, round(base.relations * size_gb)))


@dataclass
class Database:
    size_gb: float
    path: Path
    spec: GenerateSpec
    file_sizes: Dict[str, int]
    record_counts: Dict[str, int]  # file name -> records (graphml: nodes + edges)
    generate_seconds: float

    @property
    def files(self) -> List[Path]:
        return [self.path / name for name in STANDARD_FILES]

    @property
    def bytes(self) -> int:
        return sum(self.file_sizes.values())

    @property
    def records(self) -> int:
        return sum(self.record_counts.values())

    def summary(self) -> Dict[str, object]:
        return {"path": str(self.path), "bytes": self.bytes, "records": self.records,
                "vectors": sum(n for f, n in self.record_counts.items() if f.startswith("vdb_")),
                "record_counts": dict(self.record_counts), "spec": asdict(self.spec),
                "generate_seconds": round(self.generate_seconds, 1)}

    def fingerprint(self) -> Dict[str, List[int]]:
        """Sizes and mtimes: a baseline that rewrote a file would show here."""
        return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in self.files}


def size_label(size_gb: float) -> str:
    return f"{size_gb:g}gb"


def ensure_database(size_gb: float, *, regenerate: bool = False, say=print) -> Database:
    spec = spec_for(size_gb)
    directory = DATA / f"curve-{size_label(size_gb)}-{spec.dim}d"
    marker = directory.with_suffix(".json")
    wanted = {"generator": "hybridrag_backends.devtools.generate", "spec": asdict(spec)}
    if not regenerate and marker.exists():
        recorded = json.loads(marker.read_text())
        intact = all((directory / n).is_file() and (directory / n).stat().st_size == s
                     for n, s in recorded["file_sizes"].items())
        if recorded.get("wanted") == wanted and intact:
            say(f"reusing {directory} ({sum(recorded['file_sizes'].values()) / 1e6:,.0f} MB)")
            return Database(size_gb, directory, spec, recorded["file_sizes"], recorded["record_counts"],
                            recorded["generate_seconds"])
    marker.unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    layout = spec.layout()
    say(f"generating {size_gb:g} GB: {layout.docs:,} docs, {layout.chunks:,} chunks, {layout.relations:,} relations, "
        f"{spec.dim}-d into {directory} ...")
    result = generate(directory, spec)
    marker.write_text(json.dumps({"wanted": wanted, "file_sizes": result.file_sizes,
                                  "record_counts": result.record_counts, "generate_seconds": result.seconds}, indent=2))
    say(f"generated {result.total_bytes / 1e6:,.0f} MB in {result.seconds:.0f} s")
    return Database(size_gb, directory, spec, result.file_sizes, result.record_counts, result.seconds)


# -- page cache ------------------------------------------------------------------------------

def drop_from_page_cache(files: List[Path]) -> None:
    """Evict these files' pages (``posix_fadvise(DONTNEED)``): no root needed, and unlike
    ``echo 3 > /proc/sys/vm/drop_caches`` it leaves the rest of a shared machine's cache alone."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(files: List[Path]) -> Optional[float]:
    """Share of the files' bytes in the page cache (util-linux ``fincore``); None when it is missing."""
    if not shutil.which("fincore"):
        return None
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", *map(str, files)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    resident = sum(int(line) for line in out.stdout.split())
    total = sum(f.stat().st_size for f in files)
    return resident / total if total else 0.0
