"""The README's main job (``make demo``): build a small LightRAG JSON database, show its status,
migrate it to a new working dir with verification, and show the copy's status.

    python -m hybridrag_backends.demo [--out DIR]

Everything is written under ``./demo-output/`` (replaced on every run):
``source/`` (the generated database), ``copy/`` (the migrated one) and ``home/`` (the
HYBRIDRAG_HOME the demo's commands use, so job records stay out of ``~/.hybridrag``).
Each step runs the real CLI in a subprocess, so the output is exactly what a user sees.
The exit code is 0 when every step succeeded, else the failing step's exit code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .devtools.generate import GenerateSpec, generate

DEMO_SPEC = GenerateSpec(docs=40, chunks_per_doc=4, dim=256, seed=0)  # about 3.5 MB


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _run_cli(args: List[str], env: dict) -> int:
    """Run ``hybridrag-backends ARGS`` as a user would; its output goes straight to ours."""
    print("$ hybridrag-backends " + " ".join(args), flush=True)
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], env=env).returncode


def run(out: Path) -> int:
    source, copy, home = out / "source", out / "copy", out / "home"
    for directory in (source, copy, home):  # a rerun starts clean: migrate refuses a non-empty target
        shutil.rmtree(directory, ignore_errors=True)
    env = dict(os.environ)
    env.setdefault("HYBRIDRAG_HOME", str(home))

    _banner("1/4 generate a LightRAG JSON database (real text from CPython's docs, deterministic)")
    result = generate(source, DEMO_SPEC)
    print(f"wrote {result.total_bytes / 1e6:.1f} MB in {len(result.file_sizes)} files to {source}: "
          f"{DEMO_SPEC.docs} documents, {result.record_counts['kv_store_text_chunks.json']} chunks, "
          f"{result.nodes} entities, {result.edges} relations, {DEMO_SPEC.dim}-d vectors")

    steps = [
        ("2/4 status of the generated database", ["status", str(source)]),
        ("3/4 migrate it to a new JSON working dir, verified", ["migrate", "--from", str(source), "--to", str(copy)]),
        ("4/4 status of the copy", ["status", str(copy)]),
    ]
    for title, args in steps:
        _banner(title)
        code = _run_cli(args, env)
        if code != 0:
            print(f"\ndemo failed: 'hybridrag-backends {' '.join(args)}' exited with {code}", file=sys.stderr)
            return code
    _banner("done")
    print(f"source: {source}\ncopy:   {copy}\njobs:   HYBRIDRAG_HOME={env['HYBRIDRAG_HOME']} hybridrag-backends jobs")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridrag_backends.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output dir (default ./demo-output)")
    args = parser.parse_args(argv)
    try:
        return run(args.out)
    except OSError as exc:
        print(f"demo failed: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
