"""``migrate``, ``verify``, ``jobs`` and ``jobs show``, mounted on the root group by :func:`add_migrate_commands`.

Exit codes: 0 done; 1 not found (a TARGET, registry entry or job, or a source with no
LightRAG record: pass ``--allow-empty`` to copy an empty database); 2 source error, or a
pre-flight check that failed before any job was created (unreachable server, missing
extension, embedding model, permissions, disk space, same place; the message says the fix);
3 target error once the job runs; 4 verification failed (a store differs, or the target's copy
cannot be read back); 5 interrupted with the checkpoint saved (Ctrl-C or SIGTERM: the batch in
flight is committed, the job is PAUSED; a second Ctrl-C abandons the batch in flight, which the
target drops on resume).

``verify SOURCE TARGET`` re-checks a copy at any time (after a migration, an edit, a restore) with
the same counts, digests and vectors as migrate's verification; it changes nothing and exits 0
(every store equal), 4 (some differ, or the target's copy of a store cannot be read back: the
stores and example keys are printed), 1 (a side not found), 2 (the source cannot be read, a server
cannot be reached), 3 (the target stopped answering while it was read).

``--json`` shapes (stable; keys are sorted on output):

``migrate --json`` (also on failure, then with ``error`` set)::

    {"job_id": str|null, "status": "completed"|"failed"|"paused"|null, "dry_run": bool,
     "exit_code": int, "error": str|null,
     "plan": {"source": str, "target": str, "target_empty": bool, "total_records": int,
              "total_bytes": int|null, "absent_standard_files": [str],
              "stores": [{"store": str, "kind": str, "records": int, "bytes": int|null,
                          "embedding_dim": int|null, "lossy_fields": {field: reason},
                          "problem": str|null, "duplicates": int}],
              "total_duplicates": int,
              "checks": [{"name": str, "ok": bool, "detail": str, "fix": str}],
              "target_notes": [str]} | null,
     "total_records": int, "migrated_records": int, "failed_records": int,
     "stores": [{"store": str, "total": int, "migrated": int, "rejected": int, "done": bool}],
     "verification": {"ok": bool, "failed_stores": [str],
                      "stores": {name: {"store", "ok", "source_count", "target_count", "rejected",
                                        "source_digest", "target_digest", "lossy_fields", "examples",
                                        "error", "source_from_copy"}}} | null,
     "rejects_file": str|null, "elapsed_seconds": float,
     "switch": {"database": str, "job_id": str, "backend": str, "location": str, "previous_location": str,
                "notes": [str]} | null,
     "warnings": [str]}

``switch`` is set when ``--switch`` repointed the registry entry (see :mod:`hybridrag_backends.cutover`);
``warnings`` names the stale migration locks this run took over (left by a killed run). ``verification``
gains ``"source_changed": str`` when the source changed during the copy (the job then fails, exit 4).

``target_notes``: what the target does beyond copying, one line each (PostgreSQL: the vector index
strategy of each vector table and its estimated time, see ``--index-strategy``).

``lossy_fields`` maps payload field names to why the target cannot hold them; the key
``"(null values)"`` stands for every field set to null (a GraphML target has no null), and
``"vector"`` in a vector store is NanoVectorDB's per-record vector (kept apart only by JSON targets).
``duplicates`` counts entries of a JSON KV file hidden by a later entry with the same key (LightRAG
keeps the last value; so does the copy; ``records`` counts distinct keys). ``checks`` are the
pre-flight checks run before the job was created (a failed one stops the run with exit 2; a dry
run lists them and exits 2). A store's ``error`` says why the target's copy could not be read back
(null otherwise); ``examples`` name keys with lone surrogates as ``\\udXXX`` escapes.
``source_from_copy`` (added): the source side was digested while copying (a JSON source whose files did
not change since the job started), not read again; always false for ``verify``.

``verify SOURCE TARGET --json`` (exit 0 when ``ok``, 4 when a store differs; also printed on the
other errors, then with ``error`` set and ``verification`` null)::

    {"source": str, "target": str, "ok": bool, "exit_code": int, "error": str|null,
     "missing_in_source": [str], "missing_in_target": [str],
     "verification": {"ok", "failed_stores", "stores": {...}} | null,   # as in migrate --json
     "elapsed_seconds": float}

``jobs --json``::

    {"jobs": [{"job_id", "status", "source", "target", "source_backend", "target_backend",
               "created_at", "started_at", "completed_at", "total_records", "migrated_records",
               "failed_records", "progress_percent", "current_store", "last_error"}]}

``jobs show JOB_ID --json``::

    {"job": <MigrationJob.to_dict()>, "rejects_file": str|null, "rejects": [first 20 rejects]}

A reject (one line of the rejects file) is ``{"store": str, "key": str|null, "reason": str,
"location": str|null, "side": "source"|"target"}``: ``side`` says whether the source could not give the
record or the target could not hold it (e.g. a NUL character for PostgreSQL); older files lack ``side``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..cutover import Cutover, resolve_destination
from ..errors import HybridRAGBackendsError, SourceError, TargetError, VerificationFailed
from ..migration import jobstore
from ..migration.engine import (
    MigrationPlan,
    ProgressListener,
    StorePlan,
    migrate,
    preflight_failure,
    verification_summary,
    verify_copy,
)
from ..migration.job import MigrationCheckpoint, MigrationJob
from ..migration.verify import StoreVerification
from ..models import human_size
from ..secrets import redact
from ..targets import resolve_target
from ..watcher import DatabaseMigrationLock, databases_involved
from .output import console, echo_plain, emit_json, error_line, one_line, shown, warn

INDEX_STRATEGIES = ("auto", "partial", "incremental")  # what PostgresProvider.index_strategies offers
PLAIN_INTERVAL_S = 2.0  # how often plain (non-terminal) output reports a store's progress


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "", style="progress.data.speed")


class _PlanRecorder(ProgressListener):
    def __init__(self) -> None:
        self.plan_seen: Optional[MigrationPlan] = None

    def plan(self, plan: MigrationPlan) -> None:
        self.plan_seen = plan


class PlainProgress(_PlanRecorder):
    """One line per event (and per store every few seconds): for logs, pipes and CI."""

    def __init__(self, echo: Callable[[str], None], show_plan: bool = True) -> None:
        super().__init__()
        self.echo = echo
        self.show_plan = show_plan
        self._last = 0.0
        self._started = 0.0

    def plan(self, plan: MigrationPlan) -> None:
        super().plan(plan)
        if not self.show_plan:  # a dry run prints the full plan instead
            return
        size = f", {human_size(plan.total_bytes)}" if plan.total_bytes is not None else ""
        self.echo(f"plan: {len(plan.stores)} stores, {plan.total_records} records{size}: {plan.source} -> {plan.target}")
        for note in plan.target_notes:
            self.echo(f"  {note}")

    def job_started(self, job: MigrationJob, resumed: bool) -> None:
        self.echo(f"job {job.job_id} {'resumed' if resumed else 'started'}")

    def store_started(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        self._started = self._last = time.monotonic()
        resume = f" (resuming after {cp.migrated_count + cp.rejected_count})" if cp.last_key is not None else ""
        count = "?" if store.count is None else store.count
        self.echo(f"{store.store.name}: copying {count} records{resume}")

    def batch(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        now = time.monotonic()
        if now - self._last >= PLAIN_INTERVAL_S:
            self._last = now
            done = cp.migrated_count + cp.rejected_count
            pct = f" ({100.0 * done / store.count:.1f}%)" if store.count else ""
            self.echo(f"{store.store.name}: {done}/{'?' if store.count is None else store.count}{pct}")

    def store_finished(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        rejected = f", {cp.rejected_count} rejected" if cp.rejected_count else ""
        self.echo(f"{store.store.name}: done, {cp.migrated_count} copied{rejected}")

    def store_verified(self, result: StoreVerification) -> None:
        self.echo(f"verify {result.store}: {verdict(result)}")


class RichProgress(PlainProgress):
    """A bar per store with rate and ETA (terminal only)."""

    def __init__(self, show_plan: bool = True) -> None:
        super().__init__(echo_plain, show_plan)
        self.bars = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Optional[int] = None

    def store_started(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        if not self.bars.live.is_started:
            self.bars.start()
        done = cp.migrated_count + cp.rejected_count
        self._task = self.bars.add_task(store.store.name, total=None if store.count is None else max(store.count, done), completed=done)

    def batch(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        if self._task is not None:
            self.bars.update(self._task, completed=cp.migrated_count + cp.rejected_count)

    def store_finished(self, store: StorePlan, cp: MigrationCheckpoint) -> None:
        if self._task is not None:
            done = cp.migrated_count + cp.rejected_count
            self.bars.update(self._task, total=done, completed=done)

    def verify_started(self, stores: List[Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.bars.live.is_started:
            self.bars.stop()


def _run_interruptible(make: Callable[[asyncio.Event], Any], on_first_signal: Callable[[], None]) -> Any:
    """Run the engine with SIGINT/SIGTERM turned into a clean stop: the first signal lets the batch
    in flight commit and pauses the job; a second one cancels at once (still PAUSED, exit 5)."""

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()  # type: ignore[union-attr]
            else:
                stop.set()
                on_first_signal()

        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                handled.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        try:
            return await make(stop)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            if stop.is_set():
                # the job is already PAUSED and saved: a late Ctrl-C must not turn exit 5 into a
                # KeyboardInterrupt while the summary is printed
                for sig in handled:
                    signal.signal(sig, signal.SIG_IGN)

    return asyncio.run(main())


def _job_result(job: Optional[MigrationJob]) -> Dict[str, Any]:
    if job is None:
        return {"job_id": None, "status": None, "total_records": 0, "migrated_records": 0, "failed_records": 0,
                "stores": [], "verification": None, "rejects_file": None}
    rejects = jobstore.rejects_path(job.job_id)
    return {
        "job_id": job.job_id,
        "status": job.status.value,
        "total_records": job.total_records,
        "migrated_records": job.migrated_records,
        "failed_records": job.failed_records,
        "stores": [
            {"store": cp.store_name, "total": cp.total_count, "migrated": cp.migrated_count,
             "rejected": cp.rejected_count, "done": cp.done}
            for cp in job.checkpoints
        ],
        "verification": job.verification,
        "rejects_file": str(rejects) if rejects.exists() else None,
    }


def verdict(result: StoreVerification) -> str:
    if result.ok:
        return "ok"
    if result.error:
        return f"FAILED ({result.error})"
    examples = f"; e.g. {', '.join(result.examples[:3])}" if result.examples else ""
    return f"MISMATCH (source {result.source_count}, target {result.target_count}{examples})"


def _print_plan(plan: MigrationPlan) -> None:
    """Plain aligned text, never truncated (store names and paths must stay greppable)."""
    echo_plain(f"plan: {plan.source} -> {plan.target}")
    echo_plain(f"  {'store':<32} {'kind':<12} {'records':>10} {'size':>10}  not kept by the target")
    for s in plan.stores:
        lossy = ", ".join(f"{k} ({v})" for k, v in s.lossy_fields.items()) or "-"
        size = human_size(s.bytes) if s.bytes is not None else "-"
        count = "?" if s.count is None else f"{s.count:,}"
        echo_plain(f"  {s.store.name:<32} {s.store.kind.value:<12} {count:>10} {size:>10}  {lossy}")
        if s.problem:
            echo_plain(f"    problem: {s.problem}")
        if s.duplicates:
            echo_plain(f"    duplicates: {s.duplicates:,} earlier entr{'y' if s.duplicates == 1 else 'ies'} of keys written "
                       f"more than once (LightRAG keeps the last value; so does the copy)")
    total = f"{plan.total_records:,} records" + (f", {human_size(plan.total_bytes)}" if plan.total_bytes is not None else "")
    echo_plain(f"total: {total}")
    echo_plain(f"absent standard files: {', '.join(plan.absent_standard_files) or 'none'}")
    echo_plain(f"target: {'empty' if plan.target_empty else 'NOT empty (needs --force)'}")
    for note in plan.target_notes:
        echo_plain(f"  {note}")
    for c in plan.checks:
        fix = f" (fix: {c.fix})" if not c.ok and c.fix else ""
        echo_plain(f"pre-flight {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}{fix}")


def _print_summary(job: MigrationJob, elapsed: float) -> None:
    rate = job.migrated_records / elapsed if elapsed > 0 else 0.0
    line = f"job {job.job_id} {job.status.value}: {job.migrated_records:,} records copied in {elapsed:.1f}s ({rate:,.0f} rec/s)"
    if job.failed_records:
        line += f", {job.failed_records} rejected (see {jobstore.rejects_path(job.job_id)})"
    if job.verification is not None:
        line += f"; verification {'passed' if job.verification.get('ok') else 'FAILED'} ({len(job.verification['stores'])} stores)"
    elif job.options.get("verify", True) is False:
        line += "; not verified (--no-verify)"
    else:
        line += "; not verified (the job stopped before verification)"
    echo_plain(line)


@click.command("migrate")
@click.option("--from", "source", required=True, metavar="SOURCE", help="Registry name, JSON working dir or URL.")
@click.option("--to", "target", required=True, metavar="TARGET", help="Registry name, working dir (new or empty) or URL.")
@click.option("--workspace", default=None, help="Workspace of the source (and of the target unless --target-workspace).")
@click.option("--target-workspace", default=None, help="Workspace of the target.")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[JOB_ID]",
              help="Continue a paused/failed job (default: the newest one for this source and target).")
@click.option("--dry-run", is_flag=True, help="Print the plan (stores, counts, sizes, absent files) and stop.")
@click.option("--force", is_flag=True, help="Replace the stores of a target that already holds data.")
@click.option("--no-verify", is_flag=True, help="Skip the count and digest comparison after the copy.")
@click.option("--allow-rejects", is_flag=True, help="Complete the job even if some source records were rejected.")
@click.option("--allow-empty", is_flag=True, help="Copy a source that holds no LightRAG record (else exit 1).")
@click.option("--index-strategy", type=click.Choice(INDEX_STRATEGIES), default=None,
              help="PostgreSQL target: how vector indexes shared with other workspaces are kept "
                   "(default auto; the plan says which and how long).")
@click.option("--switch", is_flag=True,
              help="After a verified copy, point the --from registry entry at the target (undo: db switch NAME --back).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result (shape in the module docs).")
def migrate_command(
    source: str, target: str, workspace: Optional[str], target_workspace: Optional[str], batch_size: int,
    resume: Optional[str], dry_run: bool, force: bool, no_verify: bool, allow_rejects: bool, allow_empty: bool,
    index_strategy: Optional[str], switch: bool, as_json: bool,
) -> None:
    """Copy a whole LightRAG database to another backend or location, resumable and verified.

    TARGET may be a bare backend name (postgres, mongodb, json): the --from entry's own settings for
    that backend (never a folder; ./postgres is one). --switch: after the verified copy, the --from
    registry entry points at TARGET (undo: db switch NAME --back).

    \b
    Exit codes:
      0  done (copied and verified)
      1  not found: SOURCE/TARGET, a job, or a source with no LightRAG record (see --allow-empty)
      2  source error, records rejected, or a pre-flight check failed before any job was created
         (unreachable server, missing extension or embedding model, permissions, disk space,
         same place), or the database is being migrated by another run; the message says the fix
      3  target error while the job runs
      4  verification failed (a store differs, the target's copy cannot be read back, or the
         source changed during the copy)
      5  interrupted with the checkpoint saved (continue with --resume)
    """
    started = time.monotonic()
    if as_json:
        listener: _PlanRecorder = _PlanRecorder()
    elif console.is_terminal:
        listener = RichProgress(show_plan=not dry_run)
    else:
        listener = PlainProgress(lambda line: click.echo(redact(line)), show_plan=not dry_run)
    job: Optional[MigrationJob] = None
    error: Optional[HybridRAGBackendsError] = None
    switched: Optional[Dict[str, Any]] = None
    warnings: List[str] = []
    locks: Optional[DatabaseMigrationLock] = None
    try:
        src = resolve_target(source, workspace=workspace)
        destination = resolve_destination(target, src, switch=switch,
                                          workspace=target_workspace if target_workspace is not None else workspace)
        dst = destination.resolved
        cutover = Cutover.prepare(src, destination, workspace=workspace, verify=not no_verify) if switch else None
        if index_strategy is not None:
            _set_index_strategy(dst, index_strategy)
        locks = DatabaseMigrationLock(databases_involved(src, dst), source=src.location, target=dst.location)

        def claim(job_id: str) -> None:  # the databases' migration locks, before the target's and the job
            for stale in locks.acquire(job_id):
                warnings.append(f"took over the migration lock of {stale.database!r} left by {stale.describe()}, "
                                f"which ended without releasing it (the lock was stale)")
                warn(warnings[-1])

        result = _run_interruptible(
            lambda stop: migrate(
                src, dst, batch_size=batch_size, resume=resume, dry_run=dry_run, force=force,
                verify=not no_verify, allow_rejects=allow_rejects, allow_empty=allow_empty, progress=listener,
                stop=stop, before_job=claim,
            ),
            lambda: error_line("stopping after the batch in flight (Ctrl-C again to abandon it)"),
        )
        job = result.job
        problems = [s for s in result.plan.stores if s.problem]
        if dry_run and problems:  # the real run would stop there: say so with the exit code too
            error = SourceError(f"{len(problems)} store(s) cannot be read completely: {problems[0].problem}")
        elif dry_run:
            error = preflight_failure(result.plan)
        if cutover is not None and job is not None:
            switched = cutover.apply(job.job_id)  # still holding the databases' locks
    except HybridRAGBackendsError as exc:
        error = exc
        job = getattr(exc, "job", job)
    finally:
        if locks is not None:
            locks.release()
        if isinstance(listener, RichProgress):
            listener.close()
    elapsed = time.monotonic() - started
    exit_code = error.exit_code if error is not None else 0
    if as_json:
        out = _job_result(job)
        plan = listener.plan_seen
        out.update(
            dry_run=dry_run, plan=plan.to_dict() if plan else None, exit_code=exit_code,
            error=one_line(error) if error is not None else None, elapsed_seconds=round(elapsed, 3),
            switch=switched, warnings=warnings,
        )
        emit_json(out)
    elif dry_run and listener.plan_seen is not None:
        _print_plan(listener.plan_seen)
    elif job is not None:
        _print_summary(job, elapsed)
        if switched is not None:
            echo_plain(f"switched registry entry {switched['database']} to {switched['backend']} "
                       f"({switched['location']}; it was {switched['previous_location']}); to undo: "
                       f"run: hybridrag-backends db switch {switched['database']} --back")
            for note in switched["notes"]:
                warn(note)
    if error is not None:
        error_line(error)
        sys.exit(exit_code)


def _set_index_strategy(dst: Any, strategy: str) -> None:
    """--index-strategy goes to the target's config (the URL option ``index_strategy`` does the same)."""
    if strategy not in getattr(dst.provider, "index_strategies", ()):
        raise TargetError(f"--index-strategy applies to PostgreSQL targets; the target is {dst.provider.name}: "
                          f"leave the option out")
    dst.config.extra_options = {**(dst.config.extra_options or {}), "index_strategy": strategy}


@click.command("verify")
@click.argument("source")
@click.argument("target")
@click.option("--workspace", default=None, help="Workspace of the source (and of the target unless --target-workspace).")
@click.option("--target-workspace", default=None, help="Workspace of the target.")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result (shape in the module docs).")
def verify_command(source: str, target: str, workspace: Optional[str], target_workspace: Optional[str],
                   batch_size: int, as_json: bool) -> None:
    """Re-check that TARGET holds what SOURCE holds, at any time: per-store counts, content digests
    and vectors (float32, and the per-record vectors LightRAG returns), as migrate's verification.
    Changes nothing.

    \b
    Exit codes: 0 every store equal; 4 some store differs (stores and example keys are printed) or
    the target's copy cannot be read back; 1 SOURCE or TARGET not found; 2 the source cannot be
    read or a server cannot be reached; 3 the target stopped answering while it was read.
    """
    started = time.monotonic()
    echo = (lambda line: None) if as_json else echo_plain
    result: Optional[Dict[str, Any]] = None
    error: Optional[HybridRAGBackendsError] = None
    src_loc, dst_loc = source, target
    try:
        src = resolve_target(source, workspace=workspace)
        dst = resolve_target(target, workspace=target_workspace if target_workspace is not None else workspace)
        src_loc, dst_loc = src.location, dst.location
        echo(f"verify: {src.location} -> {dst.location}")
        result = asyncio.run(verify_copy(
            src, dst, batch_size=batch_size, on_store=lambda r: echo(f"verify {r.store}: {verdict(r)}")))
        if not result["ok"]:
            error = VerificationFailed(f"{verification_summary(result)}; the target is not an exact copy of the source")
    except HybridRAGBackendsError as exc:
        error = exc
    exit_code = error.exit_code if error is not None else 0
    if as_json:
        emit_json({
            "source": src_loc, "target": dst_loc, "ok": error is None, "exit_code": exit_code,
            "error": one_line(error) if error is not None else None,
            "missing_in_source": (result or {}).get("missing_in_source", []),
            "missing_in_target": (result or {}).get("missing_in_target", []),
            "verification": None if result is None else {k: result[k] for k in ("ok", "failed_stores", "stores")},
            "elapsed_seconds": round(time.monotonic() - started, 3),
        })
    elif result is not None and error is None:
        echo_plain(f"verification passed: {len(result['stores'])} stores equal")
    if error is not None:
        error_line(error)
        sys.exit(exit_code)


def _job_summary(job: MigrationJob) -> Dict[str, Any]:
    d = job.to_dict()
    keys = ("job_id", "status", "source", "target", "source_backend", "target_backend", "created_at", "started_at",
            "completed_at", "total_records", "migrated_records", "failed_records", "progress_percent",
            "current_store", "last_error")
    return {k: d[k] for k in keys}


@click.group("jobs", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list (shape in the module docs).")
@click.pass_context
def jobs_group(ctx: click.Context, as_json: bool) -> None:
    """List migration jobs (newest last)."""
    if ctx.invoked_subcommand is not None:
        return
    jobs = jobstore.list_jobs()
    if as_json:
        emit_json({"jobs": [_job_summary(j) for j in jobs]})
        return
    if not jobs:
        echo_plain(f"no migration jobs in {jobstore.jobs_dir()}")
        return
    # plain lines, never cut: ids are copied into 'jobs show' and '--resume'
    echo_plain(f"{'job':<24} {'status':<11} {'records':>17} {'created (UTC)':<19}  from -> to")
    for j in jobs:
        records = f"{j.migrated_records:,}/{j.total_records:,}"
        echo_plain(f"{j.job_id:<24} {j.status.value:<11} {records:>17} {j.created_at.strftime('%Y-%m-%d %H:%M:%S'):<19}  "
             f"{j.source} -> {j.target}")


@jobs_group.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
def jobs_show(job_id: str, as_json: bool) -> None:
    """Show one job: status, per-store checkpoints, verification, rejects."""
    job = jobstore.load(job_id)  # not found / unreadable: one error line from the root group
    rejects_file = jobstore.rejects_path(job_id)
    rejects = jobstore.read_rejects(job_id, limit=20)
    if as_json:
        emit_json({"job": job.to_dict(), "rejects_file": str(rejects_file) if rejects_file.exists() else None,
                   "rejects": rejects})
        return
    echo_plain(f"job {job.job_id}: {job.status.value}")
    echo_plain(f"  {job.source} -> {job.target}")
    echo_plain(f"  records: {job.migrated_records:,}/{job.total_records:,} copied, {job.failed_records} rejected")
    if job.last_error:
        echo_plain(f"  last error: {job.last_error}")
    table = Table()
    for col in ("store", "copied", "rejected", "total", "done", "verified"):
        table.add_column(col)
    stores = (job.verification or {}).get("stores", {})
    for cp in job.checkpoints:
        v = stores.get(cp.store_name)
        table.add_row(shown(cp.store_name), f"{cp.migrated_count:,}", str(cp.rejected_count), f"{cp.total_count:,}",
                      "yes" if cp.done else "no", "-" if v is None else ("ok" if v["ok"] else "MISMATCH"))
    console.print(table)
    for r in rejects:
        echo_plain(f"  rejected {r['store']} {r['key']!r} at {r.get('location')}: {r['reason']}")


def add_migrate_commands(cli: click.Group) -> None:
    cli.add_command(migrate_command)
    cli.add_command(verify_command)
    cli.add_command(jobs_group)
