"""PostgreSQL -> MongoDB -> PostgreSQL for every real working dir and workspace (issue 5 acceptance).

Setup: JSON -> PostgreSQL workspace A through the engine. Then the ``migrate`` CLI, run in-process
(the MongoDB fake lives in this process), copies A -> MongoDB -> PostgreSQL workspace B, each hop
verified; finally A and B are read record by record through PostgreSQL sessions and must be equal
(same stores, keys, payloads and vectors bit for bit). Needs the real PostgreSQL server; MongoDB is
the fake unless HYBRIDRAG_TEST_MONGO_URI is set.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import realdata_workspaces

from hybridrag_backends.migration.engine import migrate as run_migration
from hybridrag_backends.targets import resolve_target

pytestmark = [pytest.mark.postgres, pytest.mark.mongodb]

MODEL = "test-embed"  # PostgreSQL names vector tables after the model; needed to write vectors
WORKSPACES = realdata_workspaces()
IDS = [f"{d.name}:{ws or '-'}" for d, ws in WORKSPACES]


def _cli_migrate(secrets: list, *args: str) -> dict:
    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["migrate", *args, "--batch-size", "89", "--json"])
    assert not [s for s in secrets if s and s in result.output]
    out = json.loads(result.output)
    assert result.exit_code == 0, out.get("error")
    assert out["status"] == "completed" and out["verification"]["ok"] is True, out["verification"]
    return out


async def _records(session, store) -> dict:
    out = {}
    async for batch in session.read(store, None, 500):
        assert not batch.rejected, (store.name, batch.rejected)
        out.update((r.key, r) for r in batch.records)
    return out


async def _assert_same_content(first, final) -> int:
    """Every store, key, payload and vector of ``first`` equals ``final``'s; returns records compared."""
    compared = 0
    async with first.provider.open(first.config) as a, final.provider.open(final.config) as b:
        stores = await a.list_stores()
        assert [s.name for s in await b.list_stores()] == [s.name for s in stores]
        for store in stores:
            want, got = await _records(a, store), await _records(b, store)
            assert sorted(got) == sorted(want), store.name
            for key, rec in want.items():
                assert got[key].payload == rec.payload, (store.name, key)
                if rec.vector is None:
                    assert got[key].vector is None, (store.name, key)
                else:
                    assert np.array_equal(np.asarray(got[key].vector), np.asarray(rec.vector)), (store.name, key)
                compared += 1
    return compared


@pytest.mark.parametrize("working_dir,workspace", WORKSPACES, ids=IDS)
def test_postgres_to_mongodb_to_postgres(working_dir: Path, workspace: str, pg_module_db, mongo_target, monkeypatch):
    monkeypatch.delenv("MONGODB_WORKSPACE", raising=False)
    pg = f"{pg_module_db}?embedding_model={MODEL}"
    ws_first, ws_final = f"a_{uuid.uuid4().hex[:10]}", f"b_{uuid.uuid4().hex[:10]}"

    secrets = [mongo_target.password, urlsplit(pg_module_db).password]
    source = resolve_target(str(working_dir), workspace=workspace or None)
    first = resolve_target(pg, workspace=ws_first)
    setup = asyncio.run(run_migration(source, first, batch_size=97))
    assert setup.job.status.value == "completed" and setup.job.verification["ok"]

    # On the Mongo side the real workspace name, or LightRAG's default one ("") for a root dir.
    there = _cli_migrate(secrets, "--from", pg, "--workspace", ws_first, "--to", mongo_target.uri,
                         "--target-workspace", workspace)
    src_ws = ["--workspace", workspace] if workspace else []
    back = _cli_migrate(secrets, "--from", mongo_target.uri, *src_ws, "--to", pg, "--target-workspace", ws_final)
    assert back["migrated_records"] == there["migrated_records"] == there["plan"]["total_records"] > 0

    final = resolve_target(pg, workspace=ws_final)
    assert asyncio.run(_assert_same_content(first, final)) == there["migrated_records"]
