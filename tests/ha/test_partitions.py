"""Leadership on a real etcd cluster with daemon-like contenders (``contenders.py``): a leader
killed or cut off from etcd in the middle of a run is replaced, the run completes exactly once,
the deposed leader stops within its TTL, and its late write is refused by etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from failover.core import errors
from failover.lab.etcd import EtcdCluster
from failover.store import StepStatus
from tests.ha import contenders as h

pytestmark = pytest.mark.timeout(90)
TTL = 2.0


@pytest.fixture
async def trio(etcd_cluster: EtcdCluster, prefix: str) -> AsyncIterator[tuple[list[h.Contender], h.World,
                                                                              list[h.Office]]]:
    world, offices, thread = h.World(), [], h.ProxyThread()
    group = [h.Contender(f"c{i}", etcd_cluster, prefix=prefix, world=world, offices=offices, proxies=thread,
                         ttl=TTL) for i in range(3)]
    for c in group:
        await c.start()
    yield group, world, offices
    for c in group:
        await c.close()
    thread.close()


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    async def poll() -> Any:
        tick = asyncio.Event()  # a polled condition: re-checked every 50 ms
        while not (value := predicate()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.wait(), 0.05)
        return value
    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def leader(group: list[h.Contender]) -> h.Contender | None:
    return next((c for c in group if c.leading), None)


def steps_done(world: h.World) -> int:
    return sum(1 for w in world.writes if w.first)


async def test_leader_cut_off_from_etcd_mid_run_stops_and_its_late_write_is_refused(trio: Any) -> None:
    group, world, offices = trio
    old = await until(lambda: leader(group), "a leader")
    await until(lambda: steps_done(world) >= 2, "the run under way")
    assert old.store is not None
    old_epoch = old.store.fence
    await old.partition()  # cut off from every etcd member (a majority and more)
    cut_at = asyncio.get_running_loop().time()
    new = await until(lambda: next((c for c in group if c.leading and c is not old), None), "a new leader")
    assert not old.leading and not old.store.holds_lease()
    assert offices[-1].actor == new.name and offices[-1].epoch > (old_epoch or 0)
    old_writes = [w for w in world.writes if w.actor == old.name]
    assert all(w.at <= cut_at + TTL for w in old_writes), "the cut-off leader acted beyond its TTL"
    assert new.store is not None
    await until(lambda: h.run_succeeded_once(new.store), "the run completed by the new leader")  # type: ignore[arg-type]
    assert h.double_actors(world, offices) == []
    assert all(n == 1 for n in _first_writes(world).values()) and len(_first_writes(world)) == len(h.STEPS)

    await old.kill()  # its loop is gone; a write it had in flight now reaches etcd, late
    await old.partition(cut=False)
    store = old.store

    def late_write() -> BaseException | None:
        try:
            store.record_step_start("1", "dns-switch", step_id="dns-switch", attempt=9)
        except errors.TemporaryError:  # its client still backs off from the partition
            return None
        except errors.FailoverError as exc:
            return exc
        raise AssertionError("the late write of the deposed leader was accepted")

    refusal = await until(late_write, "the late write to reach etcd")
    assert isinstance(refusal, errors.StaleEpochError) and f"epoch {old_epoch} refused" in str(refusal)
    refused = new.store.refusals()
    assert refused and refused[-1]["holder"] == old.name and refused[-1]["epoch"] == old_epoch
    assert all(s.attempt != 9 for s in new.store.step_records("1"))


async def test_leader_killed_mid_run_another_completes_the_same_run_exactly_once(trio: Any) -> None:
    group, world, offices = trio
    old = await until(lambda: leader(group), "a leader")
    await until(lambda: steps_done(world) >= 3, "the run under way")
    await old.kill()
    new = await until(lambda: next((c for c in group if c.leading and c is not old), None), "a new leader")
    assert new.store is not None
    await until(lambda: h.run_succeeded_once(new.store), "the run completed")  # type: ignore[arg-type]
    assert len(new.store.list_runs()) == 1 and h.double_actors(world, offices) == []
    assert all(n == 1 for n in _first_writes(world).values())
    journal = [s for s in new.store.step_records("1") if s.status is StepStatus.SUCCEEDED]
    assert sorted(s.key for s in journal) == sorted(h.STEPS)


def _first_writes(world: h.World) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in world.writes:
        if w.first:
            out[w.key] = out.get(w.key, 0) + 1
    return out
