"""migrate / jobs commands (filled in by the migration engine work)."""


def add_migrate_commands(cli) -> None:  # noqa: ANN001
    return None
