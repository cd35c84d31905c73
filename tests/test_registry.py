"""The registry file: location, shape, tolerant keys, round trips, locking, and no passwords written.

HybridRAG's own registry shapes (every key, comments, byte-identical neighbours) are in
tests/test_hybridrag_registry.py."""

from __future__ import annotations

import multiprocessing
import os
import stat
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridrag_backends.errors import NotFoundError, RegistryError
from hybridrag_backends.models import BackendType, DatabaseEntry
from hybridrag_backends.registry import CONFIG_KEYS, Registry, registry_path, without_passwords


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_location_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRIDRAG_CONFIG")
    monkeypatch.setenv("HYBRIDRAG_HOME", str(tmp_path / "home"))
    assert registry_path() == tmp_path / "home" / "registry.yaml"
    monkeypatch.setenv("HYBRIDRAG_CONFIG", str(tmp_path / "elsewhere.yaml"))
    assert registry_path() == tmp_path / "elsewhere.yaml"
    monkeypatch.delenv("HYBRIDRAG_CONFIG")
    monkeypatch.delenv("HYBRIDRAG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert registry_path() == tmp_path / ".hybridrag" / "registry.yaml"


def test_location_order_is_hybridrags(tmp_path, monkeypatch):
    """HYBRIDRAG_CONFIG, then the path written in ~/.hybridrag/config_pointer, then ~/.hybridrag/registry.yaml."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HYBRIDRAG_HOME", str(home))
    monkeypatch.setenv("HYBRIDRAG_CONFIG", str(tmp_path / "from-env.yaml"))
    (home / "config_pointer").write_text(f"  {tmp_path / 'shared' / 'team.yaml'}\n")
    assert registry_path() == tmp_path / "from-env.yaml"
    monkeypatch.delenv("HYBRIDRAG_CONFIG")
    assert registry_path() == (tmp_path / "shared" / "team.yaml").resolve()
    # the pointed-at file is the one commands read and write
    (tmp_path / "shared").mkdir()
    reg = Registry.load()
    reg.add(DatabaseEntry(name="kb", path="/kb"))
    reg.save()
    assert "kb:" in (tmp_path / "shared" / "team.yaml").read_text()
    assert not (home / "registry.yaml").exists()
    (home / "config_pointer").write_text("\n")  # an empty pointer is no pointer
    assert registry_path() == home / "registry.yaml"


def test_missing_or_empty_file_is_an_empty_registry(tmp_path):
    assert Registry.load(tmp_path / "none.yaml").entries() == []
    assert Registry.load(write_yaml(tmp_path / "empty.yaml", "")).entries() == []


def test_spec_example_loads(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", """
databases:
  specstory:
    name: specstory
    path: /home/user/databases/specstory_db
    source_folder: /home/user/jira-issues
    source_type: specstory
    auto_watch: true
    backend_type: postgres
    backend_config:
      postgres_host: localhost
      postgres_port: 5432
      postgres_user: hybridrag
      postgres_database: hybridrag
      postgres_workspace: specstory
""")
    entry = Registry.load(path).get("specstory")
    assert entry.backend_type is BackendType.POSTGRESQL and entry.auto_watch and entry.watch_interval == 300
    cfg = entry.get_backend_config()
    assert cfg.postgres_workspace == "specstory" and cfg.postgres_port == 5432


def test_entries_written_before_backends_load_as_json(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", {"databases": {"old": {"name": "old", "path": "/data/old", "auto_watch": False}}})
    entry = Registry.load(path).get("old")
    assert entry.backend_type is BackendType.JSON and entry.backend_config is None
    assert entry.get_backend_config().working_dir == "/data/old"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"databases": ["kb"]}, r"'databases' must be a mapping"),
        ("databases:\n  kb: [unclosed\n", r"not valid YAML at line \d+, column \d+"),
        ("- just\n- a list\n", r"must be a mapping with a 'databases' key"),
    ],
)
def test_unreadable_files_fail_with_a_message_naming_the_problem(tmp_path, data, expected):
    path = write_yaml(tmp_path / "r.yaml", data)
    with pytest.raises(RegistryError, match=expected) as info:
        Registry.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"path": "/x", "backend_config": {"postgres_port": 70000}}, r"entry 'kb': invalid postgres_port=70000: must be from 1 to 65535"),
        ({"path": "/x", "backend_type": "Oracle 9!"}, r"entry 'kb': invalid backend_type='Oracle 9!'"),
        ({"name": "other", "path": "/x"}, r"name must equal the key"),
        ({"name": "kb"}, r"entry 'kb' has no 'path'"),
        ({"path": "/x", "auto_watch": "yes please"}, r"auto_watch must be bool"),
        ({"path": "/x", "backend_config": "postgres"}, r"backend_config must be a mapping"),
    ],
)
def test_a_bad_entry_is_named_and_the_others_still_work(tmp_path, raw, expected):
    path = write_yaml(tmp_path / "r.yaml", {"databases": {"kb": raw, "good": {"name": "good", "path": "/good"}}})
    reg = Registry.load(path)
    assert reg.get("good").path == "/good" and [e.name for e in reg.entries()] == ["good"]
    assert reg.names() == ["good", "kb"] and "kb" in reg.problems
    with pytest.raises(RegistryError, match=expected) as info:
        reg.get("kb")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_keys_at_every_level_and_a_version_are_kept_not_refused(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", {
        "version": 1, "owner": {"team": "rag"},
        "databases": {"kb": {"path": "/x", "colour": "red", "backend_type": "postgres",
                             "backend_config": {"postgres_hots": "typo", "nested": {"deep": [1, 2]}},
                             "model_config": {"llm_model": "azure/gpt-4o", "embedding_model": "m", "embedding_dim": 8}}},
    })
    reg = Registry.load(path)
    entry = reg.get("kb")
    assert entry.extra == {"colour": "red"} and reg.version == 1
    assert reg.stored("kb")["backend_config"]["nested"] == {"deep": [1, 2]}
    cfg = entry.get_backend_config(env={})
    assert cfg.postgres_host == "localhost" and (cfg.embedding_model, cfg.embedding_dim) == ("m", 8)
    before = path.read_text()
    other = Registry.load(path)
    other.add(DatabaseEntry(name="new", path="/new"))
    other.save()
    after = yaml.safe_load(path.read_text())
    assert after["owner"] == {"team": "rag"} and after["version"] == 1
    assert after["databases"]["kb"] == yaml.safe_load(before)["databases"]["kb"]


# -- round trips ---------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
paths = st.from_regex(r"/[A-Za-z0-9_. -]{1,30}", fullmatch=True)
pg_config = st.fixed_dictionaries(
    {},
    optional={
        "postgres_host": st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
        "postgres_port": st.integers(1, 65535),
        "postgres_user": st.text(min_size=1, max_size=10),
        "postgres_database": st.text(min_size=1, max_size=10),
        "postgres_workspace": st.from_regex(r"[A-Za-z0-9_]{1,40}", fullmatch=True),
        "postgres_max_connections": st.integers(1, 100),
        "vector_index_type": st.sampled_from(["hnsw", "ivfflat"]),
        "hnsw_m": st.integers(4, 64),
        "hnsw_ef": st.integers(16, 256),
        "extra_options": st.dictionaries(
            st.from_regex(r"[a-z_]{1,8}", fullmatch=True).filter(lambda k: not any(w in k for w in ("pw", "pass", "secret", "token", "key", "cred"))),
            st.integers() | st.text(max_size=8), max_size=3),
    },
)
json_config = st.none() | st.fixed_dictionaries(
    {}, optional={"workspace": st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,10}", fullmatch=True),
                  "file_size_warning_mb": st.integers(1, 10**6)}
)
entries = st.builds(
    DatabaseEntry,
    name=names,
    path=paths,
    source_folder=st.none() | paths,
    source_type=st.sampled_from(["filesystem", "specstory", "jira"]),
    auto_watch=st.booleans(),
    watch_interval=st.integers(1, 10**6),
    backend_type=st.just(BackendType.JSON),
    backend_config=json_config,
) | st.builds(
    DatabaseEntry,
    name=names,
    path=paths,
    backend_type=st.just(BackendType.POSTGRESQL),
    backend_config=pg_config.map(lambda d: {**d, "postgres_password": "${POSTGRES_PASSWORD}"}),
)


@given(st.lists(entries, max_size=6, unique_by=lambda e: e.name))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_save_load_round_trip(batch):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.yaml"
        registry = Registry.load(path)
        for entry in batch:
            registry.add(entry)
        registry.save()
        loaded = Registry.load(path)
        written = [without_passwords(e)[0] for e in sorted(batch, key=lambda e: e.name)]
        assert loaded.entries() == written
        text = path.read_bytes()
        loaded.save()  # saving what was loaded changes nothing
        assert path.read_bytes() == text


def test_add_remove_replace(tmp_path):
    path = tmp_path / "r.yaml"
    reg = Registry.load(path)
    reg.add(DatabaseEntry(name="a", path="/a"))
    reg.save()
    with pytest.raises(RegistryError, match="already registered.*db remove a.*--replace"):
        Registry.load(path).add(DatabaseEntry(name="a", path="/other"))
    reg = Registry.load(path)
    reg.add(DatabaseEntry(name="a", path="/other"), replace=True)
    reg.save()
    assert Registry.load(path).get("a").path == "/other"
    reg = Registry.load(path)
    reg.remove("a")
    reg.save()
    assert Registry.load(path).entries() == []
    with pytest.raises(NotFoundError, match="no database named 'a'"):
        Registry.load(path).remove("a")


def test_writes_are_atomic_private_and_leave_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "r.yaml"
    reg = Registry.load(path)
    reg.add(DatabaseEntry(name="a", path="/a"))
    reg.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.yaml", "r.yaml.lock"]


# -- parallel writers ----------------------------------------------------------------


def _writer(path: str, worker: int, count: int) -> None:
    for i in range(count):
        reg = Registry.load(path)
        reg.add(DatabaseEntry(name=f"w{worker}-{i}", path=f"/data/{worker}/{i}"))
        reg.save()


def test_parallel_writers_lose_nothing(tmp_path):
    path = tmp_path / "r.yaml"
    seed = Registry.load(path)
    seed.add(DatabaseEntry(name="keep", path="/keep"))
    seed.add(DatabaseEntry(name="drop", path="/drop"))
    seed.save()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 8)) for w in range(6)]
    for p in procs:
        p.start()
    remover = Registry.load(path)  # a stale view removing one entry while the others write
    remover.remove("drop")
    remover.save()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    names = {e.name for e in Registry.load(path).entries()}
    assert names == {"keep"} | {f"w{w}-{i}" for w in range(6) for i in range(8)}


def test_concurrent_registration_of_the_same_name_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    mine = Registry.load(path)
    theirs = Registry.load(path)
    theirs.add(DatabaseEntry(name="kb", path="/theirs"))
    theirs.save()
    mine.add(DatabaseEntry(name="kb", path="/mine"))
    with pytest.raises(RegistryError, match="registered by another process meanwhile"):
        mine.save()
    assert Registry.load(path).get("kb").path == "/theirs"


# -- secrets ------------------------------------------------------------------------

secret = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%&*+-;<=>?@^_~:/ ",
                 min_size=8, max_size=20).map(lambda s: "Zq9" + s)


@given(pw=secret, mongo_pw=secret)
@settings(max_examples=40, deadline=None)
def test_no_password_and_no_placeholder_is_ever_written(pw, mongo_pw):
    from urllib.parse import quote

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.yaml"
        reg = Registry.load(path)
        needed = reg.add(DatabaseEntry(
            name="pg", path="/pg", backend_type="postgres",
            backend_config={
                "postgres_password": pw,
                "connection_string": f"postgresql://me:{quote(pw, safe='')}@h/db?sslmode=require",
            },
        ), password_env="KB_PG_PW")
        assert needed == ["KB_PG_PW"]
        reg.add(DatabaseEntry(name="mg", path="/mg", backend_type="mongodb",
                              backend_config={"mongo_uri": f"mongodb://root:{quote(mongo_pw, safe='')}@m:27017/"}))
        reg.save()
        text = path.read_bytes().decode()
        for s in (pw, mongo_pw, quote(pw, safe=""), quote(mongo_pw, safe=""), "${"):
            assert s not in text
        stored = yaml.safe_load(text)["databases"]
        assert stored["pg"]["backend_config"] == {
            "connection_string": "postgresql://me@h/db?sslmode=require", "extra_options": {"password_env": "KB_PG_PW"}}
        assert stored["mg"]["backend_config"] == {"mongo_uri": "mongodb://root@m:27017/"}
        # used with the environment, the password comes from the variable
        loaded = Registry.load(path)
        cfg = loaded.get("pg").get_backend_config(env={"KB_PG_PW": pw})
        assert cfg.postgres_password == pw and cfg.postgres_ssl_mode == "require" and cfg.postgres_user == "me"
        mongo = loaded.get("mg").get_backend_config(env={"MONGO_PASSWORD": mongo_pw})
        assert mongo.mongo_uri == f"mongodb://root:{quote(mongo_pw, safe='')}@m:27017/"
        assert loaded.get("mg").get_backend_config(env={}).mongo_uri == "mongodb://root@m:27017/"


def test_save_strips_passwords_from_entries_changed_after_add(tmp_path):
    path = tmp_path / "r.yaml"
    reg = Registry.load(path)
    reg.add(DatabaseEntry(name="pg", path="/pg", backend_type="postgres", backend_config={}), password_env="PG_PW")
    reg.get("pg").backend_config["postgres_password"] = "literal-Zq9-secret"  # bypassing add()
    reg.save()
    assert "literal-Zq9-secret" not in path.read_text()
    assert Registry.load(path).get("pg").password_env == "PG_PW"


def test_without_passwords_names_the_variable_and_refuses_other_secrets():
    entry = DatabaseEntry(name="pg", path="/pg", backend_type="postgres",
                          backend_config={"postgres_password": "${KB_PW}", "connection_string": "postgresql://u:${KB_PW}@h/d"})
    cleaned, needed = without_passwords(entry)
    assert cleaned.backend_config == {"connection_string": "postgresql://u@h/d", "extra_options": {"password_env": "KB_PW"}}
    assert needed == ["KB_PW"]
    plain_pg = DatabaseEntry(name="pg", path="/pg", backend_type="postgres", backend_config={"postgres_host": "h"})
    assert without_passwords(plain_pg) == (plain_pg, ["POSTGRES_PASSWORD"])  # default variable: nothing recorded
    json_entry = DatabaseEntry(name="j", path="/j", backend_config={"workspace": "w"})
    assert without_passwords(json_entry) == (json_entry, [])
    from hybridrag_backends.errors import ConfigError

    for config in ({"extra_options": {"ssl_key_password": "Zq9-x"}}, {"extra_options": {"dsn": "postgresql://a:Zq9@h/d"}}):
        with pytest.raises(ConfigError, match="holds a password, and the registry never stores one") as info:
            without_passwords(DatabaseEntry(name="pg", path="/pg", backend_type="postgres", backend_config=config))
        assert "Zq9" not in str(info.value)


def test_config_keys_cover_every_backend_config_field():
    from dataclasses import fields

    from hybridrag_backends.models import BackendConfig

    assert set(CONFIG_KEYS) == {f.name for f in fields(BackendConfig)}
    assert os.path.basename(str(registry_path())) == "registry.yaml"


@given(pw=secret, scheme=st.sampled_from(["postgresql", "mongodb", "mongodb+srv", "redis"]))
@settings(max_examples=60, deadline=None)
def test_redact_masks_url_passwords_and_keeps_references(pw, scheme):
    from urllib.parse import quote

    from hybridrag_backends.secrets import redact

    encoded = quote(pw, safe="")
    text = f"cannot connect to {scheme}://me:{encoded}@db.example:5/x, password={encoded} given"
    assert redact(text) == f"cannot connect to {scheme}://me:***@db.example:5/x, password=*** given"
    kept = f"{scheme}://me:${{DB_PW}}@db.example/x password=${{DB_PW}}"
    assert redact(kept) == kept  # a reference names a variable, it is not a secret


def test_redact_masks_a_password_typed_with_a_raw_at_sign():
    from hybridrag_backends.secrets import redact

    # not valid URLs (the '@' should be %40), which is exactly when they end up in an error message
    assert redact("bad URI mongodb://admin:p@ss@db.example/x") == "bad URI mongodb://admin:***@db.example/x"
    assert redact("postgresql://me@corp.com:pw@h:5/x") == "postgresql://me@corp.com:***@h:5/x"


def test_env_references_resolve_or_name_the_missing_variable():
    from hybridrag_backends.errors import ConfigError
    from hybridrag_backends.secrets import resolve_env_refs, resolve_uri_refs

    assert resolve_env_refs("${A}", {"A": "x"}) == "x" and resolve_env_refs("literal", {}) == "literal"
    assert resolve_uri_refs("mongodb://u:${A}@h/", {"A": "p@ss/w"}) == "mongodb://u:p%40ss%2Fw@h/"
    with pytest.raises(ConfigError, match=r"environment variable A is not set; .*run: export A=VALUE$"):
        resolve_uri_refs("mongodb://u:${A}@h/", {})


# -- one entry changed under the lock (the API a cutover builds on) ---------------------------

HAND_WRITTEN = """version: 1
databases:
  # the knowledge base HybridRAG watches
  kb:
    name: kb
    path: /srv/kb          # keep this comment
    model: azure/gpt-4o
    backend_type: json
  other:
    name: other
    path: /srv/other
    backend_type: postgres
    backend_config:
      postgres_password: s3cret-hr   # HybridRAG's own, left alone
"""


def test_update_changes_one_entry_and_keeps_everything_else(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", HAND_WRITTEN)
    with Registry.locked(path) as reg:
        assert reg.get("kb").backend_type is BackendType.JSON
        changed = reg.update("kb", backend_type="postgres",
                             backend_config={"connection_string": "postgresql://u:Zq9-pw@h:6000/d", "workspace": "kb"})
        assert changed.get_backend_config(env={}).postgres_port == 6000
        assert path.read_text() == HAND_WRITTEN  # nothing written before the block ends
    text = path.read_text()
    assert text.endswith(HAND_WRITTEN.split("  other:\n", 1)[1])  # the other entry, byte for byte
    assert "# the knowledge base HybridRAG watches" in text and "# keep this comment" in text
    assert "Zq9-pw" not in text and "${" not in text
    kb = yaml.safe_load(text)["databases"]["kb"]
    assert kb == {"name": "kb", "path": "/srv/kb", "model": "azure/gpt-4o", "backend_type": "postgres",
                  "backend_config": {"connection_string": "postgresql://u@h:6000/d", "workspace": "kb"}}
    with Registry.locked(path) as reg:  # and back
        reg.update("kb", backend_type="json", backend_config=None)
    assert yaml.safe_load(path.read_text())["databases"]["kb"] == {
        "name": "kb", "path": "/srv/kb", "model": "azure/gpt-4o", "backend_type": "json"}


def test_a_locked_block_that_fails_writes_nothing_and_update_refuses_unknown_names(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", HAND_WRITTEN)
    with pytest.raises(RuntimeError):
        with Registry.locked(path) as reg:
            reg.update("kb", backend_type="postgres")
            raise RuntimeError("decided against it")
    assert path.read_text() == HAND_WRITTEN
    with pytest.raises(NotFoundError, match="no database named 'ghost'"):
        Registry.load(path).update("ghost", path="/x")


def test_update_applies_to_the_file_as_it_is_when_saved(tmp_path):
    path = write_yaml(tmp_path / "r.yaml", HAND_WRITTEN)
    mine = Registry.load(path)
    theirs = Registry.load(path)
    theirs.add(DatabaseEntry(name="added-meanwhile", path="/a"))
    theirs.save()
    mine.update("kb", watch_interval=60)
    mine.save()
    data = yaml.safe_load(path.read_text())["databases"]
    assert data["kb"]["watch_interval"] == 60 and "added-meanwhile" in data
    gone = Registry.load(path)
    gone.update("other", auto_watch=True)
    remover = Registry.load(path)
    remover.remove("other")
    remover.save()
    with pytest.raises(RegistryError, match="removed by another process meanwhile"):
        gone.save()
