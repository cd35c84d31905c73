"""Ingestion slowdown (issue 12): record_ingestion / timed_ainsert keep a bounded history under
HYBRIDRAG_HOME; ``status NAME`` warns, with the command to run, when recent ingestion is slower than the
database's baseline by at least ``performance_degradation_pct``, and not when it is less slow or the history
is too short (``--verbose`` says so). Histories are read back with a plain JSON parse."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import realdata_dirs
from test_hints import hints_in, placeholders

from hybridrag_backends.errors import ConfigError, NotFoundError
from hybridrag_backends.ingestion import (
    BASELINE_RUNS,
    HISTORY_RUNS,
    RECENT_RUNS,
    history_path,
    ingestion_check,
    record_ingestion,
)
from hybridrag_backends.models import DatabaseEntry
from hybridrag_backends.registry import Registry

MACKING = next(d for d in realdata_dirs() if d.name.startswith("macking3"))


def register(name: str, path: Path, **backend_config) -> DatabaseEntry:
    registry = Registry.load()
    registry.add(DatabaseEntry(name=name, path=str(path), backend_config=backend_config or None))
    registry.save()
    entry = Registry.load().get(name)
    assert entry is not None
    return entry


def cli(*args: str):
    from click.testing import CliRunner

    from hybridrag_backends.cli.main import build_cli

    return CliRunner().invoke(build_cli(), list(args), env={"COLUMNS": "400"}, catch_exceptions=False)


def record_rates(name: str, rates, documents: int = 12) -> None:
    for rate in rates:
        record_ingestion(name, documents, documents / rate)


def status(name: str, *flags: str) -> dict:
    result = cli("status", name, "--json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def slowdown_warnings(out: dict) -> list:
    return [w for w in out["metrics"]["warnings"] if "has slowed down" in w]


def test_history_is_bounded_and_keeps_its_baseline():
    register("kb", MACKING)
    record_rates("kb", [4, 6, 5, 100, 3])  # the first five: the baseline is their median (an outlier does not move it)
    record_rates("kb", [2.0] * (HISTORY_RUNS + 10))
    data = json.loads(history_path("kb").read_text())  # a plain parse of what is on disk
    assert len(data["runs"]) == HISTORY_RUNS  # bounded: the oldest dropped ...
    assert data["runs"][0]["seq"] == BASELINE_RUNS + 11 and data["runs"][-1]["seq"] == BASELINE_RUNS + HISTORY_RUNS + 10
    assert data["baselines"]["json"]["docs_per_second"] == 5  # ... the baseline kept
    assert all(r["backend"] == "json" and r["documents"] == 12 for r in data["runs"])
    check = ingestion_check(Registry.load().get("kb"))
    assert (check.baseline, check.recent, check.slowdown_pct, check.slowed) == (5, 2.0, 60.0, True)  # default 50%


@pytest.mark.parametrize("recent, warns", [(6.0, True), (5.0, True), (6.4, False), (8.0, False)])
def test_status_warns_from_the_threshold_up_and_not_below(recent, warns):
    register("kb", MACKING, performance_degradation_pct=25)  # HybridRAG's own key
    record_rates("kb", [8.0] * BASELINE_RUNS + [recent] * RECENT_RUNS)
    out = status("kb")
    expected = (8.0 - recent) / 8.0 * 100
    assert math.isclose(out["ingestion"]["slowdown_pct"], expected)
    assert out["ingestion"]["baseline_docs_per_second"] == 8.0 and out["ingestion"]["recent_docs_per_second"] == recent
    assert out["ingestion"]["threshold_pct"] == 25 and out["ingestion"]["slowed"] is warns
    found = slowdown_warnings(out)
    assert len(found) == warns
    human = cli("status", "kb")
    assert ("has slowed down" in human.stdout) is warns
    if warns:
        warning = found[0]
        assert f"{expected:.0f}% slower, warning at 25% (performance_degradation_pct)" in warning
        ((command, explained),) = hints_in(warning)
        assert command == "hybridrag-backends migrate --from kb --to PG_URL --switch"
        assert placeholders(command) == set(explained) == {"PG_URL"}
        assert "embedding_model=MODEL&embedding_dim=DIM" in explained["PG_URL"]  # kb names no embedding model
        assert "USER:PASSWORD@HOST" in explained["PG_URL"] and "***" not in explained["PG_URL"]
        assert [c for c, _ in hints_in(human.stdout)] == [command]  # printed the same, one line


def test_too_short_a_history_gives_no_warning_and_verbose_says_why():
    register("kb", MACKING)
    record_rates("kb", [8.0] * BASELINE_RUNS + [0.5] * (RECENT_RUNS - 1))  # 94% slower, but only 2 recent runs
    out = status("kb")
    assert not slowdown_warnings(out)
    assert out["ingestion"]["enough_history"] is False and out["ingestion"]["slowdown_pct"] is None
    assert out["ingestion"]["runs"] == BASELINE_RUNS + RECENT_RUNS - 1
    quiet = cli("status", "kb")
    assert "ingestion:" not in quiet.stdout and "slowed" not in quiet.stdout
    verbose = cli("status", "kb", "--verbose")
    assert (f"ingestion: {BASELINE_RUNS + RECENT_RUNS - 1} run(s) recorded on json; comparing recent ingestion "
            f"with its baseline needs {BASELINE_RUNS + RECENT_RUNS}") in verbose.stdout
    record_rates("kb", [0.5])
    assert slowdown_warnings(status("kb"))  # one more run and it is there
    assert "ingestion: recent 0.5 docs/s" in cli("status", "kb", "-v").stdout


def test_an_entry_with_its_own_postgres_settings_gets_the_complete_command():
    """HybridRAG's backend migrate reads backend_config.connection_string of a JSON entry: --to postgres."""
    register("kb", MACKING, connection_string="postgresql://alice@db.example:5433/kb")
    record_rates("kb", [8.0] * BASELINE_RUNS + [1.0] * RECENT_RUNS)
    ((command, explained),) = hints_in(slowdown_warnings(status("kb"))[0])
    assert command == "hybridrag-backends migrate --from kb --to postgres --switch" and not explained


def test_each_backend_has_its_own_baseline(tmp_path):
    register("kb", MACKING)
    record_rates("kb", [8.0] * BASELINE_RUNS + [2.0] * RECENT_RUNS)
    record_rates("kb", [3.0] * (BASELINE_RUNS + RECENT_RUNS - 1), documents=6)
    data = json.loads(history_path("kb").read_text())
    assert set(data["baselines"]) == {"json"}  # runs recorded for the same backend keep extending json's history
    for i in range(BASELINE_RUNS + RECENT_RUNS - 1):
        record_ingestion("kb", 6, 1.0, backend="postgres")  # after a migration, on the new backend
    pg = ingestion_check(DatabaseEntry(name="kb", path="/srv/kb", backend_type="postgres"))
    assert pg.runs == BASELINE_RUNS + RECENT_RUNS - 1 and pg.slowdown_pct is None  # json's history does not count
    record_ingestion("kb", 6, 3.0, backend="PostgreSQL")  # an alias, as BackendType reads it
    pg = ingestion_check(DatabaseEntry(name="kb", path="/srv/kb", backend_type="postgres"))
    assert pg.baseline == 6.0 and pg.recent == 6.0 and pg.slowdown_pct == 0.0
    assert json.loads(history_path("kb").read_text())["baselines"]["postgres"]["docs_per_second"] == 6.0


def test_bad_input_is_refused_naming_the_field_and_records_nothing():
    register("kb", MACKING)
    for documents, seconds, field in [(0, 1.0, "documents"), (1.5, 1.0, "documents"), (True, 1.0, "documents"),
                                      (3, 0, "seconds"), (3, -1.0, "seconds"), (3, float("nan"), "seconds")]:
        with pytest.raises(ConfigError) as info:
            record_ingestion("kb", documents, seconds)
        assert info.value.field == field
    with pytest.raises(NotFoundError, match="no database named 'nope'"):
        record_ingestion("nope", 1, 1.0)
    with pytest.raises(ConfigError):
        record_ingestion("../escape", 1, 1.0, backend="json")
    assert not history_path("kb").exists()
    history_path("kb").parent.mkdir(parents=True, exist_ok=True)
    history_path("kb").write_text("{not json")
    out = status("kb")  # an unreadable history is a warning, never a broken status
    assert any("ingestion history" in w and "delete it" in w for w in out["metrics"]["warnings"])
    assert out["ingestion"] is None


LIGHTRAG_INSERT = r"""
import asyncio, json, os
import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer
from hybridrag_backends.hybridrag import lightrag_settings, timed_ainsert
from hybridrag_backends.registry import Registry

class Chars:
    def encode(self, text): return [ord(c) for c in text]
    def decode(self, tokens): return "".join(map(chr, tokens))

async def embed(texts): return np.ones((len(texts), 16), dtype=np.float32)
async def llm(*args, **kwargs): return ""

async def main():
    kwargs, env = lightrag_settings(Registry.load().get("kb"))
    os.environ.update(env)
    rag = LightRAG(**kwargs, llm_model_func=llm, embedding_func=EmbeddingFunc(embedding_dim=16, func=embed),
                   tokenizer=Tokenizer("chars", Chars()))
    await rag.initialize_storages()
    track = await timed_ainsert(rag, "kb", ["The first document.", "The second document."], ids=["doc-a", "doc-b"])
    docs = await rag.full_docs.get_by_ids(["doc-a", "doc-b"])
    await rag.finalize_storages()
    print(json.dumps({"track": track, "docs": [d["content"] if d else None for d in docs]}))

asyncio.run(main())
"""


def test_timed_ainsert_times_and_records_a_real_lightrag_insert(tmp_path):
    working_dir = tmp_path / "kb"
    working_dir.mkdir()
    register("kb", working_dir)
    proc = subprocess.run([sys.executable, "-c", LIGHTRAG_INSERT], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["docs"] == ["The first document.", "The second document."] and out["track"]  # LightRAG inserted them
    runs = json.loads(history_path("kb").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["documents"] == 2 and runs[0]["backend"] == "json" and runs[0]["seconds"] > 0
    # and LightRAG's own files hold them (a plain parse)
    stored = json.loads((working_dir / "kv_store_full_docs.json").read_text(encoding="utf-8"))
    assert set(stored) == {"doc-a", "doc-b"}
    shutil.rmtree(working_dir)
