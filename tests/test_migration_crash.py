"""Crash safety: SIGKILL the migration process at random points, resume each time, and end with a
target equal to the source; SIGINT pauses cleanly (exit 5) and resumes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from test_migration_data import cli_args, cli_env, only_job_file, read_working_dir, run_cli, write_working_dir

from hybridrag_backends.testing.engine import committed, read_job

POLL_S = 0.002


def run_until(home: Path, args: list, condition: Callable[[dict], bool], sig: int, timeout: float = 120,
              repeat: int = 1, delay: float = 0.0):
    """Start the CLI, send ``sig`` as soon as the job file written by THIS process satisfies ``condition``
    (a killed run leaves a stale in_progress file behind); returns (returncode, job at signal, out, err)."""
    started = time.time_ns()
    proc = subprocess.Popen(cli_args(*args), env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    seen = None
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            job = read_job(home, started)
            if job is not None and job["status"] == "in_progress" and condition(job):
                seen = job
                time.sleep(delay)  # lands anywhere in the next batch: reading, writing or saving
                for _ in range(repeat):
                    proc.send_signal(sig)
                    time.sleep(0.01)
                break
            time.sleep(POLL_S)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, seen, out, err


def where(job: dict) -> str:
    """Where a killed run's committed state is: inside a store, or between two stores."""
    for cp in job["checkpoints"]:
        if not cp["done"]:
            n = cp["migrated_count"] + cp["rejected_count"]
            return f"inside {cp['store_name']} ({n}/{cp['total_count']})" if n else f"before {cp['store_name']}"
    return "after the last store"


def store_boundary(index: int) -> Callable[[dict], bool]:
    """Store ``index`` finished (the next one not necessarily started)."""
    return lambda job: job["checkpoints"][index]["done"]


@pytest.fixture
def source(tmp_path) -> Path:
    # ~3.5k records over 11 stores: with --batch-size 20 that is ~180 committed batches
    return write_working_dir(tmp_path / "src", docs=120, chunks_per_doc=4, entities=300, relations=500, dim=48)


def test_sigkill_at_random_points_then_resume(tmp_path, source):
    home = tmp_path / "home"
    target = tmp_path / "dst"
    base = ["migrate", "--from", str(source), "--to", str(target), "--batch-size", "20", "--json"]
    rng = random.Random(20261128)
    plan = json.loads(run_cli(home, *base, "--dry-run").stdout)["plan"]
    counts = [st["records"] for st in plan["stores"]]
    total = sum(counts)
    # (records committed at about that point, condition): five random points by committed records,
    # and two store boundaries (one in the first half of the stores, one in the second)
    points = [(r, lambda job, r=r: committed(job) >= r) for r in rng.sample(range(40, total - 40), 5)]
    for index in (rng.randrange(0, len(counts) // 2), rng.randrange(len(counts) // 2, len(counts) - 1)):
        points.append((sum(counts[: index + 1]), store_boundary(index)))
    points.sort(key=lambda p: p[0])
    kills = 0
    landed = []
    for _, cond in points:
        args = base + (["--resume"] if only_job_file(home) else [])
        code, seen, out, err = run_until(home, args, cond, signal.SIGKILL, delay=rng.uniform(0, 0.02))
        if code == 0:  # the run finished before this point (or during the delay)
            break
        assert seen is not None and code == -signal.SIGKILL, (code, err)
        kills += 1
        after = read_job(home)
        assert after["status"] == "in_progress"  # killed: nobody had the chance to update it
        assert committed(after) <= total
        landed.append(where(after))
    print("kills landed at:", landed)
    assert kills >= 5
    assert any(w.startswith("inside") for w in landed)
    # one more kill while verifying (all stores copied)
    code, seen, out, err = run_until(home, base + ["--resume"], lambda job: all(cp["done"] for cp in job["checkpoints"]), signal.SIGKILL)
    kills += seen is not None
    final = run_cli(home, *base, "--resume")
    if final.returncode != 0:  # the previous run may have completed before the kill landed
        assert "no resumable" in final.stderr + final.stdout, final.stdout + final.stderr
        jobs = json.loads(run_cli(home, "jobs", "--json").stdout)["jobs"]
        assert jobs[-1]["status"] == "completed"
    else:
        out = json.loads(final.stdout)
        assert out["status"] == "completed" and out["verification"]["ok"] is True
        assert out["migrated_records"] == total
    assert read_working_dir(target) == read_working_dir(source)
    jobs = json.loads(run_cli(home, "jobs", "--json").stdout)["jobs"]
    assert len(jobs) == 1, "every resume continued the same job"


def interrupt_and_resume(tmp_path: Path, source: Path, after_records: int, signals: int = 1) -> None:
    home = tmp_path / "home"
    target = tmp_path / "dst"
    base = ["migrate", "--from", str(source), "--to", str(target), "--batch-size", "20"]
    code, seen, out, err = run_until(home, base, lambda job: committed(job) >= after_records, signal.SIGINT,
                                     repeat=signals)
    assert seen is not None
    assert code == 5, (code, err)
    assert "Traceback" not in err and "interrupted" in err
    job = read_job(home)
    assert job["status"] == "paused"
    assert job["migrated_records"] >= after_records
    assert any(not cp["done"] for cp in job["checkpoints"])
    final = run_cli(home, *base, "--resume", job["job_id"], "--json")
    assert final.returncode == 0, final.stdout + final.stderr
    result = json.loads(final.stdout)
    assert result["job_id"] == job["job_id"] and result["status"] == "completed"
    assert result["verification"]["ok"] is True
    assert read_working_dir(target) == read_working_dir(source)


def test_sigint_pauses_with_exit_5_then_resumes(tmp_path, source):
    interrupt_and_resume(tmp_path, source, after_records=400)  # inside the second store


def test_sigint_inside_the_first_store_then_resume(tmp_path, source):
    interrupt_and_resume(tmp_path, source, after_records=60)


def test_a_second_sigint_still_ends_paused_with_exit_5_and_resumes_exactly(tmp_path, source):
    interrupt_and_resume(tmp_path, source, after_records=1000, signals=2)


def test_a_second_migration_into_the_same_target_is_refused_naming_the_first(tmp_path, source):
    """Two runs into one JSON target used to tear its files (issue 10, defect 2): now the second stops
    before it creates a job (exit 2, naming the job that holds the target) and the first completes."""
    home, target = tmp_path / "home", tmp_path / "dst"
    base = ["migrate", "--from", str(source), "--to", str(target), "--batch-size", "2"]
    first = subprocess.Popen(cli_args(*base), env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        job = None
        while first.poll() is None and time.monotonic() < deadline:
            job = read_job(home)
            if job is not None and job["status"] == "in_progress" and committed(job) > 0:
                break  # the first run is copying
            time.sleep(POLL_S)
        assert first.poll() is None and job is not None, "the first run ended before the second could start"
        second = run_cli(home, *base)
        first_out, first_err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert second.returncode == 2 and len(errors) == 1, second.stdout + second.stderr
    assert f"another migration (job {job['job_id']}, process {first.pid}) is writing into {target}" in errors[0]
    assert first.returncode == 0, first_err
    assert read_working_dir(target) == read_working_dir(source)  # plain parse: every file whole and equal
    jobs = json.loads(run_cli(home, "jobs", "--json").stdout)["jobs"]
    assert [(j["job_id"], j["status"]) for j in jobs] == [(job["job_id"], "completed")]  # the refused run left none


def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path, source):
    from hybridrag_backends_json.writer import LOCK_FILE

    home, target = tmp_path / "home", tmp_path / "dst"
    base = ["migrate", "--from", str(source), "--to", str(target), "--batch-size", "20"]
    code, seen, out, err = run_until(home, base, lambda job: committed(job) >= 100, signal.SIGKILL)
    assert seen is not None and code == -signal.SIGKILL, (code, err)
    assert (target / LOCK_FILE).exists()  # left behind; the OS dropped the lock with the process
    final = run_cli(home, *base, "--resume")
    assert final.returncode == 0, final.stdout + final.stderr
    assert read_working_dir(target) == read_working_dir(source)
