"""Named, guarded background tasks (after kopf's ``aiotasks``).

No bare ``asyncio.create_task`` in this project: every background task gets a name, its failure
is logged at once, an *eternal* task that returns is logged as the bug it is, and cancellation
is always re-raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

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
