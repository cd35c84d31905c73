"""Verification reads a store's two sides at the same time; a failure on one side stops the other."""

import asyncio

import pytest

from hybridrag_backends.errors import SourceError
from hybridrag_backends.migration.verify import _both


def test_both_sides_run_together_and_a_failure_cancels_the_other():
    log = []

    async def side(name, seconds, fail=False):
        log.append(f"{name} started")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            log.append(f"{name} cancelled")
            raise
        if fail:
            raise SourceError(f"{name} failed")
        log.append(f"{name} done")
        return name

    async def main():
        assert await _both(side("source", 0.2), side("target", 0.1)) == ("source", "target")
        # together, not one after the other: the target started before the source was done
        assert log == ["source started", "target started", "target done", "source done"]
        with pytest.raises(SourceError, match="source failed"):
            await _both(side("source", 0.01, fail=True), side("target", 30))
        # cancelled before _both returned, not left running (asyncio.gather alone would leave it)
        assert log[-3:] == ["source started", "target started", "target cancelled"]

    asyncio.run(asyncio.wait_for(main(), 10))
