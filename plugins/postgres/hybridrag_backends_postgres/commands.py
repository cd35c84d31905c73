"""``hybridrag-backends postgres up|down|status|url``: a local PostgreSQL with pgvector and Apache AGE.

Added to the CLI by the postgres plugin's ``register_commands`` hook (see :mod:`.localserver` for
the Docker and sandbox routes). Every next step it prints is a complete command.

``postgres status --json``::

    {"route": "sandbox" | "docker", "where": "<sandbox root or compose project>",
     "state": "running" | "stopped" | "absent", "port": <int> | null,
     "url": "postgresql://hybridrag:***@127.0.0.1:<port>/hybridrag" | null}
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlsplit

import click

from hybridrag_backends.cli.output import CliGroup, console, emit_json, err_console, json_option
from hybridrag_backends.errors import ConfigError
from hybridrag_backends.secrets import redact

from .localserver import (
    COMPOSE_FILE,
    DEFAULT_ROOT,
    DOCKER_DIR,
    ROUTES,
    Docker,
    Facts,
    NoRoute,
    Sandbox,
    choose_route,
    route_for,
)

via_option = click.option(
    "--via", type=click.Choice(("auto",) + ROUTES), default="auto", show_default=True,
    help="docker (when a Docker daemon answers) or sandbox (a Debian root, as root on Debian/Ubuntu); "
         "auto takes the first that works here.")
root_option = click.option(
    "--root", default=None, metavar="DIR",
    help="The sandbox's root folder (default $HYBRIDRAG_PG_ROOT, else /var/lib/hybridrag-pg/root).")


@click.group("postgres", cls=CliGroup)
def postgres_group() -> None:
    """A local PostgreSQL with pgvector and Apache AGE for LightRAG: up, down, status, url."""


def _route_args(route: "Sandbox | Docker") -> List[str]:
    """The options that make a later command reach the same server."""
    args = ["--via", route.name]
    if isinstance(route, Sandbox) and route.root != DEFAULT_ROOT:
        args += ["--root", route.root]
    return args


def _existing(via: str, root: Optional[str]) -> "Sandbox | Docker":
    """The route a server was started with: for auto, Docker when it answers and holds one."""
    if via != "auto":
        return route_for(via, root)
    facts = Facts.gather()
    if facts.docker_answers and Docker().status()[0] != "absent":
        return Docker()
    return route_for(choose_route("auto", facts), root)


def _no_route(exc: NoRoute) -> None:
    err_console.print(exc.steps, markup=False, soft_wrap=True)
    raise exc


@postgres_group.command("up")
@via_option
@root_option
@click.option("--dry-run", is_flag=True, help="Print what would run (and the Docker route's files) without running it.")
@click.option("--register", "register_name", default=None, metavar="NAME",
              help="Register the database as NAME (the password as a ${VAR} reference, never stored).")
@click.option("--password-env", default="POSTGRES_PASSWORD", show_default=True, metavar="VAR",
              help="With --register: the environment variable the password is read from.")
@click.option("--embedding-model", default=None, help="With --register: the embedding model your LightRAG uses "
              "(PostgreSQL vector tables are named after it; needed to migrate into the database).")
@click.option("--embedding-dim", type=int, default=None, help="With --register: its dimension.")
@click.option("--path", "path", type=click.Path(path_type=Path), default=None,
              help="With --register: the entry's path, LightRAG's working dir for its local files "
                   "(default ~/.hybridrag/databases/NAME).")
@click.option("--replace", is_flag=True, help="With --register: overwrite an entry with the same name.")
def up_cmd(via: str, root: Optional[str], dry_run: bool, register_name: Optional[str], password_env: str,
           embedding_model: Optional[str], embedding_dim: Optional[int], path: Optional[Path], replace: bool) -> None:
    """Start PostgreSQL 17 + pgvector + AGE; print its URL.

    Apache AGE < 1.8 with age preloaded, on 127.0.0.1. Idempotent: an existing server is reused
    (same port, same password)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        raise ConfigError("--password-env", password_env, "must be an environment variable name like POSTGRES_PASSWORD")
    facts = Facts.gather()
    if dry_run:
        _print_dry_run(via, root, facts)
        return
    try:
        route = route_for(choose_route(via, facts), root)
    except NoRoute as exc:
        _no_route(exc)
    url = route.up()
    console.print(f"PostgreSQL 17 + pgvector + Apache AGE is running ({route.where()})", markup=False, soft_wrap=True)
    console.print(f"url: {redact(url)}", markup=False, soft_wrap=True)
    url_cmd_args = shlex.join(_route_args(route))
    if register_name is None:
        _print_next([f'hybridrag-backends validate "$(hybridrag-backends postgres url --show-password {url_cmd_args})"'])
        return
    registry_path = _register(register_name, url, password_env, embedding_model, embedding_dim, path, replace)
    console.print(f"registered {register_name} in {registry_path}; its password is read from ${password_env} "
                  f"when it is used, never stored", markup=False, soft_wrap=True)
    steps = [f'export {password_env}="$(hybridrag-backends postgres url --password-only {url_cmd_args})"',
             f"hybridrag-backends validate {shlex.quote(register_name)}"]
    if embedding_model and embedding_dim:
        steps.append(f"hybridrag-backends migrate --from WORKING_DIR --to {shlex.quote(register_name)}")
        _print_next(steps, "WORKING_DIR: the LightRAG working dir to move in (the folder holding kv_store_*.json)")
    else:
        _print_next(steps, "to migrate into it, register it again with --replace --embedding-model M --embedding-dim D "
                           "(the embedding model your LightRAG uses): PostgreSQL vector tables are named after it")


def _print_next(commands: List[str], note: str = "") -> None:
    console.print("next:", markup=False)
    for command in commands:
        console.print(f"  {command}", markup=False, soft_wrap=True, crop=False, overflow="ignore")
    if note:
        console.print(f"  ({note})", markup=False, soft_wrap=True)


def _register(name: str, url: str, password_env: str, embedding_model: Optional[str], embedding_dim: Optional[int],
              path: Optional[Path], replace: bool) -> Path:
    """Register the server the way ``db register --url`` does (the same config builder): the URL is the
    connection, the password is read from ``password_env`` (never written), the embedding model goes to
    ``model_config`` where HybridRAG keeps it."""
    from hybridrag_backends.cli.db import build_backend_config
    from hybridrag_backends.models import BackendType, DatabaseEntry
    from hybridrag_backends.registry import Registry, hybridrag_home

    options = {"embedding_model": embedding_model, "embedding_dim": embedding_dim}
    config, model_keys = build_backend_config(BackendType.POSTGRESQL, url, None, None, password_env, options)
    entry_path = (path or hybridrag_home() / "databases" / name).expanduser().resolve()
    registry = Registry.load()
    registry.add(DatabaseEntry(name=name, path=str(entry_path), backend_type=BackendType.POSTGRESQL,
                               backend_config=config, model_config=model_keys or None),
                 replace=replace, password_env=password_env)
    registry.save()
    return registry.path


def _print_dry_run(via: str, root: Optional[str], facts: Facts) -> None:
    try:
        chosen: Optional[str] = choose_route(via, facts)
        why = ""
    except NoRoute as exc:
        chosen, why = None, str(exc)
    sandbox, docker = Sandbox(root), Docker()
    print_ = lambda text="": console.print(text, markup=False, soft_wrap=True, crop=False, overflow="ignore")  # noqa: E731
    print_(f"docker: {facts.docker_why}")
    print_(f"sandbox: {facts.sandbox_why_not() or 'root on Debian/Ubuntu: available'}")
    if chosen == "docker":
        print_(f"route here: docker; would run: {docker.up_command()}")
    elif chosen == "sandbox":
        print_(f"route here: sandbox; would run: {sandbox.shown_command('start')}")
    else:
        print_(f"route here: none ({why})")
    print_()
    print_("Docker route (taken when a Docker daemon answers), not run:")
    print_(f"  {docker.up_command()}")
    for file in (COMPOSE_FILE, DOCKER_DIR / "Dockerfile", DOCKER_DIR / "initdb" / "10-extensions.sql"):
        print_(f"--- {file}")
        print_(file.read_text(encoding="utf-8").rstrip("\n"))


@postgres_group.command("down")
@via_option
@root_option
def down_cmd(via: str, root: Optional[str]) -> None:
    """Stop it (the data is kept; 'up' starts it again)."""
    try:
        route = _existing(via, root)
    except NoRoute as exc:
        _no_route(exc)
    console.print(f"{route.where()}: {route.down()}", markup=False, soft_wrap=True)


@postgres_group.command("status")
@via_option
@root_option
@json_option
def status_cmd(via: str, root: Optional[str], as_json: bool) -> None:
    """Running, stopped or absent (exit 3 unless running)."""
    try:
        route = _existing(via, root)
    except NoRoute as exc:
        _no_route(exc)
    state, port = route.status()
    url = redact(route.url()) if state == "running" else None
    if as_json:
        emit_json({"route": route.name, "where": route.where(), "state": state, "port": port, "url": url})
    else:
        line = f"{state}" + (f" on 127.0.0.1:{port}" if port else "") + f" ({route.where()})"
        console.print(line, markup=False, soft_wrap=True)
        if state != "running":
            console.print(f"start it with: hybridrag-backends postgres up {shlex.join(_route_args(route))}",
                          markup=False, soft_wrap=True)
    if state != "running":
        raise SystemExit(3)


@postgres_group.command("url")
@via_option
@root_option
@click.option("--show-password", is_flag=True, help="Print the password in the URL instead of masking it.")
@click.option("--password-only", is_flag=True, help="Print only the password (for export POSTGRES_PASSWORD=...).")
def url_cmd(via: str, root: Optional[str], show_password: bool, password_only: bool) -> None:
    """Its URL, password masked unless asked (exit 1 if down)."""
    try:
        route = _existing(via, root)
    except NoRoute as exc:
        _no_route(exc)
    url = route.url()
    if password_only:
        click.echo(urlsplit(url).password or "")
    else:
        click.echo(url if show_password else redact(url))
