"""Shared CLI output: consoles, stable JSON, one-line errors and warnings.

Every command module uses these so that all commands behave alike:

* :func:`emit_json` prints JSON with sorted keys and 2-space indent (the
  ``--json`` shapes are documented in :mod:`hybridrag_backends.cli.main`).
* :class:`CliGroup` (the root group's class) turns exceptions into exit codes:

  - a :class:`~hybridrag_backends.errors.HybridRAGBackendsError` prints ONE line
    ``error: <message>`` (redacted) on stderr and exits with its ``exit_code``;
  - any other exception is a bug: one line ``error: internal error: <Type>: <message>``
    plus a hint to rerun with ``HYBRIDRAG_BACKENDS_DEBUG=1``, exit code 70
    (``EX_SOFTWARE`` from sysexits.h, so scripts can tell a bug from "not found" = 1);
  - with ``HYBRIDRAG_BACKENDS_DEBUG=1`` the (redacted) traceback is printed too.

  Run as the program (``main``), click's usage errors are one line too (exit 2),
  Ctrl-C outside ``migrate`` prints ``error: interrupted`` (exit 130).
* :func:`warn` prints ``warning: <message>`` (redacted) on one line;
  :func:`load_plugins` loads the plugins printing each load failure that way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import sys
import traceback
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

import click
from rich.console import Console
from rich.markup import escape

from ..errors import HybridRAGBackendsError
from ..plugins import BackendManager, PluginLoadWarning, get_manager
from ..secrets import redact, redact_strings

ENV_DEBUG = "HYBRIDRAG_BACKENDS_DEBUG"
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
EXIT_INTERNAL_ERROR = 70

# emoji=False: a path or name holding ":smile:" is shown as it is
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


def _debug() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() in ("1", "true", "yes", "on")


def shown(value: object) -> str:
    """``value`` redacted and escaped for rich markup: how any name, path or message enters marked-up text."""
    return escape(redact(value))


def echo_plain(line: object) -> None:
    """One redacted line on stdout as it is: no markup, never cut or wrapped (ids and paths stay greppable)."""
    console.print(redact(line), markup=False, overflow="ignore", crop=False, soft_wrap=True)


def one_line(text: object) -> str:
    """``text`` redacted, on one line (white space runs folded)."""
    return " ".join(redact(text).split())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, 2-space indent, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=_json_default)


def emit_json(obj: Any, *, show_secrets: bool = False) -> None:
    """Print ``obj`` as stable JSON on stdout (plain print: no rich markup or wrapping).

    Strings are redacted unless ``show_secrets`` (only ``env --show-secrets`` asks for that).
    """
    text = to_json(obj)
    click.echo(text if show_secrets else to_json(redact_strings(json.loads(text))))


def warn(message: object) -> None:
    click.echo(f"warning: {one_line(message)}", err=True)


def error_line(message: object) -> None:
    click.echo(f"error: {one_line(message)}", err=True)


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn exceptions into a one-line error and an exit code (see module docstring)."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
        raise  # click handles its own exits, usage errors and Ctrl-C
    except HybridRAGBackendsError as exc:
        if _debug():
            err_console.print(redact(traceback.format_exc()), markup=False)
        error_line(exc)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: say so briefly, traceback on request
        if _debug():
            err_console.print(redact(traceback.format_exc()), markup=False)
            error_line(f"internal error: {type(exc).__name__}: {exc}")
        else:
            error_line(
                f"internal error: {type(exc).__name__}: {exc} "
                f"(rerun with {ENV_DEBUG}=1 for the traceback, and please report it)"
            )
        sys.exit(EXIT_INTERNAL_ERROR)


class CliGroup(click.Group):
    """A click group whose commands (and nested groups) report errors through :func:`errors_to_exit`.

    Run as the program's root (``main``), click's usage errors are also printed
    on one line (``error: <message> (see '<command> --help')``, exit 2).
    """

    def invoke(self, ctx: click.Context) -> Any:
        with errors_to_exit():
            return super().invoke(ctx)

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:  # bare group: click prints the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
            error_line(exc.format_message() + hint)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
            error_line("interrupted" if interrupted else "aborted")
            sys.exit(130 if interrupted else 1)
        sys.exit(rv if isinstance(rv, int) else 0)


# Options every TARGET command shares.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (stable shape, documented in hybridrag_backends/cli/main.py).")
workspace_option = click.option("--workspace", "-w", default=None, help="LightRAG workspace within the target.")


def load_plugins() -> BackendManager:
    """Load plugins once, printing each load warning as one ``warning:`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginLoadWarning)
        manager = get_manager()
    for w in caught:
        if issubclass(w.category, PluginLoadWarning):
            warn(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return manager
