"""Entry point module: registers the PostgreSQL provider and the ``postgres`` commands with hybridrag-backends."""

from hybridrag_backends.hookspecs import hookimpl

from .provider import PostgresProvider


@hookimpl
def register_backends(register):
    register(PostgresProvider)


@hookimpl
def register_commands(cli):
    from .commands import postgres_group  # click only: asyncpg is not imported for --help

    cli.add_command(postgres_group)
