"""Named, guarded and supervised background tasks (after kopf's ``aiotasks``).

No bare ``asyncio.create_task`` in this project: every background task gets a name, its failure
is logged at once, an *eternal* task that returns is logged as the bug it is, and cancellation
is always re-raised.

A task that must live (a watcher, the replicator, the re-fencer, the controller) is not merely
guarded but **supervised**: :class:`Supervisor` restarts it with exponential backoff whenever it
raises or returns, counts the restarts and keeps the last error, so ``status --json`` shows
``daemon.tasks: {name: {state, restarts, last_error}}`` and a frozen loop can never pass for a
quiet one. (A guard that logs and returns would leave the controller acting on frozen data.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from failover.core import secrets

T = TypeVar("T")

logger = logging.getLogger(__name__)

_background: set[asyncio.Task[Any]] = set()


async def _guard(name: str, coro: Coroutine[Any, Any, T], *, eternal: bool) -> T | None:
    try:
        result = await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("%s failed", name)
        return None
    if eternal:
        logger.warning("%s has finished unexpectedly", name)
    return result


def create_guarded_task(
    coro: Coroutine[Any, Any, T], *, name: str, eternal: bool = False
) -> asyncio.Task[T | None]:
    """Start ``coro`` as a named task whose failure is logged and never lost."""
    task = asyncio.get_running_loop().create_task(_guard(name, coro, eternal=eternal), name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def cancel_and_wait(*tasks: asyncio.Task[Any], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait (bounded) for them to finish."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=timeout)


class TaskState(StrEnum):
    """Where a supervised task is."""

    RUNNING = "running"  #: its coroutine is executing
    BACKOFF = "backoff"  #: it died (raised or returned) and waits before its restart
    STOPPED = "stopped"  #: the supervisor was stopped (shutdown)


@dataclass
class TaskInfo:
    """What ``status --json`` shows of one supervised task (``daemon.tasks``)."""

    state: TaskState = TaskState.RUNNING
    restarts: int = 0
    last_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "restarts": self.restarts, "last_error": self.last_error}


class Supervisor:
    """Keeps named eternal tasks alive: a task that raises or returns is restarted after a backoff
    (``base_delay`` doubling up to ``max_delay``; reset after it ran ``healthy_after`` seconds).

    ``factory`` makes a fresh coroutine for every (re)start. Cancellation of the supervisor task
    (:meth:`stop`) cancels the child and is never mistaken for a failure.
    """

    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 10.0, healthy_after: float = 30.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self.info: dict[str, TaskInfo] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def supervise(self, name: str, factory: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[None]:
        """Start ``factory()`` as the supervised task ``name`` (ValueError if the name is taken)."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a supervised task named {name!r} is already running")
        self.info[name] = TaskInfo()
        task = asyncio.get_running_loop().create_task(self._keep(name, factory), name=f"supervisor of {name}")
        self._tasks[name] = task
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task

    async def _keep(self, name: str, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        info = self.info[name]
        loop = asyncio.get_running_loop()
        delay = self.base_delay
        while True:
            info.state = TaskState.RUNNING
            started = loop.time()
            try:
                await factory()
                error = "returned (an eternal task must not end)"
                logger.warning("%s has finished unexpectedly; restarting", name)
            except asyncio.CancelledError:
                info.state = TaskState.STOPPED
                raise
            except Exception as exc:
                error = secrets.redact(f"{type(exc).__name__}: {exc}")
                logger.exception("%s failed; restarting", name)
            if loop.time() - started >= self.healthy_after:
                delay = self.base_delay
            info.last_error = error
            info.restarts += 1
            info.state = TaskState.BACKOFF
            await asyncio.sleep(delay)
            delay = min(self.max_delay, delay * 2)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{name: {state, restarts, last_error}}`` for the status document."""
        return {name: info.as_json() for name, info in sorted(self.info.items())}

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Cancel every supervised task and wait (bounded)."""
        await cancel_and_wait(*self._tasks.values(), timeout=timeout)
        for info in self.info.values():
            info.state = TaskState.STOPPED
        self._tasks.clear()
