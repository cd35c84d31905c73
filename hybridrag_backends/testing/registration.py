"""Make a provider under test resolvable by the CLI in this process, installed or not."""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..hookspecs import hookimpl
from ..plugins import get_manager
from ..provider import BackendProvider


@contextlib.contextmanager
def installed(provider: BackendProvider) -> Iterator[None]:
    """Within the block, the process-wide plugin manager serves ``provider``'s class under its name.

    An installed plugin (found through its entry point) is used as it is. A provider that is not
    installed (a test double, a plugin run from its source tree) is registered for the block only,
    and the manager is reloaded from entry points afterwards.
    """
    manager = get_manager()
    current = manager.providers.get(provider.name)
    if current is not None:
        if type(current) is not type(provider):
            raise AssertionError(
                f"another backend named {provider.name!r} is installed ({type(current).__module__}."
                f"{type(current).__name__}); the provider under test must have its own name")
        yield
        return

    class _UnderTest:
        @hookimpl
        def register_backends(self, register) -> None:  # noqa: ANN001
            register(type(provider))

    manager.register_plugin(_UnderTest(), name=f"conformance-{provider.name}")
    try:
        yield
    finally:
        get_manager(reload=True)
