"""The pieces of the cost-curve harness (``benchmarks/run.py``): data, measurement, PostgreSQL, children."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
if str(REPO) not in sys.path:  # run from a clone: the package is importable without installing it
    sys.path.insert(0, str(REPO))
