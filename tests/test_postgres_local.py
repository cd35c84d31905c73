"""``hybridrag-backends postgres up|down|status|url``: a local PostgreSQL with pgvector and AGE in one command.

* The sandbox route runs for real here, on the suite's own root ($HYBRIDRAG_PG_ROOT, the server the
  other PostgreSQL tests use): ``down`` stops it, the printed hint starts it again, ``validate`` passes,
  and the next steps ``up --register`` prints are pasted into bash as they are.
* No Docker daemon exists here. Daemon detection is tested with stand-in ``docker`` executables on
  PATH (one that cannot reach a daemon, one that answers and logs every call) and the real
  ``docker`` client when installed; the Docker route itself only through ``--dry-run``, which must print
  the compose file without running anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from hybridrag_backends_postgres import localserver
from hybridrag_backends_postgres.localserver import COMPOSE_FILE, DOCKER_DIR, Facts, NoRoute, choose_route

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def cli(*args: str, env: dict | None = None, path_prefix: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = os.pathsep.join(p for p in (path_prefix, str(VENV_BIN), os.environ["PATH"]) if p)
    return subprocess.run([str(VENV_BIN / "hybridrag-backends"), *args], capture_output=True, text=True,
                          env=full_env, timeout=600, stdin=subprocess.DEVNULL)


def bash(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                          timeout=600, stdin=subprocess.DEVNULL)


def stand_in_docker(folder: Path, *, answers: bool) -> Path:
    """A ``docker`` executable that logs its arguments; ``info`` answers like a daemon or fails like a
    client without one. Anything else it is asked to run fails loudly."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    script = folder / "docker"
    info = 'echo 27.3.1' if answers else 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1'
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nif [ "$1" = info ]; then {info}; fi\n'
                      f'[ "$1" = info ] && exit 0\necho "stand-in docker must not run: $*" >&2; exit 99\n')
    script.chmod(0o755)
    return log


# -- route choice --------------------------------------------------------------------------------


def test_docker_daemon_detection(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert localserver.docker_daemon() == (False, "no docker command on PATH")
    stand_in_docker(tmp_path / "down", answers=False)
    monkeypatch.setenv("PATH", str(tmp_path / "down"))
    answers, why = localserver.docker_daemon()
    assert not answers and "Cannot connect to the Docker daemon" in why
    log = stand_in_docker(tmp_path / "up", answers=True)
    monkeypatch.setenv("PATH", str(tmp_path / "up"))
    assert localserver.docker_daemon() == (True, "Docker daemon 27.3.1 answers")
    assert log.read_text().split("\n")[0].startswith("info")


def test_this_machine_has_no_docker_daemon_and_says_why():
    """No Docker daemon runs here: with or without the real docker client installed, detection says so."""
    answers, why = localserver.docker_daemon()
    assert not answers
    assert why == "no docker command on PATH" if shutil.which("docker") is None else why.startswith("no Docker daemon answers")


@pytest.mark.parametrize("via,facts,expected", [
    ("auto", Facts(True, "Docker daemon answers", True, True), "docker"),
    ("auto", Facts(False, "no daemon", True, True), "sandbox"),
    ("sandbox", Facts(True, "Docker daemon answers", True, True), "sandbox"),
    ("docker", Facts(True, "Docker daemon answers", False, False), "docker"),
])
def test_route_choice(via, facts, expected):
    assert choose_route(via, facts) == expected


@pytest.mark.parametrize("via,facts,needle", [
    ("auto", Facts(False, "no docker command on PATH", False, True), "needs root"),
    ("auto", Facts(False, "no docker command on PATH", True, False), "needs Debian or Ubuntu"),
    ("docker", Facts(False, "no Docker daemon answers (x)", True, True), "no Docker daemon answers"),
])
def test_no_route_gives_manual_steps(via, facts, needle):
    with pytest.raises(NoRoute) as info:
        choose_route(via, facts)
    assert needle in str(info.value) and "\n" not in str(info.value)
    for step in ("shared_preload_libraries = 'age'", "CREATE EXTENSION vector", "CREATE EXTENSION age",
                 "Apache AGE < 1.8", "hybridrag-backends validate postgresql://"):
        assert step in info.value.steps


def test_cli_without_a_route_prints_the_steps_and_one_error_line(tmp_path):
    stand_in_docker(tmp_path / "down", answers=False)
    proc = cli("postgres", "up", "--via", "docker", path_prefix=str(tmp_path / "down"))
    assert proc.returncode == 2 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no Docker daemon answers" in errors[0]
    assert "shared_preload_libraries = 'age'" in proc.stderr


# -- the Docker route, dry ---------------------------------------------------------------------------


def test_dry_run_prints_the_docker_route_and_runs_nothing(tmp_path):
    log = stand_in_docker(tmp_path / "up", answers=True)
    proc = cli("postgres", "up", "--dry-run", path_prefix=str(tmp_path / "up"))
    assert proc.returncode == 0, proc.stderr
    assert "route here: docker; would run: " in proc.stdout
    assert f"docker compose -f {COMPOSE_FILE} up -d --build --wait" in proc.stdout
    assert COMPOSE_FILE.read_text().strip() in proc.stdout
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["info"]  # nothing but the probe ran
    assert not (Path(os.environ["HYBRIDRAG_HOME"]) / "postgres-docker").exists()  # no password made either


def test_dry_run_without_a_daemon_names_the_route_it_would_take(tmp_path):
    stand_in_docker(tmp_path / "down", answers=False)
    proc = cli("postgres", "up", "--dry-run", "--root", str(tmp_path / "root"), path_prefix=str(tmp_path / "down"))
    assert proc.returncode == 0, proc.stderr
    if os.geteuid() == 0 and localserver.debian_like():
        assert f"route here: sandbox; would run: HYBRIDRAG_PG_ROOT={tmp_path / 'root'} bash " in proc.stdout
    assert "Docker route (taken when a Docker daemon answers), not run:" in proc.stdout
    assert not (tmp_path / "root").exists()


def test_docker_files_make_pgvector_and_age_below_1_8_with_age_preloaded():
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    service = compose["services"]["postgres"]
    assert service["build"] == "."
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])  # never on every interface
    assert service["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    assert "postgresql-17-pgvector" in dockerfile and "postgresql-17-age" in dockerfile
    assert 'dpkg --compare-versions "$age" ge 1.8~' in dockerfile
    assert 'CMD ["postgres", "-c", "shared_preload_libraries=age"]' in dockerfile
    sql = (DOCKER_DIR / "initdb" / "10-extensions.sql").read_text()
    assert sql.count("CREATE EXTENSION IF NOT EXISTS vector") == 2 and "\\c template1" in sql


def test_plugin_wheel_ships_the_sandbox_and_docker_files(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO / "plugins" / "postgres")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("hybridrag_backends_postgres-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("data/pg-sandbox.sh", "data/docker/compose.yaml", "data/docker/Dockerfile",
                 "data/docker/initdb/10-extensions.sql"):
        assert f"hybridrag_backends_postgres/{name}" in names


def test_scripts_pg_sandbox_runs_the_plugins_copy():
    wrapper = (REPO / "scripts" / "pg-sandbox").read_text()
    assert "plugins/postgres/hybridrag_backends_postgres/data/pg-sandbox.sh" in wrapper
    assert localserver.SANDBOX_SCRIPT == REPO / "plugins/postgres/hybridrag_backends_postgres/data/pg-sandbox.sh"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "pg-sandbox"), "help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "HYBRIDRAG_PG_ROOT" in proc.stdout


# -- the sandbox route, for real -------------------------------------------------------------------


@pytest.fixture
def suite_sandbox(pg_url):
    """The suite's sandbox root; left running whatever happens."""
    if os.environ.get("HYBRIDRAG_TEST_POSTGRES_URL"):
        pytest.skip("HYBRIDRAG_TEST_POSTGRES_URL names your own server: postgres up/down manage the sandbox only")
    root = os.environ.get("HYBRIDRAG_PG_ROOT", localserver.DEFAULT_ROOT)
    yield root
    assert cli("postgres", "up", "--via", "sandbox", "--root", root).returncode == 0


@pytest.mark.postgres
def test_down_then_the_printed_hint_brings_up_a_server_validate_passes(suite_sandbox):
    root = suite_sandbox
    down = cli("postgres", "down", "--via", "sandbox", "--root", root)
    assert down.returncode == 0, down.stderr
    status = cli("postgres", "status", "--via", "sandbox", "--root", root)
    assert status.returncode == 3 and status.stdout.startswith("stopped")
    assert cli("postgres", "url", "--via", "sandbox", "--root", root).returncode == 1
    (hint,) = [line for line in status.stdout.splitlines() if line.startswith("start it with: ")]
    up = bash(hint.removeprefix("start it with: "))
    assert up.returncode == 0, up.stderr
    assert "url: postgresql://hybridrag:***@127.0.0.1:" in up.stdout
    (next_step,) = [line.strip() for line in up.stdout.splitlines()[up.stdout.splitlines().index("next:") + 1:]]
    validate = bash(next_step)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "ok   extension age" in validate.stdout and "ok   age preloaded" in validate.stdout
    assert "***" not in cli("postgres", "url", "--via", "sandbox", "--root", root, "--show-password").stdout


@pytest.mark.postgres
def test_up_register_prints_next_steps_that_run_as_pasted(suite_sandbox, _isolated_home):
    root = suite_sandbox
    up = cli("postgres", "up", "--via", "sandbox", "--root", root, "--register", "kb-local",
             "--embedding-model", "text-embedding-3-small", "--embedding-dim", "1536")
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    steps = [line.strip() for line in lines[lines.index("next:") + 1:] if line.startswith("  ") and not line.startswith("  (")]
    assert steps[0].startswith('export POSTGRES_PASSWORD="$(hybridrag-backends postgres url --password-only')
    registry = (_isolated_home / "registry.yaml").read_text()
    password = cli("postgres", "url", "--via", "sandbox", "--root", root, "--password-only").stdout.strip()
    assert password and password not in registry + up.stdout + up.stderr
    entry = yaml.safe_load(registry)["databases"]["kb-local"]
    # written as HybridRAG reads it: the URL is the connection (no password in it, no ${...} anywhere),
    # the embedding model in model_config; the password comes from POSTGRES_PASSWORD
    assert "postgres_password" not in entry["backend_config"] and "${" not in registry
    assert entry["backend_config"]["connection_string"].startswith("postgresql://hybridrag@127.0.0.1:")
    assert entry["model_config"] == {"embedding_model": "text-embedding-3-small", "embedding_dim": 1536}
    # the export and validate steps, pasted; the migrate step needs its WORKING_DIR (tests/test_hints.py)
    ran = bash("\n".join(steps[:2]))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.rstrip().endswith("valid")
    assert steps[2] == "hybridrag-backends migrate --from WORKING_DIR --to kb-local"
