"""Entry point of the Redis provider plugin (group ``hybridrag_backends``, name ``redis``)."""

from hybridrag_backends import hookimpl

from .provider import RedisProvider


@hookimpl
def register_backends(register):  # noqa: ANN001, ANN201 - pluggy hook
    register(RedisProvider)
