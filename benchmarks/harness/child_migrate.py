"""Child process: one real migration through the engine, with where its time went.

    python benchmarks/harness/child_migrate.py SOURCE TARGET [--workspace W] [--target-workspace W]
        [--batch-size N] [--mongo-fake]

Runs ``hybridrag_backends.migration.engine.migrate`` exactly as ``hybridrag-backends migrate`` does
(copy, index builds, verification) and prints one JSON line: records, exit code, error, and phases.
Phases come from the engine's progress events plus timers around the calls the engine makes on the two
sessions (the provider contract: ``read``, ``write_batch``, ``finish_store``, ``finish_target``,
``prepare_target``) and around the job file saves; nothing in the engine or the providers is changed:

* ``write``: time in the target's ``write_batch`` and ``finish_store`` during the copy;
* ``index``: the wall time of the target's ``finish_target`` (PostgreSQL waits there for the HNSW builds
  that did not finish while later stores loaded; the JSON target renames nothing there);
* ``read``: the rest of the copy's wall time, i.e. the time the writer waited for the reader (reading
  overlaps writing, so this is the part of reading that is not hidden), minus ``prepare`` and ``checkpoint``;
* ``verify``: the part of verification's wall time after ``finish_target`` returned (a PostgreSQL target is
  verified while its index builds finish: only what outlasts them adds to the step); ``verify_wall``: all of it;
* ``verify_source`` / ``verify_target``: verification reads back and digests each side in turn (an immutable
  JSON source is not read again: its digest was summed during the copy, so ``verify_source`` is 0 there);
* ``read_busy``: the reader's own time (overlaps ``write``; not part of the sum).

``--mongo-fake`` installs the in-process MongoDB fake of ``tests/mongo_fake.py`` (no server exists here):
its data lives in this process, so its RSS includes the "server".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402,F401  (puts the repository on sys.path)

from hybridrag_backends.errors import HybridRAGBackendsError  # noqa: E402
from hybridrag_backends.migration import jobstore  # noqa: E402
from hybridrag_backends.migration.engine import ProgressListener, migrate  # noqa: E402
from hybridrag_backends.targets import ResolvedTarget, resolve_target  # noqa: E402

now = time.perf_counter


class Timings(ProgressListener):
    def __init__(self) -> None:
        self.totals: Dict[str, float] = {}
        self.marks: Dict[str, float] = {}
        self.calls: Dict[str, int] = {}  # how many times each timed call ran, per phase
        self.phase = "copy"

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def plan(self, plan) -> None:  # noqa: ANN001
        self.marks["plan"] = now()

    def job_started(self, job, resumed) -> None:  # noqa: ANN001
        self.marks["copy"] = now()

    def verify_started(self, stores) -> None:  # noqa: ANN001
        self.marks["verify"] = now()
        self.phase = "verify"

    def store_verified(self, result) -> None:  # noqa: ANN001
        self.marks["verify_end"] = now()

    # -- timers around the session calls -------------------------------------------------

    def timed(self, name: str, method):  # noqa: ANN001
        async def call(*args: Any, **kwargs: Any) -> Any:
            started = now()
            if name == "finish_target":
                self.marks["finish"] = started
            try:
                return await method(*args, **kwargs)
            finally:
                if name == "finish_target":
                    self.marks["finish_end"] = now()
                self.add(f"{self.phase}.{name}", now() - started)
                self.calls[f"{self.phase}.{name}"] = self.calls.get(f"{self.phase}.{name}", 0) + 1
        return call

    def timed_read(self, side: str, method):  # noqa: ANN001
        def read(store, after=None, batch_size=1000):  # noqa: ANN001
            async def batches():
                phase, started, busy = self.phase, now(), 0.0
                source = method(store, after, batch_size)
                try:
                    while True:
                        t = now()
                        try:
                            batch = await source.__anext__()
                        except StopAsyncIteration:
                            return
                        finally:
                            busy += now() - t
                        self.calls[f"{phase}.{side}.batches"] = self.calls.get(f"{phase}.{side}.batches", 0) + 1
                        yield batch
                finally:
                    await source.aclose()
                    self.add(f"{phase}.{side}.read_busy", busy)
                    self.add(f"{phase}.{side}.read_span", now() - started)  # includes the consumer's digesting
            return batches()
        return read

    def instrument(self, session, side: str) -> None:  # noqa: ANN001
        session.read = self.timed_read(side, session.read)
        if side == "target":
            for name in ("write_batch", "finish_store", "finish_target", "prepare_target"):
                setattr(session, name, self.timed(name, getattr(session, name)))


def watch_sessions(source: ResolvedTarget, target: ResolvedTarget, timings: Timings) -> None:
    """Wrap each provider's ``open`` so the sessions it yields are instrumented (the source and the
    target may share one provider object: the config tells them apart)."""
    sides = {id(source.config): "source", id(target.config): "target"}
    for provider in {id(t.provider): t.provider for t in (source, target)}.values():
        original = provider.open

        @contextlib.asynccontextmanager
        async def opened(config, _original=original):  # noqa: ANN001
            async with _original(config) as session:
                timings.instrument(session, sides[id(config)])
                yield session

        provider.open = opened


def count_saves(timings: Timings) -> None:
    original = jobstore.save

    def save(job) -> None:  # noqa: ANN001
        started = now()
        try:
            original(job)
        finally:
            timings.add(f"{timings.phase}.checkpoint", now() - started)

    jobstore.save = save


async def main(args: argparse.Namespace) -> Dict[str, Any]:
    if args.mongo_fake:
        sys.path.insert(0, str(harness.REPO / "tests"))
        from mongo_fake import FakeServer
        from hybridrag_backends_mongodb.client import use_client_factory

        use_client_factory(FakeServer().factory)
    timings = Timings()
    source = resolve_target(args.source, workspace=args.workspace)
    target = resolve_target(args.target, workspace=args.target_workspace, for_write=True)
    watch_sessions(source, target, timings)
    count_saves(timings)
    out: Dict[str, Any] = {"error": None, "exit_code": 0}
    started = now()
    job = None
    try:
        job = (await migrate(source, target, batch_size=args.batch_size, progress=timings)).job
    except HybridRAGBackendsError as exc:
        job = getattr(exc, "job", None)
        out.update(error=str(exc)[:2000], exit_code=exc.exit_code)
    ended = now()
    t = timings.totals
    marks = timings.marks
    copy_end = min(marks.get("verify", ended), marks.get("finish", ended))  # then finishing and verifying
    copy_wall = copy_end - marks.get("copy", started)
    write = t.get("copy.write_batch", 0.0) + t.get("copy.finish_store", 0.0)
    index = marks["finish_end"] - marks["finish"] if "finish_end" in marks else 0.0
    verify_end = marks.get("verify_end", marks.get("verify", ended))
    verify_shown = max(0.0, verify_end - max(marks.get("verify", ended), marks.get("finish_end", 0.0)))
    other_in_copy = t.get("copy.prepare_target", 0.0) + t.get("copy.checkpoint", 0.0)
    out.update(
        records=job.migrated_records if job else 0,
        rejected=job.failed_records if job else 0,
        verified=bool(job and job.verification and job.verification.get("ok")),
        source_from_copy=sorted(name for name, v in ((job.verification or {}).get("stores", {}) if job else {}).items()
                                if v.get("source_from_copy")),
        notes=(job.options.get("notes", []) if job else []),
        calls=timings.calls,
        phases={
            "plan": round(marks.get("plan", started) - started, 3),
            "prepare": round(t.get("copy.prepare_target", 0.0), 3),
            "read": round(max(0.0, copy_wall - write - other_in_copy), 3),
            "write": round(write, 3),
            "index": round(index, 3),
            "checkpoint": round(t.get("copy.checkpoint", 0.0), 3),
            "verify_source": round(t.get("verify.source.read_span", 0.0), 3),
            "verify_target": round(t.get("verify.target.read_span", 0.0), 3),
            "verify": round(verify_shown, 3) if "verify" in marks else 0.0,
            "verify_wall": round(verify_end - marks["verify"], 3) if "verify" in marks else 0.0,
            "read_busy": round(t.get("copy.source.read_busy", 0.0), 3),
            "migrate": round(ended - started, 3),
        },
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--target-workspace", default=None)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--mongo-fake", action="store_true")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result))
    sys.exit(result["exit_code"])
