"""Hook specifications of the ``hybridrag_backends`` plugin system.

Few hooks, each given a ``register`` callback (the simonw/llm pattern): the real
contract is the typed :class:`~hybridrag_backends.provider.BackendProvider`
class a plugin registers, not the hook. Hooks are synchronous (pluggy has no
async); I/O belongs on provider objects. Hooks are always called with keyword
arguments.

Every hook here must be documented in CONTRIBUTING.md and exercised by a test
(``tests/test_hookspecs.py`` checks both).
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "hybridrag_backends"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[type], None]) -> None:
    """Register backend providers.

    Call ``register(ProviderClass)`` once per backend, where ``ProviderClass`` is
    a subclass of :class:`hybridrag_backends.provider.BackendProvider` with a
    unique ``name``. Registering a name another plugin already registered is an
    error reported against the later plugin.
    """


@hookspec
def register_commands(cli) -> None:  # noqa: ANN001 - a click.Group
    """Add commands to the ``hybridrag-backends`` click group.

    ``cli`` is the root :class:`click.Group`; use ``@cli.command()`` or
    ``cli.add_command(...)``. Use it for backend-specific tools (for example a
    sandbox server helper); core commands cannot be replaced.
    """
