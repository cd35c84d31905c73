"""The cost-curve harness's own machinery (benchmarks/): the report's figures, plots and README section, the
profile summary, the peak-RSS measurement and the per-phase timing of a real migration. Fast: no benchmark runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import report  # noqa: E402
from harness import measure, profile  # noqa: E402


def measured(seconds: float, rss: float = 100.0, **extra) -> dict:
    return {"seconds": seconds, "peak_rss_mb": rss, "server_peak_mb": None, "records": 1000,
            "records_per_s": round(1000 / seconds), "mb_per_s": round(1000 / seconds, 1), "load_before": 1.5, **extra}


def phases(read: float, write: float, index: float, verify: float) -> dict:
    return {"read": read, "write": write, "index": index, "verify": verify}


def size(size_gb: float, json_pg: float, lightrag: float, copy_in: float, hnsw: float) -> dict:
    return {"size_gb": size_gb, "database": {"bytes": int(size_gb * 1e9), "records": 1000},
            "results": {
                "json-pg": measured(json_pg, 250.0, phases=phases(10, 20, 40, 15), verified=True),
                "json-json": measured(20.0, 150.0, phases=phases(3, 9, 0, 6), verified=True),
                "pg-copy-in": measured(copy_in, peak_rss_mb=None),
                "pg-hnsw": measured(hnsw, peak_rss_mb=None),
                "lightrag-pg-api": measured(lightrag, 180.0, measured_seconds=900.0, extrapolated=["relationships"],
                                            stores={"relationships": {"sent": 5000, "records": 60000, "seconds": 800.0},
                                                    "chunks": {"sent": 4940, "records": 4940, "seconds": 40.0}}),
                "pg-json": {"error": "RuntimeError: the server went away", "seconds": 3.0},
                "json-mongo-fake": {"skipped": "over --mongo-max-gb 0.1", "fake": True},
            }}


def document(sizes: list) -> dict:
    return {"name": "unit", "label": "a unit test", "command": "benchmarks/run.py --sizes 0.1,1",
            "started_at": "2026-12-02 07:00 UTC", "finished_at": "2026-12-02 07:40 UTC", "load_before": [1.0, 1.0, 1.0],
            "load_after": [2.0, 1.5, 1.0], "options": {"maintenance_work_mem": "1GB", "lightrag_budget": 900.0,
                                                      "batch_size": 1000},
            "machine": {"cores": 2, "cpu": "test cpu", "memory_gb": 8, "system": "Linux", "python": "3.11"},
            "postgres": {"version": "17", "extensions": {"vector": "0.8.0"}}, "sizes": sizes}


def row_of(text: str, size_name: str, label: str) -> list:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[0] == size_name and cells[1].startswith(label):
            return cells
    raise AssertionError(f"no row {size_name} / {label} in:\n{text}")


def test_report_ratios_phases_and_labels(tmp_path):
    doc = document([size(0.1, 12.0, 180.0, 0.6, 11.0), size(1.0, 95.0, 950.0, 20.0, 60.0)])
    text = report.render(doc, [], tmp_path)
    head = row_of(text, "size", "step")
    one = dict(zip(head, row_of(text, "1 GB", "JSON -> PostgreSQL")))
    assert one["vs LightRAG"] == f"{950 / 95:.0f}x"  # LightRAG's seconds over ours
    assert one["x floor"] == f"{95 / (20 + 60):.2f}x"  # ours over COPY in + bare HNSW
    assert float(one["other"]) == pytest.approx(95 - (10 + 20 + 40 + 15))
    small = dict(zip(head, row_of(text, "0.1 GB", "JSON -> PostgreSQL")))
    assert small["x floor"] == f"{12 / 11.6:.2f}x"
    assert "(extrapolated)" in row_of(text, "1 GB", "LightRAG 1.5.7 PostgreSQL API")[1]
    assert "relationships 5,000 of 60,000" in text  # the footnote names what was sampled
    assert "chunks 4,940" not in text  # a store measured whole is not listed as extrapolated
    assert row_of(text, "1 GB", "PostgreSQL -> JSON")[2].startswith("failed: RuntimeError")
    assert "over --mongo-max-gb" in row_of(text, "1 GB", "JSON -> MongoDB (in-process fake)")[2]
    assert f"{95 / 80:.2f}x -> **met**" in text  # 1 GB JSON -> PG within 1.2x of the floor
    assert f"{min(180 / 12, 950 / 95):.1f}x -> **met**" in text  # the lowest ratio vs LightRAG, over sizes
    assert "5 GB JSON -> PostgreSQL <= 10 minutes: - -> **not measured**" in text


def test_report_target_not_met_and_failed_rows_stay_out_of_ratios(tmp_path):
    doc = document([size(1.0, 110.0, 300.0, 20.0, 60.0)])
    doc["sizes"][0]["results"]["lightrag-pg-api"]["error"] = "boom"
    text = report.render(doc, [], tmp_path)
    assert f"{110 / 80:.2f}x -> **NOT met**" in text
    one = dict(zip(row_of(text, "size", "step"), row_of(text, "1 GB", "JSON -> PostgreSQL")))
    assert one["vs LightRAG"] == "-"  # a failed baseline gives no ratio
    assert "LightRAG's API path at every size (lowest): - -> **not measured**" in text


def test_plots_are_pngs_with_the_phase_bar_at_1_gb(tmp_path):
    import matplotlib.image

    doc = document([size(0.1, 12.0, 180.0, 0.6, 11.0), size(1.0, 95.0, 950.0, 20.0, 60.0)])
    made = report.make_plots(doc, tmp_path)
    assert sorted(p.name for p in made) == ["memory-vs-size.png", "phases-1gb.png", "time-vs-size.png"]
    for path in made:
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400


def test_readme_section_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
    results = tmp_path / "results" / "unit.json"
    results.parent.mkdir()
    results.write_text(json.dumps(document([size(1.0, 95.0, 950.0, 20.0, 60.0)])))
    report.build(results, readme_path=readme, say=lambda _: None)
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n" + report.BEGIN + "\n") and text.endswith(report.END + "\nafter\n")
    assert "old table" not in text and "Run `unit` (a unit test)" in text
    assert "![time-vs-size](results/unit/time-vs-size.png)" in text  # links relative to the README
    assert (results.with_suffix("") / "table.md").read_text() in text
    report.build(results, readme_path=readme, say=lambda _: None)
    assert readme.read_text() == text  # idempotent
    with pytest.raises(ValueError, match="markers"):
        report.replace_section("no markers here", "x")


def test_the_benchmarks_readme_has_the_markers_once():
    text = (REPO / "benchmarks" / "README.md").read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert text.index(report.BEGIN) < text.index(report.END)


def test_profile_summary_self_and_total_shares():
    collapsed = ("<module> (run.py:1);main (pkg/a.py:10);parse (pkg/b.py:5) 30\n"
                 "<module> (run.py:1);main (pkg/a.py:10);write (pkg/c.py:7) 10\n"
                 "<module> (run.py:1);main (pkg/a.py:12);parse (pkg/b.py:6);parse (pkg/b.py:5) 10\n")
    summary = profile.summarise(collapsed)
    assert summary["samples"] == 50
    assert dict(summary["self"]) == {"b.py:parse": 80.0, "c.py:write": 20.0}
    total = dict(summary["total"])
    assert total["a.py:main"] == 100.0 and total["b.py:parse"] == 80.0  # a recursive frame counts once
    assert "run.py:<module>" not in total  # the entry point every stack shares says nothing


def test_peak_rss_is_the_steps_own_not_the_harness():
    ballast = bytearray(300 * 2**20)  # the parent (this test) is big: a forked child must not inherit its mark
    small = measure.run(["true"])
    big = measure.run([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert big.exit_code == 0 and big.peak_rss_mb >= 200
    if measure.GNU_TIME:
        assert small.peak_rss_mb < 50, small
    else:  # without GNU time the figure includes the parent's and says so
        assert small.rss_method.startswith("wait4")
    del ballast


def test_child_migrate_times_the_phases_of_a_real_migration(tmp_path):
    from hybridrag_backends.devtools.generate import GenerateSpec, generate

    source = generate(tmp_path / "src", GenerateSpec(docs=6, chunks_per_doc=2, entities=12, relations=20, dim=8))
    target = tmp_path / "dst"
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "harness" / "child_migrate.py"),
                          str(source.directory), str(target), "--batch-size", "5"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["records"] == sum(source.record_counts.values()) and result["verified"]
    # every batch went through the timers: one write_batch per batch of 5; the target is read back to verify,
    # the JSON source is not (an immutable file set: its side of the digest was summed while copying)
    per_store = [n for name, n in source.record_counts.items() if not name.endswith(".graphml")] + [source.nodes,
                                                                                                    source.edges]
    batches = sum(-(-n // 5) for n in per_store)
    keys = ("copy.write_batch", "copy.source.batches", "verify.target.batches")
    assert {k: result["calls"][k] for k in keys} == dict.fromkeys(keys, batches)
    assert "verify.source.batches" not in result["calls"]
    assert len(result["source_from_copy"]) == len(per_store)
    assert result["calls"]["copy.finish_store"] == len(per_store) and result["calls"]["copy.finish_target"] == 1
    p = result["phases"]
    assert p["write"] > 0 and p["verify_source"] == 0 and p["verify_target"] > 0
    assert p["read"] + p["write"] + p["index"] + p["verify"] <= p["migrate"] + 1e-3
    assert sorted(f.name for f in target.iterdir() if f.suffix in (".json", ".graphml")) == sorted(source.file_sizes)
