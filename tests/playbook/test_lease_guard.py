"""An actor that does not hold the lease never mutates: it stops before the action, and the
run stays resumable by the holder (at most one actor mutates a workplace at a time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.playbook import engine, loader
from failover.store import RunPhase, sqlite
from tests.playbook import pb_actions

TEXT = """name: t
stages:
  - name: one
    steps:
      - {id: a, uses: t-echo}
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite.SqliteStore]:
    s = sqlite.SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


async def test_without_the_lease_nothing_mutates_and_the_holder_resumes(store: sqlite.SqliteStore) -> None:
    assert store.acquire_lease("other-node", 60)
    services = pb_actions.Services()
    eng = engine.Engine(store=store, services=services, holder="this-node", retry_base_delay=0.01)
    run_id = await eng.start(loader.load_text(TEXT, "t.yaml"), params={})
    with pytest.raises(asyncio.CancelledError):
        await eng.execute(run_id)
    assert services.events == []  # the action never ran
    run = store.get_run(run_id)
    assert run is not None and run.phase is RunPhase.RUNNING  # not failed: the holder may resume it
    assert store.release_lease("other-node") and store.acquire_lease("this-node", 60)
    done = await eng.execute(run_id)
    assert done.phase is RunPhase.SUCCEEDED
    assert [k for k, e, _ in services.events if e == "start"] == ["a"]
