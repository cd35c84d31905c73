"""Plugin discovery through entry points, as a user sees it.

Two tiny third-party distributions are built in a temp dir and pip-installed into a
fresh venv: ``hrb-tiny`` (a working backend plus a command) and ``hrb-broken``
(fails to import). The venv sees the project's environment through a ``.pth`` file
(``site.addsitedir``), so only the two new distributions are installed, in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from conftest import realdata_dirs

TINY_PLUGIN = '''
import click

from hybridrag_backends import BackendConfig, BackendProvider, Check, StorageMetrics, hookimpl


class TinyProvider(BackendProvider):
    name = "tiny"
    description = "a test backend"
    url_schemes = ("tiny",)

    def config_from_target(self, target, *, workspace=None):
        return BackendConfig(backend_type=self.name, extra_options={"uri": target}, workspace=workspace or "")

    def describe(self, config):
        return "tiny:" + config.extra_options["uri"].rsplit("@", 1)[-1]

    def storage_classes(self, config):
        return {"kv_storage": "JsonKVStorage", "vector_storage": "NanoVectorDBStorage",
                "graph_storage": "NetworkXStorage", "doc_status_storage": "JsonDocStatusStorage"}

    def env_vars(self, config):
        return {"TINY_URI": config.extra_options["uri"], "TINY_MODE": "test"}

    def secret_env_vars(self):
        return ("TINY_URI",)

    async def validate(self, config):
        return [Check("reachable", True, "tiny is always there")]

    async def metrics(self, config):
        return StorageMetrics(backend_type=self.name, store_counts={"things": 3}, doc_count=3)


@hookimpl
def register_backends(register):
    register(TinyProvider)


@hookimpl
def register_commands(cli):
    @cli.command("tiny-hello")
    def tiny_hello():
        """Say hello from the tiny plugin."""
        click.echo("hello from tiny")
'''


# A hook name pluggy does not know: caught by check_pending() and blamed on this plugin only.
TYPO_PLUGIN = '''
from hybridrag_backends import hookimpl


@hookimpl
def register_backend(register):
    raise AssertionError("never called")
'''


def _write_dist(root: Path, dist: str, package: str, ep_name: str, code: str) -> Path:
    src = root / dist
    (src / package).mkdir(parents=True)
    (src / package / "__init__.py").write_text("")
    (src / package / "plugin.py").write_text(code)
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "2.3.4"

        [project.entry-points.hybridrag_backends]
        {ep_name} = "{package}.plugin"

        [tool.setuptools]
        packages = ["{package}"]
    """))
    return src


def project_venv(root: Path) -> Path:
    """A fresh venv in ``root`` that sees the project's environment; returns its python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_dir = Path(
        subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )
    # The project's environment (core, first-party plugins, pip, setuptools), .pth files included.
    main_site = sysconfig.get_paths()["purelib"]
    (site_dir / "_hybridrag_project_env.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    return python


def pip_install(python: Path, *args: str) -> None:
    """pip install from local sources only, building with the project's setuptools (fast, offline)."""
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin-venv")
    python = project_venv(root)
    dists = [
        _write_dist(root, "hrb-tiny", "hrb_tiny", "tiny", TINY_PLUGIN),
        _write_dist(root, "hrb-broken", "hrb_broken", "broken", "import hrb_module_that_does_not_exist\n"),
        _write_dist(root, "hrb-typo", "hrb_typo", "typo", TYPO_PLUGIN),
    ]
    pip_install(python, *map(str, dists))
    return python


def run_cli(python: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    for key in ("HYBRIDRAG_BACKENDS_STRICT", "HYBRIDRAG_BACKENDS_DISABLE"):
        if key not in env:
            full_env.pop(key, None)
    return subprocess.run([str(python), "-m", "hybridrag_backends", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def by_name(plugins_json: str) -> dict:
    return {p["name"]: p for p in json.loads(plugins_json)["plugins"]}


def test_project_env_lists_the_json_provider_with_distribution_and_version():
    proc = run_cli(Path(sys.executable), "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    json_plugin = by_name(proc.stdout)["json"]
    from importlib.metadata import version

    assert json_plugin == {
        "name": "json",
        "distribution": "hybridrag-backends-json",
        "version": version("hybridrag-backends-json"),
        "backends": ["json"],
        "error": None,
    }


def test_third_party_plugin_is_discovered_and_broken_one_reported(venv_python):
    proc = run_cli(venv_python, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    plugins = by_name(proc.stdout)
    assert plugins["tiny"] == {"name": "tiny", "distribution": "hrb-tiny", "version": "2.3.4",
                               "backends": ["tiny"], "error": None}
    assert plugins["broken"]["distribution"] == "hrb-broken" and plugins["broken"]["backends"] == []
    assert "ModuleNotFoundError" in plugins["broken"]["error"] and "hrb_module_that_does_not_exist" in plugins["broken"]["error"]
    assert plugins["json"]["backends"] == ["json"] and plugins["json"]["error"] is None
    assert plugins["typo"]["error"].startswith("PluginValidationError: unknown hook 'register_backend'")
    # exactly one warning, naming the broken plugin and how to skip it
    broken_lines = [line for line in proc.stderr.splitlines() if "broken" in line]
    assert len(broken_lines) == 1
    assert broken_lines[0].startswith("warning: hybridrag-backends plugin 'broken' (hrb-broken 2.3.4) failed to load")
    assert "HYBRIDRAG_BACKENDS_DISABLE=broken" in broken_lines[0]
    assert "Traceback" not in proc.stderr


def test_the_rest_still_works_next_to_a_broken_plugin(venv_python):
    proc = run_cli(venv_python, "status", "tiny://me:hunter2@somewhere", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["backend"] == "tiny" and out["location"] == "tiny:somewhere"
    assert out["metrics"]["store_counts"] == {"things": 3}
    assert "hunter2" not in proc.stdout + proc.stderr
    env = run_cli(venv_python, "env", "tiny://me:hunter2@somewhere", "--json")
    # a third-party backend gets the variables every backend shares (storage classes, workspace) from the core
    assert json.loads(env.stdout)["env"] == {
        "TINY_MODE": "test", "TINY_URI": "***", "WORKSPACE": "",
        "LIGHTRAG_KV_STORAGE": "JsonKVStorage", "LIGHTRAG_VECTOR_STORAGE": "NanoVectorDBStorage",
        "LIGHTRAG_GRAPH_STORAGE": "NetworkXStorage", "LIGHTRAG_DOC_STATUS_STORAGE": "JsonDocStatusStorage"}
    assert json.loads(env.stdout)["secrets"] == ["TINY_URI"] and "hunter2" not in env.stdout + env.stderr
    shown = run_cli(venv_python, "env", "tiny://me:hunter2@somewhere", "--show-secrets")
    assert "export TINY_URI=tiny://me:hunter2@somewhere" in shown.stdout.splitlines()
    hello = run_cli(venv_python, "tiny-hello")
    assert (hello.returncode, hello.stdout) == (0, "hello from tiny\n")
    if realdata_dirs():
        real = run_cli(venv_python, "status", str(realdata_dirs()[0]), "--json")
        assert real.returncode == 0, real.stderr
        assert json.loads(real.stdout)["backend"] == "json"


def test_strict_mode_turns_a_broken_plugin_into_an_error(venv_python):
    proc = run_cli(venv_python, "plugins", "--json", HYBRIDRAG_BACKENDS_STRICT="1")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hybridrag-backends plugin 'broken'")


def test_disable_skips_plugins(venv_python):
    proc = run_cli(venv_python, "plugins", "--json", HYBRIDRAG_BACKENDS_DISABLE="broken, tiny,typo")
    assert proc.returncode == 0, proc.stderr
    assert "broken" not in proc.stderr and "typo" not in proc.stderr
    names = set(by_name(proc.stdout))
    assert not names & {"tiny", "broken", "typo"} and "json" in names


def test_plugins_human_output_names_distribution_and_failure(venv_python):
    proc = run_cli(venv_python, "plugins", COLUMNS="200")
    assert proc.returncode == 0
    assert "hrb-tiny" in proc.stdout and "2.3.4" in proc.stdout and "tiny://" in proc.stdout
    assert "broken: ModuleNotFoundError" in proc.stdout
