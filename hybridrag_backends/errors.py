"""Errors that reach users, each carrying the CLI exit code it maps to.

Exit codes follow the spec's contract: 0 ok, 1 not found, 2 connection or
validation failure (for ``migrate``: 2 source error, 3 target error,
4 verification failed, 5 interrupted with a checkpoint saved).

Every message says what is wrong *and* what to do; the CLI prints it on one
line without a traceback. Messages must never contain secrets: build them
with :func:`hybridrag_backends.secrets.redact` when a URL is involved.
"""

from __future__ import annotations


class HybridRAGBackendsError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code: int = 2


class NotFoundError(HybridRAGBackendsError):
    """A registry name, path, job or backend that does not exist."""

    exit_code = 1


class ConfigError(HybridRAGBackendsError, ValueError):
    """A configuration value outside its allowed range or form.

    Subclasses ValueError so that code written against the spec's plain
    dataclass (which raised ValueError) keeps working.
    """

    exit_code = 2

    def __init__(self, field: str, value: object, allowed: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        message = f"invalid {field}={value!r}: {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class ConnectionFailure(HybridRAGBackendsError):
    """A server that cannot be reached, or refuses us."""

    exit_code = 2


class ValidationFailure(HybridRAGBackendsError):
    """A backend that exists but is not usable (missing extension, not a LightRAG dir, ...)."""

    exit_code = 2


class RegistryError(HybridRAGBackendsError):
    """The registry file is malformed (unknown key, bad YAML, wrong type)."""

    exit_code = 2


class PluginError(HybridRAGBackendsError):
    """A plugin failed to load while HYBRIDRAG_BACKENDS_STRICT=1."""

    exit_code = 2


# --- migration -----------------------------------------------------------


class MigrationError(HybridRAGBackendsError):
    exit_code = 2


class SourceError(MigrationError):
    """The source cannot be read (corrupt file, lost connection, ...)."""

    exit_code = 2


class TargetError(MigrationError):
    """The target cannot be written (not empty without --force, lost connection, ...)."""

    exit_code = 3


class TargetBusy(TargetError):
    """Another migration is writing into the same target (JSON folder, PostgreSQL workspace). Exit 2,
    not 3: nothing was written and no job was created; the message names the job holding the target."""

    exit_code = 2


class DatabaseBusy(MigrationError):
    """A registered database is being migrated by another process (its per-database lock under
    ``HYBRIDRAG_HOME``). Exit 2: nothing was written; the message names the running job."""

    exit_code = 2


class VerificationFailed(MigrationError):
    exit_code = 4


class MigrationInterrupted(MigrationError):
    """Stopped on purpose (Ctrl-C, server gone after retries) with the checkpoint saved."""

    exit_code = 5


class InvalidTransition(MigrationError):
    """A MigrationJob state change the spec does not allow."""

    exit_code = 2
