"""CONTRIBUTING.md's author guide works when followed to the letter, from an empty temp dir.

The files of "A skeleton to start from" are written exactly as the guide shows them, installed with
pip into a fresh venv (seeing the project's environment, as in test_plugins.py), found by
``hybridrag-backends plugins``, and the guide's conformance test module runs the whole suite green,
the SIGKILL check through the installed entry point included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from test_plugins import pip_install, project_venv

from conftest import REPO

pytestmark = pytest.mark.slow

GUIDE = REPO / "CONTRIBUTING.md"
FILE_BLOCK = re.compile(r"^File `([^`]+)`:\n\n```[a-z]*\n(.*?)\n```$", re.S | re.M)


def guide_files() -> dict:
    text = GUIDE.read_text(encoding="utf-8")
    section = re.search(r"^### A skeleton to start from\n(.*?)(?=^### )", text, re.S | re.M)
    assert section, "CONTRIBUTING.md has no '### A skeleton to start from' section"
    return {path: body + "\n" for path, body in FILE_BLOCK.findall(section.group(1))}


def test_the_guide_shows_a_complete_distribution():
    files = guide_files()
    assert set(files) == {"pyproject.toml", "hybridrag_backends_skeleton/__init__.py", "tests/test_conformance.py"}
    assert "[project.entry-points.hybridrag_backends]" in files["pyproject.toml"]
    assert "class TestSkeletonProvider(ProviderConformance)" in files["tests/test_conformance.py"]


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    """The skeleton written from the guide and pip-installed into a fresh venv: (venv python, its folder)."""
    root = tmp_path_factory.mktemp("author-guide")
    project = root / "hybridrag-backends-skeleton"
    for path, body in guide_files().items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(body, encoding="utf-8")
    python = project_venv(root)
    pip_install(python, "-e", str(project))  # the guide: pip install -e '.[test]' (the extras are there already)
    return python, project


def run(python: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDRAG_BACKENDS_")}
    env["HYBRIDRAG_HOME"] = str(cwd / ".hybridrag-home")
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def test_the_skeleton_installs_and_is_listed(skeleton):
    python, project = skeleton
    proc = run(python, project, "-m", "hybridrag_backends", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert plugins["skeleton"] == {"name": "skeleton", "distribution": "hybridrag-backends-skeleton", "version": "0.1.0",
                                   "backends": ["skeleton"], "error": None}
    env = run(python, project, "-m", "hybridrag_backends", "env", "skeleton:///tmp/kb", "--json")
    assert env.returncode == 0, env.stderr
    assert json.loads(env.stdout)["backend"] == "skeleton" and json.loads(env.stdout)["env"]


def test_the_skeleton_passes_the_conformance_suite(skeleton):
    python, project = skeleton
    proc = run(python, project, "-m", "pytest", "tests/", "-q", "-p", "no:cacheprovider", timeout=900)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    assert counts.get("passed", 0) >= 40 and not counts.get("failed") and not counts.get("skipped"), summary
