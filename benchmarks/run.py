"""Cost curves: every migration direction at several sizes, against LightRAG's own path and the physical floor.

    .venv/bin/python benchmarks/run.py --sizes 0.1,1,5        # the README's table and plots

One command, one run. For each size it generates (once, cached under ``benchmarks/.data/``) a 1536-d LightRAG
JSON database (the generator's 1 GB migration-benchmark preset, scaled: see harness/data.py), then measures,
each in a subprocess of its own (wall time, peak RSS from ``wait4``; the PostgreSQL server's memory polled over
its process tree):

* ``status``: cold (the files evicted from the page cache) and warm (median of ``--status-runs``);
* our migrations, copy + index builds + verification, with the time per phase (harness/child_migrate.py):
  JSON -> JSON, JSON -> PostgreSQL, PostgreSQL -> JSON, PostgreSQL -> PostgreSQL (another database of the same
  server), JSON -> MongoDB (the in-process fake of tests/mongo_fake.py: labelled as fake);
* baselines: LightRAG 1.5.7's JSON classes loading the database; LightRAG's PostgreSQL storage API copying it
  (whole stores while ``--lightrag-budget`` allows, else sampled and extrapolated, and labelled so);
* the physical floor: ``cat`` of the files (cold and warm), ``cp`` of them, PostgreSQL ``COPY`` out and in of the
  rows our migration wrote (unindexed tables) and the bare HNSW builds on them (harness/pg.py).

Results go to ``benchmarks/results/NAME.json`` (written after every step, so a failure keeps what was measured);
then ``report.py`` makes the markdown table, the PNG plots (``benchmarks/results/NAME/``) and, unless
``--no-readme``, updates ``benchmarks/README.md`` between its markers. PostgreSQL: ``--url``, else
HYBRIDRAG_TEST_POSTGRES_URL, else the sandbox (``scripts/pg-sandbox start``, as root; it reads
HYBRIDRAG_PG_ROOT). A benchmark, not a test: it asserts nothing, and the machine's load is recorded with every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import BENCH, REPO, data, measure, pg, profile  # noqa: E402

import report  # noqa: E402

PYTHON = sys.executable
CHILD = BENCH / "harness"
STEPS = ("status", "files-floor", "lightrag-json", "json-json", "json-pg", "pg-json", "pg-pg", "pg-floor",
         "lightrag-pg", "json-mongo-fake")
NEEDS_PG_SOURCE = ("pg-json", "pg-pg", "pg-floor")  # read the database json-pg filled
MODEL = "bench-embed"
WORKSPACE = "bench"
FAKE_MONGO = "mongodb://bench:bench-fake-pw@fake-mongo.invalid:27017/bench"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=f"steps: {', '.join(STEPS)}")
    ap.add_argument("--sizes", default="0.1,1,5", help="database sizes in GB, comma-separated (default 0.1,1,5)")
    ap.add_argument("--only", default="", help="run only these steps (comma-separated)")
    ap.add_argument("--skip", default="", help="skip these steps (comma-separated)")
    ap.add_argument("--lightrag-budget", type=float, default=900.0, metavar="SECONDS",
                    help="time for LightRAG's PostgreSQL API copy per size; stores it cannot finish are sampled "
                         "and extrapolated, and labelled so (default 900; 0 = no limit)")
    ap.add_argument("--mongo-max-gb", type=float, default=0.1,
                    help="largest size for JSON -> MongoDB: the fake (mongomock) scans a collection for every upsert, so its time grows with the square of the size (default 0.1)")
    ap.add_argument("--status-runs", type=int, default=3, help="warm status runs (median; default 3)")
    ap.add_argument("--batch-size", type=int, default=1000, help="migrate --batch-size (default 1000)")
    ap.add_argument("--maintenance-work-mem", default="1GB",
                    help="for our HNSW builds and the floor's (default 1GB)")
    ap.add_argument("--url", default=None, help="PostgreSQL server URL (default: HYBRIDRAG_TEST_POSTGRES_URL or the sandbox)")
    ap.add_argument("--profile", default="", metavar="STEPS",
                    help="after the timed run, run these directions again under py-spy (e.g. json-json,pg-json)")
    ap.add_argument("--name", default=None, help="results name (default: run-<UTC date and time>)")
    ap.add_argument("--label", default="", help="shown with the figures, e.g. 'development run, shared machine'")
    ap.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    ap.add_argument("--regenerate", action="store_true", help="generate the databases again")
    args = ap.parse_args(argv)
    args.sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    wanted = [s for s in args.only.split(",") if s] or list(STEPS)
    skipped = {s for s in args.skip.split(",") if s}
    args.profile = [s for s in args.profile.split(",") if s]
    unknown = (set(wanted) | skipped | set(args.profile)) - set(STEPS)
    if unknown:
        ap.error(f"unknown step(s) {', '.join(sorted(unknown))}; the steps are {', '.join(STEPS)}")
    args.steps = [s for s in STEPS if s in wanted and s not in skipped]
    return args


class Run:
    """One harness run: the results document, saved after every step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name = args.name or "run-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
        self.path = BENCH / "results" / f"{self.name}.json"
        self.scratch = data.DATA / "scratch"
        self.home = Path(tempfile.mkdtemp(prefix="hybridrag-bench-home-"))
        self.env = {**os.environ, "HYBRIDRAG_HOME": str(self.home), "HYBRIDRAG_CONFIG": str(self.home / "registry.yaml"),
                    "PYTHONUNBUFFERED": "1"}
        self.doc: Dict[str, Any] = {
            "schema": 1, "name": self.name, "label": args.label,
            "command": "benchmarks/run.py " + shlex.join(sys.argv[1:]),
            "started_at": _now(), "finished_at": None, "machine": measure.machine(),
            "load_before": measure.load(), "load_after": None,
            "options": {k: getattr(args, k) for k in ("sizes", "steps", "lightrag_budget", "mongo_max_gb",
                                                       "status_runs", "batch_size", "maintenance_work_mem")},
            "postgres": None, "sizes": [],
        }
        self.base_url: Optional[str] = None
        self.server_pid: Optional[int] = None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.doc, indent=1, sort_keys=True))

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {text}", flush=True)

    def postgres(self) -> str:
        if self.base_url is None:
            self.base_url = pg.server_url(self.args.url)
            info = pg.run(pg.server_info(self.base_url))
            self.server_pid = info.pop("postmaster_pid")
            info["memory_watched"] = self.server_pid is not None
            self.doc["postgres"] = info
        return self.base_url

    # -- one size -------------------------------------------------------------------------

    def size(self, size_gb: float) -> None:
        db = data.ensure_database(size_gb, regenerate=self.args.regenerate, say=self.say)
        results: Dict[str, Any] = {}
        self.doc["sizes"].append({"size_gb": size_gb, "database": db.summary(), "results": results})
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        ctx = SizeContext(self, db, results)
        try:
            for step in self.args.steps:
                self.say(f"{size_gb:g} GB: {step}")
                try:
                    getattr(ctx, "step_" + step.replace("-", "_"))()
                except Exception as exc:  # keep going: one broken step must not lose the others
                    results.setdefault(step, {})["error"] = f"{type(exc).__name__}: {exc}"[:2000]
                    self.say(f"  {step} failed: {exc}")
                self.save()
        finally:
            ctx.cleanup()
            shutil.rmtree(self.scratch, ignore_errors=True)

    def finish(self) -> None:
        self.doc["finished_at"] = _now()
        self.doc["load_after"] = measure.load()
        self.save()
        shutil.rmtree(self.home, ignore_errors=True)


class SizeContext:
    """The steps of one size. Each fills ``results[<id>]`` with one entry per measured thing."""

    def __init__(self, run: Run, db: data.Database, results: Dict[str, Any]) -> None:
        self.run, self.db, self.results = run, db, results
        self.args = run.args
        self.pg_source: Optional[str] = None  # the database json-pg filled
        self.databases: List[str] = []

    # -- helpers --------------------------------------------------------------------------

    def record(self, key: str, m: measure.Measured, *, records: Optional[int] = None, **extra: Any) -> Dict[str, Any]:
        records = self.db.records if records is None else records
        entry = {"seconds": round(m.seconds, 3), "peak_rss_mb": round(m.peak_rss_mb, 1),
                 "server_peak_mb": m.server_peak_mb, "records": records,
                 "mb_per_s": round(self.db.bytes / 1e6 / m.seconds, 1),
                 "records_per_s": round(records / m.seconds), "load_before": round(m.load_before, 2),
                 "load_after": round(m.load_after, 2), "exit_code": m.exit_code, "rss_method": m.rss_method}
        if m.exit_code != 0:
            entry["error"] = (m.stderr.strip() or m.stdout.strip())[-2000:]
        entry.update(extra)
        self.results[key] = entry
        self.run.say(f"  {key}: {m.seconds:.1f} s, peak RSS {m.peak_rss_mb:.0f} MB"
                     + (f", server {m.server_peak_mb:.0f} MB" if m.server_peak_mb else "")
                     + (f"  ERROR exit {m.exit_code}" if m.exit_code else ""))
        return entry

    def child(self, script: str, *argv: str, server: bool = False) -> measure.Measured:
        return measure.run([PYTHON, str(CHILD / script), *argv], env=self.run.env,
                           server_pid=self.run.server_pid if server else None)

    def migrate(self, key: str, source: str, new_target: Callable[[], str], *, server: bool = False,
                fake: bool = False, extra: tuple = ()) -> str:
        """Our migration ``source`` -> ``new_target()`` in a child; with --profile, once more into another
        new target under py-spy (not timed). Returns the timed run's target."""
        def argv(target: str) -> List[str]:  # a workspace for servers; the JSON dirs are plain working dirs
            return [str(CHILD / "child_migrate.py"), source, target, "--batch-size", str(self.args.batch_size),
                    *(("--workspace", WORKSPACE) if "://" in source else ()),
                    *(("--target-workspace", WORKSPACE) if "://" in target else ()), *extra]

        target = new_target()
        m = measure.run([PYTHON, *argv(target)], env=self.run.env, server_pid=self.run.server_pid if server else None)
        out = _last_json(m.stdout) or {}
        entry = self.record(key, m, records=out.get("records", 0), phases=out.get("phases"),
                            verified=out.get("verified", False), notes=out.get("notes", []), fake=fake)
        if out.get("error"):
            entry["error"] = out["error"]
        elif out.get("records") != self.db.records:  # every direction copies the whole generated database
            entry["error"] = f"copied {out.get('records')} records of {self.db.records}"
        if key in self.args.profile:
            out_dir = BENCH / "results" / self.run.name
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"profile-{data.size_label(self.db.size_gb)}-{key}.txt"
            self.run.say(f"  profiling {key} with py-spy -> {path.relative_to(REPO)}")
            code = profile.record([PYTHON, *argv(new_target())], path, env=self.run.env, cwd=REPO)
            entry["profile"] = {"file": str(path.relative_to(BENCH)), "exit_code": code,
                                **profile.summarise(path.read_text() if path.exists() else "")}
        return target

    def new_dir(self, name: str) -> Callable[[], str]:
        def make() -> str:
            path = self.run.scratch / name
            shutil.rmtree(path, ignore_errors=True)
            return str(path)
        return make

    def new_pg_target(self, prefix: str) -> Callable[[], str]:
        return lambda: self.pg_url(self.new_database(prefix), maintenance_work_mem=self.args.maintenance_work_mem)

    def new_database(self, prefix: str) -> str:
        name = pg.run(pg.create_database(self.run.postgres(), prefix))
        self.databases.append(name)
        return name

    def drop_databases(self, keep: Optional[str] = None) -> None:
        for name in [n for n in self.databases if n != keep]:
            try:
                pg.run(pg.drop_database(self.run.postgres(), name))
                self.databases.remove(name)
            except Exception as exc:
                self.run.say(f"  could not drop database {name}: {exc}")

    def pg_url(self, database: str, **query: str) -> str:
        return pg.with_database(self.run.postgres(), database, embedding_model=MODEL, **query)

    def cleanup(self) -> None:
        self.drop_databases()

    # -- steps ----------------------------------------------------------------------------

    def step_status(self) -> None:
        files = self.db.files
        status = [PYTHON, "-m", "hybridrag_backends", "status", str(self.db.path), "--json"]
        cat = ["cat", *map(str, files)]
        for key, cmd in (("cat-cold", cat), ("status-cold", status)):
            data.drop_from_page_cache(files)
            resident = data.resident_fraction(files)
            m = measure.run(cmd, env=self.run.env, discard_output=cmd is cat)
            # cold when (almost) none of the files is in the page cache; unknown without fincore: say warm
            self.record(key, m, cache="cold" if resident is not None and resident < 0.05 else "warm",
                        resident_before=None if resident is None else round(resident, 3))
            if key == "status-cold":
                self.check_counts(m)
        warm: Dict[str, List[measure.Measured]] = {"cat-warm": [], "status-warm": []}
        for _ in range(max(1, self.args.status_runs)):
            warm["cat-warm"].append(measure.run(cat, env=self.run.env, discard_output=True))
            warm["status-warm"].append(measure.run(status, env=self.run.env))
        for key, runs in warm.items():
            middle = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
            self.record(key, middle, cache="warm", runs=[round(r.seconds, 3) for r in runs],
                        resident_before=data.resident_fraction(files),
                        peak_rss_mb_max=round(max(r.peak_rss_mb for r in runs), 1))

    def check_counts(self, m: measure.Measured) -> None:
        """status must report the generator's record counts (else its figure is not worth printing)."""
        out = _last_json(m.stdout, whole=True) or {}
        counts = (out.get("metrics") or {}).get("store_counts") or {}
        self.results["status-cold"]["counts_match"] = sum(counts.values()) == self.db.records

    def step_files_floor(self) -> None:
        target = self.run.scratch / "cp"
        m = measure.run(["cp", "-r", str(self.db.path), str(target)], env=self.run.env)
        self.record("cp", m)
        shutil.rmtree(target, ignore_errors=True)

    def step_lightrag_json(self) -> None:
        before = self.db.fingerprint()
        m = self.child("child_lightrag_json.py", str(self.db.path), str(self.db.spec.dim))
        out = _last_json(m.stdout) or {}
        self.record("lightrag-json-load", m, initialize_seconds=round(out.get("seconds", 0.0), 3))
        if self.db.fingerprint() != before:
            raise RuntimeError(f"LightRAG rewrote files of {self.db.path}: rerun with --regenerate")

    def step_json_json(self) -> None:
        self.migrate("json-json", str(self.db.path), self.new_dir("json-json"))
        shutil.rmtree(self.run.scratch / "json-json", ignore_errors=True)

    def step_json_pg(self) -> None:
        target = self.migrate("json-pg", str(self.db.path), self.new_pg_target("bench_src"), server=True)
        if self.results["json-pg"].get("verified"):
            self.pg_source = _database_of(target)  # read by pg-json, pg-pg and the floor
        self.drop_databases(keep=self.pg_source)  # the profile run's

    def pg_source_url(self) -> str:
        if self.pg_source is None:
            raise RuntimeError("needs the database filled by the json-pg step, which did not run or failed")
        return self.pg_url(self.pg_source, embedding_dim=str(self.db.spec.dim))

    def step_pg_json(self) -> None:
        self.migrate("pg-json", self.pg_source_url(), self.new_dir("pg-json"), server=True)
        shutil.rmtree(self.run.scratch / "pg-json", ignore_errors=True)

    def step_pg_pg(self) -> None:
        self.migrate("pg-pg", self.pg_source_url(), self.new_pg_target("bench_dst"), server=True)
        self.drop_databases(keep=self.pg_source)

    def step_pg_floor(self) -> None:
        from hybridrag_backends.targets import resolve_target

        source = self.pg_source_url()
        config = resolve_target(source).config
        watch = measure.ServerWatch(self.run.server_pid) if self.run.server_pid else None
        load_before = os.getloadavg()[0]
        if watch:
            watch.start()
        try:
            out = pg.run(pg.floor(source, self.run.scratch, hnsw_m=config.hnsw_m, hnsw_ef=config.hnsw_ef,
                                  maintenance_work_mem=self.args.maintenance_work_mem))
        finally:
            server = watch.stop() if watch else None
        for key, seconds in (("pg-copy-out", out["copy_out_seconds"]), ("pg-copy-in", out["copy_in_seconds"]),
                             ("pg-hnsw", out["hnsw_seconds"])):
            self.record(key, measure.Measured(seconds, 0.0, 0, "", "", server, load_before, os.getloadavg()[0]),
                        **{k: v for k, v in out.items() if not k.endswith("_seconds")})
            self.results[key]["peak_rss_mb"] = None  # runs in the harness process: no client of its own
        self.pg_source = None  # the last step reading it
        self.drop_databases()

    def step_lightrag_pg(self) -> None:
        name = self.new_database("bench_lightrag")
        m = self.child("child_lightrag_pg.py", str(self.db.path), pg.with_database(self.run.postgres(), name),
                       WORKSPACE, str(self.args.lightrag_budget), server=True)
        stores = _last_json(m.stdout) or {}
        calls = sum(s["seconds"] for s in stores.values())
        estimate = sum(s["seconds"] * s["records"] / s["sent"] if s["sent"] else 0.0 for s in stores.values())
        extrapolated = sorted(n for n, s in stores.items() if s["sent"] < s["records"])
        entry = self.record("lightrag-pg-api", m, stores=stores, measured_seconds=round(m.seconds, 3),
                            calls_seconds=round(calls, 3), extrapolated=extrapolated)
        if extrapolated:  # the whole copy's time: the child's own overhead plus every store at its measured rate
            entry["seconds"] = round(m.seconds - calls + estimate, 3)
            entry["mb_per_s"] = round(self.db.bytes / 1e6 / entry["seconds"], 1)
            entry["records_per_s"] = round(self.db.records / entry["seconds"])
        self.drop_databases(keep=self.pg_source)

    def step_json_mongo_fake(self) -> None:
        if self.db.size_gb > self.args.mongo_max_gb:
            self.results["json-mongo-fake"] = {"skipped": f"over --mongo-max-gb {self.args.mongo_max_gb:g}", "fake": True}
            return
        self.migrate("json-mongo-fake", str(self.db.path), lambda: FAKE_MONGO, fake=True, extra=("--mongo-fake",))


def _last_json(text: str, whole: bool = False) -> Optional[Dict[str, Any]]:
    try:
        if whole:
            return json.loads(text)
        lines = [line for line in text.strip().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def _database_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    run = Run(args)
    run.say(f"results -> {run.path.relative_to(REPO)}; steps {', '.join(args.steps)}; sizes {args.sizes}")
    try:
        for size_gb in args.sizes:
            run.size(size_gb)
    finally:
        run.finish()
    report.build(run.path, readme=not args.no_readme, say=run.say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
