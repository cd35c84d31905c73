"""MongoProvider: target parsing, env export, validation, metrics / status, and credentials.

Fake-backed unless HYBRIDRAG_TEST_MONGO_URI is set; the unreachable-server checks use the real
pymongo client against a closed local port (no server needed)."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from conftest import realdata_workspaces
from mongo_fixtures import FAKE_PASSWORD
from mongo_realdata import load_records, new_job, write_all

from hybridrag_backends.errors import ConfigError, ConnectionFailure
from hybridrag_backends.migration.job import MigrationJob
from hybridrag_backends.plugins import get_manager
from hybridrag_backends_mongodb.client import use_client_factory
from hybridrag_backends_mongodb.provider import MongoProvider

pytestmark = pytest.mark.mongodb

P = MongoProvider()
CLOSED_PORT_URI = f"mongodb://alice:{FAKE_PASSWORD}@127.0.0.1:1/LightRAG"


def test_plugin_is_found_through_its_entry_point():
    manager = get_manager(reload=True)
    provider = manager.get("mongodb")
    assert isinstance(provider, MongoProvider)
    assert manager.provider_for_url("mongodb+srv://cluster0.example.net/db") is provider
    assert manager.plugin_of("mongodb").distribution == "hybridrag-backends-mongodb"


@pytest.mark.parametrize(
    "uri,database",
    [
        ("mongodb://localhost", "LightRAG"),
        ("mongodb://u:p@h1:27018,h2/kb?authSource=admin", "kb"),
        ("mongodb+srv://u:p@cluster0.example.net/rag_prod", "rag_prod"),
        ("mongodb://u:${MONGO_PASSWORD}@h/kb", "kb"),
    ],
)
def test_config_from_target(uri, database):
    config = P.config_from_target(uri, workspace="team_a")
    assert (str(config.backend_type), config.mongo_uri, config.mongo_database, config.workspace) == (
        "mongodb", uri, database, "team_a")


@pytest.mark.parametrize(
    "uri,problem",
    [
        ("mongodb://h/my.db", "must not contain '.'"),
        ("mongodb://h/" + "d" * 64, "at most 63 bytes"),
        (f"mongodb://u:{FAKE_PASSWORD}@h:70000/db", "Port must be"),
        (f"mongodb+srv://u:{FAKE_PASSWORD}@h:27017/db", "must not include a port"),
        ("mongodb://", "at least one hostname"),
        ("mongodb://u:p@w@h/db", "escaped"),
    ],
)
def test_bad_uris_are_one_clear_error_without_the_password(uri, problem):
    with pytest.raises(ConfigError) as info:
        P.config_from_target(uri)
    assert problem in str(info.value)
    assert FAKE_PASSWORD not in str(info.value)


def test_describe_is_credential_free_and_names_the_place():
    a = P.config_from_target(f"mongodb://alice:{FAKE_PASSWORD}@H2:27017,h1/kb", workspace="w")
    b = P.config_from_target("mongodb://bob:other@h1:27017,h2/kb", workspace="w")
    assert P.describe(a) == P.describe(b) == "mongodb://h1:27017,h2:27017/kb?workspace=w"
    assert P.describe(P.config_from_target("mongodb://h1/kb")) != P.describe(a)


def test_env_vars_are_lightrags_names(monkeypatch):
    from lightrag.kg import STORAGE_IMPLEMENTATIONS, STORAGES

    monkeypatch.setenv("MONGO_PASSWORD", "p@ss/word")
    config = P.config_from_target("mongodb://alice:${MONGO_PASSWORD}@h/kb", workspace="team_a")
    assert P.env_vars(config) == {
        "MONGO_URI": "mongodb://alice:p%40ss%2Fword@h/kb",
        "MONGO_DATABASE": "kb",
        "MONGODB_WORKSPACE": "team_a",
    }
    assert P.secret_env_vars() == ("MONGO_URI",)
    classes = P.storage_classes(config)
    for kind, name in classes.items():
        assert STORAGES[name] == ".kg.mongo_impl"
        assert name in STORAGE_IMPLEMENTATIONS[kind.upper()]["implementations"]
    assert P.lightrag_kwargs(config)["workspace"] == "team_a"
    monkeypatch.delenv("MONGO_PASSWORD")
    with pytest.raises(ConfigError, match="MONGO_PASSWORD is not set"):
        P.env_vars(config)


def test_validate_passes_on_a_reachable_server(mongo_target):
    checks = asyncio.run(P.validate(P.config_from_target(mongo_target.uri)))
    assert [c.name for c in checks] == ["uri syntax", "database name", "reachable", "server version"]
    assert all(c.ok for c in checks), checks
    assert all(mongo_target.password not in f"{c.detail}{c.fix}" for c in checks)


def test_timeout_option_is_checked():
    config = P.config_from_target("mongodb://h/kb")
    config.extra_options["server_selection_timeout_ms"] = "soon"
    with pytest.raises(ConfigError, match="server_selection_timeout_ms"):
        P.open(config)


def test_validate_names_each_failure_and_its_fix(monkeypatch):
    bad_db = P.config_from_target("mongodb://h/kb")
    bad_db.mongo_database = "bad name"
    (syntax, name) = asyncio.run(P.validate(bad_db))
    assert syntax.ok and not name.ok and "space" in name.detail and name.fix

    monkeypatch.delenv("NO_SUCH_PW", raising=False)
    checks = asyncio.run(P.validate(P.config_from_target("mongodb://u:${NO_SUCH_PW}@h/kb")))
    assert checks[-1].name == "password" and not checks[-1].ok and "NO_SUCH_PW" in checks[-1].fix


def test_unreachable_server_fails_within_the_timeout_without_leaking_the_password():
    previous = use_client_factory(None)  # the real pymongo client
    try:
        config = P.config_from_target(CLOSED_PORT_URI)
        config.extra_options["server_selection_timeout_ms"] = 300

        async def run():
            session = P.open(config)
            assert session.timeout_ms == 300
            with pytest.raises(ConnectionFailure) as info:
                await session.connect()
            return str(info.value)

        message = asyncio.run(run())
        assert "cannot reach MongoDB" in message and "127.0.0.1:1" in message and FAKE_PASSWORD not in message
        metrics = asyncio.run(P.metrics(config))
        assert not metrics.is_connected and metrics.health == "error"
        (syntax, name, reachable) = asyncio.run(P.validate(config))
        assert syntax.ok and name.ok and not reachable.ok and "300 ms" in reachable.fix
        assert FAKE_PASSWORD not in f"{syntax.detail}{reachable.detail}{reachable.fix}"
        assert FAKE_PASSWORD not in json.dumps(metrics.to_dict(), default=str)
    finally:
        use_client_factory(previous)


def _fill(uri, workspace=""):
    working_dir, ws = realdata_workspaces()[0]
    data = load_records(working_dir, ws)
    config = P.config_from_target(uri, workspace=workspace)

    async def run():
        async with P.open(config) as session:
            await write_all(session, data, new_job(data, "job-fill"), batch_size=100)

    asyncio.run(run())
    return config, data


def test_metrics_report_sizes_counts_latency_and_the_vector_search_warning(mongo_target):
    config, data = _fill(mongo_target.uri, "team_a")
    metrics = asyncio.run(P.metrics(config))
    assert metrics.is_connected and metrics.connection_latency_ms is not None
    assert metrics.store_counts == {s.name: len(r) for s, r in data.items()}
    assert metrics.total_size_bytes > 0 and all(v > 0 for v in metrics.file_sizes.values())
    assert set(metrics.file_sizes) == {f"team_a_{s.namespace}" + ("_edges" if s.name.endswith(".edges") else "") for s in data}
    assert metrics.entity_count == len(next(r for s, r in data.items() if s.name.endswith(".nodes")))
    assert metrics.details["server_version"]
    search = metrics.details["vector_search"]
    if mongo_target.is_fake:  # the fake answers like a server without Atlas Search
        assert search["supported"] is False
        assert metrics.health == "degraded"
        assert any("cannot serve vector search" in w and "no fallback" in w for w in metrics.warnings)
    elif search["supported"] is False:
        assert any("cannot serve vector search" in w for w in metrics.warnings)


def test_status_json_and_verbose_notes_through_the_cli(mongo_target):
    from hybridrag_backends.cli.main import build_cli

    _fill(mongo_target.uri)
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["status", mongo_target.uri, "--json"])
    assert mongo_target.password not in result.output
    out = json.loads(result.stdout)
    metrics = out["metrics"]
    # a server that cannot serve LightRAG's vector search is "degraded": the report, then exit 2
    assert result.exit_code == (0 if metrics["health"] == "healthy" else 2), result.output
    assert metrics["backend_type"] == "mongodb" and metrics["store_counts"]["full_docs"] > 0
    assert metrics["connection_latency_ms"] is not None and metrics["total_size_bytes"] > 0
    if mongo_target.is_fake:
        assert any("vector search" in w for w in metrics["warnings"])
        assert any("fake" in n for n in out["notes"])

    verbose = runner.invoke(build_cli(), ["status", mongo_target.uri, "--verbose"])
    assert verbose.exit_code == result.exit_code, verbose.output
    assert "Checked only against an in-process fake" in verbose.output and mongo_target.password not in verbose.output

    validate = runner.invoke(build_cli(), ["validate", mongo_target.uri])
    assert validate.exit_code == 0 and mongo_target.password not in validate.output

    env = runner.invoke(build_cli(), ["env", mongo_target.uri])
    assert env.exit_code == 0 and "MONGODB_WORKSPACE" in env.output and mongo_target.password not in env.output


def test_the_registry_never_stores_the_password(mongo_target, tmp_path, _isolated_home):
    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["db", "register", "kb", "--path", str(tmp_path), "--url", mongo_target.uri])
    assert result.exit_code == 0, result.output
    registry_text = (_isolated_home / "registry.yaml").read_text()
    assert mongo_target.password not in registry_text and mongo_target.password not in result.output
    assert "${" not in registry_text  # no placeholder HybridRAG would pass on as it is (issue 9)


def test_job_errors_saved_in_the_target_are_redacted(mongo_target):
    config = P.config_from_target(mongo_target.uri)

    async def run():
        async with P.open(config) as session:
            job = MigrationJob("job-x", "src", "json", "mongodb")
            job.last_error = f"lost {mongo_target.uri}"
            await session.save_job(job)
            raw = await session.db["hybridrag_migration_jobs"].find_one({"_id": "job-x"})
            assert mongo_target.password not in json.dumps(raw, default=str)
            assert (await session.load_job("job-x")).job_id == "job-x"

    asyncio.run(run())


def test_a_password_in_the_uri_query_is_refused_with_the_fix():
    from hybridrag_backends_mongodb.uri import parse_uri

    with pytest.raises(ConfigError) as info:
        parse_uri("mongodb://admin@db.example/kb?password=Zq9hunter2")
    message = str(info.value)
    assert "'password' query parameter is not accepted" in message and "USER:PASSWORD@HOST" in message
    assert "Zq9hunter2" not in message
    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["status", "mongodb://admin@db.example/kb?password=Zq9hunter2"])
    assert result.exit_code == 2 and "query parameter is not accepted" in result.stderr and "Zq9hunter2" not in result.output
