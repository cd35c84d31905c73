"""The conformance suite: :class:`ProviderConformance`, a base class of pytest tests.

Subclass it in a test module and define one fixture, ``conformance_target``, that returns a
:class:`~hybridrag_backends.testing.ConformanceTarget` (the provider and a fresh, empty location)::

    from hybridrag_backends.testing import ConformanceTarget, ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def conformance_target(self, tmp_path):
            return ConformanceTarget(MyProvider(), f"mydb://localhost:1234/{tmp_path.name}")

Every check's name says the behaviour it checks, and its failure message names the store, the record
key and the field. Store-kind checks are parametrized over the five kinds and skipped for kinds not
in ``ConformanceTarget.store_kinds``. The slow checks (round trips over LightRAG working dirs, the
SIGKILL run) have ``round_trip`` / ``sigkill`` in their names: ``-k "not sigkill"`` leaves them out
while developing.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from ..errors import HybridRAGBackendsError
from ..models import StorageMetrics, backend_name
from ..provider import BackendProvider, Check, Record, StoreInfo, StoreKind
from ..secrets import MASK
from . import engine, lightrag_reader
from .harness import Writer, batches, new_job, read_all, resume_position
from .records import (
    SAMPLE_DIM,
    UNICODE_KEY,
    record_problems,
    sample_stores,
    special_keys,
    stores_needed,
)
from .target import SUITE_SECRET, ConformanceTarget

BATCH = 7  # small batches: many of them even on the sample
LIGHTRAG_STORAGE_KEYS = {
    "kv_storage": "KV_STORAGE",
    "vector_storage": "VECTOR_STORAGE",
    "graph_storage": "GRAPH_STORAGE",
    "doc_status_storage": "DOC_STATUS_STORAGE",
}
KINDS = list(StoreKind)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Kit:
    """The target under test plus what every check needs: fresh locations, sessions, the sample."""

    def __init__(self, target: ConformanceTarget, scratch: Path) -> None:
        self.target = target
        self.provider: BackendProvider = target.provider
        self.scratch = scratch
        self._n = 0

    def fresh(self):  # noqa: ANN201 - a BackendConfig
        """The config of a location no other check in this test used."""
        self._n += 1
        return self.target.config(self.target.fresh_workspace(self._n))

    def require(self, kind: StoreKind) -> None:
        if kind not in self.target.store_kinds:
            pytest.skip(f"{self.provider.name} does not hold {kind.value} stores (ConformanceTarget.store_kinds)")

    def sample(self) -> Dict[StoreInfo, List[Record]]:
        return sample_stores(SAMPLE_DIM)

    def writer(self, session, stores: Sequence[StoreInfo], label: str) -> Writer:  # noqa: ANN001
        return Writer(session, new_job(stores, f"conformance-{label}-{self._n}", self.provider.name))

    def written(self, kind: StoreKind, label: str, *, empty: bool = False):  # noqa: ANN201
        """A fresh location holding the sample's store of ``kind`` (edges: with their nodes), written
        as the engine writes: (config, the stores, the sample)."""
        self.require(kind)
        data = self.sample()
        stores = stores_needed(kind, data)
        config = self.fresh()

        async def write() -> None:
            async with self.provider.open(config) as session:
                await self.writer(session, stores, label).write_all({s: [] if empty else data[s] for s in stores}, BATCH)

        run(write())
        return config, stores, data

    async def listed(self, config, store: StoreInfo) -> StoreInfo:  # noqa: ANN001
        """``store`` as the backend lists it (the engine reads what list_stores gives)."""
        async with self.provider.open(config) as session:
            for found in await session.list_stores():
                if found.name == store.name:
                    return found
        raise AssertionError(f"store {store.name} was written but list_stores() does not list it")


def _fail(problems: Sequence[str], what: str) -> None:
    if problems:
        pytest.fail(f"{what}:\n  " + "\n  ".join(problems), pytrace=False)


def _timed(limit: float, what: str, coro: Any) -> Any:
    started = time.perf_counter()
    result = run(coro)
    took = time.perf_counter() - started
    if took > limit:
        pytest.fail(f"{what} took {took:.1f} s, over the {limit:.0f} s bound (ConformanceTarget.time_limit_s); "
                    f"it must stay fast: status and validate call it on every run", pytrace=False)
    return result


class ProviderConformance:
    """The provider contract as tests. Subclass it (``class TestX(ProviderConformance)``) and define
    the ``conformance_target`` fixture; set ``lightrag_dirs`` to real LightRAG working dirs
    (``(path, workspace)`` pairs, see :func:`hybridrag_backends.testing.lightrag_dirs`) for the round
    trips; a generated knowledge base is always one of them."""

    #: LightRAG working dirs ((path, workspace) pairs) the JSON round trip runs over
    lightrag_dirs: Sequence[Tuple[Path, str]] = ()

    # -- fixtures ------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _conformance_home(self, tmp_path_factory, monkeypatch) -> Iterator[Path]:
        """Jobs and the registry go to a temp dir, never the user's ~/.hybridrag."""
        home = tmp_path_factory.mktemp("conformance-home")
        monkeypatch.setenv("HYBRIDRAG_HOME", str(home))
        monkeypatch.setenv("HYBRIDRAG_CONFIG", str(home / "registry.yaml"))
        yield home

    @pytest.fixture
    def kit(self, conformance_target: ConformanceTarget, tmp_path: Path) -> Kit:
        assert isinstance(conformance_target, ConformanceTarget), (
            "the conformance_target fixture must return a hybridrag_backends.testing.ConformanceTarget")
        return Kit(conformance_target, tmp_path)

    def pytest_generate_tests(self, metafunc) -> None:  # noqa: ANN001 - pytest hook, per class
        if "kind" in metafunc.fixturenames:
            metafunc.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
        if "dataset" in metafunc.fixturenames:
            dirs = [(Path(d), ws) for d, ws in (metafunc.cls.lightrag_dirs or ())]
            metafunc.parametrize("dataset", [None, *dirs],
                                 ids=["generated", *[f"{d.name}:{ws or '-'}" for d, ws in dirs]])

    # -- configuration ---------------------------------------------------------------

    def test_config_from_target_names_this_backend(self, kit: Kit) -> None:
        config = kit.target.config()
        assert backend_name(config.backend_type) == kit.provider.name, (
            f"config_from_target() made a config for backend {backend_name(config.backend_type)!r}, "
            f"not {kit.provider.name!r}")
        if kit.target.is_url:
            assert kit.target.target.split("://", 1)[0].lower() in kit.provider.url_schemes
        else:
            assert kit.provider.claims_path(Path(kit.target.target)), (
                f"claims_path() does not claim the target path {kit.target.target}")

    def test_describe_is_credential_free_and_stable(self, kit: Kit) -> None:
        t = kit.target
        here = kit.provider.describe(t.config())
        assert isinstance(here, str) and here, "describe() must return a non-empty string"
        assert kit.provider.describe(t.config()) == here, "describe() differs for the same config"
        secret_target = t.with_secret()
        if secret_target is not None:
            shown = kit.provider.describe(t.config(target=secret_target))
            assert SUITE_SECRET not in shown, f"describe() shows the password: {shown!r}"
            assert shown == here, (f"describe() differs when only the password differs ({shown!r} vs {here!r}): "
                                   f"equal strings must mean the same place, whatever the credentials")
        other_ws = kit.provider.describe(t.config(t.fresh_workspace(99)))
        assert other_ws != here, f"describe() is the same for two workspaces ({here!r}): it must say the workspace"
        elsewhere = kit.provider.describe(kit.provider.config_from_target(t.unreachable(kit.scratch), workspace=t.workspace))
        assert elsewhere != here, f"describe() is the same for two locations ({here!r})"

    def test_invalid_config_errors_name_the_field(self, kit: Kit) -> None:
        t = kit.target
        cases: List[Tuple[str, Optional[str], str]] = [(t.target, "bad/ws", "workspace")]
        bad_port = t.with_bad_port(t.with_secret())
        if bad_port is not None:
            cases.append((bad_port, t.workspace, "port"))
        cases += [(target, t.workspace, name) for target, name in t.invalid_targets.items()]
        problems = []
        for target, workspace, field in cases:
            message = _config_error(kit.provider, target, workspace)
            if message is None:
                problems.append(f"{target!r} (workspace {workspace!r}) was accepted: no error, and validate() "
                                f"reported no failed check; it must be refused naming {field!r}")
            elif field.lower() not in message.lower():
                problems.append(f"the error for {target!r} does not name the field {field!r}: {message}")
            elif SUITE_SECRET in message:
                problems.append(f"the error for a bad target shows its password: {message}")
        _fail(problems, "invalid configuration")

    def test_storage_classes_are_lightrag_storages(self, kit: Kit) -> None:
        from lightrag.kg import STORAGE_IMPLEMENTATIONS, STORAGES

        config = kit.target.config()
        classes = kit.provider.storage_classes(config)
        problems = []
        for key, kind in LIGHTRAG_STORAGE_KEYS.items():
            name = classes.get(key)
            if name is None:
                problems.append(f"storage_classes() has no {key!r}")
            elif name not in STORAGES:
                problems.append(f"{key}={name!r} is not a LightRAG storage class (lightrag.kg.STORAGES)")
            elif name not in STORAGE_IMPLEMENTATIONS[kind]["implementations"]:
                problems.append(f"{key}={name!r} is not a LightRAG {kind} implementation")
        kwargs = kit.provider.lightrag_kwargs(config)
        for key, name in classes.items():
            if key in LIGHTRAG_STORAGE_KEYS and kwargs.get(key) != name:
                problems.append(f"lightrag_kwargs()[{key!r}] is {kwargs.get(key)!r}, storage_classes() says {name!r}")
        _fail(problems, "storage classes")

    def test_env_vars_cover_lightrag_and_env_masks_secrets(self, kit: Kit) -> None:
        from lightrag.kg import STORAGE_ENV_REQUIREMENTS

        t = kit.target
        target = t.with_secret() or t.target
        config = t.config(target=target)
        env = kit.provider.env_vars(config)
        problems = [f"env_vars()[{k!r}] is {type(v).__name__}, not str" for k, v in env.items()
                    if not isinstance(k, str) or not isinstance(v, str)]
        classes = kit.provider.storage_classes(config)
        for key, name in classes.items():
            for var in STORAGE_ENV_REQUIREMENTS.get(name, []):
                if var not in env:
                    problems.append(f"LightRAG's {name} needs {var}, env_vars() does not give it")
            env_name = f"LIGHTRAG_{LIGHTRAG_STORAGE_KEYS.get(key, key.upper())}"
            if env_name in env and env[env_name] != name:
                problems.append(f"env_vars()[{env_name!r}] is {env[env_name]!r}, storage_classes() says {name!r}")
        secrets = set(kit.provider.secret_env_vars())
        for var, value in env.items():
            if t.with_secret() and SUITE_SECRET in value and var not in secrets:
                problems.append(f"env_vars()[{var!r}] holds the password but secret_env_vars() does not name it")
        _fail(problems, "env_vars()")
        if not t.is_url:
            Path(t.target).mkdir(parents=True, exist_ok=True)  # `env PATH` wants an existing working dir
        masked, shown = _cli_env(kit, target)
        problems = []
        for var in sorted(secrets & set(env)):
            if env[var] and masked["env"].get(var) != MASK:
                problems.append(f"`env` shows {var} as {masked['env'].get(var)!r}, not masked ({MASK})")
        if SUITE_SECRET in json.dumps(masked):
            problems.append("`env --json` output contains the password")
        if masked["secrets"] != sorted(secrets & set(env)):
            problems.append(f"`env` lists secrets {masked['secrets']}, expected {sorted(secrets & set(env))}")
        # `env` prints the provider's env_vars() plus what the core adds for every backend
        # (LIGHTRAG_*_STORAGE, WORKSPACE, WORKING_DIR, EMBEDDING_*): the same set as lightrag_settings()
        from ..hybridrag import lightrag_env

        expected = lightrag_env(kit.provider, config, working_dir=kit.provider.lightrag_kwargs(config).get("working_dir"))
        if shown["env"] != expected:
            problems.append(f"`env --show-secrets` gives {shown['env']}, lightrag_settings() gives {expected}")
        for var, value in env.items():
            if shown["env"].get(var) != value:
                problems.append(f"`env --show-secrets` gives {var}={shown['env'].get(var)!r}, env_vars() gives {value!r}")
        for key, name in classes.items():
            env_name = f"LIGHTRAG_{LIGHTRAG_STORAGE_KEYS.get(key, key.upper())}"
            if shown["env"].get(env_name) != name:
                problems.append(f"`env` gives {env_name}={shown['env'].get(env_name)!r}, storage_classes() says {name!r}")
        _fail(problems, "the `env` command")

    # -- validate / metrics ------------------------------------------------------------

    def test_validate_and_metrics_shapes_and_speed(self, kit: Kit) -> None:
        t = kit.target
        config = kit.fresh()
        data = kit.sample()
        kind = next(k for k in KINDS if k in t.store_kinds)
        stores = stores_needed(kind, data)

        async def fill() -> None:
            async with kit.provider.open(config) as session:
                await kit.writer(session, stores, "metrics").write_all({s: data[s] for s in stores}, 50)

        run(fill())
        checks = _timed(t.time_limit_s, "validate()", kit.provider.validate(config))
        _fail(_check_problems(checks), "validate()")
        metrics = _timed(t.time_limit_s, "metrics()", kit.provider.metrics(config))
        problems = _metrics_problems(kit.provider, metrics)
        for store in stores:
            counted = metrics.store_counts.get(store.name)
            if counted is not None and counted != len(data[store]):
                problems.append(f"metrics().store_counts[{store.name!r}] is {counted}, {len(data[store])} were written")
        if not any(metrics.store_counts.values()) and not (metrics.doc_count or metrics.entity_count or metrics.total_size_bytes):
            problems.append(f"metrics() reports nothing (no store counts, documents, entities or size) for a target "
                            f"holding {sum(len(data[s]) for s in stores)} records")
        _fail(problems, "metrics()")
        secret_target = t.with_secret()
        if secret_target is not None:  # wrong credentials: a failed check or an error, never the password
            wrong = kit.provider.config_from_target(secret_target, workspace=t.workspace)
            for what, call in (("validate()", kit.provider.validate), ("metrics()", kit.provider.metrics)):
                try:
                    result = _timed(t.time_limit_s, what, call(wrong))
                    text = repr(result)
                except HybridRAGBackendsError as exc:
                    text = str(exc)
                assert SUITE_SECRET not in text, f"{what} with a wrong password shows it: {text[:300]}"

    def test_unreachable_backend_fails_a_check_with_a_fix(self, kit: Kit) -> None:
        t = kit.target
        where = t.unreachable(kit.scratch)
        config = kit.provider.config_from_target(where, workspace=t.workspace)
        try:
            checks = _timed(t.time_limit_s, "validate() of an unreachable target", kit.provider.validate(config))
        except Exception as exc:  # noqa: BLE001 - any exception is the failure being reported
            pytest.fail(f"validate() raised {type(exc).__name__}: {exc} for an unreachable target ({where}); "
                        f"it must return a failed check with a fix", pytrace=False)
        _fail(_check_problems(checks), "validate() of an unreachable target")
        failed = [c for c in checks if not c.ok]
        assert failed, f"validate() passed every check for an unreachable target ({where}): {checks}"
        try:
            metrics = _timed(t.time_limit_s, "metrics() of an unreachable target", kit.provider.metrics(config))
        except HybridRAGBackendsError as exc:  # a user error naming the problem is fine
            assert str(exc), "metrics() raised an empty error"
            return
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"metrics() raised {type(exc).__name__}: {exc} for an unreachable target; return "
                        f"StorageMetrics(is_connected=False, health='error') or raise a HybridRAGBackendsError",
                        pytrace=False)
        assert not (metrics.is_connected and metrics.health == "healthy"), (
            f"metrics() says an unreachable target ({where}) is connected and healthy")

    # -- the stream interface -----------------------------------------------------------

    def test_write_then_read_returns_the_same_records(self, kit: Kit, kind: StoreKind) -> None:
        kit.require(kind)
        data = kit.sample()
        stores = [s for s in data if s.kind is kind]
        if kind is StoreKind.GRAPH_EDGES:
            stores = [s for s in data if s.kind is StoreKind.GRAPH_NODES] + stores
        subset = {s: data[s] for s in stores}
        config = kit.fresh()

        async def go() -> List[str]:
            async with kit.provider.open(config) as session:
                empty = await session.is_empty()
                assert empty is True, f"is_empty() is {empty!r} for a fresh target"
                await kit.writer(session, stores, "roundtrip").write_all(subset, BATCH)
            problems = []
            async with kit.provider.open(config) as session:
                assert await session.is_empty() is False, "is_empty() is still True after writing"
                listed = {s.name: s for s in await session.list_stores()}
                for store in stores:
                    if store.name not in listed:
                        problems.append(f"list_stores() does not list {store.name}, which was written")
                        continue
                    found = listed[store.name]
                    if found.kind is not store.kind:
                        problems.append(f"list_stores() gives {store.name} kind {found.kind.value}, not {store.kind.value}")
                    if store.kind is StoreKind.VECTOR and found.embedding_dim != store.embedding_dim:
                        problems.append(f"list_stores() gives {store.name} embedding_dim {found.embedding_dim}, "
                                        f"records of {store.embedding_dim} were written")
                    count = await session.count(found)
                    if count != len(subset[store]):
                        problems.append(f"count({store.name}) is {count}, {len(subset[store])} records were written")
                    records, rejected, _ = await read_all(session, found, None, 5)
                    problems += [f"store {store.name}: record {r.key!r} read back as rejected: {r.reason}" for r in rejected]
                    problems += record_problems(store, subset[store], records, session.lossy_fields(found))
            return problems

        _fail(run(go()), f"records written to {kind.value} stores differ when read back")

    def test_unicode_and_large_records_round_trip(self, kit: Kit, kind: StoreKind) -> None:
        config, stores, data = kit.written(kind, "unicode")

        async def go() -> List[str]:
            async with kit.provider.open(config) as session:
                store = await kit.listed(config, stores[-1])
                records, rejected, _ = await read_all(session, store)
                wanted = [r for r in data[stores[-1]] if r.key in special_keys(data[stores[-1]])]
                got = {r.key: r for r in records}
                problems = [f"record {r.key!r} read back as rejected: {r.reason}" for r in rejected if r.key in got]
                for r in wanted:
                    if r.key not in got:
                        problems.append(f"record {r.key!r} (non-ASCII key) was written but not read back")
                problems += record_problems(store, wanted, [got[r.key] for r in wanted if r.key in got],
                                            session.lossy_fields(store))
                return problems

        _fail(run(go()), f"non-ASCII and large records of a {kind.value} store ({UNICODE_KEY!r}...)")

    def test_read_order_is_deterministic(self, kit: Kit, kind: StoreKind) -> None:
        config, stores, _ = kit.written(kind, "order")

        async def go() -> None:
            store = await kit.listed(config, stores[-1])
            reads = []
            for label, size in (("the first read", 1000), ("a second read", 1000), ("a read in batches of 1", 1),
                                ("a read in batches of 3", 3)):
                async with kit.provider.open(config) as session:
                    records, _, _ = await read_all(session, store, None, size)
                reads.append((label, [r.key for r in records]))
            first = reads[0][1]
            for label, keys in reads[1:]:
                if keys != first:
                    at = next((i for i, (a, b) in enumerate(zip(first, keys)) if a != b), min(len(first), len(keys)))
                    pytest.fail(
                        f"store {store.name}: the read order is not deterministic: {label} gives another order than "
                        f"the first read (position {at}: {keys[at] if at < len(keys) else None!r} instead of "
                        f"{first[at] if at < len(first) else None!r}); read() must give the same order every time, "
                        f"whatever the batch size, so a resumed copy continues where it stopped", pytrace=False)

        run(go())

    def test_resume_from_a_cursor_in_the_middle(self, kit: Kit, kind: StoreKind) -> None:
        config, stores, _ = kit.written(kind, "resume")

        async def go() -> List[str]:
            store = await kit.listed(config, stores[-1])
            problems = []
            async with kit.provider.open(config) as session:
                records, _, seen = await read_all(session, store, None, 4)
                keys = [r.key for r in records]
                middle = len(seen) // 2
                position = resume_position(seen[middle - 1])
                expected = [r.key for b in seen[middle:] for r in b.records]
                rest, _, _ = await read_all(session, store, position, 4)
                if [r.key for r in rest] != expected:
                    problems.append(f"store {store.name}: reading after the cursor of batch {middle} ({position!r}) gives "
                                    f"{len(rest)} records starting {[r.key for r in rest[:3]]}, expected the {len(expected)} "
                                    f"that followed it, starting {expected[:3]}")
                j = len(records) // 3
                rest, _, _ = await read_all(session, store, records[j].position, 1000)
                if [r.key for r in rest] != keys[j + 1:]:
                    problems.append(f"store {store.name}: reading after record {records[j].key!r} (position "
                                    f"{records[j].position!r}) gives {len(rest)} records starting {[r.key for r in rest[:3]]}, "
                                    f"expected the {len(keys) - j - 1} after it, starting {keys[j + 1:j + 4]}")
                rest, _, _ = await read_all(session, store, records[-1].position, 1000)
                if rest:
                    problems.append(f"store {store.name}: reading after the last record gives {len(rest)} more")
            return problems

        _fail(run(go()), "resuming a read from a cursor")

    def test_rewriting_a_batch_after_a_crash_is_idempotent(self, kit: Kit, kind: StoreKind) -> None:
        """A crash after the target committed a batch but before the engine saved its job file: the
        resumed run writes the batch again (from the job file's checkpoint, or from the target's own
        copy of the job when it keeps one) and the target must end up with each record once."""
        kit.require(kind)
        data = kit.sample()
        stores = stores_needed(kind, data)
        store = stores[-1]
        records = data[store]
        config = kit.fresh()
        parts = batches(records, BATCH)
        crash_after = len(parts) // 2

        async def go() -> List[str]:
            problems = []
            async with kit.provider.open(config) as session:
                w = kit.writer(session, stores, "rewrite")
                await w.prepare(stores)
                for before in stores[:-1]:
                    await w.write_store(before, data[before], BATCH)
                for i, batch in enumerate(parts[: crash_after + 1]):
                    await w.write(store, batch, save=i < crash_after)  # the last one: committed, job file not saved
                job, written = copy.deepcopy(w.saved), w.job.checkpoint(store.name).migrated_count
            async with kit.provider.open(config) as session:
                kept = await session.load_job(job.job_id)
            if kept is not None:
                cp = kept.checkpoint(store.name)
                if cp is None or cp.migrated_count != written:
                    problems.append(
                        f"the target keeps the job (load_job) but its checkpoint of {store.name} counts "
                        f"{cp.migrated_count if cp else None} records after write_batch() returned, not {written}: "
                        f"commit the job's checkpoint together with the batch")
            # resume from the job file as it was saved before the crash: the last batch is written again
            # (a target that keeps its own copy of the job is resumed from that by the engine; writing
            # again from the older checkpoint must be harmless all the same)
            async with kit.provider.open(config) as session:
                w = Writer(session, job)
                await w.prepare(stores)
                for batch in parts[crash_after:]:
                    await w.write(store, batch)
                await w.finish(store)
                await session.finish_target(job)
            async with kit.provider.open(config) as session:
                found = await kit.listed(config, store)
                count = await session.count(found)
                got, rejected, _ = await read_all(session, found)
                if count != len(records):
                    problems.append(f"after a resume wrote batch {crash_after + 1} of {store.name} again, count() is "
                                    f"{count}, not {len(records)}: write_batch() must upsert by key (writing a batch "
                                    f"again changes nothing)")
                problems += [f"record {r.key!r} rejected: {r.reason}" for r in rejected]
                problems += record_problems(store, records, got, session.lossy_fields(found))
            return problems

        _fail(run(go()), "a batch written again when resuming after a crash (it must be idempotent)")

    def test_empty_store(self, kit: Kit, kind: StoreKind) -> None:
        config, stores, _ = kit.written(kind, "empty", empty=True)

        async def go() -> None:
            async with kit.provider.open(config) as session:
                for store in stores:
                    listed = {s.name: s for s in await session.list_stores()}
                    found = listed.get(store.name, store)
                    count = await session.count(found)
                    assert count == 0, f"count({store.name}) is {count} for a store written with no records"
                    records, rejected, _ = await read_all(session, found)
                    assert not records and not rejected, f"reading the empty store {store.name} gave {len(records)} records"

        run(go())

    def test_wrong_dimension_vector_is_refused_or_rejected(self, kit: Kit) -> None:
        """A vector of the wrong dimension never comes back as a good record: the target refuses it by
        name (``screen()``, or ``write_batch`` raising an error naming the record), or it holds it and
        read() yields it as a reject."""
        kit.require(StoreKind.VECTOR)
        data = kit.sample()
        store = stores_needed(StoreKind.VECTOR, data)[0]
        good = data[store][:12]
        bad = Record(store.name, "wrong-dimension-record", dict(good[0].payload),
                     np.arange(SAMPLE_DIM + 3, dtype=np.float32) / 10)
        config = kit.fresh()

        async def go() -> None:
            async with kit.provider.open(config) as session:
                w = kit.writer(session, [store], "dim")
                await w.prepare([store])
                try:
                    await w.write(store, good[:6] + [bad] + good[6:])
                except HybridRAGBackendsError as exc:
                    assert bad.key in str(exc), (
                        f"write_batch() refused a batch holding a {SAMPLE_DIM + 3}-d vector in a {SAMPLE_DIM}-d store "
                        f"but its error does not name the record {bad.key!r}: {exc}")
                    return
                except Exception as exc:  # noqa: BLE001
                    pytest.fail(f"write_batch() raised {type(exc).__name__}: {exc} for a wrong-dimension vector; "
                                f"refuse it by name (screen() or a TargetError), or store it and reject it when "
                                f"reading", pytrace=False)
                await w.finish(store)
                await session.finish_target(w.job)
                screened = {r.key for r in w.refused}
            found = await kit.listed(config, store)
            async with kit.provider.open(config) as session:
                records, rejected, _ = await read_all(session, found)
            assert bad.key not in {r.key for r in records}, (
                f"a {SAMPLE_DIM + 3}-d vector written to a {SAMPLE_DIM}-d store reads back as a good record "
                f"({bad.key!r}); it must be refused when written or read back as a RejectedRecord")
            assert bad.key in screened | {r.key for r in rejected}, (
                f"the wrong-dimension record {bad.key!r} was accepted but is neither read back nor rejected")
            _fail(record_problems(store, good, records, session.lossy_fields(found)), "the good records beside it")

        run(go())

    # -- through the engine ---------------------------------------------------------------

    def test_a_wrong_dimension_vector_in_the_source_becomes_a_reject(self, kit: Kit) -> None:
        kit.require(StoreKind.VECTOR)
        source = engine.source_with_a_wrong_dimension_vector(kit.scratch / "bad-source")
        job = engine.migrate_in_process(kit, str(source.path), kit.fresh(), allow_rejects=True)
        problems = engine.rejects_problems(job, source)
        _fail(problems, "a source holding a wrong-dimension vector")

    def test_round_trip_with_json(self, kit: Kit, dataset: Optional[Tuple[Path, str]]) -> None:
        """JSON -> this backend -> JSON through the engine, verified on both hops, and the final working
        dir equal (under a plain JSON / GraphML parse) to a direct JSON -> JSON copy."""
        for kind in (StoreKind.KV, StoreKind.DOC_STATUS, StoreKind.VECTOR, StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES):
            if kind not in kit.target.store_kinds:
                pytest.skip(f"{kit.provider.name} cannot hold a whole knowledge base (no {kind.value} stores)")
        _fail(engine.round_trip(kit, dataset), "JSON -> backend -> JSON")

    def test_sigkill_then_resume_ends_equal_under_lightrag(self, kit: Kit) -> None:
        """The CLI migrates a generated knowledge base into a fresh location in a subprocess, killed with
        SIGKILL at random points and resumed each time; the result is then read with LightRAG's own
        storage classes (storage_classes() + env_vars()), not with this provider's reader."""
        for kind in (StoreKind.KV, StoreKind.DOC_STATUS, StoreKind.VECTOR, StoreKind.GRAPH_NODES, StoreKind.GRAPH_EDGES):
            if kind not in kit.target.store_kinds:
                pytest.skip(f"{kit.provider.name} cannot hold a whole knowledge base (no {kind.value} stores)")
        source, config, _ = engine.sigkill_run(kit)
        _fail(lightrag_reader.compare(kit.target, config, source, kit.scratch),
              "LightRAG's own storages reading the migrated target")


# -- helpers --------------------------------------------------------------------------------


def _config_error(provider: BackendProvider, target: str, workspace: Optional[str]) -> Optional[str]:
    """The error text a bad target gets (from config_from_target/describe, or a failed validate check)."""
    try:
        config = provider.config_from_target(target, workspace=workspace)
        provider.describe(config)
    except HybridRAGBackendsError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001
        return f"(not a HybridRAGBackendsError: {type(exc).__name__}) {exc}"
    checks = run(provider.validate(config))
    failed = [f"{c.name}: {c.detail} ({c.fix})" for c in checks if not c.ok]
    return "; ".join(failed) or None


def _check_problems(checks: Any) -> List[str]:
    if not isinstance(checks, list):
        return [f"returned {type(checks).__name__}, not a list of Check"]
    problems = []
    for c in checks:
        if not isinstance(c, Check):
            problems.append(f"returned {c!r}, not a Check")
        elif not c.name or not isinstance(c.ok, bool):
            problems.append(f"a check without a name or a bool ok: {c!r}")
        elif not c.ok and not c.fix:
            problems.append(f"failed check {c.name!r} ({c.detail}) says no fix")
        elif SUITE_SECRET in f"{c.name} {c.detail} {c.fix}":
            problems.append(f"check {c.name!r} shows the password")
    return problems


def _metrics_problems(provider: BackendProvider, metrics: Any) -> List[str]:
    if not isinstance(metrics, StorageMetrics):
        return [f"returned {type(metrics).__name__}, not StorageMetrics"]
    problems = []
    if backend_name(metrics.backend_type) != provider.name:
        problems.append(f"backend_type is {backend_name(metrics.backend_type)!r}, not {provider.name!r}")
    if metrics.health not in ("healthy", "degraded", "error"):
        problems.append(f"health is {metrics.health!r}, not healthy / degraded / error")
    try:
        json.dumps(metrics.to_dict())
    except (TypeError, ValueError) as exc:
        problems.append(f"to_dict() is not JSON-serialisable ({exc}); `status --json` prints it")
    for name, count in metrics.store_counts.items():
        if not isinstance(count, int) or count < 0:
            problems.append(f"store_counts[{name!r}] is {count!r}, not a count")
    return problems


def _cli_env(kit: Kit, target: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``env TARGET --json`` and ``env TARGET --show-secrets --json``, run in-process through the CLI."""
    from click.testing import CliRunner

    from ..cli.main import build_cli
    from .registration import installed

    args = ["env", target, "--json"] + (["--workspace", kit.target.workspace] if kit.target.workspace else [])
    with installed(kit.provider):
        out = []
        for extra in ([], ["--show-secrets"]):
            result = CliRunner().invoke(build_cli(), args + extra)
            assert result.exit_code == 0, f"`hybridrag-backends {' '.join(args + extra)}` failed: {result.output}"
            out.append(json.loads(result.stdout))
    return out[0], out[1]

