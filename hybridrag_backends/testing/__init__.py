"""The provider conformance suite: one command tells a plugin author whether a provider behaves
like the first-party ones.

Use it from a test module of your plugin::

    import pytest
    from hybridrag_backends.testing import ConformanceTarget, ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def conformance_target(self, tmp_path):
            return ConformanceTarget(MyProvider(), f"mydb://localhost:1234/{tmp_path.name}")

then ``pytest``. CONTRIBUTING.md ("The conformance suite") explains every check.

Why a base class of tests and not a ``pytest11`` plugin: nothing runs until an author opts in
with one ``class TestX(ProviderConformance)`` line, so installing hybridrag-backends never adds
fixtures or tests to another project's pytest run (HybridRAG's, for one); it works with any pytest
configuration, the tests show up under the author's own module and class names, several targets
(two servers, two configurations) are simply several subclasses, and one check that does not
apply can be overridden like any method. The author supplies a single fixture,
``conformance_target``.

Needs pytest (``pip install 'hybridrag-backends[testing]'``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

from .independent import read_working_dir
from .lightrag_reader import compare as lightrag_read_back
from .suite import ProviderConformance
from .target import SUITE_SECRET, ConformanceTarget

if TYPE_CHECKING:
    from ..migration.job import MigrationJob


def lightrag_dirs(root: Path) -> List[Tuple[Path, str]]:
    """``(working_dir, workspace)`` for every LightRAG working dir directly under ``root`` and every
    workspace subfolder in them holding LightRAG files; for ``ProviderConformance.lightrag_dirs``."""
    out: List[Tuple[Path, str]] = []
    if not Path(root).is_dir():
        return out
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        out.append((folder, ""))
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if any(f.suffix in (".json", ".graphml") for f in sub.iterdir()):
                out.append((folder, sub.name))
    return out


def migrate(source: str, target: str, *, workspace: Optional[str] = None, target_workspace: Optional[str] = None,
            batch_size: int = 500, allow_rejects: bool = False, force: bool = False) -> "MigrationJob":
    """``hybridrag-backends migrate --from SOURCE --to TARGET``, in this process: the job, completed and
    verified, or the engine's error (a HybridRAGBackendsError) raised."""
    from ..migration.engine import migrate as run
    from ..targets import resolve_target

    src = resolve_target(source, workspace=workspace)
    dst = resolve_target(target, workspace=target_workspace if target_workspace is not None else workspace, for_write=True)
    result = asyncio.run(run(src, dst, batch_size=batch_size, allow_rejects=allow_rejects, force=force))
    assert result.job is not None
    return result.job


def service_unavailable(what: str, fix: str) -> None:
    """A test needs a server that cannot be started: skip with the reason, or fail under CI=true
    (CI must run every test, never skip one)."""
    import os

    import pytest

    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is required in CI but unavailable: {fix}", pytrace=False)
    pytest.skip(f"{what} unavailable; {fix}")


__all__ = [
    "SUITE_SECRET",
    "ConformanceTarget",
    "ProviderConformance",
    "lightrag_dirs",
    "lightrag_read_back",
    "migrate",
    "read_working_dir",
    "service_unavailable",
]
