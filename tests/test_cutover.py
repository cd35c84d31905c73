"""Cutover without a server (issue 12): ``migrate --switch`` repoints a registered database after a verified
copy and ``db switch --back`` restores it, in a registry HybridRAG wrote (comments, a literal password in
another entry, an unknown top-level key), byte for byte outside the keys the switch changes; the entry stays
one HybridRAG can build with ``cls(**data)``; a bare backend name as ``--to`` is never a folder. The real
PostgreSQL cutover is tests/test_cutover_postgres.py."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import realdata_dirs
from test_hybridrag_registry import HYBRIDRAG_BACKEND_CONFIG_KEYS, HYBRIDRAG_ENTRY_KEYS, entry_blocks
from test_migration_data import read_working_dir

from hybridrag_backends.errors import RegistryError

MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))

REGISTRY = """\
# HybridRAG's registry: written by `hybridrag db register`, then edited by hand
version: 1
databases:
  # the database this test moves
  kb:
    name: kb
    path: {path}
    source_folder: /srv/notes   # watched
    source_type: filesystem
    auto_watch: true
    watch_interval: 300
    model: azure/gpt-4o  # the LLM
    recursive: true
    created_at: '2025-12-19T21:38:14.123456'
    backend_type: json
    backend_config:
      backend_type: json
  # never touched
  archive:
    name: archive
    path: /srv/archive
    source_type: filesystem
    auto_watch: false
    watch_interval: 300
    backend_type: postgres
    backend_config:
      connection_string: postgresql://hybridrag:s3cret-hr@db.internal:5433/hybridrag   # HybridRAG wrote it so
      workspace: archive
colour: blue   # a top-level key of someone else's
"""


def hybridrag_loads(entry: dict) -> None:
    """What HybridRAG does with an entry: DatabaseEntry(**data), then BackendConfig(backend_type=..., **config)
    (src/database_registry.py, src/config/backend_config.py); an unknown key raises TypeError there."""
    entry_cls = dataclasses.make_dataclass("DatabaseEntry", [(k, object, None) for k in sorted(HYBRIDRAG_ENTRY_KEYS)])
    fields = HYBRIDRAG_BACKEND_CONFIG_KEYS - {"workspace"}  # BackendConfig's own fields
    config_cls = dataclasses.make_dataclass("BackendConfig", [(k, object, None) for k in sorted(fields)])
    entry_cls(**entry)
    config = {k: v for k, v in (entry.get("backend_config") or {}).items() if k != "backend_type"}
    config_cls(backend_type=entry.get("backend_type"), **config)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=600, cwd=cwd)


@pytest.fixture
def registry_file() -> Path:
    return Path(os.environ["HYBRIDRAG_CONFIG"])


@pytest.fixture
def kb(tmp_path, registry_file) -> Path:
    """A copy of a real LightRAG working dir, registered as ``kb`` in a HybridRAG-written registry."""
    path = tmp_path / "kb"
    shutil.copytree(MACKING, path)
    registry_file.write_text(REGISTRY.format(path=path), encoding="utf-8")
    return path


def test_switch_to_a_copy_and_back_changes_only_the_switched_keys(kb, tmp_path, registry_file):
    from hybridrag_backends.hybridrag import lightrag_settings
    from hybridrag_backends.registry import Registry

    original = registry_file.read_text()
    copy = tmp_path / "copy"
    moved = run("migrate", "--from", "kb", "--to", str(copy), "--switch", "--json")
    assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr
    out = json.loads(moved.stdout)
    assert out["status"] == "completed" and out["verification"]["ok"]
    assert out["switch"] == {"database": "kb", "job_id": out["job_id"], "backend": "json",
                             "location": f"json:{copy}", "previous_location": f"json:{kb}", "notes": []}
    assert read_working_dir(copy) == read_working_dir(kb)

    text = registry_file.read_text()
    before, after = entry_blocks(original), entry_blocks(text)
    assert after["archive"] == before["archive"]  # byte for byte, the literal password where HybridRAG put it
    assert text.startswith("# HybridRAG's registry") and text.endswith("colour: blue   # a top-level key of someone else's\n")
    for comment in re.findall(r"#.*", original):
        assert comment in text
    for line in before["kb"].splitlines():  # the keys the switch does not change keep their lines
        if not line.lstrip().startswith(("path:", "backend_type:", "backend_config:")):
            assert line in after["kb"].splitlines(), line
    entry = yaml.safe_load(text)["databases"]["kb"]
    assert entry["path"] == str(copy) and entry["backend_type"] == "json"
    stash = entry["backend_config"]["extra_options"]["switched_from"]
    assert stash["entry"] == {"path": str(kb), "backend_config": {"backend_type": "json"}}
    assert stash["job_id"] == out["job_id"] and stash["location"] == f"json:{kb}" and stash["switched_at"]
    hybridrag_loads(entry)
    kwargs, _ = lightrag_settings(Registry.load().get("kb"))
    assert kwargs["working_dir"] == str(copy) and kwargs["kv_storage"] == "JsonKVStorage"

    back = run("db", "switch", "kb", "--back", "--json")
    assert back.returncode == 0, back.stderr
    done = json.loads(back.stdout)
    assert (done["backend"], done["location"], done["left"], done["job_id"]) == ("json", f"json:{kb}", f"json:{copy}", out["job_id"])
    assert registry_file.read_text() == original  # the whole file as it was
    again = run("db", "switch", "kb", "--back")
    assert again.returncode == 1 and again.stderr.startswith("error: registry entry 'kb' has no previous backend")
    assert registry_file.read_text() == original


def test_switch_into_another_registered_database(kb, tmp_path, registry_file):
    other = tmp_path / "other"
    assert run("db", "register", "other", "--path", str(other)).returncode == 0
    moved = run("migrate", "--from", "kb", "--to", "other", "--switch")
    assert moved.returncode == 0, moved.stderr
    assert f"switched registry entry kb to json ({'json:' + str(other)}; it was json:{kb}); to undo: run: " \
           f"hybridrag-backends db switch kb --back" in moved.stdout
    entries = yaml.safe_load(registry_file.read_text())["databases"]
    assert entries["kb"]["path"] == str(other) and entries["other"]["path"] == str(other)
    assert read_working_dir(other) == read_working_dir(kb)


@pytest.mark.parametrize("args", [
    ["--from", "{kb}", "--to", "postgres"],               # a path source: no entry, no settings of its own
    ["--from", "kb", "--to", "postgres"],                 # a JSON entry without PostgreSQL settings
    ["--from", "kb", "--to", "postgres", "--switch"],
    ["--from", "kb", "--to", "mongodb", "--switch"],
    ["--from", "kb", "--to", "PostgreSQL"],
])
def test_a_bare_backend_name_is_never_a_folder(kb, tmp_path, registry_file, args):
    """Before issue 12, `--to postgres` quietly created a JSON folder named postgres."""
    original = registry_file.read_bytes()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    proc = run("migrate", *[a.format(kb=kb) for a in args], cwd=workdir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "names a backend, not a database" in line and "give a URL" in line and "registered database" in line
    assert list(workdir.iterdir()) == []  # no folder named postgres (or anything else)
    assert registry_file.read_bytes() == original
    assert not (Path(os.environ["HYBRIDRAG_HOME"]) / "jobs").exists() or not list((Path(os.environ["HYBRIDRAG_HOME"]) / "jobs").iterdir())
    folder = run("migrate", "--from", "kb", "--to", "./postgres", cwd=workdir)  # the folder, said as one
    assert folder.returncode == 0 and (workdir / "postgres" / "kv_store_full_docs.json").is_file()


def test_switch_refuses_before_copying_what_it_cannot_switch(kb, tmp_path, registry_file):
    original = registry_file.read_bytes()
    target = tmp_path / "never"
    cases = [
        (["--from", str(kb)], "--switch repoints a registry entry"),
        (["--from", "kb", "--no-verify"], "only after a verified copy; drop --no-verify"),
        (["--from", "kb", "--workspace", "team"], "drop --workspace team"),
    ]
    for args, message in cases:
        proc = run("migrate", *args, "--to", str(target), "--switch")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert not target.exists()
    assert registry_file.read_bytes() == original


def test_an_entry_changed_while_the_copy_ran_is_not_switched(kb, tmp_path, registry_file):
    from hybridrag_backends.cutover import Cutover, resolve_destination
    from hybridrag_backends.registry import Registry
    from hybridrag_backends.targets import resolve_target

    source = resolve_target("kb")
    cutover = Cutover.prepare(source, resolve_destination(str(tmp_path / "copy"), source, workspace=None, switch=True),
                              workspace=None, verify=True)
    registry = Registry.load()
    registry.update("kb", path=str(tmp_path / "moved-by-hand"))  # someone (HybridRAG) edits the entry meanwhile
    registry.save()
    edited = registry_file.read_bytes()
    with pytest.raises(RegistryError, match="was changed while job j1 ran, so it was not switched"):
        cutover.apply("j1")
    assert registry_file.read_bytes() == edited
    registry.update("kb", path=str(kb), model="other-llm")  # a key the switch does not touch: fine
    registry.save()
    cutover.apply("j2")
    entry = yaml.safe_load(registry_file.read_text())["databases"]["kb"]
    assert entry["path"] == str(tmp_path / "copy") and entry["model"] == "other-llm"
