"""The user's data model: BackendType, BackendConfig validation, connection strings, DatabaseEntry,
StorageMetrics. Property tests (hypothesis) cover every validation rule and the URI round trip."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrag_backends.errors import ConfigError
from hybridrag_backends.models import (
    SSL_MODES,
    BackendConfig,
    BackendType,
    DatabaseEntry,
    StorageMetrics,
    human_size,
    parse_postgres_uri,
)
from hybridrag_backends.secrets import redact

# field -> (lowest allowed, highest allowed): the spec's ranges
INT_RULES = {
    "postgres_port": (1, 65535),
    "postgres_max_connections": (1, 100),
    "hnsw_m": (4, 64),
    "hnsw_ef": (16, 256),
}


@pytest.mark.parametrize("field", sorted(INT_RULES))
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_int_rules_accept_exactly_the_allowed_range(field, data):
    lo, hi = INT_RULES[field]
    value = data.draw(st.integers(lo - 10, hi + 10) | st.integers())  # near the range and anywhere
    if lo <= value <= hi:
        assert getattr(BackendConfig(**{field: value}), field) == value
    else:
        with pytest.raises(ConfigError) as info:
            BackendConfig(**{field: value})
        message = str(info.value)
        # the error names the field, the value and the allowed range
        assert field in message and str(value) in message and f"{lo} to {hi}" in message
        assert info.value.field == field and info.value.value == value


@pytest.mark.parametrize("field", sorted(INT_RULES))
def test_int_rules_boundaries(field):
    lo, hi = INT_RULES[field]
    assert getattr(BackendConfig(**{field: lo}), field) == lo
    assert getattr(BackendConfig(**{field: hi}), field) == hi
    for bad in (lo - 1, hi + 1, "many", 3.5, True):
        with pytest.raises(ConfigError, match=field):
            BackendConfig(**{field: bad})


def test_int_rules_accept_numeric_strings_from_yaml_or_env():
    assert BackendConfig(postgres_port="5433").postgres_port == 5433


@given(st.sampled_from(["hnsw", "ivfflat"]), st.sampled_from([str.upper, str.lower, str.title, lambda s: f" {s} "]))
def test_vector_index_type_is_case_insensitive(value, transform):
    assert BackendConfig(vector_index_type=transform(value)).vector_index_type == value


@given(st.text(max_size=20).filter(lambda s: s.strip().lower() not in ("hnsw", "ivfflat")))
def test_vector_index_type_rejects_everything_else(value):
    with pytest.raises(ConfigError) as info:
        BackendConfig(vector_index_type=value)
    message = str(info.value)
    assert "vector_index_type" in message and "hnsw" in message and "ivfflat" in message
    assert repr(value) in message


@given(st.sampled_from(SSL_MODES))
def test_ssl_modes(mode):
    assert BackendConfig(postgres_ssl_mode=mode.upper()).postgres_ssl_mode == mode


def test_bad_ssl_mode_names_the_allowed_values():
    with pytest.raises(ConfigError, match="postgres_ssl_mode.*verify-full"):
        BackendConfig(postgres_ssl_mode="sometimes")


@pytest.mark.parametrize("value", ["json", "JSON", " Json ", "postgres", "PostgreSQL", "pg", "mongodb", "Mongo"])
def test_backend_type_parse_is_case_insensitive(value):
    assert BackendType.parse(value).value in ("json", "postgres", "mongodb")


def test_backend_type_default_and_bad_value():
    assert BackendType.default() is BackendType.JSON
    with pytest.raises(ConfigError, match="backend_type.*json, postgres, mongodb"):
        BackendType.parse("oracle")


# -- connection strings ----------------------------------------------------------

# Anything printable, including the URI delimiters that must be percent-encoded.
credential = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list(":@/?#%[] !$&'()*+,;=")),
    min_size=1,
    max_size=24,
)
hostname = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)


@given(
    user=credential,
    password=credential,
    host=hostname,
    port=st.integers(1, 65535),
    database=credential,
    sslmode=st.none() | st.sampled_from(SSL_MODES),
)
@settings(max_examples=300, deadline=None)
def test_connection_string_round_trip(user, password, host, port, database, sslmode):
    uri = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"
    if sslmode:
        uri += f"?sslmode={sslmode}"
    cfg = BackendConfig.from_connection_string(uri)
    assert cfg.backend_type is BackendType.POSTGRESQL
    assert (cfg.postgres_user, cfg.postgres_password, cfg.postgres_database) == (user, password, database)
    assert (cfg.postgres_host, cfg.postgres_port) == (host, port)
    assert cfg.postgres_ssl_mode == (sslmode or "prefer")
    assert cfg.connection_string == uri
    # redaction masks exactly the password
    assert redact(uri) == uri.replace(f":{quote(password, safe='')}@", ":***@", 1)


def test_connection_string_defaults_and_overrides():
    cfg = BackendConfig.from_connection_string("postgres://db.example", postgres_workspace="kb1")
    assert (cfg.postgres_host, cfg.postgres_port, cfg.postgres_user, cfg.postgres_database) == (
        "db.example", 5432, "hybridrag", "hybridrag",
    )
    assert cfg.postgres_password is None and cfg.postgres_workspace == "kb1"


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("mysql://u:p@h/db", "must start with postgresql://"),
        ("postgresql://u:p@h:99999/db", "Port out of range"),
        ("postgresql://u:p@h:0/db", "port must be from 1 to 65535"),
        ("postgresql://u:p@h:12ab/db", "not a valid PostgreSQL URI"),
        ("postgresql://u:p@h/db?sslmode=always", "sslmode must be one of"),
        ("postgresql://u:p@h/a/b", "must not contain '/'"),
    ],
)
def test_bad_connection_strings_are_named_and_redacted(uri, problem):
    with pytest.raises(ConfigError) as info:
        BackendConfig(backend_type="postgres", connection_string=uri)
    message = str(info.value)
    assert "connection_string" in message and problem in message
    assert ":p@" not in message  # the password is masked


# -- secrets in reprs, text forms and URL queries (issue 10, defect 8) -------------------------------


def test_backend_config_repr_masks_every_password_but_keeps_the_values():
    pg = BackendConfig.from_connection_string("postgresql://me:Zq9-pg-pw@db.example:5432/kb")
    mongo = BackendConfig(backend_type="mongodb", mongo_uri="mongodb://admin:Zq9-mongo-pw@m1,m2/kb",
                          extra_options={"uri": "redis://:Zq9-extra-pw@r/0"})
    for config, secret in ((pg, "Zq9-pg-pw"), (mongo, "Zq9-mongo-pw"), (mongo, "Zq9-extra-pw")):
        shown = repr(config)
        assert secret not in shown and secret not in str(config) and secret not in f"{[config]}"
        assert shown.startswith("BackendConfig(backend_type=") and "***" in shown
    assert "postgres_password='***'" in repr(pg) and "connection_string='postgresql://me:***@db.example:5432/kb'" in repr(pg)
    assert pg.postgres_password == "Zq9-pg-pw"  # the dataclass API is unchanged: the field holds the value
    assert pg == BackendConfig.from_connection_string("postgresql://me:Zq9-pg-pw@db.example:5432/kb")
    ref = BackendConfig(postgres_password="${POSTGRES_PASSWORD}")
    assert "postgres_password='${POSTGRES_PASSWORD}'" in repr(ref)  # a reference names a variable: shown


@pytest.mark.parametrize(
    "text, shown",
    [
        ("BackendConfig(postgres_password='Zq9hunter2', postgres_database='kb')",
         "BackendConfig(postgres_password='***', postgres_database='kb')"),
        ('{"postgres_password": "Zq9hun\\"ter2", "port": 5432}', '{"postgres_password": "***", "port": 5432}'),
        ("export PGPASSWORD=Zq9hunter2; psql", "export PGPASSWORD=*** psql"),
        ("MONGO_PASSWORD: Zq9hunter2", "MONGO_PASSWORD: ***"),
        ("postgresql://db/kb?password=Zq9hunter2", "postgresql://db/kb?password=***"),
        ("postgres_password='${POSTGRES_PASSWORD}'", "postgres_password='${POSTGRES_PASSWORD}'"),
        ("--password-env DB_PW given", "--password-env DB_PW given"),
        # a message redacted twice keeps the punctuation after a mask (the value is gone already)
        ("invalid uri='postgresql://db/kb?password=***': no", "invalid uri='postgresql://db/kb?password=***': no"),
        ("password=***Zq9hunter2", "password=***"),
    ],
)
def test_redact_masks_every_password_pair_form(text, shown):
    assert redact(text) == shown


@pytest.mark.parametrize("uri", ["postgresql://me@db/kb?password=Zq9hunter2",
                                 "postgres://db/kb?sslmode=require&PASSWORD=Zq9hunter2"])
def test_a_password_in_the_url_query_is_refused_not_ignored(uri):
    with pytest.raises(ConfigError) as info:
        BackendConfig.from_connection_string(uri)
    message = str(info.value)
    assert "'password' query parameter is not accepted" in message and "USER:PASSWORD@HOST" in message
    assert "Zq9hunter2" not in message
    from click.testing import CliRunner

    from hybridrag_backends.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["status", uri])
    assert result.exit_code == 2 and "query parameter is not accepted" in result.stderr and "Zq9hunter2" not in result.output


def test_parse_postgres_uri_decodes_and_keeps_sslmode():
    parts = parse_postgres_uri("postgresql://me%40corp:p%3Aw%2Fd@h:6543/my%20db?sslmode=verify-full&x=1")
    assert parts == {
        "host": "h", "port": 6543, "user": "me@corp", "password": "p:w/d", "database": "my db", "sslmode": "verify-full",
    }


def test_connection_string_is_the_connection_and_fields_fill_only_what_it_lacks():
    cfg = BackendConfig.from_connection_string(
        "postgresql://alice@127.0.0.1:5999/wizdb",
        postgres_host="ignored", postgres_port=1111, postgres_user="ignored", postgres_database="ignored",
        postgres_password="from-field", postgres_ssl_mode="require", postgres_workspace="notes")
    assert (cfg.postgres_host, cfg.postgres_port, cfg.postgres_user, cfg.postgres_database) == (
        "127.0.0.1", 5999, "alice", "wizdb")
    # what the URI lacks comes from the fields
    assert (cfg.postgres_password, cfg.postgres_ssl_mode, cfg.postgres_workspace) == ("from-field", "require", "notes")
    bare = BackendConfig.from_connection_string("postgresql:///", postgres_host="db", postgres_port=6000)
    assert (bare.postgres_host, bare.postgres_port, bare.postgres_database) == ("db", 6000, "hybridrag")


def test_other_backends_may_keep_their_own_uri_in_connection_string():
    assert BackendConfig(backend_type="neo4j", connection_string="bolt://n:7687").connection_string == "bolt://n:7687"


# -- DatabaseEntry -----------------------------------------------------------------


def test_entry_without_backend_is_json_with_path_as_working_dir():
    entry = DatabaseEntry(name="old", path="/data/old_db")
    cfg = entry.get_backend_config()
    assert cfg.backend_type is BackendType.JSON and cfg.working_dir == "/data/old_db"


def test_entry_resolves_password_references_from_the_given_env():
    entry = DatabaseEntry(
        name="pg",
        path="/x",
        backend_type="postgres",
        backend_config={
            "postgres_password": "${PGPW}",
            "connection_string": "postgresql://me:${PGPW}@h/db",
        },
    )
    cfg = entry.get_backend_config(env={"PGPW": "s3:cr/t"})
    assert cfg.postgres_password == "s3:cr/t"
    assert parse_postgres_uri(cfg.connection_string)["password"] == "s3:cr/t"
    with pytest.raises(ConfigError, match="PGPW is not set.*export PGPW"):
        entry.get_backend_config(env={})


def test_entry_reads_hybridrag_shapes():
    """connection_string-only (HybridRAG's wizard), workspace (its backend migrate), model_config (its models)."""
    entry = DatabaseEntry(
        name="notes", path="/srv/notes", backend_type="postgres",
        backend_config={"backend_type": "postgres", "connection_string": "postgresql://alice@127.0.0.1:5999/wizdb",
                        "workspace": "notes", "unknown_key": 1},
        model_config={"llm_model": "azure/gpt-4o", "embedding_model": "text-embedding-3-small", "embedding_dim": "1536"},
    )
    cfg = entry.get_backend_config(env={})
    assert (cfg.postgres_host, cfg.postgres_port, cfg.postgres_user, cfg.postgres_database) == (
        "127.0.0.1", 5999, "alice", "wizdb")
    assert cfg.postgres_workspace == "notes" and cfg.postgres_password is None
    assert (cfg.embedding_model, cfg.embedding_dim) == ("text-embedding-3-small", 1536)
    # the password LightRAG would read: POSTGRES_PASSWORD when set; a variable the entry names must be set
    assert entry.get_backend_config(env={"POSTGRES_PASSWORD": "pw"}).postgres_password == "pw"
    named = DatabaseEntry(name="n", path="/n", backend_type="postgres",
                          backend_config={"extra_options": {"password_env": "NOTES_PW"}})
    assert named.get_backend_config(env={"NOTES_PW": "x", "POSTGRES_PASSWORD": "y"}).postgres_password == "x"
    with pytest.raises(ConfigError, match="NOTES_PW is not set"):
        named.get_backend_config(env={"POSTGRES_PASSWORD": "y"})
    # a literal password in the file is used (and only warned about elsewhere)
    literal = DatabaseEntry(name="l", path="/l", backend_type="postgres", backend_config={"postgres_password": "s3cret"})
    assert literal.get_backend_config(env={"POSTGRES_PASSWORD": "other"}).postgres_password == "s3cret"
    assert "s3cret" not in repr(literal) and "s3cret" not in str([literal])


@pytest.mark.parametrize("name", ["", "has space", "-dash-first", "x" * 129, "a/b"])
def test_entry_name_rules(name):
    with pytest.raises(ConfigError, match="name"):
        DatabaseEntry(name=name, path="/x")


# -- StorageMetrics ----------------------------------------------------------------


def test_metrics_warnings_use_thresholds_and_name_the_command():
    mb = 1024 * 1024
    m = StorageMetrics(backend_type=BackendType.JSON, file_sizes={"big.json": 12 * mb, "small.json": mb},
                       total_size_bytes=13 * mb)
    m.check_migration_warnings(file_size_warning_mb=10, total_size_warning_mb=12,
                               migrate_command="hybridrag-backends migrate kb --to postgresql://h/db")
    assert len(m.warnings) == 2
    assert m.warnings[0].startswith("big.json: 12.0MB exceeds the 10MB threshold")
    assert all("hybridrag-backends migrate kb --to postgresql://h/db" in w for w in m.warnings)
    assert m.to_human_readable() == {"big.json": "12.0 MB", "small.json": "1.0 MB"}


def test_metrics_reject_negative_sizes():
    with pytest.raises(ConfigError, match="file_sizes"):
        StorageMetrics(backend_type=BackendType.JSON, file_sizes={"a": -1})


@given(st.integers(0, 2**50))
def test_human_size_is_monotonic_unit_text(n):
    text = human_size(n)
    number, unit = text.split(" ")
    assert unit in ("B", "KB", "MB", "GB", "TB") and float(number) >= 0
