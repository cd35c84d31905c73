"""Entry point of the MongoDB provider plugin (group ``hybridrag_backends``)."""

from __future__ import annotations

from typing import Callable

from hybridrag_backends.hookspecs import hookimpl


@hookimpl
def register_backends(register: Callable[[type], None]) -> None:
    from .provider import MongoProvider

    register(MongoProvider)
