"""Shared test fixtures. Domain fixtures live in tests/*_fixtures.py, loaded below as pytest plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real LightRAG working dirs sit in ../shared/realdata beside the repo (read-only).
REALDATA = Path(os.environ.get("HYBRIDRAG_REALDATA", REPO.parent / "shared" / "realdata"))


def realdata_dirs() -> list[Path]:
    if not REALDATA.is_dir():
        return []
    return sorted(p for p in REALDATA.iterdir() if p.is_dir())


def realdata_workspaces() -> list[tuple[Path, str]]:
    """(working_dir, workspace) for every dir and workspace subfolder with LightRAG files."""
    out = []
    for d in realdata_dirs():
        out.append((d, ""))
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if any(f.suffix in (".json", ".graphml") for f in sub.iterdir()):
                out.append((d, sub.name))
    return out


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.hybridrag: registry and jobs go to a temp dir per test."""
    home = tmp_path_factory.mktemp("hybridrag-home")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(home))
    monkeypatch.setenv("HYBRIDRAG_CONFIG", str(home / "registry.yaml"))
    yield home


def pytest_collection_modifyitems(config, items):
    if not realdata_dirs():
        raise pytest.UsageError(f"real data not found at {REALDATA}; set HYBRIDRAG_REALDATA")


# Domain fixtures (each file owned by the area that uses it), loaded as pytest plugins.
pytest_plugins = ["pg_fixtures", "mongo_fixtures"]
