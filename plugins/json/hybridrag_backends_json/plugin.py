"""Entry point of the JSON provider plugin (group ``hybridrag_backends``, name ``json``)."""

from hybridrag_backends.hookspecs import hookimpl

from .provider import JsonProvider


@hookimpl
def register_backends(register):  # noqa: ANN001, ANN201 - pluggy hook
    register(JsonProvider)
