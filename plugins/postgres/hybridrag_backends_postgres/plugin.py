"""Entry point module: registers the PostgreSQL provider with hybridrag-backends."""

from hybridrag_backends.hookspecs import hookimpl

from .provider import PostgresProvider


@hookimpl
def register_backends(register):
    register(PostgresProvider)
