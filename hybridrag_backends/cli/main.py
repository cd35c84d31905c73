"""The ``hybridrag-backends`` command line (also ``python -m hybridrag_backends``).

TARGET (``status``, ``validate``, ``env``, ``migrate``) is a registry name, a
path to a LightRAG JSON working dir (``--workspace`` selects a workspace), or a
URL whose scheme an installed backend claims (``postgresql://``, ``mongodb://``).

Exit codes: 0 ok; 1 not found (target, registry entry, backend); 2 connection
or validation failure, bad input or a usage error; 70 internal error (a bug:
rerun with ``HYBRIDRAG_BACKENDS_DEBUG=1`` for the traceback). ``migrate`` adds
3 target error, 4 verification failed, 5 interrupted, and ``verify`` exits 4 when
a store differs (see ``cli/migrate.py``); Ctrl-C elsewhere exits 130.
Errors are one line on stderr: ``error: <what is wrong>; <what to do>``. A plugin
that fails to load is one ``warning:`` line and ``plugins`` lists it with its error
(exit 0); with ``HYBRIDRAG_BACKENDS_STRICT=1`` it is an error (exit 2).

JSON output (``--json``)
------------------------
Stable shapes: keys are sorted, keys are only ever added. Strings are redacted
(URL passwords masked) except under ``env --show-secrets``.

``plugins --json``::

    {"plugins": [{"name": "json",                      # entry-point name
                  "distribution": "hybridrag-backends-json", "version": "0.1.0",
                  "backends": ["json"],                # backend names it registered
                  "error": null}]}                     # "ImportError: ..." when it failed to load

``status TARGET --json`` (exit 2, with one ``error:`` line on stderr, when health is not "healthy"
(e.g. a corrupt file, or a JSON file holding records a migration will reject: not objects, or values
only JSON files can store such as NaN or a lone surrogate) or the backend is not connected; the report is
printed either way)::

    {"target": "<TARGET as given>", "name": "<registry name>" | null,
     "backend": "json", "location": "<credential-free location>",
     "metrics": {"backend_type": "json",
                 "file_sizes": {"<file>": <bytes>}, "total_size_bytes": <int>, "total_size_human": "1.2 MB",
                 "store_counts": {"<store>": <records>},
                 "entity_count": <int>, "relation_count": <int>, "chunk_count": <int>, "doc_count": <int>,
                 "is_connected": true, "connection_latency_ms": <float> | null,
                 "health": "healthy" | "degraded" | "error",
                 "warnings": ["<text with the exact migrate command>",
                              "<a password in the registry entry, and how to remove it>"],
                 "details": {...}},
     "notes": ["<provider status notes>"],
     "migration": null | {"database", "job_id", "pid", "host", "started_at", "source", "target",
                          "stale": false},                 # a migration of this registered database runs (or,
                                                           # stale, a killed one left its lock)
     "ingestion": null | {"backend": "json", "runs": <int>, "baseline_docs_per_second": <float> | null,
                          "recent_docs_per_second": <float> | null, "slowdown_pct": <float> | null,
                          "threshold_pct": <int>, "slowed": <bool>, "enough_history": <bool>}}

  ``migration`` and ``ingestion`` are null unless TARGET is a registered name (``hybridrag_backends.watcher``,
  ``hybridrag_backends.ingestion``); a running migration, a stale lock and an ingestion slowdown of at least
  ``performance_degradation_pct`` are also ``warnings`` (the slowdown one ends with the ``run:`` command).
  ``--verbose`` only changes the human output (details and notes are always in the JSON; it adds the
  ingestion comparison, or how many runs it still needs).

``status --json`` (no TARGET: every registered database, one row each, checked concurrently; a
database that cannot be reached, an unusable entry or a backend no plugin provides is a row with its
``error`` and does not stop the others). Exit 0 when every row is ok (health "healthy" and
connected), else 2 with one ``error:`` line naming the databases that are not; the table or JSON is
printed either way. An empty registry prints that and exits 0::

    {"registry": "<registry file>", "ok": true,
     "databases": [{"name": "<registry name>", "backend": "postgres" | null, "location": "<...>" | null,
                    "ok": true, "error": null | "<what went wrong>",
                    "health": "healthy" | "degraded" | "error", "is_connected": true | false | null,
                    "total_size_bytes": <int> | null, "total_size_human": "1.2 MB" | null,
                    "records": <sum of store_counts> | null, "warnings": ["..."],
                    "metrics": {<as in status TARGET>} | null}]}

``validate TARGET --json`` (exit 2 when a check fails)::

    {"target": ..., "name": ..., "backend": ..., "location": ..., "ok": true,
     "checks": [{"name": "<check>", "ok": true, "detail": "<what was found>", "fix": "<what to do>"}],
     "warnings": ["<a password in the registry entry, and how to remove it>"]}

``env TARGET --json`` (the same as ``--format json``; ``--format shell`` / ``dotenv`` print export lines /
the ``.env`` LightRAG Server reads, a masked secret as a comment line)::

    {"target": ..., "name": ..., "backend": ..., "location": ...,
     "env": {"LIGHTRAG_KV_STORAGE": "PGKVStorage", ..., "WORKSPACE": "...", "EMBEDDING_MODEL": "...",
             "POSTGRES_HOST": "...", "POSTGRES_PASSWORD": "***"},  # secrets masked unless --show-secrets
     "secrets": ["POSTGRES_PASSWORD"],                              # names whose values are secret
     "secrets_shown": false}

``db list --json``::

    {"registry": "<registry file>", "databases": [<entry>, ...],
     "problems": {"<name>": "<why the entry cannot be used>"}}

``db show NAME --json``: ``{"registry": "<file>", "database": <entry>, "warnings": ["..."]}``;
``db register ... --json``: ``{"registry": "<file>", "database": <entry>, "password_env": ["POSTGRES_PASSWORD"],
"checked": true}``; ``db remove NAME --json``: ``{"registry": "<file>", "removed": "<name>"}``. An ``<entry>``
is the registry entry as the file has it: every key (HybridRAG's ``name, path, source_folder, source_type,
auto_watch, watch_interval, model, ..., backend_type, backend_config, model_config, ...`` and any other),
values as stored, passwords masked (``***``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
from typing import Any, Dict, List, Optional

import click
from rich.table import Table

from .. import __version__
from ..errors import ValidationFailure
from ..models import human_size
from ..provider import BackendProvider
from ..secrets import MASK, redact
from ..targets import ResolvedTarget, resolve_target
from .watch import watch_report
from .output import (
    CliGroup,
    console,
    emit_json,
    error_line,
    errors_to_exit,
    json_option,
    load_plugins,
    shown,
    warn,
    workspace_option,
)


def _target_header(target: str, resolved: ResolvedTarget) -> Dict[str, Any]:
    return {
        "target": target,
        "name": resolved.name,
        "backend": resolved.provider.name,
        "location": resolved.location,
    }


# -- plugins -------------------------------------------------------------------------


@click.command("plugins")
@json_option
def plugins_cmd(as_json: bool) -> None:
    """List installed backend plugins (entry-point group 'hybridrag_backends')."""
    manager = load_plugins()
    infos = [manager.plugins[n] for n in sorted(manager.plugins)]
    if as_json:
        emit_json({"plugins": [i.to_dict() for i in infos]})
        return
    table = Table(title="hybridrag-backends plugins")
    for col in ("plugin", "distribution", "version"):
        table.add_column(col, no_wrap=True)
    table.add_column("backends", overflow="fold")
    table.add_column("targets", overflow="fold")
    for info in infos:
        targets = sorted({f"{s}://" for b in info.backends for s in manager.providers[b].url_schemes})
        if any(manager.providers[b].claims_path.__func__ is not BackendProvider.claims_path for b in info.backends):
            targets.insert(0, "paths")
        backends = shown(", ".join(info.backends)) if not info.error else "[red]failed to load[/red]"
        table.add_row(shown(info.name), shown(info.distribution or "-"), shown(info.version or "-"), backends or "-",
                      shown(", ".join(targets) or "-"))
    console.print(table)
    for info in infos:
        if info.error:
            console.print(f"[red]{shown(info.name)}:[/red] {shown(info.error)}", soft_wrap=True)


# -- status / validate / env -------------------------------------------------------


@click.command("status")
@click.argument("target", required=False)
@workspace_option
@json_option
@click.option("--verbose", "-v", is_flag=True, help="Add backend details and provider notes.")
def status_cmd(target: Optional[str], workspace: Optional[str], as_json: bool, verbose: bool) -> None:
    """Sizes, record counts, health and warnings of TARGET; with no TARGET, one row per registered database."""
    load_plugins()
    if target is None:
        if workspace is not None:
            raise click.UsageError("--workspace needs a TARGET")
        from .status_all import status_all

        status_all(as_json, verbose)
        return
    resolved = resolve_target(target, workspace=workspace)
    metrics = asyncio.run(resolved.provider.metrics(resolved.config))
    metrics.warnings.extend(resolved.warnings)
    watch = watch_report(resolved)  # a migration running on it, ingestion slowdown
    metrics.warnings.extend(watch.warnings)
    notes = resolved.provider.status_notes(resolved.config)
    if as_json:
        emit_json({**_target_header(target, resolved), "metrics": metrics.to_dict(), "notes": notes, **watch.json})
    else:
        _print_status(target, resolved, metrics, notes + watch.notes, verbose)
    if metrics.health != "healthy" or not metrics.is_connected:
        # the report is printed either way; the exit code and one stderr line say it is not usable as is
        problems = "; ".join(metrics.warnings) or "see the report above"
        error_line(f"{target} is {metrics.health if metrics.is_connected else 'not connected'}: {problems}")
        raise SystemExit(2)


def _print_status(target: str, resolved: ResolvedTarget, metrics: Any, notes: List[str], verbose: bool) -> None:
    console.print(f"[bold]{shown(target)}[/bold]  backend [cyan]{shown(resolved.provider.name)}[/cyan]  {shown(resolved.location)}")
    if metrics.store_counts:
        stores = Table(title="stores")
        stores.add_column("store")
        stores.add_column("records", justify="right")
        for store, count in sorted(metrics.store_counts.items()):
            stores.add_row(shown(store), f"{count:,}")
        console.print(stores)
    if metrics.file_sizes:
        files = Table(title="files")
        files.add_column("file")
        files.add_column("size", justify="right")
        for name, size in sorted(metrics.file_sizes.items()):
            files.add_row(shown(name), human_size(size))
        files.add_row("[bold]total[/bold]", f"[bold]{human_size(metrics.total_size_bytes)}[/bold]")
        console.print(files)
    elif metrics.total_size_bytes:
        console.print(f"total size: {human_size(metrics.total_size_bytes)}")
    console.print(
        f"documents {metrics.doc_count:,}  chunks {metrics.chunk_count:,}  "
        f"entities {metrics.entity_count:,}  relations {metrics.relation_count:,}"
    )
    colour = {"healthy": "green", "degraded": "yellow"}.get(metrics.health, "red")
    latency = f"  latency {metrics.connection_latency_ms:.1f} ms" if metrics.connection_latency_ms is not None else ""
    console.print(f"health [{colour}]{metrics.health}[/{colour}]  connected {metrics.is_connected}{latency}")
    for w in metrics.warnings:
        console.print(f"[yellow]warning:[/yellow] {shown(w)}", soft_wrap=True)
    if verbose:
        for key, value in sorted(metrics.details.items()):
            console.print(f"  {shown(key)}: {shown(value)}", soft_wrap=True)
        for note in notes:
            console.print(f"  note: {shown(note)}", soft_wrap=True)


@click.command("validate")
@click.argument("target")
@workspace_option
@json_option
def validate_cmd(target: str, workspace: Optional[str], as_json: bool) -> None:
    """Check TARGET against reality (path, files, server, extensions); exit 2 if a check fails."""
    load_plugins()
    resolved = resolve_target(target, workspace=workspace)
    checks = asyncio.run(resolved.provider.validate(resolved.config))
    ok = all(c.ok for c in checks)
    if as_json:
        emit_json({**_target_header(target, resolved), "ok": ok, "checks": [dataclasses.asdict(c) for c in checks],
                   "warnings": resolved.warnings})
    else:
        for w in resolved.warnings:
            console.print(f"[yellow]warning:[/yellow] {shown(w)}", soft_wrap=True)
        for c in checks:
            mark = "[green]ok  [/green]" if c.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {shown(c.name)}" + (f": {shown(c.detail)}" if c.detail else ""), soft_wrap=True)
            if not c.ok and c.fix:  # on lines of its own: a "run: <command>" in it ends its line (hints.py)
                console.print(f"     [yellow]fix:[/yellow] {shown(c.fix)}", soft_wrap=True)
        console.print("[green]valid[/green]" if ok else "[red]invalid[/red]")
    if not ok:
        raise SystemExit(2)


ENV_FORMATS = ("shell", "dotenv", "json")
# python-dotenv (what LightRAG Server reads .env with) takes these unquoted; anything else is double-quoted
_DOTENV_BARE = re.compile(r"[A-Za-z0-9_./:@%+,-]*")


def dotenv_value(key: str, value: str) -> str:
    """``value`` written so python-dotenv reads it back unchanged (LightRAG Server's ``.env`` reader)."""
    if "${" in value:  # python-dotenv expands ${VAR} in every value, quoted or not, and has no escape for it
        raise ValidationFailure(
            f"the value of {key} contains '${{', which LightRAG Server's .env reader (python-dotenv) would expand; "
            f"use --format shell, or set {key} in the server's environment (it takes precedence over .env)")
    if _DOTENV_BARE.fullmatch(value):
        return value
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


@click.command("env")
@click.argument("target")
@workspace_option
@click.option("--format", "fmt", type=click.Choice(ENV_FORMATS), default=None,
              help="shell: export lines (default); dotenv: the .env LightRAG Server reads from its start "
                   "directory; json: the --json shape.")
@click.option("--show-secrets", is_flag=True, help="Print passwords instead of masking them.")
@json_option
def env_cmd(target: str, workspace: Optional[str], fmt: Optional[str], show_secrets: bool, as_json: bool) -> None:
    """Environment variables LightRAG and LightRAG Server read to use TARGET.

    The storage class names (LIGHTRAG_*_STORAGE), WORKSPACE, WORKING_DIR, EMBEDDING_MODEL /
    EMBEDDING_DIM where known, and the backend's connection variables. A masked secret is
    printed as a comment, so pasting the output never overwrites a password you exported:

    \b
        hybridrag-backends env TARGET --format dotenv --show-secrets > .env && lightrag-server
    """
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} contradict each other; give one of them")
    fmt = "json" if as_json else (fmt or "shell")
    load_plugins()
    resolved = resolve_target(target, workspace=workspace)
    env = _target_env(resolved)
    secret_names = sorted(set(resolved.provider.secret_env_vars()) & set(env))
    masked = {k for k in secret_names if not show_secrets and env[k]}
    values = {k: (MASK if k in masked else env[k]) for k in sorted(env)}
    if not show_secrets:
        values = {k: redact(v) for k, v in values.items()}
    if fmt == "json":
        emit_json(
            {**_target_header(target, resolved), "env": values, "secrets": secret_names, "secrets_shown": show_secrets},
            show_secrets=show_secrets,
        )
        return
    lines = [f"# LightRAG / LightRAG Server settings for {redact(resolved.location)} (hybridrag-backends env)"]
    for key, value in values.items():
        if key in masked:
            lines.append(f"# {key} is secret and masked: export it yourself, or rerun with --show-secrets")
        elif fmt == "dotenv":
            lines.append(f"{key}={dotenv_value(key, str(value))}")
        else:
            lines.append(f"export {key}={shlex.quote(str(value))}")
    click.echo("\n".join(lines))


def _target_env(resolved: ResolvedTarget) -> Dict[str, str]:
    """What :func:`~hybridrag_backends.hybridrag.lightrag_settings` gives for the same target: a
    registry entry's path is LightRAG's working dir for server backends too."""
    from ..hybridrag import settings_for
    from ..registry import Registry

    entry = Registry.load().get(resolved.name) if resolved.name else None
    return settings_for(resolved.config, entry.path if entry else None)[1]


# -- the root group ------------------------------------------------------------------


def build_cli(name: str = "hybridrag-backends") -> click.Group:
    """The command group: core commands, migrate / jobs, then plugin commands."""
    from .db import db_group
    from .migrate import add_migrate_commands

    @click.group(name=name, cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="hybridrag-backends")
    def cli() -> None:
        """Storage backends for LightRAG / HybridRAG: status, registry and migration."""

    for command in (plugins_cmd, status_cmd, validate_cmd, env_cmd, db_group):
        cli.add_command(command)
    add_migrate_commands(cli)
    core = dict(cli.commands)
    load_plugins().pm.hook.register_commands(cli=cli)
    for cmd_name, command in core.items():
        if cli.commands.get(cmd_name) is not command:  # core commands cannot be replaced
            warn(f"a plugin tried to replace the core command {cmd_name!r}; kept the core one")
            cli.add_command(command, cmd_name)
    return cli


def main(args: Optional[List[str]] = None) -> None:
    with errors_to_exit():
        cli = build_cli()
    cli.main(args=args, prog_name="hybridrag-backends")
