"""Checks that go through the real migration engine: in-process round trips, and the CLI in a
subprocess killed with SIGKILL and resumed."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np
import pytest

from ..errors import HybridRAGBackendsError
from ..migration.job import MigrationJob, MigrationStatus
from ..plugins import get_provider
from .independent import SourceStores, read_working_dir, without

if TYPE_CHECKING:
    from ..models import BackendConfig
    from .suite import Kit

KILL_BATCH = 5
POLL_S = 0.002


def generated_source(folder: Path, *, docs: int = 4, entities: int = 16, relations: int = 24, dim: int = 16) -> Path:
    from ..devtools.generate import GenerateSpec, generate

    if not folder.exists():
        generate(folder, GenerateSpec(docs=docs, chunks_per_doc=3, entities=entities, relations=relations, dim=dim, seed=5))
    return folder


def _resolved(provider, config):  # noqa: ANN001, ANN202
    from ..targets import ResolvedTarget

    return ResolvedTarget(provider, config)


def migrate_in_process(kit: "Kit", source: "str | BackendConfig", target: "BackendConfig", *, workspace: str = "",
                       allow_rejects: bool = True, source_provider=None, target_provider=None,  # noqa: ANN001
                       batch_size: int = 50) -> MigrationJob:
    """Run the engine from ``source`` (a JSON working dir's path, or the config of ``source_provider``)
    into ``target``; a failure fails the test with the engine's message."""
    from ..migration.engine import migrate

    json_provider = get_provider("json")
    src_provider = source_provider or json_provider
    src_config = source if not isinstance(source, str) else json_provider.config_from_target(source, workspace=workspace)
    dst_provider = target_provider or kit.provider
    try:
        result = asyncio.run(migrate(_resolved(src_provider, src_config), _resolved(dst_provider, target),
                                     batch_size=batch_size, allow_rejects=allow_rejects))
    except HybridRAGBackendsError as exc:
        pytest.fail(f"migrating {src_provider.describe(src_config)} -> {dst_provider.describe(target)} failed: "
                    f"{type(exc).__name__}: {exc}", pytrace=False)
    assert result.job is not None
    return result.job


def round_trip(kit: "Kit", dataset: Optional[Tuple[Path, str]]) -> List[str]:
    """JSON -> the backend -> JSON, compared with a direct JSON -> JSON copy."""
    json_provider = get_provider("json")
    if dataset is None:
        source, workspace = str(generated_source(kit.scratch / "generated")), ""
    else:
        source, workspace = str(dataset[0]), dataset[1]
    middle = kit.fresh()
    direct_cfg = json_provider.config_from_target(str(kit.scratch / "direct"))
    back_cfg = json_provider.config_from_target(str(kit.scratch / "back"))
    direct = migrate_in_process(kit, source, direct_cfg, workspace=workspace, target_provider=json_provider)
    there = migrate_in_process(kit, source, middle, workspace=workspace)
    back = migrate_in_process(kit, middle, back_cfg, source_provider=kit.provider, target_provider=json_provider)
    problems = []
    for label, job in (("JSON -> backend", there), ("backend -> JSON", back)):
        if job.status is not MigrationStatus.COMPLETED or not (job.verification or {}).get("ok"):
            problems.append(f"{label}: job {job.status.value}, verification {json.dumps(job.verification)[:400]}")
    if there.failed_records != direct.failed_records:
        problems.append(f"JSON -> backend rejected {there.failed_records} records, a JSON -> JSON copy {direct.failed_records}")
    if back.failed_records:
        problems.append(f"backend -> JSON rejected {back.failed_records} records the backend holds")

    async def lossy() -> Dict[str, Dict[str, str]]:
        async with kit.provider.open(middle) as session:
            return {s.name: session.lossy_fields(s) for s in await session.list_stores()}

    drop = asyncio.run(lossy())
    expected = without(read_working_dir(Path(direct_cfg.working_dir)), drop)
    got = without(read_working_dir(Path(back_cfg.working_dir)), drop)
    for store in sorted(set(expected) | set(got)):
        a, b = expected.get(store, {}), got.get(store, {})
        if store not in got and a:
            problems.append(f"store {store}: absent after the round trip ({len(a)} records)")
            continue
        if store not in expected and b:
            problems.append(f"store {store}: appeared in the round trip ({len(b)} records)")
            continue
        missing = sorted(set(a) - set(b))
        extra = sorted(set(b) - set(a))
        differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        for what, keys in (("missing", missing), ("extra", extra), ("different", differ)):
            if keys:
                problems.append(f"store {store}: {len(keys)} record(s) {what} after the round trip, e.g. {keys[:3]}"
                                + (f": {b[keys[0]][0][:200]} instead of {a[keys[0]][0][:200]}" if what == "different" else ""))
    return problems


# -- a source holding a wrong-dimension vector ------------------------------------------------


@dataclass
class BadSource:
    path: Path
    store: str
    bad_key: str
    records: int  # records in the store, the bad one included


def _packed(row: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(row.astype(np.float16).tobytes())).decode("ascii")


def source_with_a_wrong_dimension_vector(folder: Path) -> BadSource:
    """A generated working dir whose ``vdb_entities.json`` keeps vectors in LightRAG's per-record
    ``vector`` field (no matrix, as some files have) and one record's vector has 3 extra dimensions."""
    generated_source(folder)
    path = folder / "vdb_entities.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    dim = data["embedding_dim"]
    matrix = np.frombuffer(base64.b64decode(data["matrix"]), dtype=np.float32).reshape(-1, dim)
    for i, row in enumerate(data["data"]):
        row["vector"] = _packed(matrix[i])
    bad = data["data"][len(data["data"]) // 2]
    bad["vector"] = _packed(np.linspace(-1, 1, dim + 3, dtype=np.float32))
    data["matrix"] = ""
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return BadSource(folder, "entities", bad["__id__"], len(data["data"]))


def rejects_problems(job: MigrationJob, source: BadSource) -> List[str]:
    from ..migration import jobstore

    problems = []
    if job.status is not MigrationStatus.COMPLETED:
        problems.append(f"the job is {job.status.value} ({job.last_error}); with --allow-rejects it must complete")
    if not (job.verification or {}).get("ok"):
        problems.append(f"verification failed: {json.dumps(job.verification)[:400]}")
    rejects = jobstore.read_rejects(job.job_id)
    keys = [(r["store"], r["key"]) for r in rejects]
    if keys != [(source.store, source.bad_key)]:
        problems.append(f"the job's rejects are {keys}, expected only ({source.store!r}, {source.bad_key!r})")
    elif "dimension" not in rejects[0]["reason"]:
        problems.append(f"the reject's reason does not say dimension: {rejects[0]['reason']}")
    cp = job.checkpoint(source.store)
    if cp is None or cp.migrated_count != source.records - 1:
        problems.append(f"{source.store}: {cp.migrated_count if cp else None} records copied, expected {source.records - 1}")
    return problems


# -- SIGKILL, then resume -----------------------------------------------------------------------


def job_file(home: Path) -> Optional[Path]:
    """The (first) job file under a HYBRIDRAG_HOME."""
    files = sorted((home / "jobs").glob("*/job.json"))
    return files[0] if files else None


def read_job(home: Path, newer_than_ns: int = 0) -> Optional[dict]:
    """The job file's content, when written after ``newer_than_ns`` (a killed run leaves a stale one)."""
    path = job_file(home)
    try:
        if path is None or path.stat().st_mtime_ns < newer_than_ns:
            return None
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None  # being replaced right now


def committed(job: dict) -> int:
    """Records a job file counts as committed (copied or rejected)."""
    return sum(cp["migrated_count"] + cp["rejected_count"] for cp in job["checkpoints"])


def _run_until(kit: "Kit", home: Path, args: List[str], after_records: int, delay: float) -> Tuple[Optional[int], Optional[dict], str]:
    """Start the CLI; SIGKILL it once ITS job file counts ``after_records`` records (plus ``delay``, so the
    kill lands anywhere in the next batch). Returns (exit code, job when killed, stderr)."""
    started = time.time_ns()
    proc = subprocess.Popen(kit.target.cli(*args), env=kit.target.subprocess_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=kit.scratch)
    seen = None
    deadline = time.monotonic() + 600
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            job = read_job(home, started)
            if job is not None and job["status"] == "in_progress" and committed(job) >= after_records:
                seen = job
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(POLL_S)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, seen, err


def _cli(kit: "Kit", home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(kit.target.cli(*args), env=kit.target.subprocess_env(home), capture_output=True, text=True,
                          timeout=900, cwd=kit.scratch)


def sigkill_run(kit: "Kit") -> Tuple[SourceStores, "BackendConfig", str]:
    """Migrate a generated knowledge base into a fresh location with the CLI, SIGKILL it at
    ``kill_points`` random points, resume each time; returns (the source's stores, the target's config,
    the CLI output of the run that completed)."""
    source = generated_source(kit.scratch / "kill-source", docs=20, entities=60, relations=90)
    workspace = kit.target.fresh_workspace(0)
    config = kit.target.config(workspace)
    home = kit.scratch / "kill-home"
    base = ["migrate", "--from", str(source), "--to", kit.target.target, "--target-workspace", workspace,
            "--batch-size", str(KILL_BATCH), "--json"]
    plan = _cli(kit, home, *base, "--dry-run")
    assert plan.returncode == 0, f"`migrate --dry-run` failed: {plan.stderr[-2000:]}"
    total = json.loads(plan.stdout)["plan"]["total_records"]
    rng = random.Random(20261214)
    points = sorted(rng.sample(range(KILL_BATCH * 4, total - KILL_BATCH * 4), kit.target.kill_points))
    kills = []
    for point in points:
        args = base + (["--resume"] if job_file(home) else [])
        code, seen, err = _run_until(kit, home, args, point, rng.uniform(0, 0.01))
        if seen is None:
            pytest.fail(f"the migration ended (exit {code}) before the kill planned after {point} of {total} records: "
                        f"{err[-1500:]}", pytrace=False)
        assert code == -signal.SIGKILL, f"the killed run exited {code}: {err[-1500:]}"
        kills.append(committed(seen))
    final = _cli(kit, home, *base, "--resume")
    out = final.stdout + final.stderr
    assert not _shows_password(out, kit), "the CLI output shows the target's password"
    assert final.returncode == 0, f"the resumed migration failed (exit {final.returncode}) after kills at {kills}: {out[-2500:]}"
    result = json.loads(final.stdout)
    assert result["status"] == "completed" and result["verification"]["ok"] is True, result
    assert result["migrated_records"] == total, f"{result['migrated_records']} records migrated, the source has {total}"
    jobs = json.loads(_cli(kit, home, "jobs", "--json").stdout)["jobs"]
    assert len(jobs) == 1, f"{len(jobs)} jobs: every resume must continue the same job"
    return read_working_dir(source), config, final.stdout


def _shows_password(text: str, kit: "Kit") -> bool:
    from urllib.parse import unquote, urlsplit

    if not kit.target.is_url:
        return False
    password = urlsplit(kit.target.target).password
    return bool(password) and unquote(password) in text

