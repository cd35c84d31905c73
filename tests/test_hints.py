"""Every printed next step runs when pasted (hybridrag_backends/hints.py): the command after ``run: `` is
taken as printed, its UPPER_CASE placeholders filled with what their explanation asks for, and run in
bash; it must succeed (and do what it says), never fail for a missing parameter.

Hints covered: status's "consider migrating" command (into a placeholder target, and into a registered
PostgreSQL database), PostgreSQL validate fixes (missing extensions), the connection-failure hint, the
JSON wrong-workspace fix, the missing-password error. ``postgres up|status`` next steps are pasted in
tests/test_postgres_local.py. psql hints run through psql when it is installed, else their SQL runs
through asyncpg on the URL the hint names (the host has no psql on a fresh machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import REALDATA

from hybridrag_backends.hints import RUN
from hybridrag_backends.models import DatabaseEntry
from hybridrag_backends.registry import Registry

VENV_BIN = Path(sys.executable).parent
SPINDIGITS = REALDATA / "spindigits__MultiRag__rag_storage"  # 3.5 MB, 1024-d vectors
MODEL = "hint-model"


def hints_in(text: str) -> List[Tuple[str, Dict[str, str]]]:
    """(command, {placeholder: explanation}) for every ``run:`` in ``text``."""
    out = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if RUN not in line:
            continue
        command = line.split(RUN, 1)[1]
        explained = {}
        for follow in lines[i + 1:]:
            m = re.match(r"^  ([A-Z][A-Z0-9_]*): (.*)$", follow)
            if not m:
                break
            explained[m.group(1)] = m.group(2)
        out.append((command, explained))
    return out


def placeholders(command: str) -> set:
    """UPPER_CASE words of the command, leaving out SQL given to psql -c and variable names exported."""
    argv = shlex.split(command)
    words = [w for i, w in enumerate(argv) if not (i and argv[i - 1] == "-c")]
    found = set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", " ".join(words)))
    exported = {w.split("=", 1)[0] for w in words if "=" in w}
    return found - exported


def bash(script: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=full,
                          timeout=900, stdin=subprocess.DEVNULL)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return bash(shlex.join(["hybridrag-backends", *args]), **env)


def register_json_with_low_thresholds(name: str, path: Path) -> None:
    registry = Registry.load()
    registry.add(DatabaseEntry(name=name, path=str(path), backend_config={"total_size_warning_mb": 1}))
    registry.save()


def migrate_hint(target: str) -> Tuple[str, Dict[str, str]]:
    status = cli("status", target, "--json")
    assert status.returncode == 0, status.stderr
    warnings = json.loads(status.stdout)["metrics"]["warnings"]
    assert warnings, "the 1 MB threshold must warn"
    (hint,) = {(c, tuple(sorted(e.items()))) for w in warnings for c, e in hints_in(w)}
    return hint[0], dict(hint[1])


@pytest.mark.postgres
def test_status_migrate_hint_into_a_placeholder_target_runs_when_filled(pg_module_db):
    register_json_with_low_thresholds("kb", SPINDIGITS)
    command, explained = migrate_hint("kb")
    assert placeholders(command) == {"PG_TARGET"} and set(explained) == {"PG_TARGET"}
    assert "embedding_model=MODEL&embedding_dim=1024" in explained["PG_TARGET"]  # the files' dimension, filled in
    filled = command.replace("PG_TARGET", shlex.quote(f"{pg_module_db}?embedding_model={MODEL}&embedding_dim=1024"))
    ran = bash(filled)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "verification passed" in ran.stdout


@pytest.mark.postgres
@pytest.mark.parametrize("model_in", ["model_config", "backend_config"])
def test_status_migrate_hint_names_a_registered_postgres_database_and_runs_as_printed(pg_module_db, model_in):
    """The embedding model where db register (and HybridRAG) write it, model_config, and where entries
    written by earlier versions keep it, backend_config."""
    parts = urlsplit(pg_module_db)
    model = {"embedding_model": MODEL, "embedding_dim": 1024}
    registry = Registry.load()
    registry.add(DatabaseEntry(name="pgkb", path="/srv/pgkb", backend_type="postgres", backend_config={
        "postgres_host": parts.hostname, "postgres_port": parts.port, "postgres_user": parts.username,
        "postgres_database": parts.path.lstrip("/"), "postgres_password": "${HINT_PG_PASSWORD}",
        "postgres_workspace": f"hint_{model_in}", **(model if model_in == "backend_config" else {})},
        model_config=model if model_in == "model_config" else None))
    registry.save()
    register_json_with_low_thresholds("kb", SPINDIGITS)
    command, explained = migrate_hint("kb")
    assert command.endswith("--to pgkb") and not placeholders(command) and not explained
    ran = bash(command, HINT_PG_PASSWORD=parts.password)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def run_psql_hint(command: str, password: str) -> None:
    argv = shlex.split(command)
    assert argv[0] == "psql" and argv[2] == "-c" and len(argv) == 4, argv
    if shutil.which("psql"):
        ran = bash(command, PGPASSWORD=password)
        assert ran.returncode == 0, ran.stderr
        return
    import asyncpg

    parts = urlsplit(argv[1])
    url = urlunsplit((parts.scheme, f"{parts.username}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))

    async def run():
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(argv[3])
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.mark.postgres
def test_validate_fixes_for_missing_extensions_run_and_fix_it(pg_bare_db):
    before = cli("validate", pg_bare_db, "--json")
    assert before.returncode == 2
    fixes = [c["fix"] for c in json.loads(before.stdout)["checks"] if not c["ok"]]
    hints = [h for fix in fixes for h in hints_in(fix)]
    assert len(hints) == 2 and all(not placeholders(c) and not e for c, e in hints)
    human = cli("validate", pg_bare_db)
    assert {c for c, _ in hints_in(human.stdout)} == {c for c, _ in hints}  # printed the same, one per line
    for command, _ in hints:
        run_psql_hint(command, urlsplit(pg_bare_db).password)
    after = cli("validate", pg_bare_db)
    assert after.returncode == 0, after.stdout


@pytest.mark.postgres
def test_connection_failure_hint_starts_a_local_server(pg_url):
    if os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL"):
        pytest.skip("HYBRIDRAG_TEST_POSTGRES_URL names your own server; the hint starts the sandbox")
    failed = cli("validate", "postgresql://u:pw@127.0.0.1:1/db", "--json")
    assert failed.returncode == 2
    check = json.loads(failed.stdout)["checks"][0]
    (command, explained), = hints_in(check["fix"])
    assert command == "hybridrag-backends postgres up" and not explained
    ran = bash(command)  # the sandbox is already up: reused, same URL
    assert ran.returncode == 0, ran.stderr
    url = urlsplit(pg_url)
    assert f"url: postgresql://{url.username}:***@127.0.0.1:{url.port}/" in ran.stdout


def test_json_wrong_workspace_fix_runs():
    ljx = REALDATA / "ljxpython__langgraph_teach__rag_storage"
    failed = cli("validate", str(ljx), "--workspace", "no_such_ws", "--json")
    assert failed.returncode == 2
    (hint,) = [h for c in json.loads(failed.stdout)["checks"] for h in hints_in(c["fix"])]
    assert not placeholders(hint[0])
    assert bash(hint[0]).returncode == 0


def test_missing_password_error_runs_when_filled():
    registry = Registry.load()
    registry.add(DatabaseEntry(name="pg", path="/srv/pg", backend_type="postgres",
                               backend_config={"postgres_password": "${HINT_MISSING_PW}"}))
    registry.save()
    failed = cli("env", "pg")
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    ((command, _),) = hints_in(failed.stderr.strip())
    assert command == "export HINT_MISSING_PW=VALUE" and "(VALUE)" in failed.stderr
    ran = bash(command.replace("VALUE", "s3cret") + "\nhybridrag-backends env pg --show-secrets")
    assert ran.returncode == 0, ran.stderr
    assert "export POSTGRES_PASSWORD=s3cret" in ran.stdout.splitlines()
