"""Supervised tasks: a task that raises or returns is restarted with backoff, counted, and visible."""

from __future__ import annotations

import asyncio

from failover.core import tasks


async def test_a_failing_task_is_restarted_counted_and_its_error_kept() -> None:
    sup = tasks.Supervisor(base_delay=0.01, max_delay=0.05)
    starts: list[int] = []
    third = asyncio.Event()

    async def flaky() -> None:
        starts.append(len(starts))
        if len(starts) < 3:
            raise RuntimeError(f"boom {len(starts)}")
        third.set()
        await asyncio.Event().wait()

    sup.supervise("flaky", flaky)
    await asyncio.wait_for(third.wait(), timeout=10)
    info = sup.snapshot()["flaky"]
    assert info == {"state": "running", "restarts": 2, "last_error": "RuntimeError: boom 2"}
    await sup.stop()
    assert sup.snapshot()["flaky"]["state"] == "stopped"


async def test_an_eternal_task_that_returns_is_a_failure_too() -> None:
    sup = tasks.Supervisor(base_delay=0.01)
    starts: list[int] = []
    restarted = asyncio.Event()

    async def quits() -> None:
        starts.append(1)
        if len(starts) == 2:
            restarted.set()

    sup.supervise("quits", quits)
    await asyncio.wait_for(restarted.wait(), timeout=10)
    assert sup.snapshot()["quits"]["restarts"] >= 1
    assert "must not end" in str(sup.snapshot()["quits"]["last_error"])
    await sup.stop()
