"""The conformance suite fails providers that are wrong, naming what is wrong.

Each deliberately broken provider (tests/conformance_jsonl.py: one bug each, on an otherwise
correct JSON-lines provider) runs the suite's checks in a fresh pytest (pytester); the checks of
the broken behaviour must fail with a message pointing at it, and the same checks must pass for the
correct provider, so the failure comes from the bug and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

# bug -> (the checks to run, words the failure message must contain)
CASES = {
    "order": ("test_read_order_is_deterministic and kv", ["read order is not deterministic", "store full_docs"]),
    "dropped-field": ("test_write_then_read_returns_the_same_records and kv",
                      ["field 'file_path' was written but is missing when read back"]),
    "float16": ("test_write_then_read_returns_the_same_records and vector",
                ["vector differs as float32: it equals the float16 rounding of what was written"]),
    "non-idempotent": ("test_rewriting_a_batch_after_a_crash_is_idempotent and kv",
                       ["it must be idempotent", "write_batch() must upsert by key", "read 2 times"]),
    "password-in-describe": ("test_describe_is_credential_free_and_stable", ["describe() shows the password"]),
}

TEST_MODULE = '''
import pytest
from conformance_jsonl import broken
from hybridrag_backends.testing import ConformanceTarget, ProviderConformance


class TestJsonl(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, tmp_path):
        return ConformanceTarget(broken({bug!r})(), f"jsonl://{{tmp_path}}/kb",
                                 unreachable_target="jsonl:///nonexistent-hrb-parent/kb")
'''


def run_suite(pytester, bug, select):
    pytester.makepyfile(conformance_jsonl=(HERE / "conformance_jsonl.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_jsonl=TEST_MODULE.format(bug=bug))
    # in a subprocess: an in-process run would drop the extension modules it imported (asyncpg...),
    # which cannot be imported twice in one process
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", select, timeout=600)


@pytest.mark.parametrize("bug", sorted(CASES))
def test_a_broken_provider_fails_naming_the_behaviour(pytester, bug):
    select, words = CASES[bug]
    result = run_suite(pytester, bug, select)
    outcome = result.parseoutcomes()
    assert outcome.get("failed", 0) >= 1, result.stdout.str()
    output = result.stdout.str()
    for word in words:
        assert word in output, f"the failure for {bug!r} does not say {word!r}:\n{output[-3000:]}"


@pytest.mark.parametrize("bug", sorted(CASES))
def test_the_same_checks_pass_for_the_correct_provider(pytester, bug):
    select, _ = CASES[bug]
    result = run_suite(pytester, None, select)
    outcome = result.parseoutcomes()
    assert outcome.get("passed", 0) >= 1 and not outcome.get("failed") and not outcome.get("errors"), result.stdout.str()


def test_the_correct_provider_passes_every_stream_and_config_check(pytester):
    """The double is a fair baseline: the whole suite passes except the checks that need LightRAG to
    read the backend (its storage classes are JSON's, which cannot read JSON-lines logs)."""
    result = run_suite(pytester, None, "not round_trip and not sigkill")
    outcome = result.parseoutcomes()
    assert outcome.get("passed", 0) >= 30 and not outcome.get("failed"), result.stdout.str()


def test_service_unavailable_skips_outside_ci_and_fails_in_ci(monkeypatch):
    from hybridrag_backends.testing import service_unavailable

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server unavailable; apt-get install -y redis-server"):
        service_unavailable("redis-server", "apt-get install -y redis-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="redis-server is required in CI but unavailable"):
        service_unavailable("redis-server", "apt-get install -y redis-server")
