"""Which vector index strategy a migration into a shared PostgreSQL table takes (vector_index.choose),
from the table's indexes and rows per workspace; no server needed. The same choice is tested on the real
server by tests/test_postgres_shared.py and measured by benchmarks/bench_postgres_shared.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import REALDATA
from hybridrag_backends_postgres import vector_index as vix

from hybridrag_backends.cli.main import build_cli
from hybridrag_backends.errors import TargetError

T = "lightrag_vdb_entity_m_1536d"


def _state(excludes=None, rows=None, own=(), shared=True) -> vix.TableIndexes:
    state = vix.TableIndexes(T, "hnsw", rows=dict(rows or {}))
    if shared:
        state.shared = vix.Index("idx_shared", True, None if excludes is None else frozenset(excludes))
    state.own = {ws: vix.Index(f"idx_own_{ws}", True) for ws in own}
    return state


def test_fresh_table_gets_an_own_index_and_nothing_else_is_rebuilt():
    c = vix.choose(_state(), "w", 12_000, 1536, "auto", 2)
    assert (c.strategy, c.reindex_rows) == ("partial", 0)
    assert c.seconds == pytest.approx(vix.estimate_build(12_000, 1536))
    assert "12,000 rows" in c.note() and c.note().startswith(f"vector index of {T}: partial, about ")


def test_neighbours_with_own_indexes_cost_nothing_whatever_their_size():
    c = vix.choose(_state(excludes=["big"], rows={"big": 10_000_000}, own=["big"]), "w", 100, 1536, "auto", 2)
    assert (c.strategy, c.reindex_rows) == ("partial", 0)


def test_lightrag_indexed_neighbour_decides_by_the_ratio_of_its_rows_to_the_new_ones():
    # LightRAG's own whole-table index covers the neighbour: partial must first give it an own index
    few_new = vix.choose(_state(rows={"nb": 70_000}), "w", 2_000, 1536, "auto", 2)
    assert few_new.strategy == "incremental" and few_new.alternative_seconds > few_new.seconds
    assert "cheaper than first giving an own index to 70,000 rows of 1 other workspace(s)" in few_new.reason
    many_new = vix.choose(_state(rows={"nb": 10_000}), "w", 50_000, 1536, "auto", 2)
    assert (many_new.strategy, many_new.reindex_rows, many_new.reindex_workspaces) == ("partial", 10_000, 1)
    assert many_new.seconds == pytest.approx(vix.estimate_build(60_000, 1536))


def test_requested_strategy_wins_and_bad_values_are_refused():
    assert vix.choose(_state(rows={"nb": 70_000}), "w", 2_000, 1536, "partial", 2).strategy == "partial"
    assert vix.choose(_state(), "w", 2_000, 1536, "incremental", 2).strategy == "incremental"
    with pytest.raises(TargetError, match="index_strategy='fast' is not one of auto, partial, incremental"):
        vix.choose(_state(), "w", 1, 1536, "fast", 2)


def test_too_many_own_indexes_for_the_planner_fall_back_to_incremental():
    many = [f"w{i}" for i in range(vix.MAX_EXCLUDED)]
    state = _state(excludes=many, rows={w: 10 for w in many}, own=many)
    assert vix.choose(state, "new", 10, 1536, "auto", 2).strategy == "incremental"
    with pytest.raises(TargetError, match="use --index-strategy incremental"):
        vix.choose(state, "new", 10, 1536, "partial", 2)


def test_more_than_2000_dimensions_get_no_index():
    assert vix.choose(_state(), "w", 100, 3072, "auto", 2).strategy == "none"


def test_more_writers_lower_the_incremental_estimate():
    assert vix.estimate_insert(1000, 1536, 2) < vix.estimate_insert(1000, 1536, 1)


def test_index_strategy_option_is_refused_for_a_target_that_has_none(tmp_path):
    result = CliRunner().invoke(build_cli(), ["migrate", "--from", str(REALDATA / "macking3__lucaOS__rag_storage"),
                                      "--to", str(tmp_path / "out"), "--index-strategy", "partial"])
    assert result.exit_code == 3
    assert "--index-strategy applies to PostgreSQL targets; the target is json" in result.output
    assert not (tmp_path / "out").exists()
