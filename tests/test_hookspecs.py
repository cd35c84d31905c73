"""Every hook in hookspecs.py is documented in CONTRIBUTING.md and exercised here.

Adding a hook without documenting it, or without adding its test to HOOK_TESTS,
fails this file: that is the point.
"""

from __future__ import annotations

import inspect
import re
from typing import Dict, List, Optional

import click
import pytest
from click.testing import CliRunner

from conftest import REPO
from hybridrag_backends import hookspecs
from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.models import BackendConfig, StorageMetrics
from hybridrag_backends.plugins import BackendManager, get_manager
from hybridrag_backends.provider import BackendProvider, Check


def declared_hooks() -> Dict[str, inspect.Signature]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    }


class MemoProvider(BackendProvider):
    name = "memo"
    url_schemes = ("memo",)

    def config_from_target(self, target: str, *, workspace: Optional[str] = None) -> BackendConfig:
        return BackendConfig(backend_type=self.name, extra_options={"uri": target})

    def describe(self, config: BackendConfig) -> str:
        return config.extra_options["uri"]

    def storage_classes(self, config: BackendConfig) -> Dict[str, str]:
        return {"kv_storage": "JsonKVStorage"}

    def env_vars(self, config: BackendConfig) -> Dict[str, str]:
        return {"MEMO": "1"}

    async def validate(self, config: BackendConfig) -> List[Check]:
        return [Check("memo", True)]

    async def metrics(self, config: BackendConfig) -> StorageMetrics:
        return StorageMetrics(backend_type=self.name)


class BackendsPlugin:
    @hookspecs.hookimpl
    def register_backends(self, register):
        register(MemoProvider)


class CommandsPlugin:
    @hookspecs.hookimpl
    def register_commands(self, cli):
        @cli.command("memo-ping")
        def memo_ping():
            click.echo("pong")

        @cli.command("status")  # trying to replace a core command
        def fake_status():
            click.echo("hijacked")


def exercise_register_backends():
    manager = BackendManager()
    manager.register_plugin(BackendsPlugin(), name="memo-plugin")
    provider = manager.get("memo")
    assert isinstance(provider, MemoProvider)
    assert manager.provider_for_url("memo://x") is provider
    assert manager.plugin_of("memo").name == "memo-plugin" and manager.plugins["memo-plugin"].backends == ["memo"]
    # a second plugin registering the same backend name is refused, naming the first
    with pytest.raises(ValueError, match="backend 'memo' is already provided by plugin 'memo-plugin'"):
        manager.register_plugin(BackendsPlugin(), name="memo-again")

    class NotAProvider:
        name = "nope"

    class BadPlugin:
        @hookspecs.hookimpl
        def register_backends(self, register):
            register(NotAProvider)

    with pytest.raises(TypeError, match="takes a BackendProvider subclass"):
        manager.register_plugin(BadPlugin(), name="bad")


def exercise_register_commands():
    manager = get_manager()
    manager.register_plugin(CommandsPlugin(), name="memo-commands")
    try:
        cli = build_cli()
        runner = CliRunner()
        result = runner.invoke(cli, ["memo-ping"])
        assert (result.exit_code, result.output) == (0, "pong\n")
        # the core status command survived the attempt to replace it
        result = runner.invoke(cli, ["status", "/definitely/not/here"])
        assert result.exit_code == 1 and "hijacked" not in result.output
    finally:
        get_manager(reload=True)


HOOK_TESTS = {
    "register_backends": exercise_register_backends,
    "register_commands": exercise_register_commands,
}


@pytest.mark.parametrize("hook", sorted(declared_hooks()))
def test_hook_is_documented_in_contributing(hook):
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = re.search(rf"^### `{hook}`\n(.*?)(?=^## |^### |\Z)", text, re.S | re.M)
    assert section, f"CONTRIBUTING.md has no '### `{hook}`' section documenting this hook"
    for param in declared_hooks()[hook].parameters:
        assert param in section.group(1), f"CONTRIBUTING.md's {hook} section does not mention its argument {param!r}"


def test_every_hook_has_a_test():
    assert set(HOOK_TESTS) == set(declared_hooks()), "add an exercise_<hook> function to HOOK_TESTS"


@pytest.mark.parametrize("hook", sorted(HOOK_TESTS))
def test_hook(hook):
    HOOK_TESTS[hook]()


def test_hooks_are_called_with_keyword_arguments_only():
    manager = BackendManager()
    with pytest.raises(TypeError):
        manager.pm.hook.register_commands(click.Group())  # pluggy refuses positional arguments
