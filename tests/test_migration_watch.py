"""HybridRAG's watcher and a running migration (issue 12): the per-database migration lock under
HYBRIDRAG_HOME (a second migrate of the same database exits 2 naming the running job, whatever its target;
a lock left by a SIGKILLed run is stale and a resume takes it over), and a JSON source that changes during
the copy (the job fails verification naming the change; timestamps are taken past the file system's
granularity so a same-size write is not missed). The CLI runs as a real process, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_migration_data import cli_args, cli_env, read_working_dir, run_cli, write_working_dir

from hybridrag_backends.testing.engine import committed, read_job

POLL_S = 0.002


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """One HYBRIDRAG_HOME for the CLI processes and for this process's calls."""
    home = tmp_path / "home"
    for key, value in cli_env(home).items():
        if key.startswith("HYBRIDRAG"):
            monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def source(tmp_path) -> Path:
    # ~3.5k records over 11 stores: with --batch-size 2 the copy runs long enough to act while it runs
    return write_working_dir(tmp_path / "src", docs=120, chunks_per_doc=4, entities=300, relations=500, dim=48)


def start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(cli_args(*args), env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_copying(home: Path, proc: subprocess.Popen, records: int = 1, timeout: float = 120) -> dict:
    """The job of ``proc`` once it has committed ``records`` records (fails if the run ends first)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        job = read_job(home)
        if job is not None and job["status"] == "in_progress" and committed(job) >= records:
            return job
        time.sleep(POLL_S)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"the first run ended (or stalled) before it was copying: {proc.returncode} {err[-2000:]}")


def errors(proc: subprocess.CompletedProcess) -> list:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_a_second_migrate_of_the_database_exits_2_and_a_killed_runs_lock_is_stale_then_resumed(home, source, tmp_path):
    from hybridrag_backends.hybridrag import migration_in_progress
    from hybridrag_backends.watcher import lock_files, migration_lock

    assert run_cli(home, "db", "register", "kb", "--path", str(source)).returncode == 0
    target = tmp_path / "dst"
    first = start(home, "migrate", "--from", "kb", "--to", str(target), "--batch-size", "2")
    try:
        job = wait_copying(home, first)
        first.send_signal(signal.SIGSTOP)  # frozen mid-copy, still holding its locks: every step below sees it running
        running = migration_in_progress("kb")
        assert running is not None and not running.stale
        assert (running.job_id, running.pid, running.database) == (job["job_id"], first.pid, "kb")
        assert running.job() is not None and running.job().status.value == "in_progress"
        assert running.source == f"json:{source.resolve()}" and running.target == f"json:{target.resolve()}"

        named = f"database 'kb' is being migrated by job {job['job_id']} (process {first.pid} on "
        others = [tmp_path / "elsewhere", tmp_path / "third"]
        attempts = [
            ("kb", target),                 # the same target (a JSON folder)
            ("kb", others[0]),              # another target
            (str(source), others[1]),       # the database by its path
        ]
        for src_arg, dst in attempts:
            second = run_cli(home, "migrate", "--from", src_arg, "--to", str(dst))
            assert second.returncode == 2 and len(errors(second)) == 1, (src_arg, dst, second.stderr)
            assert named in errors(second)[0], errors(second)
            assert f"jobs show {job['job_id']}" in errors(second)[0]
        for dst in others:
            assert not dst.exists()  # refused before anything was created
        back = run_cli(home, "db", "switch", "kb", "--back")  # no repointing under a running copy either
        assert back.returncode == 2 and named in back.stderr, back.stderr
        status = run_cli(home, "status", "kb", "--json")
        assert json.loads(status.stdout)["migration"]["job_id"] == job["job_id"]
        assert any("is being migrated by job" in w for w in json.loads(status.stdout)["metrics"]["warnings"])
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL

    # the killed run left its file behind; nobody holds the lock: stale, and not "in progress"
    assert lock_files("kb")[0].exists()
    assert migration_in_progress("kb") is None
    stale = migration_lock("kb")
    assert stale is not None and stale.stale and (stale.job_id, stale.pid) == (job["job_id"], first.pid)
    status = json.loads(run_cli(home, "status", "kb", "--json").stdout)
    assert status["migration"]["stale"] is True
    assert any("lock is stale" in w and f"--resume {job['job_id']}" in w for w in status["metrics"]["warnings"])
    jobs = json.loads(run_cli(home, "jobs", "--json").stdout)["jobs"]
    assert [j["job_id"] for j in jobs] == [job["job_id"]]  # the refused runs left no job

    resumed = run_cli(home, "migrate", "--from", "kb", "--to", str(target), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["job_id"] == job["job_id"] and out["status"] == "completed" and out["verification"]["ok"]
    assert len(out["warnings"]) == 1 and "took over the migration lock of 'kb'" in out["warnings"][0]
    assert f"job {job['job_id']}" in out["warnings"][0] and "stale" in out["warnings"][0]
    assert "warning: took over the migration lock of 'kb'" in resumed.stderr
    assert migration_lock("kb") is None and not lock_files("kb")[0].exists()  # released at the end
    assert read_working_dir(target) == read_working_dir(source)


def replace_file(path: Path, data: bytes) -> None:
    """Rewrite a file the way a new version lands (a new inode; a reader holding the old one is unaffected)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_a_json_source_that_changes_during_the_copy_fails_verification_naming_the_change(home, source, tmp_path):
    target = tmp_path / "dst"
    docs = source / "kv_store_full_docs.json"
    size_before = docs.stat().st_size
    first = start(home, "migrate", "--from", str(source), "--to", str(target), "--batch-size", "2", "--json")
    try:
        job = wait_copying(home, first, records=50)
        first.send_signal(signal.SIGSTOP)  # so the change surely lands while the copy runs
        data = json.loads(docs.read_text(encoding="utf-8"))
        data["doc-new"] = {"content": "ingested while the copy ran", "file_path": "new.txt", "_id": "doc-new"}
        replace_file(docs, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))  # HybridRAG ingests
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 4, err[-2000:]  # verification failed
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "changed during the copy" in line and "kv_store_full_docs.json: size" in line
    assert f"size {size_before} -> {docs.stat().st_size} bytes" in line and "modified " in line
    result = json.loads(out)
    assert result["status"] == "failed" and result["job_id"] == job["job_id"]
    assert result["verification"]["ok"] is False
    assert "kv_store_full_docs.json" in result["verification"]["source_changed"]
    saved = json.loads((home / "jobs" / job["job_id"] / "job.json").read_text())
    assert saved["status"] == "failed" and "changed during the copy" in saved["last_error"]
    # a resume cannot make it whole; a new run once the source is quiet can
    refused = run_cli(home, "migrate", "--from", str(source), "--to", str(target), "--resume")
    assert refused.returncode == 2 and "changed since job" in refused.stderr
    again = run_cli(home, "migrate", "--from", str(source), "--to", str(target), "--force")
    assert again.returncode == 0, again.stderr
    assert read_working_dir(target) == read_working_dir(source)


def test_same_size_rewrites_are_seen_because_the_fingerprint_waits_out_the_timestamp_granularity(tmp_path):
    from hybridrag_backends.migration.source_check import describe_change
    from hybridrag_backends_json.session import MTIME_GRANULARITY_COARSE_S, MTIME_GRANULARITY_FINE_S, JsonSession

    folder = tmp_path / "wd"
    folder.mkdir()
    path = folder / "kv_store_full_docs.json"
    path.write_text('{"doc-1": {"content": "aaaa"}}', encoding="utf-8")

    # a file system that keeps whole seconds (stamps on a second): wait until a write after the
    # fingerprint cannot carry the same stamp
    stamp = time.time_ns() // 1_000_000_000 * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    started = time.monotonic()
    first = JsonSession(str(folder)).fingerprint()
    assert first == {path.name: [path.stat().st_size, stamp]}
    assert time.time_ns() - stamp >= MTIME_GRANULARITY_COARSE_S * 1e9
    assert time.monotonic() - started >= MTIME_GRANULARITY_COARSE_S - 1.0 - 0.05  # the stamp was <= 1 s old

    # a fine-grained one (ext4, tmpfs: nanosecond stamps from the kernel's tick clock)
    path.write_text('{"doc-1": {"content": "bbbb"}}', encoding="utf-8")  # the same size
    written = path.stat().st_mtime_ns
    assert written % 1_000_000_000 != 0
    second = JsonSession(str(folder)).fingerprint()
    assert time.time_ns() - written >= MTIME_GRANULARITY_FINE_S * 1e9
    assert second[path.name][0] == first[path.name][0]  # same size: only the timestamp tells
    assert second != first
    assert describe_change(first, second).startswith(f"{path.name}: modified ")

    path.write_text('{"doc-1": {"content": "cccc"}}', encoding="utf-8")  # right after the fingerprint
    third = JsonSession(str(folder)).fingerprint()
    assert third[path.name][1] > second[path.name][1]  # a later stamp although the size is the same


HOLD_LOCK = r"""
import sys, time
from hybridrag_backends.watcher import DatabaseMigrationLock
lock = DatabaseMigrationLock([sys.argv[1]], source="json:/somewhere", target="postgres://u@h:5432/db#x")
lock.acquire("job-held-by-test")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
print("released", flush=True)
"""


def test_the_readme_watcher_loop_waits_for_a_running_migration(caplog):
    """The README's waiting loop, run as printed (the poll shortened): it returns only once the run has
    released its lock, logging the job while it waits."""
    import logging
    import re as _re

    from conftest import REPO, realdata_dirs
    from hybridrag_backends.models import DatabaseEntry
    from hybridrag_backends.registry import Registry

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Coordinating with HybridRAG's watcher", 1)[1]
    block = _re.search(r"```python\n(.*?)```", section, _re.S).group(1)
    code = "\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines())
    assert "poll_seconds: float = 30.0" in code
    code = code.replace("poll_seconds: float = 30.0", "poll_seconds: float = 0.05")
    registry = Registry.load()
    registry.add(DatabaseEntry(name="specstory", path=str(realdata_dirs()[0])))
    registry.save()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, "specstory", "1.5"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="hybridrag.watcher"):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme_watcher"})
        assert holder.poll() is not None or holder.stdout.readline().strip() == "released"
        assert time.monotonic() - started >= 0.5
        assert any("job-held-by-test" in r.getMessage() and "specstory" in r.getMessage() for r in caplog.records)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
